"""Assessment pages and services on a tiny hand-checked quarter (2020Q1: no demo cases fall in it)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assessment import inputs, missing, rules, services, significance, systems, vocabulary
from assessment.inputs import case_rates
from assessment.jobs import score_quarter
from assessment.models import IndicatorSystem, ReviewItem, Score
from core.models import Category, Unit
from core.quarter import Quarter
from routing.models import Case, CaseEvent
from tests.conftest import login

Q = "2020Q1"
T0 = datetime(2020, 2, 1, 9, 0)

# Two leaves: A = satisfaction rate, linear 60 → 100 (weight 60); B = an evaluator's check, linear 0 → 10
# (weight 40). Roll-up: equal weights, so hand arithmetic stays simple.
TREE = {
    "code": "T",
    "name": "总分",
    "children": [
        {"code": "A", "name": "满意率", "weight": 60, "rule": {"kind": "linear", "lower": 60, "upper": 100}},
        {"code": "B", "name": "检查得分", "weight": 40, "rule": {"kind": "linear", "lower": 0, "upper": 10}},
    ],
}
SOURCES = {"A": "case:satisfaction_rate", "B": "entry:check"}


def _unit(session: Session, code: str) -> Unit:
    unit = session.scalar(select(Unit).where(Unit.code == code))
    assert unit is not None
    return unit


def _case(session: Session, community: Unit, n: int, satisfaction: str | None, **kw: Any) -> Case:
    category = session.scalar(select(Category).order_by(Category.id).limit(1))
    assert category is not None and community.parent is not None and community.parent.parent is not None
    created = kw.pop("created_at", T0)
    case = Case(
        tracking_number=f"T{community.id}-{n}",
        category_id=category.id,
        district_id=community.parent.parent.id,
        street_id=community.parent.id,
        community_id=community.id,
        address="测试地址",
        description="测试",
        contact_name="张三",
        contact_phone="13800000000",
        state=kw.pop("state", "closed"),
        created_at=created,
        satisfaction=satisfaction,
        solved=kw.pop("solved", satisfaction in ("satisfied", "basically_satisfied")),
        sign_for_deadline=created + timedelta(hours=4),
        deadline=created + timedelta(days=7),
        **kw,
    )
    session.add(case)
    session.flush()
    return case


def _events(session: Session, case: Case, accept_after: timedelta, resolve_after: timedelta) -> None:
    for action, delta in (("dispatch", timedelta(0)), ("accept", accept_after), ("resolve", resolve_after)):
        session.add(CaseEvent(case_id=case.id, action=action, created_at=T0 + delta))
    session.flush()


@pytest.fixture
def tiny(session: Session) -> dict[str, Unit]:
    """C1: 4 rated (满意, 满意, 基本满意, 不满意) → 75 %; C2: 2 满意 → 100 %; C3: no cases. Checks 5, 10, 0."""
    c1, c2, c3 = (_unit(session, f"420102-S1-C{i}") for i in (1, 2, 3))
    hour, day = timedelta(hours=1), timedelta(days=1)
    for n, (sat, accept, resolve, extra) in enumerate(
        [
            ("satisfied", hour, day, {"returns_count": 1}),
            ("satisfied", hour, day, {}),
            ("basically_satisfied", hour, 9 * day, {"reopen_count": 1}),
            ("dissatisfied", 5 * hour, 9 * day, {}),
        ]
    ):
        _events(session, _case(session, c1, n, sat, **extra), accept, resolve)
    for n in range(2):
        _events(session, _case(session, c2, n, "satisfied"), hour, day)
    systems.create_system(session, Q, TREE, SOURCES, rollup="equal")
    for unit, value in ((c1, 5.0), (c2, 10.0), (c3, 0.0)):
        inputs.add_entry(session, Q, unit, "check", value)
    session.commit()
    return {"c1": c1, "c2": c2, "c3": c3}


@pytest.fixture
def own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Minimum samples of 1: the tiny quarter's hand arithmetic on own values (policy tests below)."""
    monkeypatch.setattr(missing, "MIN_SAMPLE", {"case": 1, "survey": 1})


def _score(session: Session, unit: Unit, node: str = "T") -> Score:
    row = session.scalar(select(Score).where(Score.unit_id == unit.id, Score.node_code == node))
    assert row is not None
    return row


def test_case_rates_follow_the_declared_definitions(session: Session, tiny: dict[str, Unit]) -> None:
    rates = case_rates(session, Q).loc[tiny["c1"].id]
    assert rates["dispatched"] == 4 and rates["rated"] == 4
    assert rates["response_rate"] == 75.0  # one of four signed for after the 4-hour limit
    assert rates["resolution_rate"] == 75.0
    assert rates["satisfaction_rate"] == 75.0
    assert rates["on_time_rate"] == 50.0  # two resolved after 9 days > 7-day deadline
    assert rates["return_rate"] == 25.0
    assert rates["reopen_rate"] == 25.0
    assert rates["requests_per_1000"] == pytest.approx(4 / (tiny["c1"].population or 1) * 1000)
    assert tiny["c3"].id not in case_rates(session, Q).index


