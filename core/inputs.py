"""Input hygiene shared by the forms, the JSON API and every import (CSV/XLSX rows).

One place decides which characters a text may hold, what counts as "nothing written", how long a value
may be (read from the model's column, never a second literal) and which numbers are acceptable, so the
web form, the API and a file import refuse the same things with the same messages.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from core.i18n import N_

LINE_BREAKS = frozenset("\n\r")
# Bidirectional overrides and isolates re-order what is displayed (the "Trojan source" trick): refused.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that render as blank space although Unicode does not call them spaces.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")
MAX_NUMBER_CHARS = 40  # "-123.456789e+10" is plenty; a 400-digit literal is an attack or an accident


@dataclass(frozen=True)
class Problem:
    """Why a value is refused: a machine code and a zh-CN message (mark with N_, translate in the shell)."""

    code: str
    message: str


CONTROL = Problem("control_characters", N_("不能包含控制字符或不可见的格式字符"))
LINE_BREAK = Problem("line_break", N_("不能包含换行"))
BLANK = Problem("blank", N_("内容不能只有空白或不可见字符"))


def _forbidden_pattern(allowed: str) -> re.Pattern[str]:
    """One character class of what a text may not hold, but ``allowed``: Unicode's Cc (the C0 and C1
    controls, U+0000–U+001F and U+007F–U+009F: fixed by Unicode's stability policy) and Cs (surrogates,
    U+D800–U+DFFF), the bidi controls and the noncharacters U+FFFE/U+FFFF (a test checks it against
    ``unicodedata.category`` over every code point)."""
    ranges = [(0x00, 0x1F), (0x7F, 0x9F), (0xD800, 0xDFFF), (0xFFFE, 0xFFFF)]
    chars = {chr(code) for low, high in ranges for code in range(low, high + 1)} | BIDI_CONTROLS
    return re.compile("[" + "".join(sorted(re.escape(c) for c in chars - set(allowed))) + "]")


# A regular expression scans a text in C: the flush guard and intake check every string written.
_FORBIDDEN = {True: _forbidden_pattern("\t" + "".join(LINE_BREAKS)), False: _forbidden_pattern("\t")}


def forbidden_character(value: str, multiline: bool = True) -> str | None:
    """The first character a text may not hold (NUL and other C0/C1 controls, surrogates, bidi overrides)."""
    found = _FORBIDDEN[multiline].search(value)
    return found.group() if found else None


def _visible(char: str) -> bool:
    return (
        not char.isspace()
        and unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Me")
        and char not in BLANK_LOOKING
    )


def visible_length(value: str) -> int:
    """How many characters of ``value`` show as something (not spaces, format characters or blanks)."""
    return sum(1 for char in value if _visible(char))


def has_visible(value: str | None, at_least: int = 1) -> bool:
    """Whether ``value`` shows at least ``at_least`` characters; stops reading once it has found them."""
    found = 0
    for char in value or "":
        if _visible(char):
            found += 1
            if found >= at_least:
                return True
    return at_least <= 0


def is_blank(value: str | None) -> bool:
    """True when nothing visible was written (empty, spaces, zero-width or other invisible characters)."""
    return not has_visible(value)


def text_problem(
    value: str | None, max_length: int | None = None, *, multiline: bool = True
) -> Problem | None:
    """Why ``value`` may not be stored (bad characters, too long after stripping), or None when it may."""
    if not value:
        return None
    char = forbidden_character(value, multiline)
    if char is not None:
        return LINE_BREAK if char in LINE_BREAKS else CONTROL
    if max_length is not None and len(value.strip()) > max_length:
        return too_long(max_length)
    return None


def too_long(max_length: int) -> Problem:
    """The "at most N characters" problem."""
    return Problem("too_long", N_("不能超过 %(max)s 个字符") % {"max": max_length})


def column_length(attribute: Any) -> int | None:
    """The declared length of a model's String column (``Case.address`` → 200); None for Text."""
    column = attribute.property.columns[0] if hasattr(attribute, "property") else attribute
    length = getattr(column.type, "length", None)
    return int(length) if length else None


