"""Working-calendar use cases: import a year's holiday notice, and recount the 暂定 deadlines it settles.

A deadline that touches a year without its notice is computed on the statutory holidays and marked
provisional on the case (``Case.deadline_provisional``, with ``deadline_basis`` saying how it was
counted). When the notice arrives, :func:`import_notice` stores it and :func:`recompute_provisional`
recounts every such deadline from its basis, writes a ``recompute_deadline`` audit event and tells the
handling unit and the resident when the date moved; the short clocks (sign-for limits, callback
windows), which are not flagged, are recounted on import too (:func:`recount_short_clocks`). The
periodic deadline scan also runs
:func:`recompute_provisional`, so a deadline counted by another process on a stale cache in the
seconds around an import is settled on the next scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.i18n import N_, DomainError
from core.models import Role, User
from routing import notify
from routing.calendar import DayKind, Limit, deadline, is_provisional, parse_notice_csv
from routing.calendar_store import replace_years, working_calendar
from routing.models import Case, CaseEvent
from routing.services import (
    CALLBACK_WORKING_DAYS,
    basis_limit,
    format_local,
    limit_deadline,
    sign_for_deadline,
    to_local,
    to_utc,
)

RECOMPUTE_ACTION = "recompute_deadline"
# Events that start a sign-for clock (services._start_handling_clock runs with their time).
CLOCK_STARTS = ("dispatch", "pass_down", "reopen", "callback")
# The clocks a recount may move, as the audit event names them.
CLOCK_LABELS = {
    "deadline": N_("办理时限"),
    "sign_for_deadline": N_("签收时限"),
    "callback_due": N_("回访期限"),
}


class CalendarForbidden(DomainError):
    """Only administrators change the working calendar."""

    status = 403

    def __init__(self) -> None:
        super().__init__("role_forbidden", N_("只有管理员可以导入节假日安排"))


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored and settled."""

    years: Sequence[int]
    holidays: int
    workdays: int
    recomputed: int  # clocks recounted: 暂定 deadlines, and sign-for limits / callback windows that moved


def import_notice(
    session: Session, data: bytes | str, actor: User | None, *, note: str = "", now: datetime | None = None
) -> ImportSummary:
    """Store the notice in a CSV (``date,kind,name``; all or nothing) and recount the deadlines it
    settles; ``actor=None`` is the command line. Each year in the file replaces that year. Flushes."""
    if actor is not None and actor.role != Role.admin:
        raise CalendarForbidden()
    days = parse_notice_csv(data)  # raises ImportRejected, line-numbered, before anything is stored
    years = replace_years(
        session, days, source="import", note=note, actor_id=actor.id if actor else None, now=now
    )
    recomputed = recompute_provisional(session, now=now) + recount_short_clocks(session, years[0], now=now)
    holidays = sum(1 for d in days if d.kind is DayKind.holiday)
    return ImportSummary(years, holidays, len(days) - holidays, recomputed)


def recompute_provisional(session: Session, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Recount the 暂定 deadlines whose years are now covered, with an audit event each; flushes.

    Idempotent: a recounted case is no longer provisional; one whose years are still uncovered is left
    as it is. Returns how many cases were recounted.
    """
    now = now or utcnow()
    cal = working_calendar(session)
    cases = session.scalars(
        select(Case)
        .where(Case.deadline_provisional.is_(True))
        .order_by(Case.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    done = 0
    for case in cases:
        if case.deadline_basis is None or case.deadline is None:
            case.deadline_provisional = False
            continue
        start, lim = basis_limit(case.deadline_basis)
        local_start = to_local(start)
        local_due = deadline(cal, local_start, lim)
        if is_provisional(cal, local_start, local_due, lim):
            continue
        old, new = case.deadline, to_utc(local_due)
        years = sorted({local_start.year, to_local(old).year, local_due.year})
        case.deadline, case.deadline_provisional = new, False
        _record(session, case, "deadline", old, new, years, now)
        done += 1
    session.flush()
    return done


def recount_short_clocks(session: Session, first_year: int, *, now: datetime | None = None) -> int:
    """Recount the sign-for limits of dispatched cases and the callback windows of resolved ones that
    end in or after ``first_year``, with an audit event for each that moves; flushes.

    These clocks are short (hours, three working days) and are not flagged 暂定; an import settles
    them here from their starts (the latest event that put the case in the unit's hands; the
    resolution time). Returns how many cases changed.
    """
    now = now or utcnow()
    cut = to_utc(datetime(first_year, 1, 1))
    cases = session.scalars(
        select(Case)
        .where(
            or_(
                and_(Case.state == "dispatched", Case.sign_for_deadline >= cut),
                and_(Case.state == "resolved", Case.callback_due >= cut, Case.resolved_at.is_not(None)),
            )
        )
        .order_by(Case.id)
    ).all()
    done = 0
    for case in cases:
        if case.state == "resolved":
            assert case.resolved_at is not None and case.callback_due is not None
            field, old = "callback_due", case.callback_due
            new = limit_deadline(session, case.resolved_at, Limit(CALLBACK_WORKING_DAYS, "working_days"))
        else:
            started = session.scalar(
                select(CaseEvent.created_at)
                .where(
                    CaseEvent.case_id == case.id,
                    CaseEvent.action.in_(CLOCK_STARTS),
                    CaseEvent.to_state == "dispatched",
                )
                .order_by(CaseEvent.id.desc())
                .limit(1)
            )
            assert case.sign_for_deadline is not None
            if started is None:
                continue
            field, old = "sign_for_deadline", case.sign_for_deadline
            new = sign_for_deadline(session, case.category, started)
        if new == old:
            continue
        setattr(case, field, new)
        _record(session, case, field, old, new, sorted({to_local(old).year, to_local(new).year}), now)
        done += 1
    session.flush()
    return done


def _record(
    session: Session, case: Case, field: str, old: datetime, new: datetime, years: list[int], now: datetime
) -> None:
    """The audit event of one recounted clock, and notices to the unit and resident when it moved."""
    label = CLOCK_LABELS[field]
    event = CaseEvent(
        action=RECOMPUTE_ACTION,
        from_state=case.state,
        to_state=case.state,
        from_unit_id=case.current_unit_id,
        to_unit_id=case.current_unit_id,
        actor_role="system",
        reason=f"{'、'.join(str(y) for y in years)}年节假日安排已导入，{label}按正式安排重新计算",
        details={
            "field": field,
            "old_deadline": old.isoformat(),
            "new_deadline": new.isoformat(),
            "old_deadline_local": format_local(old),
            "new_deadline_local": format_local(new),
            "years": years,
        },
        created_at=now,
    )
    session.add(event)
    event.case = case
    if new == old or case.state in ("closed", "merged"):
        return
    when = format_local(new)
    if case.current_unit_id is not None:
        message = f"工单 {case.tracking_number} {label}按正式节假日安排调整为 {when}"
        notify.send(session, "unit", case.current_unit_id, case, message)
    if case.resident_id is not None and field != "sign_for_deadline":
        what = "预计办结时间" if field == "deadline" else "评价期限"
        message = f"您的诉求 {case.tracking_number} {what}按正式节假日安排调整为 {when}"
        notify.send(session, "resident", case.resident_id, case, message)
