"""Formula injection in exported spreadsheets (OWASP "CSV Injection"): text that would run is quoted."""

from __future__ import annotations

import pandas as pd

from app.exports import csv_text, safe_cell, safe_frame, safe_row


def test_text_starting_like_a_formula_is_quoted() -> None:
    # The four formula triggers of the OWASP page, plus tab and carriage return.
    for text in ('=HYPERLINK("http://x","点我")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert safe_cell(text) == "'" + text


def test_ordinary_values_are_unchanged() -> None:
    row = ["张三", "420102-S1-C1", -3.5, 7, None, ""]
    assert safe_row(row) == row


def test_csv_text_has_a_bom_and_quotes_formulas() -> None:
    assert csv_text([["名称", "说明"], ["=1+1", "好"]]) == "\ufeff名称,说明\r\n'=1+1,好\r\n"


def test_safe_frame_quotes_text_columns_and_keeps_numbers() -> None:
    frame = pd.DataFrame({"社区": ["=cmd|' /C calc'!A0", "东湖社区"], "变化": [-1.5, 2.0]})
    out = safe_frame(frame)
    assert out["社区"].tolist() == ["'=cmd|' /C calc'!A0", "东湖社区"]
    assert out["变化"].tolist() == [-1.5, 2.0]
    assert frame["社区"].iloc[0].startswith("=")  # the input is not modified