def test_quarters_are_cut_at_beijing_midnight(session: Session) -> None:
    """A case taken 2026-10-01 03:00 Beijing (2026-09-30 19:00 UTC) counts in 2026Q4, not 2026Q3."""
    community = _unit(session, "420102-S1-C1")

    def counted(quarter: str) -> tuple[int, int, int]:
        rates = case_rates(session, quarter)
        requests = int(rates["requests"].get(community.id, 0))
        ratings = inputs.callback_ratings(session, Quarter.parse(quarter))
        rated = int((ratings["community_code"] == community.code).sum())
        behind = len(inputs.cases_behind(session, quarter, community.id, limit=100_000))
        return requests, rated, behind

    before = {q: counted(q) for q in ("2026Q3", "2026Q4")}
    _case(session, community, 901, "satisfied", created_at=datetime(2026, 9, 30, 19, 0))
    # 2026-09-30 15:59 UTC is 23:59 Beijing on the 30th: still the third quarter.
    _case(session, community, 902, "satisfied", created_at=datetime(2026, 9, 30, 15, 59))
    assert counted("2026Q4") == tuple(n + 1 for n in before["2026Q4"])
    assert counted("2026Q3") == tuple(n + 1 for n in before["2026Q3"])


@pytest.mark.usefixtures("own_values")
def test_hand_checked_scores_ranks_and_rollup(session: Session, tiny: dict[str, Unit]) -> None:
    score_quarter(session, Q)
    session.commit()
    # C1: A = (75 − 60)/40 × 60 = 22.5; B = 5/10 × 40 = 20 → 42.5.  C2: 60 + 40 = 100.
    # C3: A not applicable → B carries all 100 points: 0/10 → 0.
    assert _score(session, tiny["c1"]).score == pytest.approx(42.5)
    assert _score(session, tiny["c2"]).score == pytest.approx(100.0)
    assert _score(session, tiny["c3"]).score == pytest.approx(0.0)
    assert [_score(session, tiny[k]).rank for k in ("c2", "c1", "c3")] == [1, 2, 3]
    assert _score(session, tiny["c1"], "A").value == pytest.approx(75.0)
    assert "22.50" in _score(session, tiny["c1"], "A").explanation
    # Equal roll-up: the street's mean of 42.5, 100, 0; the district's other street has no data.
    assert _score(session, _unit(session, "420102-S1")).score == pytest.approx(47.5)
    assert _score(session, _unit(session, "420102")).score == pytest.approx(47.5)


@pytest.mark.usefixtures("own_values")
def test_rerun_replaces_and_published_run_is_frozen(session: Session, tiny: dict[str, Unit]) -> None:
    score_quarter(session, Q)
    count = session.scalar(select(func.count()).select_from(Score))
    inputs.add_entry(session, Q, tiny["c1"], "check", 10.0)
    score_quarter(session, Q)
    assert session.scalar(select(func.count()).select_from(Score)) == count
    assert _score(session, tiny["c1"]).score == pytest.approx(62.5)  # 22.5 + 40
    services.publish_run(session, Q)
    with pytest.raises(vocabulary.AssessmentError) as raised:
        score_quarter(session, Q)
    assert raised.value.code == "run_published"


@pytest.mark.usefixtures("own_values")
def test_previous_quarter_comparison(session: Session, tiny: dict[str, Unit]) -> None:
    score_quarter(session, Q, publish=True)
    inputs.add_entry(session, "2020Q2", tiny["c1"], "check", 10.0)
    services.run_scoring(session, "2020Q2", None, None, inputs.entries_frame(session, "2020Q2"))
    run = systems.run_for(session, "2020Q2")
    assert run is not None and run.params["compared_with"] == Q
    # 2020Q2: C1 has no cases, so B carries everything: 100 points; change = 100 − 42.5.
    now = session.scalar(
        select(Score).where(Score.run_id == run.id, Score.unit_id == tiny["c1"].id, Score.node_code == "T")
    )
    assert now is not None and now.change == pytest.approx(57.5)


def test_review_list_is_idempotent(session: Session, tiny: dict[str, Unit]) -> None:
    c1 = tiny["c1"]

    def frame(value: float) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "unit_id": c1.id,
                    "kind": "survey_item",
                    "item_code": "Q1",
                    "item_label": "环境卫生",
                    "value": value,
                    "n": 30,
                }
            ]
        )

    history = {"2020Q1": frame(55.0), "2019Q4": frame(50.0), "2019Q3": frame(80.0)}
    first = services.detect_persistent_dissatisfaction(session, Q, history)
    again = services.detect_persistent_dissatisfaction(session, Q, history)
    assert len(first) == 1 and [i.id for i in again] == [first[0].id]
    item = first[0]
    assert (item.quarter_from, item.quarter_to) == ("2019Q4", "2020Q1")
    assert [e["value"] for e in item.evidence] == [50.0, 55.0]
    assert session.scalar(select(func.count()).select_from(ReviewItem)) == 1
    services.record_decision(session, item.id, "已约谈整改", None)
    assert item.decided_at is not None


def test_single_quarter_below_threshold_is_not_listed(session: Session, tiny: dict[str, Unit]) -> None:
    frame = pd.DataFrame(
        [
            {
                "unit_id": tiny["c2"].id,
                "kind": "case_category",
                "item_code": "HW-01",
                "item_label": "环卫",
                "value": 10.0,
                "n": 9,
            }
        ]
    )
    assert services.detect_persistent_dissatisfaction(session, Q, {Q: frame}) == []


