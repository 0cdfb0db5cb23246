"""Security review regressions: formula-safe exports, upload size limits, tokens kept out of logs."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Unit
from tests.conftest import login
from tests.web.test_surveys import C1, make_survey, seed_answers

FORMULA = '=HYPERLINK("http://evil.example","点我")'


def test_survey_exports_neutralise_formulas_in_names(client: Any, session: Session) -> None:
    unit = session.scalar(select(Unit).where(Unit.code == C1))
    assert unit is not None
    unit.name = FORMULA
    session.flush()
    survey = make_survey(session)
    seed_answers(session, survey, C1, [(5, 4), (3, 3)])
    login(client, "evaluator")
    text = client.get("/surveys/results.csv?quarter=2026Q3").get_data(as_text=True)
    frame = pd.read_csv(io.StringIO(text.lstrip("\ufeff")))
    names = set(frame.loc[frame["社区代码"] == C1, "社区"])
    assert names == {"'" + FORMULA}
    sheet = load_workbook(io.BytesIO(client.get("/surveys/results.xlsx?quarter=2026Q3").data)).active
    assert sheet is not None
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert not [c for c in cells if c.data_type == "f"]  # no cell is stored as a formula
    assert "'" + FORMULA in {c.value for c in cells}
