"""The Quarter value type: "2026Q3" ↔ (2026, 3) with its date range."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

_PATTERN = re.compile(r"^\s*(\d{4})\s*[Qq]\s*([1-4])\s*$")


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
        """The quarter a day falls in."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def start(self) -> date:
        """First day of the quarter."""
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
