"""The Quarter value type ("2026Q3" ↔ (2026, 3)) and the one place where UTC meets Beijing time.

Times are stored as naive UTC; quarters, days and deadlines are Beijing wall-clock time (UTC+8 all year,
no daylight saving since 1991, so a fixed offset is exact). A quarter runs from Beijing midnight of its
first day to Beijing midnight of the next quarter's first day: ``Quarter.bounds_utc()`` gives those two
instants as naive UTC for filtering stored times, so a case taken at 2026-10-01 03:00 Beijing
(2026-09-30 19:00 UTC) is in 2026Q4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_PATTERN = re.compile(r"^\s*(\d{4})\s*[Qq]\s*([1-4])\s*$")
BEIJING_OFFSET = timedelta(hours=8)


def to_beijing(moment: datetime) -> datetime:
    """Naive UTC → naive Beijing time."""
    return moment + BEIJING_OFFSET


def beijing_to_utc(moment: datetime) -> datetime:
    """Naive Beijing time → naive UTC."""
    return moment - BEIJING_OFFSET


def beijing_midnight_utc(day: date) -> datetime:
    """The UTC instant (naive) at which ``day`` begins in Beijing."""
    return beijing_to_utc(datetime.combine(day, time()))


def beijing_now() -> datetime:
    """The current Beijing wall-clock time (naive)."""
    return to_beijing(datetime.now(UTC).replace(tzinfo=None))


def beijing_today() -> date:
    """Today's date in Beijing."""
    return beijing_now().date()


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter of a year."""

    year: int
    number: int

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 4:
            raise ValueError(f"季度必须是 1–4，收到 {self.number}")

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """Parse "2026Q3" (case-insensitive) into a Quarter."""
        match = _PATTERN.match(text or "")
        if not match:
            raise ValueError(f"季度格式应为 2026Q3，收到 {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date | datetime) -> Quarter:
        """The quarter a Beijing date (or naive Beijing time) falls in; for a stored UTC time use ``of_utc``."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    @classmethod
    def of_utc(cls, moment: datetime) -> Quarter:
        """The quarter a stored (naive UTC) instant falls in, by its Beijing date."""
        return cls.of(to_beijing(moment))

    @classmethod
    def current(cls) -> Quarter:
        """The quarter of today's Beijing date."""
        return cls.of(beijing_today())

    def bounds_utc(self) -> tuple[datetime, datetime]:
        """[start, end) of the quarter as naive UTC instants of Beijing midnights, for stored-time filters."""
        return beijing_midnight_utc(self.start), beijing_midnight_utc(self.end)

    @property
    def start(self) -> date:
        """First day of the quarter (a Beijing date)."""
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """First day after the quarter (exclusive bound)."""
        return self.next().start

    def next(self) -> Quarter:
        """The following quarter."""
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def previous(self) -> Quarter:
        """The preceding quarter."""
        return Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)

    @property
    def label_zh(self) -> str:
        """Chinese label, e.g. 2026年第3季度."""
        return f"{self.year}年第{self.number}季度"

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"
