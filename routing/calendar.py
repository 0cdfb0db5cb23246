"""Working-time deadlines on the Chinese official calendar (public holidays and 调休 make-up days).

Time model
    Every datetime here is a *naive local time in Asia/Shanghai*: the official calendar, office hours
    and the limits residents are promised are all defined on Beijing wall-clock time, and China has
    no daylight saving, so naive local arithmetic is exact. Callers holding UTC timestamps convert
    them at the edge; a timezone-aware datetime is refused rather than silently mixed with local ones.

Calendar
    Which days are working days comes from the ``chinese_calendar`` package (PyPI: chinesecalendar),
    which encodes the State Council's yearly holiday notices, including make-up working days on
    weekends. The package only knows the years published when it was released; for any other year
    it raises ``NotImplementedError`` and we fall back to the plain Monday–Friday rule. Use
    :func:`calendar_covers` to warn administrators before that fallback matters (update the package
    or add local ``overrides`` when the next year's notice is out).

Limits (see PRODUCT.md, "A case's life")
    * ``working_days`` — the deadline is the end of office hours on the N-th working day *after* the
      day the clock starts; the time of day of the start does not matter, and a start on a
      non-working day makes the next working day the first counted day.
    * ``working_hours`` — only office hours on working days count (sign-for limits).
    * ``calendar_hours`` — plain clock time, nights and holidays included: emergencies (2 hours) and
      utility failures (24 hours) are not allowed to wait for Monday morning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, get_args

import chinese_calendar

from core.i18n import N_, DomainError
from core.models import LimitUnit

ShareUnit = Literal["days", "hours", "calendar"]
LimitUnitName = Literal["working_days", "working_hours", "calendar_hours"]

# Longest run of consecutive non-working days we accept before declaring the calendar broken
# (e.g. overrides that mark every day as a holiday); real runs are at most about ten days.
_MAX_NON_WORKING_RUN = 366
_HOUR = timedelta(hours=1)


class CalendarError(DomainError):
    """A working-time computation was given an argument it cannot honour."""


def calendar_covers(year: int) -> bool:
    """Whether the installed holiday data knows ``year`` (otherwise the Mon–Fri fallback applies)."""
    try:
        chinese_calendar.is_workday(date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


def _check_naive(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is not None:
            raise CalendarError(
                "aware_datetime", N_("时间必须是北京时间（不带时区的本地时间），请在调用前转换")
            )


@dataclass(frozen=True)
class WorkingHours:
    """Office hours of a working day, as a morning and an afternoon period.

    The default, 09:00–12:00 and 13:30–17:30 (7 hours), is the typical timetable of Chinese
    government offices with a lunch break; cities differ (summer timetables, 08:30 starts), so it is
    a parameter of :class:`WorkCalendar`.
    """

    morning: tuple[time, time] = (time(9), time(12))
    afternoon: tuple[time, time] = (time(13, 30), time(17, 30))

    def __post_init__(self) -> None:
        (m_start, m_end), (a_start, a_end) = self.morning, self.afternoon
        if not (m_start < m_end <= a_start < a_end):
            raise CalendarError("bad_hours", N_("办公时间设置有误：上午须早于下午，且每段开始早于结束"))

    @property
    def periods(self) -> tuple[tuple[time, time], ...]:
        """The office periods of one working day, in order."""
        return (self.morning, self.afternoon)

    @property
    def day_start(self) -> time:
        """When office hours begin."""
        return self.morning[0]

    @property
    def day_end(self) -> time:
        """When office hours end: the time of day of every working-day deadline."""
        return self.afternoon[1]

    @property
    def hours_per_day(self) -> float:
        """Office hours in one working day."""
        day = date(2000, 1, 1)
        total = sum(
            (datetime.combine(day, end) - datetime.combine(day, start) for start, end in self.periods),
            timedelta(0),
        )
        return total / _HOUR


class WorkCalendar:
    """Working days and office hours, with deadline arithmetic over them."""

    def __init__(
        self, hours: WorkingHours | None = None, overrides: Mapping[date, bool] | None = None
    ) -> None:
        """Build a calendar; ``overrides`` maps a date to True (working) or False (off), for local rules."""
        self.hours = hours if hours is not None else WorkingHours()
        self.overrides: dict[date, bool] = dict(overrides or {})

    @staticmethod
    def covers(year: int) -> bool:
        """Whether the official holiday data knows ``year``."""
        return calendar_covers(year)

    def is_workday(self, d: date) -> bool:
        """Whether ``d`` is a working day (official calendar, make-up days included; else Mon–Fri)."""
        if isinstance(d, datetime):
            d = d.date()
        if d in self.overrides:
            return self.overrides[d]
        try:
            return bool(chinese_calendar.is_workday(d))
        except NotImplementedError:
            return d.weekday() < 5

    def next_workday(self, d: date) -> date:
        """The first working day strictly after ``d``."""
        for _ in range(_MAX_NON_WORKING_RUN):
            d += timedelta(days=1)
            if self.is_workday(d):
                return d
        raise CalendarError("no_workday", N_("日历中找不到工作日，请检查节假日设置"))

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """End of office hours on the ``days``-th working day after the start day.

        ``days == 0`` means the end of the current working day (or of the next one when ``start`` is
        on a non-working day or after office hours).
        """
        _check_naive(start)
        if days < 0:
            raise CalendarError("negative_limit", N_("时限不能为负数"))
        day = start.date()
        if days == 0:
            end_today = datetime.combine(day, self.hours.day_end)
            if self.is_workday(day) and start < end_today:
                return end_today
            return datetime.combine(self.next_workday(day), self.hours.day_end)
        for _ in range(days):
            day = self.next_workday(day)
        return datetime.combine(day, self.hours.day_end)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment when ``hours`` of office time on working days have passed since ``start``.

        A limit that runs out exactly at the end of a period ends there (12:00, not 13:30).
        """
        _check_naive(start)
        if hours < 0 or not math.isfinite(hours):
            raise CalendarError("negative_limit", N_("时限不能为负数"))
        remaining = timedelta(hours=hours)
        if not remaining:
            return start
        day = start.date()
        run = 0
        while True:
            if self.is_workday(day):
                run = 0
                for period_start, period_end in self.hours.periods:
                    begin = max(start, datetime.combine(day, period_start))
                    end = datetime.combine(day, period_end)
                    if end <= begin:
                        continue
                    if remaining <= end - begin:
                        return begin + remaining
                    remaining -= end - begin
            else:
                run += 1
                if run > _MAX_NON_WORKING_RUN:
                    raise CalendarError("no_workday", N_("日历中找不到工作日，请检查节假日设置"))
            day += timedelta(days=1)

    @staticmethod
    def add_calendar_hours(start: datetime, hours: float) -> datetime:
        """``start`` plus ``hours`` of clock time: nights, weekends and holidays all count (emergencies)."""
        _check_naive(start)
        if hours < 0 or not math.isfinite(hours):
            raise CalendarError("negative_limit", N_("时限不能为负数"))
        return start + timedelta(hours=hours)

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Office hours on working days between ``a`` and ``b`` (negative when ``b`` is before ``a``)."""
        _check_naive(a, b)
        if b < a:
            return -self.working_hours_between(b, a)
        total = timedelta(0)
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                for period_start, period_end in self.hours.periods:
                    begin = max(a, datetime.combine(day, period_start))
                    end = min(b, datetime.combine(day, period_end))
                    if end > begin:
                        total += end - begin
            day += timedelta(days=1)
        return total / _HOUR

    def elapsed_share(
        self, start: datetime, deadline: datetime, now: datetime, unit: ShareUnit = "days"
    ) -> float:
        """Share of the limit used up at ``now``: 0 before the clock starts, 1 at the deadline, >1 overdue.

        ``days`` measures office time from the opening of the first counted working day (the start day
        itself is not part of a working-day limit), ``hours`` measures office time from ``start``,
        ``calendar`` measures clock time. Compare the result with a configured warning share (e.g. 0.8).
        """
        _check_naive(start, deadline, now)
        if unit == "calendar":
            used, total = (now - start) / _HOUR, (deadline - start) / _HOUR
        elif unit == "hours":
            used, total = self.working_hours_between(start, now), self.working_hours_between(start, deadline)
        elif unit == "days":
            origin = datetime.combine(self.next_workday(start.date()), self.hours.day_start)
            used, total = (
                self.working_hours_between(origin, now),
                self.working_hours_between(origin, deadline),
            )
        else:
            raise CalendarError("bad_unit", N_("未知的时限单位"))
        if total <= 0:
            # Degenerate limit (zero length, or a same-day deadline): all or nothing.
            return 1.0 if now >= deadline else 0.0
        return max(0.0, used / total)


_SHARE_UNITS: dict[LimitUnit, ShareUnit] = {
    LimitUnit.working_days: "days",
    LimitUnit.working_hours: "hours",
    LimitUnit.calendar_hours: "calendar",
}
_UNIT_LABELS = {
    LimitUnit.working_days: "个工作日",
    LimitUnit.working_hours: "个工作小时",
    LimitUnit.calendar_hours: "小时",
}


@dataclass(frozen=True)
class Limit:
    """A time limit: an amount and how it counts (working days, office hours, or clock hours)."""

    amount: float
    unit: LimitUnitName | LimitUnit

    def __post_init__(self) -> None:
        if self.unit not in get_args(LimitUnitName):
            raise CalendarError("bad_unit", N_("未知的时限单位"))
        # Normalise plain strings to the enum so comparisons and dict look-ups are uniform.
        object.__setattr__(self, "unit", LimitUnit(self.unit))
        if not math.isfinite(self.amount) or self.amount < 0:
            raise CalendarError("negative_limit", N_("时限不能为负数"))
        if self.unit == LimitUnit.working_days and not float(self.amount).is_integer():
            raise CalendarError("fractional_days", N_("以工作日计的时限必须是整数天"))

    @property
    def share_unit(self) -> ShareUnit:
        """The ``unit`` argument of :meth:`WorkCalendar.elapsed_share` matching this limit."""
        return _SHARE_UNITS[LimitUnit(self.unit)]

    @property
    def label_zh(self) -> str:
        """The limit as residents read it, e.g. "7个工作日"."""
        amount = int(self.amount) if float(self.amount).is_integer() else self.amount
        return f"{amount}{_UNIT_LABELS[LimitUnit(self.unit)]}"


def deadline(calendar: WorkCalendar, start: datetime, limit: Limit) -> datetime:
    """When ``limit`` runs out for a clock started at ``start``."""
    unit = LimitUnit(limit.unit)
    if unit == LimitUnit.working_days:
        return calendar.add_working_days(start, int(limit.amount))
    if unit == LimitUnit.working_hours:
        return calendar.add_working_hours(start, limit.amount)
    return calendar.add_calendar_hours(start, limit.amount)