class OutOfRange(ValueError):
    """A number that parses but lies outside its bounds (or is infinite, NaN, or absurdly long)."""


def bounded_number(raw: Any, low: float, high: float) -> float:
    """A finite number in [low, high] from a str/int/float; ValueError when not a number, OutOfRange when
    outside the bounds (a 400-digit literal included: converting it used to raise OverflowError)."""
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_CHARS:
            if text.lstrip("+-").replace(".", "", 1).isdigit():
                raise OutOfRange("a number of hundreds of digits")
            raise ValueError("not a number")
        value = float(text)
    elif isinstance(raw, int):
        if raw.bit_length() > 1000:
            raise OutOfRange("integer out of range")
        value = float(raw)
    elif isinstance(raw, float):
        value = raw
    else:
        raise ValueError(f"not a number: {type(raw).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise OutOfRange(f"{value} outside [{low}, {high}]")
    return value


class UnsafeValue(ValueError):
    """A value about to be written breaks its column: bad characters or longer than the column allows.

    Raised by the flush guard, the last line behind the field checks: it names the column, never the value
    (which may be a resident's name or phone).
    """

    def __init__(self, table: str, column: str, problem: Problem) -> None:
        super().__init__(f"{table}.{column}: {problem.code}")
        self.table, self.column, self.problem = table, column, problem


def check_row(obj: Any) -> None:
    """Raise UnsafeValue when a string attribute of a mapped object breaks its column (chars or length)."""
    state = inspect(obj, raiseerr=False)
    if state is None:
        return
    check_values(state.mapper, state.dict)  # only loaded values: the guard never emits a query


def check_values(mapper: Any, values: Mapping[str, Any]) -> None:
    """Raise UnsafeValue when a value about to be written to ``mapper``'s table breaks its column.

    ``values`` are by attribute name: an object's loaded state, or the row a Core INSERT is about to send.
    """
    for key, column, length in _checked_columns(mapper):
        value = values.get(key)
        if not isinstance(value, str):
            continue
        if forbidden_character(value) is not None:
            raise UnsafeValue(mapper.local_table.name, column, CONTROL)
        if length and len(value) > length:
            raise UnsafeValue(mapper.local_table.name, column, too_long(length))


@cache
def _checked_columns(mapper: Any) -> tuple[tuple[str, str, int | None], ...]:
    """(attribute, column name, maximum length or None) of every mapped column, read once per model."""
    found = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        length = getattr(column.type, "length", None)
        found.append((prop.key, column.name, int(length) if length else None))
    return tuple(found)


def guard_flush(session: Any, _context: Any, _instances: Any) -> None:
    """``before_flush`` listener: no NUL/control character and no over-long string reaches the database.

    SQLite stores both silently and PostgreSQL fails with an error the pages turned into a 500.
    """
    for obj in (*session.new, *session.dirty):
        check_row(obj)


def install_flush_guard() -> None:
    """Attach :func:`guard_flush` to every SQLAlchemy Session (idempotent)."""
    if not event.contains(Session, "before_flush", guard_flush):
        event.listen(Session, "before_flush", guard_flush)


def fit_filename(name: str, max_length: int) -> str:
    """A client's file name made storable: bad characters dropped, the stem shortened to fit ``max_length``
    while the suffix (".jpg") is kept — a 300-character name was a 500 on PostgreSQL."""
    clean = "".join(c for c in name if forbidden_character(c, multiline=False) is None).strip()
    if len(clean) <= max_length:
        return clean
    stem, dot, suffix = clean.rpartition(".")
    if not dot or len(suffix) > 16:
        return clean[:max_length]
    return stem[: max_length - len(suffix) - 1] + "." + suffix
