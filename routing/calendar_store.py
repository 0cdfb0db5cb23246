"""The stored working calendar: holiday notices per year in the database, and the per-process cache.

Deadlines are on the routing hot path, so :func:`working_calendar` never queries per deadline: the
whole calendar (a few hundred rows) is loaded once per process and kept; at most every
:data:`CHECK_SECONDS` one small query compares a stamp of ``calendar_years`` (row count, sum of
revisions, latest change) and reloads only when another process changed the data. A change made in
this process (:func:`replace_years`, :func:`seed_from_library`) invalidates the cache at once.

Seeding: the migration that creates these tables stores every year the ``chinese_calendar`` package
knows, once per database, before any process serves (no race, no write on a read path); ``flask demo``
and ``flask calendar seed`` call :func:`seed_from_library` too (databases built by ``create_all`` and
package upgrades that bring new years). Seeding never overwrites a year that is already stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.db import utcnow
from routing.calendar import CalendarDay, DayKind, WorkCalendar, library_days, library_years
from routing.models import CalendarDate, CalendarYear

# How stale another process's change may be before this process sees it (seconds).
CHECK_SECONDS = 30.0


@dataclass
class _Cached:
    calendar: WorkCalendar
    stamp: tuple[object, ...]
    checked_at: float


_cache: _Cached | None = None
_lock = threading.Lock()


def invalidate() -> None:
    """Forget the cached calendar: the next deadline reloads it (call after changing the data)."""
    global _cache
    with _lock:
        _cache = None


def _stamp(session: Session) -> tuple[object, ...]:
    row = session.execute(
        select(
            func.count(CalendarYear.year),
            func.coalesce(func.sum(CalendarYear.revision), 0),
            func.max(CalendarYear.updated_at),
        )
    ).one()
    return tuple(row)


def load_calendar(session: Session) -> WorkCalendar:
    """The stored calendar, read from the database now (no cache)."""
    covered = list(session.scalars(select(CalendarYear.year)))
    rows = session.execute(select(CalendarDate.day, CalendarDate.kind, CalendarDate.name))
    days = [CalendarDay(day, DayKind(kind), name) for day, kind, name in rows]
    return WorkCalendar(days=days, covered=covered)


def working_calendar(session: Session) -> WorkCalendar:
    """The stored calendar, cached per process (at most one stamp query every CHECK_SECONDS)."""
    global _cache
    cached = _cache
    now = time.monotonic()
    if cached is not None and now - cached.checked_at < CHECK_SECONDS:
        return cached.calendar
    stamp = _stamp(session)
    if cached is not None and stamp == cached.stamp:
        cached.checked_at = now
        return cached.calendar
    calendar = load_calendar(session)
    with _lock:
        _cache = _Cached(calendar, stamp, now)
    return calendar


# --- writing ---------------------------------------------------------------------------------------


def replace_years(
    session: Session,
    days: Sequence[CalendarDay],
    *,
    source: str,
    note: str = "",
    actor_id: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Store the notices in ``days``: each year present replaces that year's stored dates; flushes."""
    now = now or utcnow()
    by_year: dict[int, list[CalendarDay]] = {}
    for day in days:
        by_year.setdefault(day.day.year, []).append(day)
    for year, rows in sorted(by_year.items()):
        stored = session.get(CalendarYear, year)
        if stored is None:
            stored = CalendarYear(year=year, revision=0)
            session.add(stored)
        else:
            session.execute(delete(CalendarDate).where(CalendarDate.year == year))
        stored.source, stored.note, stored.imported_by_id, stored.updated_at = source, note, actor_id, now
        stored.revision = (stored.revision or 0) + 1
        session.flush()
        session.add_all(CalendarDate(day=d.day, year=year, kind=d.kind.value, name=d.name) for d in rows)
    session.flush()
    invalidate()
    return sorted(by_year)


def seed_from_library(session: Session, years: Iterable[int] | None = None) -> list[int]:
    """Store the years the ``chinese_calendar`` package knows and the database lacks; flushes.

    Never overwrites a stored year (an imported notice wins over the package). Returns the years added.
    """
    stored = set(session.scalars(select(CalendarYear.year)))
    wanted = [y for y in (years if years is not None else library_years()) if y not in stored]
    days = [d for y in wanted for d in library_days(y)]
    return replace_years(session, days, source="library", note="chinesecalendar") if days else []


# --- coverage --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YearCoverage:
    """One stored year: where its notice came from, how many days off and make-up days, when."""

    year: int
    source: str
    note: str
    holidays: int
    workdays: int
    updated_at: datetime


def coverage(session: Session) -> list[YearCoverage]:
    """Every stored year with its counts, oldest first."""
    counts: dict[tuple[int, str], int] = {
        (year, kind): n
        for year, kind, n in session.execute(
            select(CalendarDate.year, CalendarDate.kind, func.count()).group_by(
                CalendarDate.year, CalendarDate.kind
            )
        )
    }
    return [
        YearCoverage(
            y.year,
            y.source,
            y.note,
            counts.get((y.year, DayKind.holiday.value), 0),
            counts.get((y.year, DayKind.workday.value), 0),
            y.updated_at,
        )
        for y in session.scalars(select(CalendarYear).order_by(CalendarYear.year))
    ]


def uncovered_dates(session: Session, today: date, days: int = 90) -> list[date]:
    """The dates from ``today`` over the next ``days`` days whose year has no notice (for readiness
    and the admin banner; empty when all is covered). Uses the cached calendar: no query per call."""
    calendar = working_calendar(session)
    window = (today + timedelta(days=i) for i in range(days))
    return [d for d in window if not calendar.covers(d.year)]
