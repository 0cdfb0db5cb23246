"""The case-mix-adjusted view and its ledger sheet on the hand-worked example of tests/unit/test_casemix.py."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from assessment import casemix
from core.models import Level
from core.quarter import Quarter
from tests.builders import rated_case
from tests.conftest import login

Q = "2020Q1"  # no demo cases fall in it
T0 = datetime(2020, 2, 1, 9, 0)
C1, C2, C3 = "420102-S1-C1", "420102-S1-C2", "420102-S1-C3"


@pytest.fixture
def mix(session: Session) -> None:
    """C1: HW-01 9/10 satisfied, WY-01 3/10 (raw 60 %); C2: HW-01 24/30, WY-01 4/10 (raw 70 %); C3: one unrated."""
    n = 0
    for community, cells in (
        (C1, (("HW-01", 9, 10), ("WY-01", 3, 10))),
        (C2, (("HW-01", 24, 30), ("WY-01", 4, 10))),
    ):
        for category, good, total in cells:
            for i in range(total):
                n += 1
                rated_case(
                    session, community, category, f"MIX{n}", T0, "satisfied" if i < good else "dissatisfied"
                )
    rated_case(session, C3, "HW-01", "MIX-unrated", T0, None)
    session.commit()


def test_adjusted_tables_read_the_hand_example_from_the_database(session: Session, mix: None) -> None:
    result = casemix.adjusted_tables(session, Quarter.parse(Q), Level.community, ["satisfaction_rate"])
    table = result["satisfaction_rate"].table.set_index("unit_code")
    assert table.loc[C1, "expected"] == pytest.approx(11.75)
    assert table.loc[C2, "expected"] == pytest.approx(28.25)
    assert int(table.loc[C1, "rank"]) == 1 and int(table.loc[C2, "rank"]) == 2  # raw rates say the opposite
    assert table.loc[C3, "verdict"] == casemix.NOT_COMPARABLE
    street = casemix.adjusted_tables(session, Quarter.parse(Q), Level.street, ["satisfaction_rate"])
    row = street["satisfaction_rate"].table.set_index("unit_code").loc["420102-S1"]
    assert (row["observed"], row["cases"]) == (40, 60)
    assert row["expected"] == pytest.approx(40.0)  # the only street: its expectation is its own


def test_casemix_page_desktop_and_phone_table(client: Any, session: Session, mix: None) -> None:
    login(client, "evaluator")
    page = client.get(
        f"/assessment/{Q}/casemix?rate=satisfaction_rate&level=community&resamples=200"
    ).data.decode()
    assert "类别构成调整后的比较" in page
    assert 'id="casemix" class="stack"' in page and 'data-label="名次区间"' in page
    assert "60.0%（12）" in page and "58.8%（11.8）" in page  # C1: observed 12 of 20, expected 11.75
    assert "1.02（" in page  # O/E 12 / 11.75
    assert "70.6%（28.2）" in page  # C2: expected 70.625 %, E 28.25
    assert page.index(C1) < page.index(C2)
    assert "不参与排名" in page and "重抽样 200 次" in page


def test_casemix_page_refuses_bad_settings_in_chinese(client: Any, session: Session, mix: None) -> None:
    login(client, "evaluator")
    page = client.get(f"/assessment/{Q}/casemix?resamples=999999").data.decode()
    assert "重抽样次数应在 100 到 5000 之间" in page
    assert "重抽样 500 次" in page  # shown with the defaults, not the refused value
    page = client.get(f"/assessment/{Q}/casemix?rate=return_rate&level=city").data.decode()
    assert "类别构成调整只适用于响应率、解决率和满意率" in page and "层级应为社区、街道或区" in page
    assert client.get("/assessment/2020Q9/casemix").status_code == 404


def test_casemix_is_for_evaluators_only(client: Any, session: Session) -> None:
    login(client, "handler-community")
    assert client.get(f"/assessment/{Q}/casemix").status_code == 403


def test_dashboard_links_to_it_and_ledger_has_the_sheet(client: Any, session: Session, mix: None) -> None:
    login(client, "evaluator")
    assert client.post(f"/assessment/{Q}/run").status_code == 302
    assert f"/assessment/{Q}/casemix" in client.get(f"/assessment/?quarter={Q}").data.decode()
    book = load_workbook(io.BytesIO(client.get(f"/assessment/{Q}/export.xlsx").data))
    rows = list(book["类别构成调整"].iter_rows(values_only=True))
    assert rows[0][:3] == ("层级", "比率", "名次（O/E 从高到低）")
    c1 = next(r for r in rows[1:] if r and r[0] == "社区" and r[1] == "满意率" and r[5] == C1)
    assert c1[2] == 1 and c1[7:10] == (20, 12, 11.75)
    assert c1[12] == pytest.approx(12 / 11.75, abs=1e-4)
