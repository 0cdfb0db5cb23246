"""``flask scoring run 2026Q3 [--publish]`` and ``flask scoring enqueue 2026Q3``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from assessment.jobs import RUN_QUARTER
from core import jobs
from core.i18n import DomainError

scoring_cli = AppGroup("scoring", help="季度考评计算与发布")


@scoring_cli.command("run")
@click.argument("quarter")
@click.option("--publish", is_flag=True, help="计算后立即发布（发布后结果冻结）")
def run(quarter: str, publish: bool) -> None:
    """Score a quarter now (replaces its draft results; a published quarter is refused)."""
    from assessment.jobs import run_quarter

    try:
        run_id = run_quarter(quarter, publish)
    except (DomainError, ValueError) as error:
        raise click.ClickException(getattr(error, "message", str(error))) from error
    click.echo(f"{quarter} 考评计算完成（结果编号 {run_id}）" + ("，已发布" if publish else "，为草稿"))


@scoring_cli.command("enqueue")
@click.argument("quarter")
def enqueue(quarter: str) -> None:
    """Queue the scoring of a quarter on the scoring queue."""
    jobs.enqueue(RUN_QUARTER, quarter)
    click.echo(f"已提交 {quarter} 的考评计算任务")
