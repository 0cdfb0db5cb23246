"""Evaluator pages usable without memorising codes (issue 11 item 10): pickers, labelled AHP grid, Beijing
time, Chinese labels, the report on A4 landscape."""

# ruff: noqa: F811 - the fixture `tiny` is imported from test_assessment and requested by name
from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from assessment import services, systems
from assessment.models import ReviewItem
from core.models import Unit
from tests.conftest import login
from tests.web.test_assessment import Q, tiny  # noqa: F401 - the hand-checked quarter's fixture

STATIC = Path(__file__).resolve().parents[2] / "app" / "static"


def test_dashboard_job_time_is_beijing_time(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    services.mark_job(session, Q, "queued")
    run = systems.run_for(session, Q)
    assert run is not None
    run.params = {**run.params, "job": {**run.params["job"], "at": "2020-03-31T17:30:00"}}
    session.commit()
    login(client, "evaluator")
    page = client.get(f"/assessment/?quarter={Q}").data.decode()
    assert "2020-04-01 01:30 北京时间" in page and "UTC" not in page


def test_entries_page_offers_units_and_entry_items_by_name(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    login(client, "evaluator")
    page = client.get(f"/assessment/entries?quarter={Q}").data.decode()
    assert 'list="unit-options"' in page
    assert f'<option value="420102-S1-C1" label="{tiny["c1"].name}（社区）">' in page
    assert (
        '<option value="check" >检查得分（check）</option>' in page
        or '<option value="check">检查得分（check）</option>' in page
    )
    assert "检查得分 <small" in page  # the table names the entry item, not only its code
    assert 'value="None"' not in page and ">None</textarea>" not in page  # an empty form is empty


def test_system_page_labels_sources_and_the_ahp_grid(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    login(client, "evaluator")
    system = systems.create_system(session, "2020Q3", *systems.default_system())
    session.commit()
    page = client.get(f"/assessment/systems/{system.id}?weights=TOTAL").data.decode()
    names = [child["name"] for child in system.tree["children"]]
    grid = page[page.index('id="ahp-matrix"') :]
    grid = grid[: grid.index("</table>")]
    for name in names:
        assert grid.count(name) >= 2  # a column header and a row header
    assert 'name="m_0_1"' in grid and 'name="m_1_0"' not in grid
    edit = client.get(
        f"/assessment/systems/{system.id}?edit={system.tree['children'][0]['children'][0]['code']}"
    ).data.decode()
    assert 'label="诉求数据：退单率"' in edit and 'label="问卷调查：总体满意度指数"' in edit


def test_ahp_grid_cells_make_the_matrix(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    login(client, "evaluator")
    system = systems.create_system(session, "2020Q3", *systems.default_system())
    session.commit()
    n = len(system.tree["children"])
    cells = {f"m_{i}_{j}": "1" for i in range(n) for j in range(i + 1, n)}
    cells["m_0_1"] = "2"
    cells["m_0_2"] = "2"
    cells["m_1_2"] = "1"
    missing = {**cells, "m_0_1": ""}
    page = client.post(
        f"/assessment/systems/{system.id}",
        data={"action": "weights", "node": "TOTAL", "method": "ahp", **missing},
    ).data.decode()
    assert "判断矩阵只能填写数字或分数" in page and 'name="m_0_2" value="2"' in page  # kept after the error
    response = client.post(
        f"/assessment/systems/{system.id}",
        data={"action": "weights", "node": "TOTAL", "method": "ahp", **cells},
    )
    assert response.status_code == 302
    newest = systems.system_for(session, "2020Q3")
    assert newest is not None and newest.weight_methods["TOTAL"]["method"] == "ahp"
    weights = [c["weight"] for c in newest.tree["children"]]
    assert weights[0] > weights[1] and weights[1] == pytest.approx(weights[2], rel=0.05)


def test_why_page_says_the_source_in_chinese(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    login(client, "evaluator")
    assert client.post(f"/assessment/{Q}/run").status_code == 302
    page = client.get(f"/assessment/{Q}/unit/420102-S1-C1/node/A").data.decode()
    assert "数据来源：诉求数据：满意率（case:satisfaction_rate）" in page
    assert "<h1>" in page and "· 满意率" in page  # the node's name, not only its code


def test_report_prints_on_a4_landscape(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    css = (STATIC / "site.css").read_text(encoding="utf-8")
    assert "@page report { size: A4 landscape;" in css and ".report-page { page: report; }" in css
    login(client, "evaluator")
    assert client.post(f"/assessment/{Q}/run").status_code == 302
    assert '<div class="report-page">' in client.get(f"/assessment/{Q}/report").data.decode()


def test_ledger_says_sources_in_chinese_and_review_times_in_beijing_time(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    item = ReviewItem(
        unit_id=tiny["c1"].id, kind="case_category", item_code="HW-01", item_label="环境卫生",
        quarter_from="2019Q4", quarter_to=Q, threshold=60.0, evidence=[], decision="已约谈",
        decided_at=datetime(2020, 3, 31, 17, 30),
    )  # fmt: skip
    session.add(item)
    session.commit()
    login(client, "evaluator")
    assert client.post(f"/assessment/{Q}/run").status_code == 302
    book = load_workbook(io.BytesIO(client.get(f"/assessment/{Q}/export.xlsx").data))
    rows = list(book["指标体系"].iter_rows(values_only=True))
    assert rows[0][-1] == "数据来源说明"
    assert ("A", "诉求数据：满意率") in {(r[1], r[-1]) for r in rows[1:]}
    review = list(book["逐项审核"].iter_rows(values_only=True))
    assert review[0][-1] == "审核时间（北京时间）" and review[1][-1] == "2020-04-01 01:30"
