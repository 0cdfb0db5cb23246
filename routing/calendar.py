"""Working-time deadlines on the Chinese official calendar (public holidays and 调休 make-up days).

Time model
    Every datetime here is a *naive local time in Asia/Shanghai*: the official calendar, office hours
    and the limits residents are promised are all defined on Beijing wall-clock time, and China has
    no daylight saving, so naive local arithmetic is exact. Callers holding UTC timestamps convert
    them at the edge; a timezone-aware datetime is refused rather than silently mixed with local ones.

Calendar
    Which days are working days is *data*: the State Council's yearly notice (国务院办公厅关于部分节假日
    安排的通知) lists the days off (holiday) and the weekend days worked instead (workday, 调休上班); every
    other day of a covered year follows Monday–Friday. The web shell stores the notices per year in the
    database (seeded from the ``chinese_calendar`` package, PyPI ``chinesecalendar``, for the years it
    knows; later years are imported from CSV) and hands them to :class:`WorkCalendar`; this module stays
    pure.

    A year without a notice is *not covered*. Its days are still computed, never silently on plain
    Monday–Friday: the statutory holidays that the law fixes for every year (《全国年节及纪念日放假办法》
    as amended in 2024, :func:`statutory_holidays`) are off, everything else is Monday–Friday, and a
    deadline that touches such a year is *provisional* (:meth:`WorkCalendar.provisional_between`) until
    the year's notice arrives. What cannot be known in advance is the 调休 arrangement: which weekend
    days are worked and which bridge days are taken off.

Limits (see PRODUCT.md, "A case's life")
    * ``working_days`` — the deadline is the end of office hours on the N-th working day *after* the
      day the clock starts; the time of day of the start does not matter, and a start on a
      non-working day makes the next working day the first counted day.
    * ``working_hours`` — only office hours on working days count (sign-for limits).
    * ``calendar_hours`` — plain clock time, nights and holidays included: emergencies (2 hours) and
      utility failures (24 hours) are not allowed to wait for Monday morning.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal, get_args

import chinese_calendar
from lunardate import LunarDate

from core.csvio import ImportRejected, RowError, read_rows
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


class DayKind(enum.StrEnum):
    """How a notice lists a date: a day off, or a weekend day worked instead (调休上班)."""

    holiday = "holiday"
    workday = "workday"


@dataclass(frozen=True)
class CalendarDay:
    """One date of a holiday notice: the date, holiday or workday, and the holiday's name."""

    day: date
    kind: DayKind
    name: str = ""


# --- the chinese_calendar package: the seed of the stored calendar ---------------------------------

_LIBRARY_NAMES = {h.value: h.chinese for h in chinese_calendar.Holiday}


def library_years() -> list[int]:
    """The years whose notices the installed ``chinese_calendar`` package encodes."""
    return sorted({d.year for d in chinese_calendar.holidays} | {d.year for d in chinese_calendar.workdays})


def library_covers(year: int) -> bool:
    """Whether the installed ``chinese_calendar`` package knows ``year``."""
    return year in library_years()


def library_days(year: int) -> list[CalendarDay]:
    """The package's holidays and make-up working days of ``year``, with Chinese names."""
    days = [
        CalendarDay(d, DayKind.holiday, _LIBRARY_NAMES.get(name, name))
        for d, name in chinese_calendar.holidays.items()
        if d.year == year
    ]
    days += [
        CalendarDay(d, DayKind.workday, _LIBRARY_NAMES.get(name, name) + "调休")
        for d, name in chinese_calendar.workdays.items()
        if d.year == year
    ]
    return sorted(days, key=lambda c: c.day)


def library_calendar(hours: WorkingHours | None = None) -> WorkCalendar:
    """A calendar of everything the package knows (what a freshly seeded database holds)."""
    years = library_years()
    return WorkCalendar(hours, days=[d for y in years for d in library_days(y)], covered=years)


# --- statutory holidays: what is known of a year before its notice ------------------------------


