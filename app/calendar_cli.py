"""``flask calendar import|status|show|seed``: the working calendar (holiday notices per year)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click
from flask.cli import AppGroup

from app.extensions import db
from core.csvio import ImportRejected
from core.db import utcnow
from routing import calendar_store
from routing.calendar import day_lines
from routing.calendar_services import import_notice
from routing.services import to_local

calendar_cli = AppGroup("calendar", help="工作日历：节假日与调休安排")
MAX_SHOW_DAYS = 3660


def beijing_today() -> date:
    """Today's date in Beijing."""
    return to_local(utcnow()).date()


@calendar_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default="", help="说明，如：国办发明电〔2026〕X号")
def import_command(file: Path, note: str) -> None:
    """Import a State Council notice as CSV (date,kind,name; kind holiday|workday); all or nothing."""
    try:
        summary = import_notice(db.session(), file.read_bytes(), None, note=note)
    except ImportRejected as rejected:
        db.session.rollback()
        calendar_store.invalidate()
        click.echo(f"导入失败，日历未作任何修改（{len(rejected.errors)} 处错误）：", err=True)
        for error in rejected.errors:
            click.echo(f"  {error}", err=True)
        raise SystemExit(1) from None
    db.session.commit()
    years = "、".join(str(y) for y in summary.years)
    click.echo(
        f"已导入 {years} 年节假日安排：放假 {summary.holidays} 天，调休上班 {summary.workdays} 天；"
        f"重新计算暂定时限 {summary.recomputed} 件"
    )


@calendar_cli.command("status")
def status_command() -> None:
    """List the years covered, and warn about uncovered dates in the next 90 days."""
    session = db.session()
    rows = calendar_store.coverage(session)
    if not rows:
        click.echo("日历中没有任何年份（请运行 flask calendar seed 或 flask calendar import）")
    for row in rows:
        source = "导入" if row.source == "import" else "内置数据"
        note = f"（{row.note}）" if row.note else ""
        click.echo(
            f"{row.year}  {source}{note}  放假 {row.holidays} 天  调休上班 {row.workdays} 天  "
            f"更新于 {to_local(row.updated_at):%Y-%m-%d %H:%M}"
        )
    gaps = calendar_store.uncovered_dates(session, beijing_today())
    db.session.commit()
    if gaps:
        years = sorted({d.year for d in gaps})
        click.echo(
            f"警告：未来 90 天内有 {len(gaps)} 天（自 {gaps[0]} 起）所在年份 {'、'.join(map(str, years))} "
            "尚无节假日安排，相关时限按法定节假日暂定；请导入国务院办公厅通知",
            err=True,
        )


def _parse_day(_ctx: click.Context, _param: click.Parameter, value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"“{value}”不是 YYYY-MM-DD 格式的日期") from None


@calendar_cli.command("show")
@click.argument("first", metavar="FROM", callback=_parse_day)
@click.argument("last", metavar="TO", callback=_parse_day)
def show_command(first: date, last: date) -> None:
    """Print one line per date from FROM to TO: ``YYYY-MM-DD workday|off name`` (暂定 when uncovered)."""
    if last < first:
        raise click.BadParameter("结束日期不能早于开始日期", param_hint="TO")
    if (last - first).days >= MAX_SHOW_DAYS:
        raise click.BadParameter(f"一次最多显示 {MAX_SHOW_DAYS} 天", param_hint="TO")
    calendar = calendar_store.working_calendar(db.session())
    db.session.commit()
    for line in day_lines(calendar, first, last):
        click.echo(line)


@calendar_cli.command("seed")
def seed_command() -> None:
    """Store the years the installed chinesecalendar package knows and the database lacks."""
    added = calendar_store.seed_from_library(db.session())
    db.session.commit()
    if added:
        click.echo(f"已写入内置节假日数据：{added[0]}–{added[-1]} 年（{len(added)} 年）")
    else:
        click.echo("内置数据的年份均已在日历中，未作修改")
