"""Unit tests for assessment.rules: rules, tree scoring, vectorised scoring, ranking and roll-up.

All expected numbers are hand-worked; the arithmetic is in the comments.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from assessment.rankings import TIE_RULES, rank, rollup
from assessment.rules import (
    Bonus,
    Deduction,
    Indicator,
    Linear,
    NodeScore,
    Rule,
    ScoringError,
    Steps,
    Veto,
    indicator_from_config,
    rule_from_config,
    score_tree,
    score_units,
)

# --- rules -----------------------------------------------------------------------------------------


def test_linear_between_band() -> None:
    # 满意率 0.875 in 0.8–0.95: (0.875 − 0.8)/(0.95 − 0.8) = 0.075/0.15 = 0.5 → 0.5 × 10 = 5.
    outcome = Linear(0.8, 0.95).score(0.875, 10)
    assert outcome.score == pytest.approx(5.0)
    assert not outcome.vetoed
    assert "在 0.8–0.95 之间线性得分" in outcome.explanation
    assert "50.0%" in outcome.explanation
    assert "5.00" in outcome.explanation


@pytest.mark.parametrize(("value", "expected"), [(0.7, 0.0), (0.8, 0.0), (0.95, 10.0), (1.0, 10.0)])
def test_linear_edges(value: float, expected: float) -> None:
    assert Linear(0.8, 0.95).score(value, 10).score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [(0.01, 30.0), (0.05, 30.0), (0.1, 20.0), (0.2, 0.0), (0.3, 0.0)]
)
def test_linear_lower_is_better(value: float, expected: float) -> None:
    # 超时率 in 0.05–0.2, lower better: 0.1 → (0.2 − 0.1)/(0.2 − 0.05) = 0.1/0.15 = 2/3 → 2/3 × 30 = 20.
    assert Linear(0.05, 0.2, higher_is_better=False).score(value, 30).score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "expected"), [(0.79, 0.0), (0.8, 6.0), (0.85, 6.0), (0.9, 10.0), (0.99, 10.0)]
)
def test_steps_pick_highest_threshold_reached(value: float, expected: float) -> None:
    # ≥ 0.9 → 100 %, ≥ 0.8 → 60 %, else 0; out of 10 points. Given unsorted on purpose.
    rule = Steps(((0.9, 1.0), (0.8, 0.6)))
    assert rule.score(value, 10).score == pytest.approx(expected)


def test_steps_explanation() -> None:
    assert "达到 ≥ 0.8 档" in Steps(((0.8, 0.6),)).score(0.85, 10).explanation
    assert "未达到最低档" in Steps(((0.8, 0.6),)).score(0.5, 10).explanation


@pytest.mark.parametrize(("count", "expected"), [(0, 10.0), (3, 4.0), (5, 0.0), (7, 0.0)])
def test_deduction_down_to_zero(count: float, expected: float) -> None:
    # 10 points, 2 per failing: 3 → 10 − 6 = 4; 5 → 0; 7 → 10 − 14 = −4, floored at 0 (扣完为止).
    outcome = Deduction(2).score(count, 10)
    assert outcome.score == pytest.approx(expected)
    assert "扣完为止" in outcome.explanation


@pytest.mark.parametrize(("count", "expected"), [(0, 0.0), (2, 2.0), (3, 3.0), (5, 3.0)])
def test_bonus_capped(count: float, expected: float) -> None:
    # 1 point per merit, capped at 3: 5 merits → min(3, 5) = 3.
    assert Bonus(1, 3).score(count).score == pytest.approx(expected)


def test_negative_counts_refused() -> None:
    with pytest.raises(ScoringError) as info:
        Deduction(2).score(-1, 10)
    assert info.value.code == "negative_count"
    with pytest.raises(ScoringError):
        Bonus(1, 3).score(-1)


def test_veto_below_and_above() -> None:
    below = Veto(0.6)
    assert below.score(0.5, 10) == below.score(0.5, 10)
    crossed = below.score(0.5, 10)
    assert crossed.vetoed and crossed.score == 0.0 and "一票否决" in crossed.explanation
    # The line itself does not cross (strict inequality).
    at_line = below.score(0.6, 10)
    assert not at_line.vetoed and at_line.score == 10.0
    above = Veto(0, below=False)
    assert above.score(1, 10).vetoed
    assert not above.score(0, 10).vetoed


@pytest.mark.parametrize(
    "rule", [Linear(0, 1), Steps(((0.5, 1.0),)), Deduction(1), Bonus(1, 2), Veto(0.5)], ids=repr
)
@pytest.mark.parametrize("value", [None, math.nan])
def test_missing_value_is_not_applicable(rule: Rule, value: float | None) -> None:
    outcome = rule.score(value, 10)
    assert outcome.score is None
    assert not outcome.vetoed
    assert "不适用" in outcome.explanation


# --- rule configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        Linear(0.8, 0.95),
        Linear(0.05, 0.2, higher_is_better=False),
        Steps(((0.9, 1.0), (0.8, 0.6))),
        Deduction(2),
        Bonus(1, 3),
        Veto(0, below=False),
    ],
    ids=repr,
)
def test_rule_config_round_trip(rule: Rule) -> None:
    config = rule.to_config()
    assert rule_from_config(config) == rule
    assert rule_from_config(config).to_config() == config


def test_rule_from_config_examples() -> None:
    assert rule_from_config({"kind": "linear", "lower": 0.8, "upper": 0.95}) == Linear(0.8, 0.95)
    assert rule_from_config({"kind": "steps", "thresholds": [[0.8, 0.6], [0.9, 1]]}) == Steps(
        ((0.8, 0.6), (0.9, 1.0))
    )
    assert rule_from_config({"kind": "veto", "threshold": 1}) == Veto(1.0, below=True)


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ("linear", "bad_config"),
        ({"lower": 0, "upper": 1}, "unknown_kind"),
        ({"kind": "quadratic"}, "unknown_kind"),
        ({"kind": "linear", "lower": 0.8}, "missing_key"),
        ({"kind": "linear", "lower": 0.8, "upper": 0.9, "slope": 2}, "unknown_key"),
        ({"kind": "linear", "lower": 0.9, "upper": 0.8}, "bad_band"),
        ({"kind": "linear", "lower": 0.9, "upper": 0.9}, "bad_band"),
        ({"kind": "linear", "lower": "0.8", "upper": 0.9}, "not_numeric"),
        ({"kind": "linear", "lower": True, "upper": 2}, "not_numeric"),
        ({"kind": "linear", "lower": math.nan, "upper": 2}, "not_finite"),
        ({"kind": "linear", "lower": 0, "upper": 1, "higher_is_better": "yes"}, "not_boolean"),
        ({"kind": "steps", "thresholds": []}, "bad_steps"),
        ({"kind": "steps", "thresholds": [[0.8]]}, "bad_steps"),
        ({"kind": "steps", "thresholds": "0.8"}, "bad_steps"),
        ({"kind": "steps", "thresholds": [[0.8, 1.5]]}, "bad_share"),
        ({"kind": "steps", "thresholds": [[0.8, 0.5], [0.8, 0.6]]}, "duplicate_threshold"),
        ({"kind": "deduction", "per_item": 0}, "bad_per_item"),
        ({"kind": "bonus", "per_item": 1, "cap": 0}, "bad_cap"),
        ({"kind": "bonus", "per_item": -1, "cap": 3}, "bad_per_item"),
        ({"kind": "veto", "threshold": 1, "below": 0}, "not_boolean"),
    ],
)
def test_rule_from_config_refuses(config: Any, code: str) -> None:
    with pytest.raises(ScoringError) as info:
        rule_from_config(config)
    assert info.value.code == code
    assert isinstance(info.value, ValueError)
    # Messages are for people: Chinese text, not a Python repr.
    assert any("\u4e00" <= ch <= "\u9fff" for ch in str(info.value))


# --- the tree --------------------------------------------------------------------------------------


def sample_tree() -> Indicator:
    """Two first-level indicators (30/70) with every rule kind and a unit-level veto.

    Nominal shares: A = 30/(30+70) = .3, B = .7; A1 = .3 · 2/3 = .2 (20 pts), A2 = .3 · 1/3 = .1
    (10 pts); B1 = B2 = .7 · 1/2 = .35 (35 pts). Gates and bonuses take no weight.
    """
    return Indicator(
        "root",
        "考评总分",
        children=[
            Indicator(
                "A",
                "党建引领",
                30,
                children=[
                    Indicator("A1", "满意率", 2, Linear(0.8, 0.95)),
                    Indicator("A2", "违纪扣分", 1, Deduction(2)),
                    Indicator("Av", "重大违纪", 0, Veto(0, below=False)),
                ],
            ),
            Indicator(
                "B",
                "公共服务",
                70,
                children=[
                    Indicator("B1", "响应率", 1, Steps(((0.9, 1.0), (0.8, 0.6)))),
                    Indicator("B2", "超时率", 1, Linear(0.05, 0.2, higher_is_better=False)),
                    Indicator("B3", "创新加分", 0, Bonus(1, 3)),
                ],
            ),
            Indicator("U", "重大安全事故", 0, Veto(1, below=False), veto_scope="unit"),
        ],
    )


BASE_VALUES: dict[str, float | None] = {
    "A1": 0.875,
    "A2": 3,
    "Av": 0,
    "B1": 0.85,
    "B2": 0.1,
    "B3": 2,
    "U": 0,
}


def by_code(result: NodeScore) -> dict[str, NodeScore]:
    """Index a result tree by indicator code."""
    return {node.code: node for node in result.walk()}


def test_score_tree_hand_worked() -> None:
    # A1: 0.875 → 50 % of 20 = 10.      A2: 3 failings × 2 = 6 off 10 → 4.       A = 14.
    # B1: 0.85 ≥ 0.8 → 60 % of 35 = 21. B2: (0.2 − 0.1)/0.15 = 2/3 of 35 = 23.333. B3: 2 × 1 = 2 bonus.
    # B = 21 + 23.333 + 2 = 46.333.  Total = 14 + 46.333 = 60.333.
    result = score_tree(sample_tree(), BASE_VALUES)
    nodes = by_code(result)
    assert nodes["A1"].score == pytest.approx(10.0)
    assert nodes["A2"].score == pytest.approx(4.0)
    assert nodes["A"].score == pytest.approx(14.0)
    assert nodes["B1"].score == pytest.approx(21.0)
    assert nodes["B2"].score == pytest.approx(70 / 3)
    assert nodes["B3"].score == pytest.approx(2.0)
    assert nodes["B"].score == pytest.approx(21 + 70 / 3 + 2)
    assert result.score == pytest.approx(14 + 21 + 70 / 3 + 2)
    assert result.max_score == 100.0
    assert nodes["A1"].share == pytest.approx(0.2)
    assert nodes["A1"].max_score == pytest.approx(20.0)
    assert nodes["B3"].share == 0.0
    assert not result.vetoed
    assert nodes["Av"].score is None and nodes["Av"].applicable
    assert "满意率" in nodes["A1"].explanation and "50.0%" in nodes["A1"].explanation
    assert "含加分 2.00 分" in nodes["B"].explanation


def test_not_applicable_leaf_renormalised_over_siblings() -> None:
    # A1 missing: A2 takes A's whole share .3 (30 pts). 3 failings: (10 − 6)/10 = 40 % → 0.4 × 30 = 12.
    result = score_tree(sample_tree(), {**BASE_VALUES, "A1": None})
    nodes = by_code(result)
    assert not nodes["A1"].applicable and nodes["A1"].score is None and nodes["A1"].share == 0.0
    assert nodes["A2"].share == pytest.approx(0.3)
    assert nodes["A2"].score == pytest.approx(12.0)
    assert nodes["A"].score == pytest.approx(12.0)
    assert "不适用" in nodes["A"].explanation
    assert result.score == pytest.approx(12 + 21 + 70 / 3 + 2)


def test_not_applicable_group_renormalised_at_root() -> None:
    # B1 and B2 missing → B not applicable (its bonus goes with it); A gets the whole 100.
    # A1 = .5 × (2/3 × 100) = 33.333; A2 = .4 × (1/3 × 100) = 13.333; total 46.667.
    result = score_tree(sample_tree(), {**BASE_VALUES, "B1": None, "B2": None})
    nodes = by_code(result)
    assert not nodes["B"].applicable and nodes["B"].score is None
    assert nodes["A"].share == pytest.approx(1.0)
    assert nodes["A1"].score == pytest.approx(100 / 3)
    assert nodes["A2"].score == pytest.approx(40 / 3)
    assert result.score == pytest.approx(140 / 3)


def test_nothing_applicable() -> None:
    result = score_tree(sample_tree(), dict.fromkeys(BASE_VALUES))
    assert not result.applicable
    assert result.score is None


def test_deductions_to_zero_in_tree() -> None:
    # 7 failings × 2 = 14 > 10 → A2 = 0 (not −4); A = A1 = 10.
    nodes = by_code(score_tree(sample_tree(), {**BASE_VALUES, "A2": 7}))
    assert nodes["A2"].score == 0.0
    assert nodes["A"].score == pytest.approx(10.0)


def test_bonus_capped_in_tree() -> None:
    # 5 merits × 1 = 5, capped at 3 → B = 21 + 23.333 + 3.
    nodes = by_code(score_tree(sample_tree(), {**BASE_VALUES, "B3": 5}))
    assert nodes["B3"].score == pytest.approx(3.0)
    assert nodes["B"].score == pytest.approx(21 + 70 / 3 + 3)


def test_bonus_can_lift_total_above_full_marks() -> None:
    # Everything perfect: 100 points, plus a capped bonus of 3 → 103.
    perfect = {"A1": 1.0, "A2": 0, "Av": 0, "B1": 0.95, "B2": 0.0, "B3": 9, "U": 0}
    assert score_tree(sample_tree(), perfect).score == pytest.approx(103.0)


def test_node_veto_zeroes_the_subtree_only() -> None:
    # One major violation > 0 → A and all below it score 0; B is untouched: total = B = 46.333.
    result = score_tree(sample_tree(), {**BASE_VALUES, "Av": 1})
    nodes = by_code(result)
    assert nodes["A"].vetoed and nodes["A"].score == 0.0
    assert nodes["A1"].score == 0.0 and nodes["A1"].vetoed
    assert nodes["A2"].score == 0.0
    assert nodes["Av"].vetoed
    assert "重大违纪" in nodes["A"].explanation and "一票否决" in nodes["A"].explanation
    assert not nodes["B"].vetoed
    assert result.score == pytest.approx(21 + 70 / 3 + 2)
    assert not result.vetoed


def test_unit_veto_zeroes_the_total() -> None:
    # 2 major safety accidents > 1 → the whole unit scores 0, bonus included.
    result = score_tree(sample_tree(), {**BASE_VALUES, "U": 2})
    assert result.vetoed
    assert result.score == 0.0
    assert all(node.score in (0.0, None) for node in result.walk())
    assert "重大安全事故" in result.explanation
    # At the line (1, not > 1) nothing happens.
    assert score_tree(sample_tree(), {**BASE_VALUES, "U": 1}).score == pytest.approx(14 + 21 + 70 / 3 + 2)


def leaf_veto_tree() -> Indicator:
    """A weighted pass/fail veto leaf beside a linear leaf, equal weights (50 points each)."""
    return Indicator(
        "root",
        "总分",
        children=[
            Indicator("L1", "满意率", 1, Linear(0.5, 1.0)),
            Indicator("L2", "达标率", 1, Veto(0.6), veto_scope="leaf"),
        ],
    )


def test_leaf_veto_zeroes_the_leaf_only() -> None:
    # L1: (0.75 − 0.5)/0.5 = 50 % of 50 = 25. L2 at 0.5 < 0.6 → vetoed, 0 of 50. Total 25.
    result = score_tree(leaf_veto_tree(), {"L1": 0.75, "L2": 0.5})
    nodes = by_code(result)
    assert nodes["L2"].vetoed and nodes["L2"].score == 0.0
    assert not result.vetoed
    assert result.score == pytest.approx(25.0)
    # Passing (0.7 ≥ 0.6) earns the full 50: total 75.
    assert score_tree(leaf_veto_tree(), {"L1": 0.75, "L2": 0.7}).score == pytest.approx(75.0)


def test_full_marks_scale_keeps_per_item_points_absolute() -> None:
    # Same values on a 10-point scale. Linear and step shares scale down: A1 = .5 × 2 = 1,
    # B1 = .6 × 3.5 = 2.1, B2 = 2/3 × 3.5 = 2.333. Per-item points do not: A2 is now worth 1 point and
    # 3 × 2 = 6 ≥ 1 → 0; the bonus still adds 2. Total = 1 + 0 + 2.1 + 2.333 + 2 = 7.4333.
    nodes = by_code(score_tree(sample_tree(), BASE_VALUES, full_marks=10))
    assert nodes["A2"].score == 0.0
    assert nodes["root"].score == pytest.approx(1 + 2.1 + 7 / 3 + 2)


@pytest.mark.parametrize(
    ("tree", "code"),
    [
        (Indicator("r", "根", rule=Linear(0, 1)), "root_is_leaf"),
        (
            Indicator("r", "根", children=[Indicator("a", "甲"), Indicator("b", "乙", 1, Linear(0, 1))]),
            "missing_rule",
        ),
        (
            Indicator(
                "r",
                "根",
                children=[Indicator("a", "甲", 1, Linear(0, 1)), Indicator("a", "乙", 1, Linear(0, 1))],
            ),
            "duplicate_code",
        ),
        (Indicator("r", "根", children=[Indicator("total", "甲", 1, Linear(0, 1))]), "reserved_code"),
        (Indicator("r", "根", children=[Indicator("a", "甲", 0, Linear(0, 1))]), "bad_weight"),
        (
            Indicator(
                "r",
                "根",
                children=[Indicator("a", "甲", -1, Bonus(1, 2)), Indicator("b", "乙", 1, Linear(0, 1))],
            ),
            "bad_weight",
        ),
        (Indicator("r", "根", children=[Indicator("a", "甲", 1, Bonus(1, 2))]), "no_scored_children"),
        (
            Indicator(
                "r",
                "根",
                children=[Indicator("a", "甲", 1, Linear(0, 1), [Indicator("b", "乙", 1, Linear(0, 1))])],
            ),
            "rule_on_group",
        ),
        (
            Indicator("r", "根", children=[Indicator("a", "甲", 1, Linear(0, 1), veto_scope="unit")]),
            "veto_scope_without_veto",
        ),
        (
            Indicator("r", "根", children=[Indicator("a", "甲", 1, Veto(1), veto_scope="all")]),  # type: ignore[arg-type]
            "bad_veto_scope",
        ),
    ],
)
def test_bad_trees_refused(tree: Indicator, code: str) -> None:
    with pytest.raises(ScoringError) as info:
        score_tree(tree, {})
    assert info.value.code == code


def test_values_must_name_every_leaf_and_be_numbers() -> None:
    with pytest.raises(ScoringError) as info:
        score_tree(sample_tree(), {k: v for k, v in BASE_VALUES.items() if k != "B2"})
    assert info.value.code == "missing_value"
    with pytest.raises(ScoringError) as info:
        score_tree(sample_tree(), {**BASE_VALUES, "B2": "0.1"})  # type: ignore[dict-item]
    assert info.value.code == "not_numeric"
    with pytest.raises(ScoringError) as info:
        score_tree(sample_tree(), BASE_VALUES, full_marks=0)
    assert info.value.code == "bad_full_marks"


def test_indicator_config_round_trip() -> None:
    tree = sample_tree()
    config = tree.to_config()
    rebuilt = indicator_from_config(config)
    assert rebuilt == tree
    assert rebuilt.to_config() == config


def test_indicator_config_refused() -> None:
    with pytest.raises(ScoringError) as info:
        indicator_from_config(
            {"code": "r", "name": "根", "children": [{"code": "a", "name": "甲", "size": 3}]}
        )
    assert info.value.code == "unknown_key"
    with pytest.raises(ScoringError) as info:
        indicator_from_config({"code": "r", "name": "根", "children": [{"code": "a", "name": "甲"}]})
    assert info.value.code == "missing_rule"


# --- many units ------------------------------------------------------------------------------------


def test_score_units_hand_worked() -> None:
    frame = pd.DataFrame(
        [BASE_VALUES, {**BASE_VALUES, "A1": None}, {**BASE_VALUES, "Av": 1}, {**BASE_VALUES, "U": 2}],
        index=pd.Index(["c1", "c2", "c3", "c4"], name="unit"),
    )
    result = score_units(sample_tree(), frame)
    assert list(result.index) == ["c1", "c2", "c3", "c4"]
    assert result["total"].to_numpy() == pytest.approx(
        [14 + 21 + 70 / 3 + 2, 12 + 21 + 70 / 3 + 2, 21 + 70 / 3 + 2, 0.0]
    )
    assert result["vetoed"].tolist() == [False, False, True, True]
    assert math.isnan(result.loc["c2", "A1"])
    assert result.loc["c3", "A"] == 0.0
    assert set(result.columns) == {"total", "vetoed", "A", "A1", "A2", "Av", "B", "B1", "B2", "B3", "U"}


def test_score_units_refuses_missing_columns_and_text() -> None:
    frame = pd.DataFrame([BASE_VALUES]).drop(columns="B2")
    with pytest.raises(ScoringError) as info:
        score_units(sample_tree(), frame)
    assert info.value.code == "missing_column"
    with pytest.raises(ScoringError) as info:
        score_units(sample_tree(), pd.DataFrame([{**BASE_VALUES, "B2": "多"}]))
    assert info.value.code == "not_numeric"


def big_tree(groups: int = 5, per_group: int = 6) -> Indicator:
    """A tree of ``groups`` × ``per_group`` leaves cycling through every rule kind, plus a unit veto."""
    makers: list[tuple[Rule, str]] = [
        (Linear(0.6, 0.95), "node"),
        (Steps(((0.9, 1.0), (0.8, 0.7), (0.6, 0.3))), "node"),
        (Deduction(1.5), "node"),
        (Linear(0.05, 0.3, higher_is_better=False), "node"),
        (Bonus(0.5, 2), "node"),
        (Veto(0.2), "node"),
        (Veto(0.15), "leaf"),
    ]
    children = []
    k = 0
    for g in range(groups):
        leaves = []
        for i in range(per_group):
            rule, scope = makers[k % len(makers)]
            k += 1
            leaves.append(Indicator(f"g{g}l{i}", f"指标{g}-{i}", 1 + (i % 3), rule, veto_scope=scope))  # type: ignore[arg-type]
        children.append(Indicator(f"g{g}", f"一级{g}", 10 + g, children=leaves))
    children.append(Indicator("unit_veto", "整体否决", 0, Veto(0.05), veto_scope="unit"))
    return Indicator("root", "总分", children=children)


def random_values(tree: Indicator, units: int, seed: int) -> pd.DataFrame:
    """Random leaf values: rates in 0..1 or counts 0..8, with ~15 % not applicable."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for node in tree.walk():
        if node.children:
            continue
        if isinstance(node.rule, Deduction | Bonus):
            column = rng.integers(0, 9, size=units).astype(float)
        else:
            column = rng.uniform(0.0, 1.0, size=units)
        column[rng.random(units) < 0.15] = np.nan
        columns[node.code] = column
    return pd.DataFrame(columns, index=pd.Index([f"u{i:05d}" for i in range(units)], name="unit"))