PAGES = [
    "/assessment/",
    f"/assessment/?quarter={Q}",
    "/assessment/systems",
    f"/assessment/entries?quarter={Q}",
    "/assessment/review",
    "/assessment/review.csv",
    f"/assessment/{Q}/unit/420102",
    f"/assessment/{Q}/unit/420102-S1",
    f"/assessment/{Q}/unit/420102-S1-C1",
    f"/assessment/{Q}/unit/420102-S1-C1/node/A",
    f"/assessment/{Q}/unit/420102-S1-C1/node/B",
    f"/assessment/{Q}/export.csv",
    f"/assessment/{Q}/export.xlsx",
    f"/assessment/{Q}/workers",
    f"/assessment/{Q}/workers?format=csv",
    f"/assessment/{Q}/report",
]


@pytest.mark.usefixtures("own_values")
def test_every_page_renders_for_an_evaluator(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    login(client, "evaluator")
    assert client.post(f"/assessment/{Q}/run").status_code == 302  # RQ_ASYNC off: runs inline
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get(f"/assessment/{Q}/unit/420102-S1-C1/node/A").data.decode()
    assert "T{}-0".format(tiny["c1"].id) in page and "满意率" in page  # the cases behind the number
    assert "<svg" in client.get(f"/assessment/?quarter={Q}").data.decode()
    book = load_workbook(io.BytesIO(client.get(f"/assessment/{Q}/export.xlsx").data))
    assert {"区得分", "街道得分", "社区得分", "指标体系", "逐项审核"} <= set(book.sheetnames)
    rows = list(book["社区得分"].iter_rows(values_only=True))
    assert len(rows) - 1 == len({row[1] for row in rows[1:]})  # one row per community, no cross product
    by_code = {row[1]: row for row in rows[1:]}
    assert by_code["420102-S1-C2"][:3] == (1, "420102-S1-C2", tiny["c2"].name)
    assert by_code["420102-S1-C2"][3] == pytest.approx(100.0)


def test_only_evaluators_and_admins(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    assert client.get("/assessment/").status_code == 302  # to the login page
    for username in ("resident", "handler-community", "dispatcher-city"):
        login(client, username)
        assert client.get("/assessment/").status_code == 403
        assert client.post(f"/assessment/{Q}/run").status_code == 403
        client.post("/logout")
    login(client, "admin")
    assert client.get("/assessment/").status_code == 200


def test_published_run_cannot_be_rerun_from_the_dashboard(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    login(client, "evaluator")
    client.post(f"/assessment/{Q}/run")
    client.post(f"/assessment/{Q}/publish")
    before = _score(session, tiny["c1"]).id
    page = client.post(f"/assessment/{Q}/run", follow_redirects=True).data.decode()
    assert "已发布，不能重新计算" in page
    assert _score(session, tiny["c1"]).id == before


def test_bad_ahp_matrix_is_refused_with_its_cr(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    login(client, "evaluator")
    system = systems.create_system(session, "2020Q3", *systems.default_system())
    session.commit()
    versions = session.scalar(select(func.count()).select_from(IndicatorSystem))
    # A cyclic judgment (A ≫ B ≫ MH ≫ A) is maximally inconsistent.
    bad = "1 9 1/9 1 1\n1/9 1 9 1 1\n9 1/9 1 1 1\n1 1 1 1 1\n1 1 1 1 1"
    page = client.post(
        f"/assessment/systems/{system.id}",
        data={"action": "weights", "node": "TOTAL", "method": "ahp", "matrix": bad},
    ).data.decode()
    assert "一致性比率 CR" in page and "请调整两两比较判断" in page
    assert session.scalar(select(func.count()).select_from(IndicatorSystem)) == versions
    good = "1 1 1 1 1\n1 1 1 1 1\n1 1 1 1 1\n1 1 1 1 1\n1 1 1 1 1"
    response = client.post(
        f"/assessment/systems/{system.id}",
        data={"action": "weights", "node": "TOTAL", "method": "ahp", "matrix": good},
    )
    assert response.status_code == 302
    newest = systems.system_for(session, "2020Q3")
    assert newest is not None and newest.weight_methods["TOTAL"]["cr"] == pytest.approx(0.0, abs=1e-9)
    assert [c["weight"] for c in newest.tree["children"]] == pytest.approx([20.0] * 5)


def test_entry_with_evidence_upload(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    login(client, "evaluator")
    response = client.post(
        "/assessment/entries",
        data={
            "quarter": Q,
            "unit": "420102-S1-C3",
            "code": "check",
            "value": "7",
            "note": "暗访发现楼道堆物",
            "evidence": (io.BytesIO(b"photo"), "photo.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    entry = inputs.entries_frame(session, Q).set_index(["unit_id", "code"]).loc[(tiny["c3"].id, "check")]
    assert entry["value"] == 7.0
    page = client.get(f"/assessment/entries?quarter={Q}").data.decode()
    assert "photo.jpg" in page
    bad = client.post(
        "/assessment/entries", data={"quarter": Q, "unit": "nope", "code": "check", "value": "x"}
    )
    assert "单位编码不存在" in bad.data.decode() and "取值必须是数字" in bad.data.decode()


def test_review_decision_form_and_export(client: Any, session: Session, tiny: dict[str, Unit]) -> None:
    frame = pd.DataFrame(
        [
            {
                "unit_id": tiny["c1"].id,
                "kind": "case_category",
                "item_code": "HW-01",
                "item_label": "环卫",
                "value": 40.0,
                "n": 8,
            }
        ]
    )
    (item,) = services.detect_persistent_dissatisfaction(session, Q, {Q: frame, "2019Q4": frame})
    session.commit()
    login(client, "evaluator")
    assert (
        "请填写审核结论"
        in client.post(
            f"/assessment/review/{item.id}/decision", data={"decision": " "}, follow_redirects=True
        ).data.decode()
    )
    client.post(f"/assessment/review/{item.id}/decision", data={"decision": "责令街道限期整改"})
    csv_text = client.get("/assessment/review.csv").data.decode("utf-8-sig")
    assert "责令街道限期整改" in csv_text and "环卫" in csv_text


# --- indicator-tree editor ----------------------------------------------------------------------------


def _versions(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(IndicatorSystem)) or 0)


@pytest.fixture
def editable(session: Session, tiny: dict[str, Unit]) -> IndicatorSystem:
    """The tiny quarter's system (T → A, B), not yet used by any run."""
    system = systems.system_for(session, Q)
    assert system is not None and system.quarter == Q
    return system


LEAF_FORM = {
    "action": "add",
    "parent": "T",
    "code": "C",
    "name": "网上巡查",
    "weight": "20",
    "rule_kind": "linear",
    "lower": "60",
    "upper": "100",
    "higher_is_better": "1",
    "source_kind": "entry",
    "source_key": "online",
}


def test_editor_shows_the_tree_in_plain_words(client: Any, editable: IndicatorSystem) -> None:
    login(client, "evaluator")
    page = client.get(f"/assessment/systems/{editable.id}").data.decode()
    assert "线性：≤60 得 0 分，≥100 得满分，其间按比例（越高越好）" in page
    assert "诉求数据：满意率" in page and "考评录入：录入项 check" in page
    form = client.get(f"/assessment/systems/{editable.id}?edit=A").data.decode()
    assert 'name="lower" value="60"' in form and "编辑指标「满意率」" in form


def test_add_a_leaf_creates_a_new_version(client: Any, session: Session, editable: IndicatorSystem) -> None:
    login(client, "evaluator")
    response = client.post(f"/assessment/systems/{editable.id}", data=LEAF_FORM)
    assert response.status_code == 302
    newest = systems.system_for(session, Q)
    assert newest is not None and newest.version == editable.version + 1
    assert [c["code"] for c in newest.tree["children"]] == ["A", "B", "C"]
    assert newest.tree["children"][2]["rule"] == {
        "kind": "linear", "lower": 60.0, "upper": 100.0, "higher_is_better": True,
    }  # fmt: skip
    assert newest.sources["C"] == "entry:online"
    old = session.get(IndicatorSystem, editable.id)
    assert old is not None and old.tree == TREE  # the old version is kept as it was


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"weight": "二十"}, "权重必须是数字"),
        ({"lower": ""}, "请填写下限"),
        ({"lower": "100", "upper": "60"}, "线性区间下限必须小于上限"),
        ({"rule_kind": "steps", "thresholds": "3-0.8"}, "档位每行写“门槛:得分比例”"),
        ({"rule_kind": "steps", "thresholds": "3:1.5"}, "档位得分比例必须在 0 到 1 之间"),
        ({"rule_kind": "bonus", "per_item": "1", "cap": "-1"}, "加分上限必须大于 0"),
        ({"source_kind": "case", "source_key": "happiness"}, "未知的诉求比率「happiness」"),
        ({"source_key": ""}, "数据来源「entry:」无效"),
        ({"code": "A"}, "指标编码重复：A"),
        ({"name": " "}, "请填写指标名称"),
        ({"weight": "0"}, "权重必须大于 0"),
    ],
)
def test_bad_node_input_is_refused_with_values_kept(
    client: Any, session: Session, editable: IndicatorSystem, change: dict[str, str], message: str
) -> None:
    login(client, "evaluator")
    before = _versions(session)
    response = client.post(f"/assessment/systems/{editable.id}", data={**LEAF_FORM, **change})
    page = response.data.decode()
    assert response.status_code == 200 and message in page
    assert _versions(session) == before
    kept = {**LEAF_FORM, **change}
    assert f'value="{kept["weight"]}"' in page and f'value="{kept["code"]}"' in page  # the form is refilled


def test_edit_a_leaf_rule_and_a_group_weight(
    client: Any, session: Session, editable: IndicatorSystem
) -> None:
    login(client, "evaluator")
    data = {"action": "edit", "code": "B", "name": "暗访检查", "weight": "50", "rule_kind": "steps",
            "thresholds": "3:0.5\n8:1", "source_kind": "entry", "source_key": "check"}  # fmt: skip
    assert client.post(f"/assessment/systems/{editable.id}", data=data).status_code == 302
    newest = systems.system_for(session, Q)
    assert newest is not None
    b = newest.tree["children"][1]
    assert (b["name"], b["weight"], b["rule"]) == (
        "暗访检查",
        50.0,
        {"kind": "steps", "thresholds": [[3.0, 0.5], [8.0, 1.0]]},
    )
    assert "分档：≥3 得 50%；≥8 得 100%" in client.get(f"/assessment/systems/{newest.id}").data.decode()
    # Moving weight between siblings (direct weights of the group): 60/50 → 30/70.
    response = client.post(
        f"/assessment/systems/{newest.id}",
        data={"action": "weights", "node": "T", "method": "direct", "w_A": "30", "w_B": "70"},
    )
    assert response.status_code == 302
    moved = systems.system_for(session, Q)
    assert moved is not None and [c["weight"] for c in moved.tree["children"]] == pytest.approx([30.0, 70.0])
    before = _versions(session)
    bad = client.post(
        f"/assessment/systems/{moved.id}",
        data={"action": "weights", "node": "T", "method": "direct", "w_A": "x", "w_B": "70"},
    )
    assert "权重「x」必须是数字" in bad.data.decode() and _versions(session) == before


def test_delete_a_node_and_refusals(client: Any, session: Session, editable: IndicatorSystem) -> None:
    login(client, "evaluator")
    client.post(f"/assessment/systems/{editable.id}", data=LEAF_FORM)
    with_c = systems.system_for(session, Q)
    assert with_c is not None
    assert (
        client.post(f"/assessment/systems/{with_c.id}", data={"action": "delete", "code": "C"}).status_code
        == 302
    )
    without = systems.system_for(session, Q)
    assert without is not None and [c["code"] for c in without.tree["children"]] == ["A", "B"]
    assert "C" not in without.sources
    before = _versions(session)
    for code, message in (("T", "不能删除指标体系的根节点"), ("ZZ", "指标「ZZ」不存在")):
        page = client.post(f"/assessment/systems/{without.id}", data={"action": "delete", "code": code})
        assert message in page.data.decode()
    assert _versions(session) == before


def test_a_leaf_given_a_child_becomes_a_group(session: Session, editable: IndicatorSystem) -> None:
    rule = {"kind": "linear", "lower": 0, "upper": 10}
    new = systems.add_node(
        session, editable, "B", code="B1", name="楼道", weight=1, rule=rule, source="entry:b1"
    )
    b = new.tree["children"][1]
    assert "rule" not in b and [c["code"] for c in b["children"]] == ["B1"]
    assert "B" not in new.sources and new.sources["B1"] == "entry:b1"
    with pytest.raises(vocabulary.AssessmentError) as raised:
        systems.delete_node(session, new, "B1")
    assert raised.value.code == "last_child"


def test_a_version_used_by_a_published_run_is_frozen(
    client: Any, session: Session, editable: IndicatorSystem
) -> None:
    score_quarter(session, Q, publish=True)
    session.commit()
    login(client, "evaluator")
    before = _versions(session)
    page = client.post(f"/assessment/systems/{editable.id}", data=LEAF_FORM).data.decode()
    assert "已冻结" in page and _versions(session) == before
    assert "添加子指标" not in client.get(f"/assessment/systems/{editable.id}").data.decode()
    response = client.post(f"/assessment/systems/{editable.id}", data={"action": "copy", "quarter": "2020Q2"})
    assert response.status_code == 302
    copy_ = systems.system_for(session, "2020Q2")
    assert copy_ is not None and copy_.quarter == "2020Q2" and copy_.tree == editable.tree


def test_json_import_stays_as_the_advanced_option(
    client: Any, session: Session, editable: IndicatorSystem
) -> None:
    login(client, "evaluator")
    import json

    tree = {**TREE, "name": "改名后的总分"}
    response = client.post(
        f"/assessment/systems/{editable.id}",
        data={"action": "json", "quarter": Q, "tree": json.dumps(tree), "sources": json.dumps(SOURCES),
              "rollup": "equal", "tie_rule": "min"},
    )  # fmt: skip
    assert response.status_code == 302
    newest = systems.system_for(session, Q)
    assert newest is not None and newest.tree["name"] == "改名后的总分"
    bad = client.post(
        f"/assessment/systems/{editable.id}",
        data={"action": "json", "quarter": Q, "tree": "{", "sources": "{}"},
    )
    assert "指标树不是有效的 JSON" in bad.data.decode() and 'name="tree"' in bad.data.decode()


# --- job status ----------------------------------------------------------------------------------------


def test_dashboard_shows_the_job_state(
    client: Any, session: Session, tiny: dict[str, Unit], monkeypatch: pytest.MonkeyPatch
) -> None:
    login(client, "evaluator")
    from core import jobs

    queued: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: queued.append((task, args)))
    page = client.post(f"/assessment/{Q}/run", follow_redirects=True).data.decode()
    assert queued == [("assessment.jobs.run_quarter", (Q,))]
    assert "已排队，等待计算" in page and "刷新状态" in page and "本季度尚未计算" in page
    client.post(f"/assessment/{Q}/publish")  # nothing computed yet: refused
    assert systems.run_for(session, Q).status == "draft"  # type: ignore[union-attr]
    monkeypatch.undo()
    page = client.post(f"/assessment/{Q}/run", follow_redirects=True).data.decode()
    assert "计算完成" in page and "各区排名" in page


def test_a_failed_job_shows_its_error(
    client: Any, session: Session, tiny: dict[str, Unit], monkeypatch: pytest.MonkeyPatch
) -> None:
    import assessment.jobs as runner

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise vocabulary.AssessmentError("bad_survey_frame", "问卷结果缺少列：index")

    monkeypatch.setattr(runner, "score_quarter", broken)
    with pytest.raises(vocabulary.AssessmentError):
        runner.run_quarter(Q)
    status = services.job_status(systems.run_for(session, Q))
    assert status is not None and status["state"] == "failed" and status["error"] == "问卷结果缺少列：index"
    login(client, "evaluator")
    page = client.get(f"/assessment/?quarter={Q}").data.decode()
    assert "计算失败" in page and "问卷结果缺少列：index" in page


# --- review labels -------------------------------------------------------------------------------------


def test_review_labels_show_question_text_and_category_name(session: Session, tiny: dict[str, Unit]) -> None:
    from assessment.inputs import review_items, survey_item_labels
    from surveys.models import Question, QuestionKind, Survey, SurveySection

    survey = Survey(quarter=Q, title="测试问卷", version=1, salt="s" * 16)
    session.add(survey)
    session.flush()
    section = SurveySection(survey_id=survey.id, title="环境卫生")
    session.add(section)
    session.flush()
    session.add(Question(survey_id=survey.id, section_id=section.id, name="Q7", label="楼道是否整洁？",
                         kind=QuestionKind.likert5, indicator_code="HJ"))  # fmt: skip
    session.flush()
    labels = survey_item_labels(session, Q)
    assert labels["Q7"] == "环境卫生 · 楼道是否整洁？" and labels["HJ"] == "满意度指标 HJ"
    category = session.scalar(select(Category).order_by(Category.id).limit(1))
    assert category is not None
    cats = review_items(session, Q)
    assert set(cats["item_label"]) == {category.name}
    # An open item picks up the better label the next time the streak is detected.
    frame = pd.DataFrame([{"unit_id": tiny["c1"].id, "kind": "survey_item", "item_code": "Q7",
                           "item_label": "Q7", "value": 40.0, "n": 30}])  # fmt: skip
    (item,) = services.detect_persistent_dissatisfaction(session, Q, {Q: frame, "2019Q4": frame})
    assert item.item_label == "Q7"
    frame["item_label"] = labels["Q7"]
    services.detect_persistent_dissatisfaction(session, Q, {Q: frame, "2019Q4": frame})
    assert item.item_label == "环境卫生 · 楼道是否整洁？"


# --- significance of the total's change ----------------------------------------------------------------


def _inputs(a: float, n: float, b: float = 5.0) -> inputs.LeafInputs:
    index = pd.Index([1], name="unit_id")
    nan = float("nan")
    return inputs.LeafInputs(
        pd.DataFrame({"A": [a], "B": [b]}, index=index),
        pd.DataFrame({"A": [n], "B": [nan]}, index=index),
        pd.DataFrame({"A": [nan], "B": [nan]}, index=index),
    )


def test_total_change_se_by_hand() -> None:
    root = rules.indicator_from_config(TREE)
    # A: 3 of 4 satisfied last quarter (75 %), 4 of 5 now (80 %); B (an entry, no sampling error) = 5.
    # Agresti–Caffo: prev p̃ = 4/6, Var = (2/3)(1/3)/6 × 10⁴ = 370.37; now p̃ = 5/7, Var = (5/7)(2/7)/7 × 10⁴
    # = 291.55 (percentage points²). Slope of the total in A: 60 points over 40 pp = 1.5.
    # SE = 1.5 × √(370.37 + 291.55) = 38.59; change 7.5 → z = 0.194, two-sided p = 0.846.
    se = significance.total_change_se(root, SOURCES, _inputs(80.0, 5), _inputs(75.0, 4))
    assert se.loc[1] == pytest.approx(38.59, abs=0.01)
    # 360/400 vs 280/400: Var = 361·41/402³ × 10⁴ = 2.2783 and 281·121/402³ × 10⁴ = 5.2338 → SE = 4.111.
    se = significance.total_change_se(root, SOURCES, _inputs(90.0, 400), _inputs(70.0, 400))
    assert se.loc[1] == pytest.approx(4.111, abs=0.001)
    # A sampled leaf carries error even when only the entry moved; entries alone carry none → 数据不足 (NaN),
    # and so does a sampled leaf that applies in one quarter only.
    only_entry = significance.total_change_se(root, SOURCES, _inputs(80.0, 5, b=9.0), _inputs(80.0, 5, b=9.0))
    assert only_entry.notna().all()
    assert (
        significance.total_change_se(
            root, {"A": "entry:a", "B": "entry:check"}, _inputs(80, 5), _inputs(75, 4)
        )
        .isna()
        .all()
    )
    assert (
        significance.total_change_se(root, SOURCES, _inputs(80.0, 5), _inputs(float("nan"), 0)).isna().all()
    )


@pytest.mark.usefixtures("own_values")
def test_total_change_significance_on_the_dashboard(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    score_quarter(session, Q, publish=True)
    c1 = tiny["c1"]
    q2 = datetime(2020, 5, 1, 9, 0)
    for n, sat in enumerate(["satisfied"] * 4 + ["dissatisfied"]):
        case = _case(session, c1, 100 + n, sat)
        case.created_at = q2
        for action in ("dispatch", "accept", "resolve"):
            session.add(CaseEvent(case_id=case.id, action=action, created_at=q2))
    inputs.add_entry(session, "2020Q2", c1, "check", 5.0)
    session.commit()
    score_quarter(session, "2020Q2")
    session.commit()
    run = systems.run_for(session, "2020Q2")
    assert run is not None
    row = session.scalar(
        select(Score).where(Score.run_id == run.id, Score.unit_id == c1.id, Score.node_code == "T")
    )
    # 80 % now vs 75 %: total 50 vs 42.5, SE 38.59 (see the hand check above) → p = 0.846, not significant.
    assert row is not None and row.change == pytest.approx(7.5)
    assert row.p_value == pytest.approx(0.846, abs=0.001) and row.significant is False
    c2 = session.scalar(
        select(Score).where(Score.run_id == run.id, Score.unit_id == tiny["c2"].id, Score.node_code == "T")
    )
    assert c2 is not None and c2.p_value is None and c2.significant is None  # no cases now: 数据不足
    login(client, "evaluator")
    page = client.get("/assessment/?quarter=2020Q2").data.decode()
    assert "不显著（BH 校正 p = 0.846）" in page and "数据不足" in page and "数据允许时" in page


# --- missing-data policy (assessment.missing) ----------------------------------------------------------

Q3 = "2020Q3"
T3 = datetime(2020, 8, 3, 1, 0)  # 09:00 Beijing on a Monday
MH_TREE = {
    "code": "T",
    "name": "总分",
    "children": [
        {"code": "MH", "name": "诉求办理", "weight": 25, "children": [
            {"code": "MH1", "name": "三率综合", "weight": 60, "rule": {"kind": "linear", "lower": 60, "upper": 100}},
            {"code": "MH2", "name": "退单率", "weight": 20,
             "rule": {"kind": "linear", "lower": 0, "upper": 20, "higher_is_better": False}},
            {"code": "MH3", "name": "重办率", "weight": 20,
             "rule": {"kind": "linear", "lower": 0, "upper": 20, "higher_is_better": False}},
        ]},
        {"code": "B", "name": "检查得分", "weight": 75, "rule": {"kind": "linear", "lower": 0, "upper": 10}},
    ],
}  # fmt: skip
MH_SOURCES = {
    "MH1": "case:composite",
    "MH2": "case:return_rate",
    "MH3": "case:reopen_rate",
    "B": "entry:check",
}


def test_no_ratings_and_no_response_never_earn_full_marks(session: Session) -> None:
    """0 % response and no ratings scored 25/25 on 诉求办理: the composite was dropped and its weight moved."""
    c1, c2 = _unit(session, "420102-S1-C1"), _unit(session, "420102-S1-C2")
    hour = timedelta(hours=1)
    for n in range(10):  # C1: dispatched, signed for late (5 h > 4 h), never resolved, never rated
        case = _case(session, c1, 300 + n, None, created_at=T3, state="accepted", solved=None)
        for action, delta in (("dispatch", timedelta(0)), ("accept", 5 * hour)):
            session.add(CaseEvent(case_id=case.id, action=action, created_at=T3 + delta))
    for n in range(10):  # C2, same street: all on time, resolved, satisfied and solved
        case = _case(session, c2, 400 + n, "satisfied", created_at=T3)
        for action, delta in (("dispatch", timedelta(0)), ("accept", hour), ("resolve", 24 * hour)):
            session.add(CaseEvent(case_id=case.id, action=action, created_at=T3 + delta))
    session.flush()
    systems.create_system(session, Q3, MH_TREE, MH_SOURCES, rollup="equal")
    for unit in (c1, c2):
        inputs.add_entry(session, Q3, unit, "check", 5.0)
    score_quarter(session, Q3)
    run = systems.run_for(session, Q3)
    assert run is not None

    def row(unit: Unit, node: str) -> Score:
        found = session.scalar(
            select(Score).where(Score.run_id == run.id, Score.unit_id == unit.id, Score.node_code == node)
        )
        assert found is not None
        return found

    # Street values (C2 alone has ratings and resolutions): resolution 100 %, satisfaction 100 %, reopen 0 %.
    # C1 composite = 30 % × 0 + 35 % × 100 + 35 % × 100 = 70 → (70 − 60)/40 of 15 points = 3.75;
    # return 0/10 → 5 points; reopen imputed 0 % → 5 points capped at 80 % = 4. 诉求办理 = 12.75 of 25.
    assert row(c1, "MH1").value == pytest.approx(70.0)
    assert row(c1, "MH1").sample_flag == missing.FLAG_IMPUTED
    assert row(c1, "MH").score == pytest.approx(12.75)
    assert row(c1, "MH3").score == pytest.approx(4.0)
    explanation = row(c1, "MH1").explanation
    assert "三率综合 = 30%×响应率 0.0（0/10）" in explanation and "无样本" in explanation
    assert row(c2, "MH").score == pytest.approx(25.0)
    assert row(c2, "MH1").sample_flag == ""


def test_small_samples_shrink_toward_the_street(session: Session, tiny: dict[str, Unit]) -> None:
    """C1 has 4 ratings (75 %), C2 2 (100 %): below the minimum of 10, pulled toward the street's 83.33 %."""
    score_quarter(session, Q)
    street = (75 * 4 + 100 * 2) / 6
    c1 = (75 * 4 + missing.PRIOR_STRENGTH["case"] * street) / (4 + 10)  # 80.952
    c2 = (100 * 2 + missing.PRIOR_STRENGTH["case"] * street) / (2 + 10)  # 86.111
    assert _score(session, tiny["c1"], "A").value == pytest.approx(c1)
    assert _score(session, tiny["c2"], "A").value == pytest.approx(c2)
    assert _score(session, tiny["c1"], "A").sample_flag == missing.FLAG_SMALL
    assert "样本不足（n = 4 < 10）" in _score(session, tiny["c1"], "A").explanation
    assert _score(session, tiny["c1"]).score == pytest.approx((c1 - 60) / 40 * 60 + 20)
    # C3 has no cases at all: not applicable, as before (nothing was expected of it).
    assert (
        _score(session, tiny["c3"], "A").value is None and _score(session, tiny["c3"], "A").sample_flag == ""
    )


def test_dashboard_lists_unscored_communities_apart(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    """社区前十名 listed ten 无数据 units (NULL ranks sort first on SQLite) and ranks printed as 1.0."""
    score_quarter(session, Q)
    session.commit()
    login(client, "evaluator")
    page = client.get(f"/assessment/?quarter={Q}").data.decode()
    top = page[page.index("社区前十名") : page.index("社区后十名")]
    assert "无数据" not in top and "1.0" not in top
    assert "<td>1</td>" in top and tiny["c2"].name in top  # the best (100 points) is first
    unscored = page[page.index("无得分的社区（不参与排名）") :]
    total = session.scalar(select(func.count()).select_from(Unit).where(Unit.level == "community"))
    assert total is not None and total > 3  # the demo tree: most communities have no data in 2020Q1
    bottom = page[page.index("社区后十名") : page.index("无得分的社区")]
    assert tiny["c2"].name not in bottom and tiny["c1"].name in top + bottom
    assert "无数据" not in bottom
    assert unscored.count("/unit/") >= 1


def test_three_rates_with_counts_on_dashboard_drilldown_and_ledger(
    client: Any, session: Session, tiny: dict[str, Unit]
) -> None:
    """Per-unit response, resolution and satisfaction were never shown or exported."""
    rates = inputs.three_rates(session, Q).loc[tiny["c1"].id]
    assert (rates["satisfaction_rate_num"], rates["satisfaction_rate_den"]) == (3, 4)
    assert (
        rates["satisfaction_rate_small"]
        and 0 < rates["satisfaction_rate_low"] < 75 < rates["satisfaction_rate_high"] < 100
    )
    score_quarter(session, Q)
    session.commit()
    login(client, "evaluator")
    dashboard = client.get(f"/assessment/?quarter={Q}").data.decode()
    assert "响应率" in dashboard and "5/6" in dashboard  # the district pools C1's 4 and C2's 2 ratings
    assert "缺失数据与小样本规则" in dashboard and "Benjamini–Hochberg" in dashboard
    street = client.get(f"/assessment/{Q}/unit/420102-S1").data.decode()
    assert "3/4" in street and "样本不足" in street
    unit = client.get(f"/assessment/{Q}/unit/420102-S1-C1").data.decode()
    assert "75.0%" in unit and "3/4" in unit and "样本不足" in unit
    book = load_workbook(io.BytesIO(client.get(f"/assessment/{Q}/export.xlsx").data))
    sheet = list(book["社区三率"].iter_rows(values_only=True))
    row = next(r for r in sheet if r[0] == "420102-S1-C1")
    header = sheet[0]
    assert row[header.index("满意率分子")] == 3 and row[header.index("满意率分母")] == 4
    assert row[header.index("满意率样本")] == "样本不足"
    scores = list(book["社区得分"].iter_rows(values_only=True))
    flags = next(r for r in scores if r[1] == "420102-S1-C1")[-1]
    assert "样本不足" in flags


def test_scoring_publication_and_indicator_changes_are_in_the_audit_trail(
    client: Any, session: Session, tiny: dict[str, Unit], editable: IndicatorSystem
) -> None:
    from core.audit import AuditEvent

    login(client, "evaluator")
    client.post(f"/assessment/{Q}/run")
    assert client.post(f"/assessment/{Q}/publish").status_code == 302
    published = session.scalars(select(AuditEvent).where(AuditEvent.action == "scoring.publish")).all()
    assert [e.details["quarter"] for e in published] == [Q]
    response = client.post(f"/assessment/systems/{editable.id}", data={"action": "copy", "quarter": "2020Q2"})
    assert response.status_code == 302
    changed = session.scalars(select(AuditEvent).where(AuditEvent.action == "indicators.change")).all()
    assert [(e.details["action"], e.details["from"]) for e in changed] == [("copy", editable.id)]
