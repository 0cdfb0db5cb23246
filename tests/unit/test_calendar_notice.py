"""The working calendar as data: notices parsed from CSV, statutory holidays, provisional years.

Deadlines across 元旦 and 春节 2027 are counted by hand, day by day, in the comments, against the
hand-written test notice of ``tests.calendar_fixture`` (not the official one).
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from core.csvio import ImportRejected
from routing.calendar import (
    DayKind,
    Limit,
    WorkCalendar,
    day_lines,
    deadline,
    is_provisional,
    library_calendar,
    parse_notice_csv,
    statutory_holidays,
)
from tests.calendar_fixture import NOTICE_2027

LIBRARY = library_calendar()
WITH_2027 = WorkCalendar(
    days=[*LIBRARY.days.values(), *parse_notice_csv(NOTICE_2027)], covered=[*LIBRARY.covered, 2027]
)
FIVE_DAYS = Limit(5, "working_days")


def test_statutory_holidays_of_2027() -> None:
    # 春节 2027: 正月初一 is Saturday 6 February, so 除夕 to 初三 is 5–8 February; 端午 五月初五 is
    # 9 June, 中秋 八月十五 15 September; 清明 falls on 5 April.
    assert statutory_holidays(2027) == {
        date(2027, 1, 1): "元旦",
        date(2027, 2, 5): "春节",
        date(2027, 2, 6): "春节",
        date(2027, 2, 7): "春节",
        date(2027, 2, 8): "春节",
        date(2027, 4, 5): "清明",
        date(2027, 5, 1): "劳动节",
        date(2027, 5, 2): "劳动节",
        date(2027, 6, 9): "端午",
        date(2027, 9, 15): "中秋",
        date(2027, 10, 1): "国庆节",
        date(2027, 10, 2): "国庆节",
        date(2027, 10, 3): "国庆节",
    }


def test_statutory_dates_agree_with_the_published_2026_notice() -> None:
    # The published 2026 arrangement contains every statutory day (春节 2026: 除夕 16 February).
    off_2026 = {d for d, c in LIBRARY.days.items() if d.year == 2026 and c.kind is DayKind.holiday}
    assert set(statutory_holidays(2026)) <= off_2026


def test_2027_without_its_notice_is_provisional_never_plain_monday_to_friday() -> None:
    assert not LIBRARY.covers(2027)
    assert not LIBRARY.is_workday(date(2027, 1, 1))  # Friday, but 元旦
    # Wed 2027-02-03 + 5 working days on statutory holidays only: 02-04 (1), 02-05 除夕 off,
    # 02-06/07 weekend, 02-08 初三 off, 02-09 (2), 10 (3), 11 (4), 12 (5) -> 02-12 17:30, not 02-10.
    start = datetime(2027, 2, 3, 10, 0)
    due = deadline(LIBRARY, start, FIVE_DAYS)
    assert due == datetime(2027, 2, 12, 17, 30)
    assert is_provisional(LIBRARY, start, due, FIVE_DAYS)
    # A limit counted wholly inside a covered year is not provisional; clock hours never are.
    assert not is_provisional(LIBRARY, datetime(2026, 3, 2), datetime(2026, 3, 9), FIVE_DAYS)
    assert not is_provisional(LIBRARY, start, start, Limit(2, "calendar_hours"))


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        # 元旦: Wed 2026-12-30 + 3: 12-31 (1), 01-01..03 off, 01-04 (2), 01-05 (3) -> 2027-01-05.
        (datetime(2026, 12, 30, 10, 0), 3, datetime(2027, 1, 5, 17, 30)),
        # 春节: Wed 02-03 + 5: 02-04 (1), 02-05..12 off, 13/14 weekend, 15 (2), 16 (3), 17 (4), 18 (5).
        (datetime(2027, 2, 3, 10, 0), 5, datetime(2027, 2, 18, 17, 30)),
        # Make-up Saturday 02-20: Wed 02-17 + 3: 02-18 (1), 02-19 (2), 02-20 (3, 调休上班).
        (datetime(2027, 2, 17, 9, 0), 3, datetime(2027, 2, 20, 17, 30)),
        # Make-up Sunday 01-31: Fri 01-29 + 1 -> Sun 01-31.
        (datetime(2027, 1, 29, 16, 0), 1, datetime(2027, 1, 31, 17, 30)),
    ],
)
def test_deadlines_across_new_year_and_spring_festival_2027(
    start: datetime, days: int, expected: datetime
) -> None:
    limit = Limit(days, "working_days")
    due = deadline(WITH_2027, start, limit)
    assert due == expected
    assert not is_provisional(WITH_2027, start, due, limit)


def test_show_lines() -> None:
    assert day_lines(WITH_2027, date(2027, 1, 1), date(2027, 1, 4)) == [
        "2027-01-01 off 元旦",
        "2027-01-02 off 元旦",
        "2027-01-03 off 元旦",
        "2027-01-04 workday",
    ]
    assert day_lines(WITH_2027, date(2027, 1, 30), date(2027, 1, 31)) == [
        "2027-01-30 off 周末",
        "2027-01-31 workday 春节",
    ]
    assert day_lines(LIBRARY, date(2027, 2, 4), date(2027, 2, 5)) == [
        "2027-02-04 workday 暂定",
        "2027-02-05 off 春节 暂定",
    ]


def test_notice_parsing() -> None:
    days = parse_notice_csv("\ufeffdate,kind,name\n2027-02-20,WORKDAY,春节\n2027-01-01,holiday,元旦\n")
    assert [(d.day, d.kind, d.name) for d in days] == [
        (date(2027, 1, 1), DayKind.holiday, "元旦"),
        (date(2027, 2, 20), DayKind.workday, "春节"),
    ]


def test_notice_errors_carry_line_numbers_and_nothing_is_returned() -> None:
    text = (
        "date,kind,name\n"
        "2027-01-01,holiday,元旦\n"  # line 2: fine
        "2027-13-01,holiday,元旦\n"  # 3: no month 13
        "2027-02-05,off,春节\n"  # 4: unknown kind
        "2027-02-03,workday,春节\n"  # 5: a Wednesday needs no make-up row
        "2027-02-06,holiday,\n"  # 6: no name
        "2027-01-01,holiday,元旦\n"  # 7: duplicate of line 2
    )
    with pytest.raises(ImportRejected) as info:
        parse_notice_csv(text)
    found = [(e.line, e.column) for e in info.value.errors]
    assert found == [(3, "date"), (4, "kind"), (5, "kind"), (6, "name"), (7, "date")]
    assert "第 2 行" in str(info.value.errors[-1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("day,kind,name\n2027-01-01,holiday,元旦\n", "缺少列：date"),
        ("date,kind,name\n", "没有任何日期"),
        ("date,kind,name\n1999-01-01,holiday,元旦\n", "超出范围"),
    ],
)
def test_notice_file_level_errors(text: str, message: str) -> None:
    with pytest.raises(ImportRejected) as info:
        parse_notice_csv(text)
    assert message in str(info.value)


def test_two_statutory_holidays_on_one_date_keep_both_names() -> None:
    # 2028: 八月十五 is 3 October, inside 国庆节.
    assert statutory_holidays(2028)[date(2028, 10, 3)] == "国庆节、中秋"
    assert len(statutory_holidays(2028)) == 12
