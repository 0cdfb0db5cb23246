"""``flask routing sweep|scan|beat|dispatch|rules-import|rules-export``, and the periodic sweeper thread.

Periodic mechanism: :func:`start_beat` runs the sweeper and the deadline scan every ``interval``
seconds in a daemon thread of a long-lived process (``flask routing beat`` runs it in the foreground).
It calls the domain jobs directly, so it depends on neither RQ's scheduler nor a self-rescheduling
job that a Redis outage could drop for good; a Redis lock (``SET NX EX``) lets many beat threads run
on many machines while one of them works per period, and both jobs are idempotent anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from redis.exceptions import RedisError

from app.extensions import db
from core.csvio import ImportRejected

log = logging.getLogger(__name__)

routing_cli = AppGroup("routing", help="派单引擎：补派、时限扫描、派单规则")
BEAT_LOCK = "routing:beat"


@routing_cli.command("sweep")
@click.option("--older-than", default=60, show_default=True, help="滞留超过多少秒的工单重新入队")
def sweep_command(older_than: int) -> None:
    """Re-enqueue cases stuck in submitted/dispatching."""
    from routing import jobs

    click.echo(f"重新入队 {jobs.sweep(older_than_seconds=older_than)} 件工单")


@routing_cli.command("scan")
@click.option(
    "--warning-share",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    help="用去时限的比例达到多少时预警（默认取配置 DEADLINE_WARNING_SHARE，0.8）",
)
def scan_command(warning_share: float | None) -> None:
    """Warn cases near their deadline, flag overdue ones for 督办, close unrated ones past callback."""
    from routing import jobs

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    share = warning_share if warning_share is not None else configured_warning_share(app)
    counts = jobs.scan_deadlines(warning_share=share)
    click.echo(
        f"预警 {counts['warning']}，超时督办 {counts['overdue']}，超时未签收 {counts['sign_for_overdue']}，"
        f"回访超期自动归档 {counts['closed']}"
    )


def configured_warning_share(app: Flask) -> float:
    """``DEADLINE_WARNING_SHARE`` from the configuration (default 0.8), checked to lie in (0, 1]."""
    raw = app.config.get("DEADLINE_WARNING_SHARE")
    share = 0.8 if raw is None else float(raw)
    if not 0 < share <= 1:
        raise click.UsageError(f"DEADLINE_WARNING_SHARE 须大于 0 且不超过 1（当前为 {raw}）")
    return share


@routing_cli.command("rules-import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="版本说明")
def rules_import(file: Path, note: str) -> None:
    """Publish a new dispatch-rule version from CSV (category,group,place,level,unit,priority)."""
    from routing.services import import_rules_csv

    try:
        rule_set = import_rules_csv(db.session(), file.read_bytes(), None, note=note)
    except ImportRejected as rejected:
        db.session.rollback()
        click.echo(f"导入失败，规则未作任何修改（{len(rejected.errors)} 处错误）：", err=True)
        for error in rejected.errors:
            click.echo(f"  {error}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    click.echo(f"已发布派单规则第 {rule_set.version} 版（{len(rule_set.rules)} 条）")


@routing_cli.command("rules-export")
def rules_export() -> None:
    """Print the current dispatch rules as CSV."""
    from routing.rules import rules_to_csv
    from routing.services import current_rules

    view = current_rules(db.session())
    db.session.commit()
    click.echo(rules_to_csv(view.rules), nl=False)


@routing_cli.command("beat")
@click.option("--interval", default=60, show_default=True, help="每隔多少秒补派并扫描时限")
@click.option("--once", is_flag=True, help="只运行一次")
def beat_command(interval: int, once: bool) -> None:
    """Run the sweeper and the deadline scan periodically (in the foreground)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        run_beat_once(app, interval)
        return
    while True:
        run_beat_once(app, interval)
        time.sleep(interval)


@routing_cli.command("dispatch")
def dispatch_command() -> None:
    """Hand new cases to the routing queue as the database makes them known, in the foreground (every
    ``flask worker`` serving the routing queue runs this too; one process leads, the others stand by)."""
    import signal

    from app.dispatch import Dispatcher, database_hands_over

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not database_hands_over(app):
        raise click.ClickException(
            "新工单由受理它的 Web 进程入队（ROUTING_HANDOFF=web，或 RQ_ASYNC 关闭、任务在进程内运行）"
        )
    dispatcher = Dispatcher(app)
    stopped = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stopped.set())
    dispatcher.start()
    stopped.wait()
    dispatcher.stop()


def run_beat_once(app: Flask, interval: int) -> bool:
    """One period: take the cluster-wide lock, then sweep and scan; False if another process has it."""
    from app.redis_conn import redis_for
    from routing import jobs

    try:
        if not redis_for(app).set(BEAT_LOCK, "1", nx=True, ex=max(1, interval - 1)):
            return False
    except (RedisError, OSError) as exc:
        # Without Redis nothing can be enqueued; the scan needs only the database, so run it anyway.
        log.warning("beat: Redis unavailable (%s); scanning deadlines only", exc)
        with app.app_context():
            _safely(lambda: jobs.scan_deadlines(warning_share=configured_warning_share(app)), "scan")
        return True
    from governance import jobs as governance_jobs

    with app.app_context():
        _safely(jobs.sweep, "sweep")
        _safely(lambda: jobs.scan_deadlines(warning_share=configured_warning_share(app)), "scan")
        from app import messaging

        _safely(messaging.sweep, "message sweep")  # SMS/e-mail whose job was lost (queued/retrying > 15 min)
        _safely(governance_jobs.close_due_votes, "votes")  # co-governance: votes close at their deadline
        _safely(jobs.purge_phone_codes, "phone codes")  # one-time codes (with their phone) after a day
    return True


def _safely(fn: Callable[[], object], name: str) -> None:
    try:
        fn()
    except Exception:  # a failing period (or a bad DEADLINE_WARNING_SHARE) must not stop the next one
        log.exception("beat: %s failed", name)


def start_beat(app: Flask, interval: int = 60) -> threading.Thread:
    """Start the periodic sweeper/scan in a daemon thread of this process (e.g. inside ``flask worker``)."""

    def loop() -> None:
        while True:
            run_beat_once(app, interval)
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="routing-beat", daemon=True)
    thread.start()
    return thread


def init_app(app: Flask) -> None:
    """Register the ``flask routing`` commands."""
    app.cli.add_command(routing_cli)