@functools.lru_cache(maxsize=64)
def statutory_holidays(year: int) -> dict[date, str]:
    """The days off that the law fixes for ``year``, before any 调休 arrangement.

    《全国年节及纪念日放假办法》 as amended in 2024 (in force from 2025): 元旦 1 January; 春节 除夕 to
    正月初三 (4 days, lunar calendar); 清明 (the solar term); 劳动节 1–2 May; 端午 五月初五; 中秋 八月十五;
    国庆节 1–3 October. Lunar dates come from ``lunardate`` (1900–2099) and 清明 from the solar terms of
    ``chinese_calendar``; outside their ranges only the fixed Gregorian dates are known.
    """
    days: dict[date, str] = {}

    def add(day: date, name: str) -> None:
        # Two holidays on one date (中秋 on 3 October 2028) keep both names.
        days[day] = f"{days[day]}、{name}" if day in days else name

    for day, name in [(date(year, 1, 1), "元旦"), (date(year, 5, 1), "劳动节"), (date(year, 5, 2), "劳动节")]:
        add(day, name)
    for d in (1, 2, 3):
        add(date(year, 10, d), "国庆节")
    try:
        new_year = LunarDate(year, 1, 1).to_solar_date()
        lunar = [(new_year + timedelta(days=i), "春节") for i in range(-1, 3)]
        lunar += [
            (LunarDate(year, 5, 5).to_solar_date(), "端午"),
            (LunarDate(year, 8, 15).to_solar_date(), "中秋"),
        ]
    except ValueError:  # outside lunardate's table
        lunar = []
    for day, name in lunar:
        add(day, name)
    try:
        terms = chinese_calendar.get_solar_terms(date(year, 4, 1), date(year, 4, 30))
    except (ValueError, KeyError, IndexError):
        terms = []
    for day, name in terms:
        if name == "清明":
            add(day, name)
    return dict(sorted(days.items()))


# --- the notice as CSV (date,kind,name) ---------------------------------------------------------

NOTICE_COLUMNS = ("date", "kind", "name")
_KIND_WORDS = {"holiday": DayKind.holiday, "workday": DayKind.workday}
_MAX_NAME = 60


