"""The Quarter value type."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from core.quarter import Quarter


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026Q3", Quarter(2026, 3)), ("2026q1", Quarter(2026, 1)), (" 2025 Q4 ", Quarter(2025, 4))],
)
def test_parse(text: str, expected: Quarter) -> None:
    assert Quarter.parse(text) == expected


@pytest.mark.parametrize("text", ["2026Q5", "2026Q0", "26Q1", "2026-3", "Q3 2026", "", "2026Q34"])
def test_parse_refuses_bad_text_in_chinese(text: str) -> None:
    with pytest.raises(ValueError, match="季度格式"):
        Quarter.parse(text)


def test_number_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="季度必须是"):
        Quarter(2026, 5)


def test_round_trip_and_label() -> None:
    quarter = Quarter(2026, 3)
    assert str(quarter) == "2026Q3" and Quarter.parse(str(quarter)) == quarter
    assert quarter.label_zh == "2026年第3季度"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), Quarter(2026, 1)),
        (date(2026, 3, 31), Quarter(2026, 1)),
        (date(2026, 4, 1), Quarter(2026, 2)),
        (datetime(2026, 9, 30, 23, 59), Quarter(2026, 3)),
        (date(2026, 12, 31), Quarter(2026, 4)),
    ],
)
def test_of(day: date, expected: Quarter) -> None:
    assert Quarter.of(day) == expected


def test_bounds_and_neighbours_across_years() -> None:
    q4 = Quarter(2025, 4)
    assert (q4.start, q4.end) == (date(2025, 10, 1), date(2026, 1, 1))
    assert q4.next() == Quarter(2026, 1) and Quarter(2026, 1).previous() == q4
    assert Quarter(2026, 2).start == date(2026, 4, 1) and Quarter(2026, 2).end == date(2026, 7, 1)
    assert Quarter(2025, 4) < Quarter(2026, 1) < Quarter(2026, 2)


def test_bounds_are_beijing_midnights_in_utc() -> None:
    assert Quarter(2026, 4).bounds_utc() == (datetime(2026, 9, 30, 16, 0), datetime(2026, 12, 31, 16, 0))
    assert Quarter(2027, 1).bounds_utc()[0] == datetime(2026, 12, 31, 16, 0)


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 9, 30, 19, 0), Quarter(2026, 4)),  # 2026-10-01 03:00 Beijing
        (datetime(2026, 9, 30, 15, 59), Quarter(2026, 3)),  # 23:59 Beijing on 30 September
        (datetime(2026, 9, 30, 16, 0), Quarter(2026, 4)),  # Beijing midnight
        (datetime(2026, 12, 31, 17, 0), Quarter(2027, 1)),
    ],
)
def test_quarter_of_a_stored_utc_time_is_by_its_beijing_date(utc: datetime, expected: Quarter) -> None:
    assert Quarter.of_utc(utc) == expected
    start, end = expected.bounds_utc()
    assert start <= utc < end


def test_beijing_conversions_round_trip() -> None:
    from core.quarter import beijing_to_utc, to_beijing

    moment = datetime(2026, 10, 1, 3, 0)
    assert beijing_to_utc(moment) == datetime(2026, 9, 30, 19, 0)
    assert to_beijing(beijing_to_utc(moment)) == moment