def test_score_units_agrees_with_score_tree_unit_by_unit() -> None:
    tree = big_tree()
    frame = random_values(tree, 300, seed=42)
    # Every 10th unit has no data for any leaf of group g1, so the whole group drops out.
    frame.loc[frame.index[::10], [f"g1l{i}" for i in range(6)]] = np.nan
    result = score_units(tree, frame)
    assert result["g1"].isna().sum() >= 30
    triggered = 0
    for unit, row in frame.iterrows():
        values = {code: (None if np.isnan(v) else float(v)) for code, v in row.items()}
        expected = score_tree(tree, values)
        triggered += any(node.vetoed for node in expected.walk())
        for node in expected.walk():
            column = "total" if node.code == "root" else node.code
            got = result.loc[unit, column]
            if node.score is None:
                assert math.isnan(got), (unit, node.code)
            else:
                assert got == pytest.approx(node.score, abs=1e-9), (unit, node.code)
    # The random data must actually exercise vetoes, N/A groups and bonuses for this test to mean much.
    assert triggered > 10
    assert result["vetoed"].sum() > 10
    assert result["total"].isna().sum() + (result["total"] == 0).sum() < len(result)


# --- ranking and roll-up ---------------------------------------------------------------------------


def test_rank_competition_by_default() -> None:
    scores = pd.Series([80.0, 90.0, 80.0, 70.0, math.nan], index=["c", "a", "d", "e", "f"])
    assert rank(scores).tolist() == [2, 1, 2, 4, pd.NA]
    assert rank(scores, "dense").tolist() == [2, 1, 2, 3, pd.NA]
    assert rank(scores, "first").tolist() == [2, 1, 3, 4, pd.NA]
    assert "1, 2, 2, 4" in TIE_RULES["min"]