def parse_notice_csv(data: bytes | str) -> list[CalendarDay]:
    """Read a holiday notice as CSV ``date,kind,name``; every bad row is reported with its line number.

    ``date`` is YYYY-MM-DD, ``kind`` ``holiday`` (a day off) or ``workday`` (a weekend day worked, 调休
    上班; a weekday needs no row), ``name`` the holiday (e.g. 春节). A date may appear once. Raises
    :class:`~core.csvio.ImportRejected` with all errors at once; nothing is returned half-read.
    """
    errors: list[RowError] = []
    days: list[CalendarDay] = []
    seen: dict[date, int] = {}
    for line, row in read_rows(data, NOTICE_COLUMNS):
        try:
            day = date.fromisoformat(row["date"])
        except ValueError:
            errors.append(RowError(line, f"日期“{row['date']}”无效，应为 YYYY-MM-DD", "date"))
            continue
        if not 2000 <= day.year <= 2100:
            errors.append(RowError(line, f"年份 {day.year} 超出范围（2000–2100）", "date"))
            continue
        kind = _KIND_WORDS.get(row["kind"].lower())
        name = row["name"]
        if kind is None:
            errors.append(
                RowError(line, f"类型“{row['kind']}”无效，应为 holiday（放假）或 workday（调休上班）", "kind")
            )
        elif kind is DayKind.workday and day.weekday() < 5:
            errors.append(RowError(line, f"{day} 是周一至周五，本来就上班，无需列为调休上班", "kind"))
        if not name:
            errors.append(RowError(line, "请填写节日名称", "name"))
        elif len(name) > _MAX_NAME:
            errors.append(RowError(line, f"节日名称不能超过 {_MAX_NAME} 个字", "name"))
        if day in seen:
            errors.append(RowError(line, f"日期 {day} 与第 {seen[day]} 行重复", "date"))
        seen.setdefault(day, line)
        if kind is not None:
            days.append(CalendarDay(day, kind, name))
    if not errors and not days:
        errors.append(RowError(1, "文件中没有任何日期"))
    if errors:
        raise ImportRejected(errors)
    return sorted(days, key=lambda c: c.day)


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
    """Working days and office hours, with deadline arithmetic over them.

    ``days`` are the dates of the covered years' notices; ``covered`` the years whose notice is known
    (their other dates follow Monday–Friday); any other year is provisional (statutory holidays off,
    otherwise Monday–Friday). ``overrides`` map a date to True (working) or False (off) for local rules
    and win over everything.
    """

    def __init__(
        self,
        hours: WorkingHours | None = None,
        overrides: Mapping[date, bool] | None = None,
        *,
        days: Iterable[CalendarDay] = (),
        covered: Iterable[int] = (),
    ) -> None:
        """Build a calendar from the stored notices (``days`` of the ``covered`` years)."""
        self.hours = hours if hours is not None else WorkingHours()
        self.overrides: dict[date, bool] = dict(overrides or {})
        self.days: dict[date, CalendarDay] = {d.day: d for d in days}
        self.covered: frozenset[int] = frozenset(covered)

    def covers(self, year: int) -> bool:
        """Whether the official notice of ``year`` is known (otherwise its days are provisional)."""
        return year in self.covered

    def uncovered_years(self, first: date, last: date) -> list[int]:
        """The years from ``first`` to ``last`` (inclusive) whose notice is not known."""
        if last < first:
            first, last = last, first
        return [y for y in range(first.year, last.year + 1) if y not in self.covered]

    def provisional_between(self, first: date, last: date) -> bool:
        """Whether a computation over ``first``..``last`` rests on a year without its notice."""
        return bool(self.uncovered_years(first, last))

    def describe(self, d: date) -> tuple[bool, str, bool]:
        """(working?, name, provisional?) of ``d``: the name is the holiday, 调休 or 周末 ("" otherwise)."""
        if isinstance(d, datetime):
            d = d.date()
        provisional = d.year not in self.covered
        if d in self.overrides:
            return self.overrides[d], "本地设置", provisional
        if not provisional:
            listed = self.days.get(d)
            if listed is not None:
                return listed.kind is DayKind.workday, listed.name, False
        else:
            statutory = statutory_holidays(d.year).get(d)
            if statutory is not None:
                return False, statutory, True
        weekday = d.weekday() < 5
        return weekday, "" if weekday else "周末", provisional

    def is_workday(self, d: date) -> bool:
        """Whether ``d`` is a working day (the year's notice, make-up days included; see the class)."""
        return self.describe(d)[0]

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
    LimitUnit.working_days: N_("个工作日"),
    LimitUnit.working_hours: N_("个工作小时"),
    LimitUnit.calendar_hours: N_("小时"),
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


def is_provisional(calendar: WorkCalendar, start: datetime, due: datetime, limit: Limit) -> bool:
    """Whether the deadline ``due`` of ``limit`` from ``start`` rests on a year without its notice
    (clock-hour limits never do)."""
    if LimitUnit(limit.unit) == LimitUnit.calendar_hours:
        return False
    return calendar.provisional_between(start.date(), due.date())


def day_lines(calendar: WorkCalendar, first: date, last: date) -> list[str]:
    """One line per date from ``first`` to ``last``: ``YYYY-MM-DD workday|off name`` (暂定 when the
    year has no notice)."""
    lines = []
    day = first
    while day <= last:
        working, name, provisional = calendar.describe(day)
        label = " ".join(part for part in (name, "暂定" if provisional else "") if part)
        lines.append(f"{day.isoformat()} {'workday' if working else 'off'}" + (f" {label}" if label else ""))
        day += timedelta(days=1)
    return lines
