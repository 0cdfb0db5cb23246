"""Working-time deadlines on the Chinese official calendar.

Holiday facts come from the State Council General Office's yearly notices (国务院办公厅关于2024年 /
2025年 / 2026年部分节假日安排的通知) as encoded by the installed ``chinesecalendar`` package; the first
tests pin those facts so a data change in the package shows up here before it moves a deadline.
Deadlines below are counted by hand, day by day, in the comments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from core.models import LimitUnit
from routing.calendar import (
    CalendarError,
    Limit,
    WorkCalendar,
    WorkingHours,
    deadline,
    library_calendar,
    library_covers,
)

CAL = library_calendar()


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# --- the calendar facts the deadlines below rely on ---------------------------------------------


@pytest.mark.parametrize(
    ("holidays", "make_up_days"),
    [
        # 2024 国庆: 10月1日至7日放假调休, 9月29日（周日）、10月12日（周六）上班.
        (_days(date(2024, 10, 1), date(2024, 10, 7)), [date(2024, 9, 29), date(2024, 10, 12)]),
        # 2025 国庆、中秋: 10月1日至8日放假调休, 9月28日（周日）、10月11日（周六）上班.
        (_days(date(2025, 10, 1), date(2025, 10, 8)), [date(2025, 9, 28), date(2025, 10, 11)]),
        # 2025 春节: 1月28日至2月4日放假调休, 1月26日（周日）、2月8日（周六）上班.
        (_days(date(2025, 1, 28), date(2025, 2, 4)), [date(2025, 1, 26), date(2025, 2, 8)]),
        # 2026 春节 as the installed package has it: 2月15日至23日放假, 2月14日（周六）、2月28日（周六）上班.
        (_days(date(2026, 2, 15), date(2026, 2, 23)), [date(2026, 2, 14), date(2026, 2, 28)]),
    ],
)
def test_official_holidays_and_make_up_days(holidays: list[date], make_up_days: list[date]) -> None:
    assert not any(CAL.is_workday(d) for d in holidays)
    assert all(CAL.is_workday(d) for d in make_up_days)
    assert all(d.weekday() >= 5 for d in make_up_days)  # they really are weekend days


def test_ordinary_weekdays_and_weekends() -> None:
    assert CAL.is_workday(date(2025, 11, 14))  # Friday
    assert not CAL.is_workday(date(2025, 11, 15))  # Saturday
    assert not CAL.is_workday(date(2025, 11, 16))  # Sunday
    assert CAL.is_workday(datetime(2025, 11, 17, 20, 0))  # a datetime is judged by its date


def test_next_workday_skips_holiday_and_lands_on_make_up_saturday() -> None:
    assert CAL.next_workday(date(2025, 9, 30)) == date(2025, 10, 9)
    assert CAL.next_workday(date(2025, 10, 10)) == date(2025, 10, 11)  # 周六调休上班


# --- working days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        # 2025 国庆: counted days 10-09, 10, 11 (Sat, working), 13, 14, 15, 16 -> 10-16 17:30.
        (datetime(2025, 9, 30, 10, 0), 7, datetime(2025, 10, 16, 17, 30)),
        # Received on a holiday: counting starts with the next working day, 10-09 is day 1.
        (datetime(2025, 10, 3, 15, 0), 1, datetime(2025, 10, 9, 17, 30)),
        # 2024 国庆: 10-08, 09, 10, 11, 12 (Sat, working), 14, 15 -> 10-15 17:30.
        (datetime(2024, 9, 30, 10, 0), 7, datetime(2024, 10, 15, 17, 30)),
        # Saturday 2024-09-28 is off; Sunday 09-29 is a make-up working day and is day 1.
        (datetime(2024, 9, 28, 15, 0), 1, datetime(2024, 9, 29, 17, 30)),
        # 2025 春节: Mon 01-27 16:00 + 3 -> 02-05, 06, 07 -> 02-07 17:30.
        (datetime(2025, 1, 27, 16, 0), 3, datetime(2025, 2, 7, 17, 30)),
        # ... + 4 reaches the make-up Saturday 02-08.
        (datetime(2025, 1, 27, 16, 0), 4, datetime(2025, 2, 8, 17, 30)),
        # Received on make-up Sunday 2025-01-26 (a working day): day 1 is Mon 01-27.
        (datetime(2025, 1, 26, 11, 0), 1, datetime(2025, 1, 27, 17, 30)),
        # 2026 春节: Fri 02-13 + 2 -> 02-14 (Sat, working), then 02-15..23 off, 02-24 -> 02-24 17:30.
        (datetime(2026, 2, 13, 10, 0), 2, datetime(2026, 2, 24, 17, 30)),
        # 15 working days over an ordinary stretch: Mon 2025-11-03 -> 11-04..07 (4), 10..14 (9),
        # 17..21 (14), 24 (15) -> 11-24 17:30.
        (datetime(2025, 11, 3, 9, 0), 15, datetime(2025, 11, 24, 17, 30)),
        # Time of day does not matter: received after office hours still counts from the next day.
        (datetime(2025, 11, 3, 22, 0), 1, datetime(2025, 11, 4, 17, 30)),
    ],
)
def test_add_working_days(start: datetime, days: int, expected: datetime) -> None:
    assert CAL.add_working_days(start, days) == expected


def test_zero_working_days_means_end_of_current_working_day() -> None:
    assert CAL.add_working_days(datetime(2025, 11, 14, 10, 0), 0) == datetime(2025, 11, 14, 17, 30)
    # After office hours on Friday, or on Saturday: end of Monday.
    assert CAL.add_working_days(datetime(2025, 11, 14, 18, 0), 0) == datetime(2025, 11, 17, 17, 30)
    assert CAL.add_working_days(datetime(2025, 11, 15, 10, 0), 0) == datetime(2025, 11, 17, 17, 30)


def test_negative_days_refused() -> None:
    with pytest.raises(CalendarError) as info:
        CAL.add_working_days(datetime(2025, 11, 14, 10, 0), -1)
    assert info.value.code == "negative_limit"


# --- working hours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        # Fri 16:00-17:30 = 1.5 h; weekend off; Mon 09:00 + 2.5 h -> 11:30.
        (datetime(2025, 11, 14, 16, 0), 4, datetime(2025, 11, 17, 11, 30)),
        # Across lunch: 11:00-12:00 = 1 h, then 13:30 + 1 h -> 14:30.
        (datetime(2025, 11, 17, 11, 0), 2, datetime(2025, 11, 17, 14, 30)),
        # A limit that runs out exactly at 12:00 ends at 12:00, not at 13:30.
        (datetime(2025, 11, 17, 9, 0), 3, datetime(2025, 11, 17, 12, 0)),
        # Received during lunch: the clock starts at 13:30.
        (datetime(2025, 11, 17, 12, 30), 1, datetime(2025, 11, 17, 14, 30)),
        # Before office hours: starts at 09:00.
        (datetime(2025, 11, 17, 7, 0), 1, datetime(2025, 11, 17, 10, 0)),
        # Friday evening: Monday 10:00.
        (datetime(2025, 11, 14, 20, 0), 1, datetime(2025, 11, 17, 10, 0)),
        # Fri 2025-09-26 17:00: 0.5 h Friday, Sat off, Sun 09-28 is a make-up working day -> 09:30.
        (datetime(2025, 9, 26, 17, 0), 1, datetime(2025, 9, 28, 9, 30)),
        # Two full days (14 h) from Tue 2025-09-30 09:00: rest of 09-30 = 7 h, then the holiday,
        # then 10-09 09:00 + 7 h -> 17:30.
        (datetime(2025, 9, 30, 9, 0), 14, datetime(2025, 10, 9, 17, 30)),
        # Half an hour.
        (datetime(2025, 11, 17, 16, 45), 0.5, datetime(2025, 11, 17, 17, 15)),
    ],
)
def test_add_working_hours(start: datetime, hours: float, expected: datetime) -> None:
    assert CAL.add_working_hours(start, hours) == expected


def test_zero_working_hours_is_the_start() -> None:
    start = datetime(2025, 11, 15, 10, 0)
    assert CAL.add_working_hours(start, 0) == start


def test_working_hours_between() -> None:
    assert CAL.working_hours_between(datetime(2025, 11, 14, 16, 0), datetime(2025, 11, 17, 11, 30)) == 4.0
    # A whole ordinary week, Mon 09:00 to Fri 17:30: 5 x 7 h.
    assert CAL.working_hours_between(datetime(2025, 11, 17, 9, 0), datetime(2025, 11, 21, 17, 30)) == 35.0
    # Lunch does not count: 11:00 -> 14:00 is 1 h + 0.5 h.
    assert CAL.working_hours_between(datetime(2025, 11, 17, 11, 0), datetime(2025, 11, 17, 14, 0)) == 1.5
    # The whole 2025 国庆 break counts nothing.
    assert CAL.working_hours_between(datetime(2025, 10, 1, 0, 0), datetime(2025, 10, 8, 23, 59)) == 0.0
    # Reversed bounds give a negative span.
    assert CAL.working_hours_between(datetime(2025, 11, 17, 11, 30), datetime(2025, 11, 14, 16, 0)) == -4.0


def test_add_and_between_agree() -> None:
    start = datetime(2025, 9, 26, 10, 15)
    for hours in (0.25, 3, 7, 10.5, 40):
        end = CAL.add_working_hours(start, hours)
        assert CAL.working_hours_between(start, end) == pytest.approx(hours)


# --- calendar hours (emergencies) --------------------------------------------------------------


def test_calendar_hours_run_through_nights_and_holidays() -> None:
    assert CAL.add_calendar_hours(datetime(2025, 10, 1, 22, 0), 2) == datetime(2025, 10, 2, 0, 0)
    assert CAL.add_calendar_hours(datetime(2025, 10, 1, 22, 0), 24) == datetime(2025, 10, 2, 22, 0)


# --- years the package does not know -----------------------------------------------------------


def test_package_years() -> None:
    assert library_covers(2025)
    assert library_covers(2026)
    assert not library_covers(2099)
    assert not library_covers(2003)  # the package starts in 2004
    assert CAL.covers(2026) and not CAL.covers(2099)


def test_uncovered_year_is_statutory_holidays_and_monday_to_friday() -> None:
    # 2099-10-01 is a Thursday: 国庆节 by statute (1–3 October), not a working day even without a notice.
    assert not CAL.is_workday(date(2099, 10, 1))
    assert not CAL.is_workday(date(2099, 10, 3))
    assert CAL.is_workday(date(2099, 10, 5))  # Monday, no statutory holiday
    # Fri 2099-01-02 + 1 working day -> Mon 2099-01-05 (01-01 元旦 is behind the start).
    assert CAL.add_working_days(datetime(2099, 1, 2, 10, 0), 1) == datetime(2099, 1, 5, 17, 30)
    assert CAL.provisional_between(date(2099, 1, 2), date(2099, 1, 5))
    assert not CAL.provisional_between(date(2026, 3, 2), date(2026, 3, 9))


def test_overrides_win_over_the_notice() -> None:
    # A locally declared day off (e.g. a city-wide event) moves the deadline by one working day.
    overrides = {date(2025, 11, 17): False, date(2025, 11, 15): True}
    cal = WorkCalendar(overrides=overrides, days=CAL.days.values(), covered=CAL.covered)
    assert cal.is_workday(date(2025, 11, 15))
    assert not cal.is_workday(date(2025, 11, 17))
    # Fri 11-14 + 2: 11-15 (declared working), 11-18 (11-16 Sun, 11-17 off).
    assert cal.add_working_days(datetime(2025, 11, 14, 10, 0), 2) == datetime(2025, 11, 18, 17, 30)


def test_calendar_with_no_working_days_fails_loudly() -> None:
    everything_off = {date(2025, 1, 1) + timedelta(days=i): False for i in range(800)}
    cal = WorkCalendar(overrides=everything_off)
    with pytest.raises(CalendarError) as info:
        cal.add_working_days(datetime(2025, 1, 1, 10, 0), 1)
    assert info.value.code == "no_workday"
    with pytest.raises(CalendarError):
        cal.add_working_hours(datetime(2025, 1, 1, 10, 0), 1)


# --- office hours ------------------------------------------------------------------------------


def test_default_office_hours() -> None:
    hours = WorkingHours()
    assert hours.morning == (time(9), time(12))
    assert hours.afternoon == (time(13, 30), time(17, 30))
    assert hours.hours_per_day == 7.0


def test_custom_office_hours() -> None:
    # Summer timetable 08:30-12:00, 14:30-18:00 (7 h): deadlines end at 18:00.
    cal = WorkCalendar(WorkingHours(morning=(time(8, 30), time(12)), afternoon=(time(14, 30), time(18))))
    assert cal.add_working_days(datetime(2025, 11, 14, 10, 0), 1) == datetime(2025, 11, 17, 18, 0)
    # Mon 11:00 + 2 h: 11:00-12:00, then 14:30 + 1 h.
    assert cal.add_working_hours(datetime(2025, 11, 17, 11, 0), 2) == datetime(2025, 11, 17, 15, 30)


def test_office_hours_must_be_ordered() -> None:
    with pytest.raises(CalendarError) as info:
        WorkingHours(morning=(time(9), time(14)), afternoon=(time(13, 30), time(17, 30)))
    assert info.value.code == "bad_hours"


def test_timezone_aware_datetimes_refused() -> None:
    with pytest.raises(CalendarError) as info:
        CAL.add_working_days(datetime(2025, 11, 14, 10, 0, tzinfo=UTC), 1)
    assert info.value.code == "aware_datetime"


# --- elapsed share -----------------------------------------------------------------------------


def test_elapsed_share_in_working_days() -> None:
    start, due = datetime(2025, 9, 30, 10, 0), datetime(2025, 10, 16, 17, 30)
    # The start day and the holiday use up nothing.
    assert CAL.elapsed_share(start, due, datetime(2025, 9, 30, 16, 0)) == 0.0
    assert CAL.elapsed_share(start, due, datetime(2025, 10, 5, 12, 0)) == 0.0
    # End of the 4th counted day (10-09, 10, 11, 13): 4 of 7.
    assert CAL.elapsed_share(start, due, datetime(2025, 10, 13, 17, 30)) == pytest.approx(4 / 7)
    assert CAL.elapsed_share(start, due, due) == pytest.approx(1.0)
    # A day overdue: 8 of 7.
    assert CAL.elapsed_share(start, due, datetime(2025, 10, 17, 17, 30)) == pytest.approx(8 / 7)


def test_elapsed_share_in_working_hours_and_calendar_hours() -> None:
    start = datetime(2025, 11, 17, 9, 0)
    due = CAL.add_working_hours(start, 7)
    assert due == datetime(2025, 11, 17, 17, 30)
    # 09:00-12:00 plus 13:30-13:30: 3 of 7 h.
    assert CAL.elapsed_share(start, due, datetime(2025, 11, 17, 13, 30), "hours") == pytest.approx(3 / 7)
    emergency = CAL.add_calendar_hours(start, 2)
    assert CAL.elapsed_share(start, emergency, datetime(2025, 11, 17, 10, 30), "calendar") == 0.75
    assert CAL.elapsed_share(start, emergency, datetime(2025, 11, 17, 8, 0), "calendar") == 0.0


def test_elapsed_share_degenerate_limit() -> None:
    start = datetime(2025, 11, 17, 10, 0)
    same_day = CAL.add_working_days(start, 0)
    assert CAL.elapsed_share(start, same_day, datetime(2025, 11, 17, 12, 0)) == 0.0
    assert CAL.elapsed_share(start, same_day, datetime(2025, 11, 17, 18, 0)) == 1.0


def test_elapsed_share_unknown_unit() -> None:
    start = datetime(2025, 11, 17, 10, 0)
    with pytest.raises(CalendarError):
        CAL.elapsed_share(start, start, start, "weeks")  # type: ignore[arg-type]


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (Limit(7, "working_days"), datetime(2025, 10, 16, 17, 30)),
        # 15 working days: 10-09..11, 13..17, 20..24, 27, 28.
        (Limit(15, LimitUnit.working_days), datetime(2025, 10, 28, 17, 30)),
        # 4 office hours from Tue 09-30 10:00: 10:00-12:00 (2 h), 13:30-15:30 (2 h).
        (Limit(4, "working_hours"), datetime(2025, 9, 30, 15, 30)),
        # 9 office hours: 6 h on 09-30 (10:00-12:00, 13:30-17:30), then 3 h on 10-09 -> 12:00.
        (Limit(9, "working_hours"), datetime(2025, 10, 9, 12, 0)),
        (Limit(2, "calendar_hours"), datetime(2025, 9, 30, 12, 0)),
        (Limit(24, "calendar_hours"), datetime(2025, 10, 1, 10, 0)),
    ],
)
def test_deadline_dispatches_on_unit(limit: Limit, expected: datetime) -> None:
    assert deadline(CAL, datetime(2025, 9, 30, 10, 0), limit) == expected


def test_limit_validation_and_labels() -> None:
    assert Limit(7, "working_days").unit is LimitUnit.working_days
    assert Limit(7, "working_days").label_zh == "7个工作日"
    assert Limit(2, "calendar_hours").label_zh == "2小时"
    assert Limit(0.5, "working_hours").label_zh == "0.5个工作小时"
    assert Limit(4, "working_hours").share_unit == "hours"
    assert Limit(7, "working_days").share_unit == "days"
    assert Limit(2, "calendar_hours").share_unit == "calendar"
    with pytest.raises(CalendarError) as info:
        Limit(1.5, "working_days")
    assert info.value.code == "fractional_days"
    with pytest.raises(CalendarError) as info:
        Limit(-1, "calendar_hours")
    assert info.value.code == "negative_limit"
    with pytest.raises(CalendarError) as info:
        Limit(1, "fortnights")  # type: ignore[arg-type]
    assert info.value.code == "bad_unit"
    assert isinstance(info.value, ValueError)
