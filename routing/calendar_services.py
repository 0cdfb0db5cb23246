"""Working-calendar use cases: import a year's holiday notice, and recount the 暂定 deadlines it settles.

A deadline that touches a year without its notice is computed on the statutory holidays and marked
provisional on the case (``Case.deadline_provisional``, with ``deadline_basis`` saying how it was
counted). When the notice arrives, :func:`import_notice` stores it and :func:`recompute_provisional`
recounts every such deadline from its basis, writes a ``recompute_deadline`` audit event and tells the
handling unit and the resident when the date moved. The periodic deadline scan also runs
:func:`recompute_provisional`, so a deadline counted by another process on a stale cache in the
seconds around an import is settled on the next scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.i18n import N_, DomainError
from core.models import Role, User
from routing import notify
from routing.calendar import DayKind, deadline, is_provisional, parse_notice_csv
from routing.calendar_store import replace_years, working_calendar
from routing.models import Case, CaseEvent
from routing.services import basis_limit, format_local, to_local, to_utc

RECOMPUTE_ACTION = "recompute_deadline"


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
    recomputed: int


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
    recomputed = recompute_provisional(session, now=now)
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
        event = CaseEvent(
            action=RECOMPUTE_ACTION,
            from_state=case.state,
            to_state=case.state,
            from_unit_id=case.current_unit_id,
            to_unit_id=case.current_unit_id,
            actor_role="system",
            reason=f"{'、'.join(str(y) for y in years)}年节假日安排已导入，办理时限按正式安排重新计算",
            details={
                "old_deadline": old.isoformat(),
                "new_deadline": new.isoformat(),
                "new_deadline_local": format_local(new),
                "old_deadline_local": format_local(old),
                "years": years,
            },
            created_at=now,
        )
        session.add(event)
        event.case = case
        if new != old and case.state not in ("closed", "merged"):
            message = f"工单 {case.tracking_number} 办理时限按正式节假日安排调整为 {format_local(new)}"
            if case.current_unit_id is not None:
                notify.send(session, "unit", case.current_unit_id, case, message)
            if case.resident_id is not None:
                notify.send(
                    session,
                    "resident",
                    case.resident_id,
                    case,
                    f"您的诉求 {case.tracking_number} 预计办结时间按正式节假日安排调整为 {format_local(new)}",
                )
        done += 1
    session.flush()
    return done
