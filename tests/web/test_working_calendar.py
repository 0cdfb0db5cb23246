"""The stored working calendar: seeding, import (service, CLI, admin page), the cache, provisional
deadlines on cases and their recount with an audit event when the year's notice arrives."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from core.csvio import ImportRejected
from routing import calendar_store, jobs, notify, services
from routing.calendar import library_years, parse_notice_csv
from routing.calendar_services import RECOMPUTE_ACTION, CalendarForbidden, import_notice
from routing.models import CalendarDate, CalendarYear, Case, CaseEvent, Notice
from routing.services import to_utc
from tests.calendar_fixture import NOTICE_2027
from tests.conftest import login
from tests.web.test_routing_services import new_case, route, user

BAD_NOTICE = "date,kind,name\n2027-01-01,holiday,元旦\n2027-02-30,holiday,春节\n2027-02-03,workday,春节\n"


def stored_years(session: Session) -> list[int]:
    session.expire_all()
    return list(session.scalars(select(CalendarYear.year).order_by(CalendarYear.year)))


def case_dispatched_at(session: Session, local: datetime, resident_name: str | None = None) -> Case:
    """A case received at ``local`` Beijing time and routed at once (WY-01: 7 working days)."""
    resident = user(session, resident_name) if resident_name else None
    case = new_case(session, "WY-01", resident=resident)
    case.created_at = to_utc(local)
    session.flush()
    route(session, case)
    assert case.state == "dispatched"
    return case


# --- seeding and coverage ------------------------------------------------------------------------


def test_demo_seeds_every_year_the_package_knows(session: Session) -> None:
    assert stored_years(session) == library_years()
    rows = {r.year: r for r in calendar_store.coverage(session)}
    # 2026 as the package has it: 33 days off and 6 make-up days (see tests/unit/test_calendar.py).
    assert (rows[2026].source, rows[2026].holidays, rows[2026].workdays) == ("library", 33, 6)
    assert calendar_store.seed_from_library(session) == []  # idempotent


def test_seeding_never_overwrites_an_imported_year(session: Session) -> None:
    import_notice(session, "date,kind,name\n2026-03-02,holiday,本地测试\n", None)
    assert calendar_store.seed_from_library(session) == []
    assert session.scalar(select(func.count()).where(CalendarDate.year == 2026)) == 1


def test_uncovered_dates_in_the_next_90_days(session: Session) -> None:
    # From 2026-12-01: 31 December days are covered, 2027-01-01 .. 2027-02-28 (59 days) are not.
    gaps = calendar_store.uncovered_dates(session, date(2026, 12, 1), days=90)
    assert (len(gaps), gaps[0], gaps[-1]) == (59, date(2027, 1, 1), date(2027, 2, 28))
    assert calendar_store.uncovered_dates(session, date(2026, 6, 1)) == []
    import_notice(session, NOTICE_2027, None)
    assert calendar_store.uncovered_dates(session, date(2026, 12, 1)) == []


# --- import --------------------------------------------------------------------------------------


def test_import_replaces_the_years_in_the_file(session: Session) -> None:
    summary = import_notice(session, NOTICE_2027, None, note="测试通知")
    assert (list(summary.years), summary.holidays, summary.workdays) == ([2027], 20, 2)
    assert 2027 in stored_years(session)
    again = import_notice(session, "date,kind,name\n2027-01-01,holiday,元旦\n", None)
    assert list(again.years) == [2027]
    assert session.scalar(select(func.count()).where(CalendarDate.year == 2027)) == 1
    assert session.get(CalendarYear, 2027).revision == 2  # type: ignore[union-attr]


def test_bad_notice_is_rejected_by_line_and_nothing_is_applied(session: Session) -> None:
    before = stored_years(session)
    with pytest.raises(ImportRejected) as info:
        import_notice(session, BAD_NOTICE, None)
    assert [(e.line, e.column) for e in info.value.errors] == [(3, "date"), (4, "kind")]
    assert stored_years(session) == before
    assert not calendar_store.working_calendar(session).covers(2027)


def test_only_admins_import(session: Session) -> None:
    with pytest.raises(CalendarForbidden):
        import_notice(session, NOTICE_2027, user(session, "dispatcher-city"))
    assert 2027 not in stored_years(session)


# --- the cache -----------------------------------------------------------------------------------


def test_deadlines_do_not_query_the_calendar(session: Session) -> None:
    category = new_case(session).category
    services.resolution_deadline(session, category, datetime(2026, 12, 20))  # warms the cache
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        for day in range(1, 29):
            services.resolution_deadline(session, category, datetime(2027, 2, day, 3))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


def test_another_process_change_is_seen_after_the_check_interval(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not calendar_store.working_calendar(session).covers(2027)
    # Another process imports (no invalidation here): rows change under the cached calendar.
    session.add(CalendarYear(year=2027, source="import", note="", revision=1))
    session.flush()
    assert not calendar_store.working_calendar(session).covers(2027)  # within CHECK_SECONDS: cached
    monkeypatch.setattr(calendar_store, "CHECK_SECONDS", 0.0)
    assert calendar_store.working_calendar(session).covers(2027)  # stamp changed: reloaded


# --- provisional deadlines and their recount ----------------------------------------------------


def test_deadline_in_an_uncovered_year_is_provisional_then_recounted_on_import(session: Session) -> None:
    notices = notify.set_notifier(notify.MemoryNotifier())
    try:
        case = case_dispatched_at(session, datetime(2027, 2, 3, 10, 0), resident_name="resident")
        # WY-01: 7 working days. Statutory holidays only: 02-04 (1), 02-09..12 (2–5), 02-15 (6),
        # 02-16 (7) -> 2027-02-16 17:30 Beijing, marked 暂定.
        assert case.deadline == to_utc(datetime(2027, 2, 16, 17, 30))
        assert case.deadline_provisional
        assert case.deadline_basis == {
            "start": case.created_at.isoformat(),
            "amount": 7.0,
            "unit": "working_days",
        }
        summary = import_notice(session, NOTICE_2027, None)
        assert summary.recomputed == 1
        # With the notice: 02-04 (1), 02-05..14 off, 02-15..19 (2–6), 02-20 Sat 调休 (7) -> 02-20 17:30.
        assert case.deadline == to_utc(datetime(2027, 2, 20, 17, 30))
        assert not case.deadline_provisional
        event_row = session.scalar(
            select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == RECOMPUTE_ACTION)
        )
        assert event_row is not None and event_row.actor_role == "system"
        assert event_row.details["old_deadline_local"] == "2027-02-16 17:30"
        assert event_row.details["new_deadline_local"] == "2027-02-20 17:30"
        assert "2027年节假日安排已导入" in event_row.reason
        messages = session.scalars(select(Notice.message).where(Notice.case_id == case.id)).all()
        assert any("调整为 2027-02-20 17:30" in m for m in messages)
        # Idempotent: nothing is provisional any more.
        assert import_notice(session, NOTICE_2027, None).recomputed == 0
    finally:
        notify.set_notifier(notices)


def test_deadline_inside_a_covered_year_is_not_provisional(session: Session) -> None:
    case = case_dispatched_at(session, datetime(2026, 3, 2, 10, 0))
    assert case.deadline == to_utc(datetime(2026, 3, 11, 17, 30))  # Mon + 7 working days
    assert not case.deadline_provisional


def test_extension_by_working_days_is_recounted_from_the_original_start(session: Session) -> None:
    case = case_dispatched_at(session, datetime(2027, 2, 3, 10, 0))
    handler = user(session, "handler-community")
    services.accept(session, case.id, handler, now=to_utc(datetime(2027, 2, 4, 9, 0)))
    services.request_extension(
        session, case.id, handler, reason="需协调", extra_working_days=3, now=to_utc(datetime(2027, 2, 5, 9))
    )
    approver = user(session, "dispatcher-street")
    services.approve_extension(session, case.id, approver, now=to_utc(datetime(2027, 2, 5, 10)))
    # Provisional: 7 days -> 02-16, + 3 -> 02-17, 18, 19.
    assert case.deadline == to_utc(datetime(2027, 2, 19, 17, 30))
    assert case.deadline_provisional and case.deadline_basis["amount"] == 10.0  # type: ignore[index]
    import_notice(session, NOTICE_2027, None)
    # With the notice, 10 working days from 02-03: 02-04, 15..19, 20 (Sat), 22, 23, 24 -> 02-24.
    assert case.deadline == to_utc(datetime(2027, 2, 24, 17, 30))


def test_the_periodic_scan_settles_provisional_deadlines(session: Session) -> None:
    case = case_dispatched_at(session, datetime(2027, 2, 3, 10, 0))
    # Stored without the import service (as another process would): the scan must recount it.
    calendar_store.replace_years(session, parse_notice_csv(NOTICE_2027), source="import")
    counts = jobs.scan_deadlines(now=to_utc(datetime(2027, 2, 4, 9, 0)))
    assert counts["recomputed"] == 1
    session.expire_all()
    assert not session.get(Case, case.id).deadline_provisional  # type: ignore[union-attr]


# --- CLI -----------------------------------------------------------------------------------------


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def test_cli_status_lists_years_and_warns(app: Flask, session: Session) -> None:
    result = run(app, "calendar", "status")
    assert result.exit_code == 0, result.output
    assert "2026  内置数据（chinesecalendar）  放假 33 天  调休上班 6 天" in result.output
    assert "2004  内置数据" in result.output


def test_cli_status_warns_about_uncovered_dates_in_the_next_90_days(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import calendar_cli

    monkeypatch.setattr(calendar_cli, "beijing_today", lambda: date(2026, 12, 1))
    result = run(app, "calendar", "status")
    assert "警告：未来 90 天内有 59 天（自 2027-01-01 起）所在年份 2027 尚无节假日安排" in result.output
    monkeypatch.setattr(calendar_cli, "beijing_today", lambda: date(2026, 6, 1))
    assert "警告" not in run(app, "calendar", "status").output


def test_cli_show_prints_one_line_per_date(app: Flask, session: Session) -> None:
    result = run(app, "calendar", "show", "2026-02-13", "2026-02-15")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2026-02-13 workday",
        "2026-02-14 workday 春节调休",
        "2026-02-15 off 春节",
    ]
    assert run(app, "calendar", "show", "2026-02-15", "2026-02-13").exit_code == 2
    assert "YYYY-MM-DD" in run(app, "calendar", "show", "2026-2-x", "2026-02-13").output


def test_cli_import_good_and_bad_files(app: Flask, session: Session, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_NOTICE, encoding="utf-8")
    result = run(app, "calendar", "import", str(bad))
    assert result.exit_code == 1
    assert "导入失败，日历未作任何修改（2 处错误）" in result.output
    assert "第 3 行（date）" in result.output and "第 4 行（kind）" in result.output
    assert 2027 not in stored_years(session)
    good = tmp_path / "holidays-2027.csv"
    good.write_text(NOTICE_2027, encoding="utf-8")
    result = run(app, "calendar", "import", str(good), "--note", "测试")
    assert result.exit_code == 0, result.output
    assert "已导入 2027 年节假日安排：放假 20 天，调休上班 2 天" in result.output
    assert 2027 in stored_years(session)
    shown = run(app, "calendar", "show", "2027-02-12", "2027-02-13").output.splitlines()
    assert shown == ["2027-02-12 off 春节", "2027-02-13 off 周末"]


def test_cli_seed_is_idempotent(app: Flask, session: Session) -> None:
    result = run(app, "calendar", "seed")
    assert result.exit_code == 0 and "均已在日历中" in result.output


# --- admin page ------------------------------------------------------------------------------------


def upload(client: Any, text: str) -> Any:
    data = {"file": (io.BytesIO(text.encode("utf-8")), "notice.csv"), "note": "测试"}
    return client.post("/admin/calendar/import", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize("path", ["/admin/calendar/", "/admin/calendar/2027"])
def test_calendar_pages_are_for_admins_only(client: Any, path: str) -> None:
    anonymous = client.get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for username in ("dispatcher-city", "evaluator"):
        login(client, username)
        assert client.get(path).status_code == 403
        client.post("/logout")
    assert upload(client, NOTICE_2027).status_code == 302  # anonymous: to the login page


def test_non_admin_cannot_import(client: Any, session: Session) -> None:
    login(client, "dispatcher-city")
    assert upload(client, NOTICE_2027).status_code == 403
    assert 2027 not in stored_years(session)


def test_admin_page_lists_years_and_imports(client: Any, session: Session) -> None:
    login(client, "admin")
    page = client.get("/admin/calendar/").get_data(as_text=True)
    assert "工作日历" in page and ">2026</a>" in page and "内置数据" in page
    bad = upload(client, BAD_NOTICE)
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "第 3 行" in text and "第 4 行" in text
    assert 2027 not in stored_years(session)
    good = upload(client, NOTICE_2027)
    assert good.status_code == 302
    assert "已导入 2027 年节假日安排" in client.get("/admin/calendar/").get_data(as_text=True)
    year = client.get("/admin/calendar/2027").get_data(as_text=True)
    assert "2027-02-20" in year and "调休上班" in year


def test_year_page_without_a_notice_shows_the_statutory_holidays(client: Any) -> None:
    login(client, "admin")
    page = client.get("/admin/calendar/2028").get_data(as_text=True)
    assert 'id="not-covered"' in page and "放假（暂定）" in page and "2028-10-01" in page


def test_banner_on_admin_pages_while_a_coming_date_is_uncovered(
    client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.web import calendar_admin

    monkeypatch.setattr(calendar_admin, "beijing_today", lambda: date(2026, 12, 1))
    login(client, "admin")
    for path in ("/admin/", "/admin/calendar/", "/admin/rules"):
        page = client.get(path).get_data(as_text=True)
        assert 'id="calendar-warning"' in page and "2027 年的节假日安排尚未导入" in page, path
    assert 'id="calendar-warning"' not in client.get("/workbench").get_data(as_text=True)
    import_notice(session, NOTICE_2027, None)
    assert 'id="calendar-warning"' not in client.get("/admin/").get_data(as_text=True)
    monkeypatch.setattr(calendar_admin, "beijing_today", lambda: date(2026, 6, 1))


def test_case_and_status_pages_say_provisional(client: Any, session: Session) -> None:
    case = case_dispatched_at(session, datetime(2027, 2, 3, 10, 0), resident_name="resident")
    login(client, "admin")
    page = client.get(f"/workbench/cases/{case.tracking_number}").get_data(as_text=True)
    assert "（暂定）" in page
    client.post("/logout")
    login(client, "resident")
    status = client.get(f"/status/{case.tracking_number}").get_data(as_text=True)
    assert "预计办结时间：2027-02-16 17:30 前" in status and "（暂定）" in status
    import_notice(session, NOTICE_2027, None)
    status = client.get(f"/status/{case.tracking_number}").get_data(as_text=True)
    assert "（暂定）" not in status and "2027-02-20 17:30" in status
    assert "办理时限按正式节假日安排重新计算，办结期限为 2027-02-20 17:30" in status