def test_rank_refuses_unknown_tie_rule() -> None:
    with pytest.raises(ScoringError) as info:
        rank(pd.Series([1.0]), "average")
    assert info.value.code == "bad_tie_rule"


def test_rollup_equal_and_population_weighted() -> None:
    scores = pd.Series({"c1": 80.0, "c2": 60.0, "c3": math.nan, "c4": 90.0, "c5": math.nan})
    parent = {"c1": "s1", "c2": "s1", "c3": "s2", "c4": "s2", "c5": "s3"}
    # Equal: s1 = (80 + 60)/2 = 70; s2 = 90 (c3 has no score); s3 has no scored unit → NaN.
    equal = rollup(scores, parent)
    assert equal["s1"] == pytest.approx(70.0)
    assert equal["s2"] == pytest.approx(90.0)
    assert math.isnan(equal["s3"])
    # Population: s1 = (80 · 1000 + 60 · 3000)/4000 = 260000/4000 = 65.
    weighted = rollup(scores, parent, {"c1": 1000, "c2": 3000, "c3": 500, "c4": 200, "c5": 10})
    assert weighted["s1"] == pytest.approx(65.0)
    assert weighted["s2"] == pytest.approx(90.0)
    assert list(weighted.index) == ["s1", "s2", "s3"]


@pytest.mark.parametrize(
    ("parent", "weights", "code"),
    [
        ({"c1": "s1"}, None, "unknown_parent"),
        ({"c1": "s1", "c2": "s1"}, {"c1": 1}, "missing_weight"),
        ({"c1": "s1", "c2": "s1"}, {"c1": 1, "c2": -5}, "negative_weight"),
    ],
)
def test_rollup_refuses(parent: dict[str, str], weights: dict[str, float] | None, code: str) -> None:
    with pytest.raises(ScoringError) as info:
        rollup(pd.Series({"c1": 1.0, "c2": 2.0}), parent, weights)
    assert info.value.code == code
