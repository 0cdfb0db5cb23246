"""The shared input validator (core.inputs): characters, invisible text, column lengths, numbers, flush guard."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from core.db import Base
from core.inputs import (
    OutOfRange,
    UnsafeValue,
    bounded_number,
    column_length,
    forbidden_character,
    install_flush_guard,
    is_blank,
    text_problem,
    visible_length,
)
from core.models import Level, Unit, UnitKind
from routing.models import Case


@pytest.mark.parametrize(
    "char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x9f", "\u202e", "\u2066"]
)
def test_control_and_bidi_characters_are_forbidden(char: str) -> None:
    assert forbidden_character(f"ab{char}c") == char
    problem = text_problem(f"ab{char}c")
    assert problem is not None and problem.code == "control_characters" and "控制字符" in problem.message


def test_tab_is_allowed_and_line_breaks_only_where_multiline() -> None:
    assert forbidden_character("a\tb\r\nc") is None
    assert forbidden_character("a\nb", multiline=False) == "\n"
    problem = text_problem("a\nb", multiline=False)
    assert problem is not None and problem.code == "line_break"
    assert text_problem("社区 · 幸福小区 😀 é") is None


def test_invisible_text_counts_as_nothing() -> None:
    assert is_blank("\u200b\u200d\u3000\u2800\ufeff\u3164 \u00a0\u2060\u034f")
    assert is_blank("") and is_blank(None)
    assert not is_blank("\u200b好\u200b")
    assert visible_length("a\u200bb\u0301 c") == 3  # combining marks and spaces do not count


def test_length_is_checked_after_stripping() -> None:
    assert text_problem("  " + "x" * 5 + "  ", 5) is None
    problem = text_problem("x" * 6, 5)
    assert problem is not None and problem.code == "too_long" and "5" in problem.message


def test_column_length_reads_the_model() -> None:
    assert column_length(Case.address) == 200
    assert column_length(Unit.code) == 40
    assert column_length(Case.description) is None  # Text


@pytest.mark.parametrize(
    ("raw", "expected"), [("30.5", 30.5), (" -12 ", -12.0), (7, 7.0), (1.25, 1.25), ("1e1", 10.0)]
)
def test_bounded_number_accepts_numbers_in_range(raw: object, expected: float) -> None:
    assert bounded_number(raw, -100, 100) == expected


@pytest.mark.parametrize(
    "raw", [int("9" * 400), "9" * 400, "1e400", "inf", "-inf", "nan", math.inf, math.nan, 101, "-100.5"]
)
def test_bounded_number_refuses_out_of_range(raw: object) -> None:
    with pytest.raises(OutOfRange):
        bounded_number(raw, -100, 100)


@pytest.mark.parametrize("raw", ["", "thirty", "1,5", True, None, [], "x" * 400])
def test_bounded_number_refuses_non_numbers(raw: object) -> None:
    with pytest.raises(ValueError):
        bounded_number(raw, -100, 100)


def test_flush_guard_refuses_nul_and_over_long_strings_on_sqlite() -> None:
    install_flush_guard()
    install_flush_guard()  # idempotent
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[Unit.__table__])
    with Session(engine) as session:
        session.add(Unit(code="C\x00", name="社区", level=Level.city, kind=UnitKind.government))
        with pytest.raises(UnsafeValue) as caught:
            session.flush()
        assert (caught.value.table, caught.value.column) == ("units", "code")
        assert "\x00" not in str(caught.value)  # names the column, never the value
        session.rollback()
        session.add(Unit(code="C1", name="长" * 121, level=Level.city, kind=UnitKind.government))
        with pytest.raises(UnsafeValue, match="too_long"):
            session.flush()
        session.rollback()
        session.add(
            Unit(code="C1", name="长" * 120, level=Level.city, kind=UnitKind.government, note="多行\n备注")
        )
        session.flush()
    engine.dispose()


def test_forbidden_characters_are_exactly_unicodes_controls_surrogates_and_bidi_overrides() -> None:
    """The regular expression refuses what the category-based rule refuses, at every code point."""
    import unicodedata

    from core.inputs import BIDI_CONTROLS, LINE_BREAKS, forbidden_character

    def by_category(char: str, multiline: bool) -> bool:
        if char == "\t" or (multiline and char in LINE_BREAKS):
            return False
        return unicodedata.category(char) in ("Cc", "Cs") or char in BIDI_CONTROLS or char in "\ufffe\uffff"

    for multiline in (True, False):
        differ = [
            hex(code)
            for code in range(0x110000)
            if (forbidden_character(chr(code), multiline) is not None) != by_category(chr(code), multiline)
        ]
        assert differ == [], (multiline, differ[:10])
    assert forbidden_character("路灯\x00坏了") == "\x00"
    assert forbidden_character("第一行\n第二行") is None
    assert forbidden_character("第一行\n第二行", multiline=False) == "\n"


@pytest.mark.parametrize(
    ("value", "at_least", "expected"),
    [
        ("路灯坏了", 4, True),
        ("路灯坏了", 5, False),
        ("路 灯\u200b坏\u3164了", 4, True),  # a space, a zero-width space and a Hangul filler do not count
        ("\u200b\u3164 \u00a0", 1, False),
        ("e\u0301", 2, False),  # a combining accent shows with its letter, not as a character of its own
        ("", 0, True),
        (None, 1, False),
    ],
)
def test_has_visible_counts_what_visible_length_counts(
    value: str | None, at_least: int, expected: bool
) -> None:
    from core.inputs import has_visible, visible_length

    assert has_visible(value, at_least) is expected
    assert (visible_length(value or "") >= at_least) is expected
