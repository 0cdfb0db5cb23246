"""Unit tests for assessment.weights: AHP, entropy weight method, direct weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from assessment.weights import (
    SAATY_1980_RANDOM_INDEX,
    AhpResult,
    InconsistentMatrixError,
    WeightError,
    ahp,
    entropy,
    normalise_direct,
)

# --- AHP -------------------------------------------------------------------------------------------

# Source: Wikipedia, "Analytic hierarchy process – leader example" (criteria with respect to the goal).
# Order: Experience, Education, Charisma, Age. The article states the priorities
# .547, .127, .270, .056 and a consistency ratio of 0.044.
LEADER_CRITERIA: list[list[float]] = [
    [1, 4, 3, 7],
    [1 / 4, 1, 1 / 3, 3],
    [1 / 3, 3, 1, 5],
    [1 / 7, 1 / 3, 1 / 5, 1],
]


def test_ahp_reproduces_wikipedia_leader_example_criteria() -> None:
    result = ahp(LEADER_CRITERIA)
    assert result.weights == pytest.approx((0.547, 0.127, 0.270, 0.056), abs=1e-3)
    assert result.cr == pytest.approx(0.044, abs=1e-3)
    # CR = CI / RI(4) = CI / 0.90, CI = (λmax − 4)/3, so λmax = 4 + 3 · 0.90 · CR.
    assert result.ci == pytest.approx((result.lambda_max - 4) / 3)
    assert result.cr == pytest.approx(result.ci / 0.90)


def test_ahp_reproduces_wikipedia_leader_example_experience() -> None:
    # Same article: candidates Tom, Dick, Harry compared on Experience; priorities .217, .717, .066.
    result = ahp([[1, 1 / 4, 4], [4, 1, 9], [1 / 4, 1 / 9, 1]])
    assert result.weights == pytest.approx((0.217, 0.717, 0.066), abs=1e-3)
    assert result.cr < 0.10


def test_ahp_consistent_matrix_hand_worked() -> None:
    # a_ij = w_i / w_j with w = (4, 2, 1): a perfectly consistent matrix, so the eigenvector is w/7,
    # λmax = n = 3, CI = 0 and CR = 0.
    result = ahp([[1, 2, 4], [1 / 2, 1, 2], [1 / 4, 1 / 2, 1]])
    assert result.weights == pytest.approx((4 / 7, 2 / 7, 1 / 7), abs=1e-9)
    assert result.lambda_max == pytest.approx(3.0)
    assert result.ci == pytest.approx(0.0, abs=1e-9)
    assert result.cr == pytest.approx(0.0, abs=1e-9)


def test_ahp_orders_one_and_two_have_zero_cr() -> None:
    assert ahp([[1]]) == AhpResult(weights=(1.0,), lambda_max=1.0, ci=0.0, cr=0.0)
    # [[1, 3], [1/3, 1]]: w = (3/4, 1/4); RI(2) = 0 so CR is defined as 0.
    two = ahp([[1, 3], [1 / 3, 1]])
    assert two.weights == pytest.approx((0.75, 0.25))
    assert two.cr == 0.0


def test_saaty_1980_random_index_table() -> None:
    assert [SAATY_1980_RANDOM_INDEX[n] for n in range(3, 11)] == [
        0.58,
        0.90,
        1.12,
        1.24,
        1.32,
        1.41,
        1.45,
        1.49,
    ]


def test_ahp_refuses_inconsistent_matrix_and_carries_result() -> None:
    # A beats B 9:1, B beats C 9:1, yet C beats A 9:1 — a cycle, wildly inconsistent.
    cyclic = [[1, 9, 1 / 9], [1 / 9, 1, 9], [9, 1 / 9, 1]]
    with pytest.raises(InconsistentMatrixError) as info:
        ahp(cyclic)
    error = info.value
    assert error.code == "inconsistent_matrix"
    assert isinstance(error, ValueError)
    assert error.result.cr >= 0.10
    assert f"{error.result.cr:.3f}" in str(error)
    assert "一致性" in str(error)
    # The symmetric cycle gives equal weights, so the UI can still show them.
    assert error.result.weights == pytest.approx((1 / 3, 1 / 3, 1 / 3), abs=1e-9)


@pytest.mark.parametrize(
    ("matrix", "code"),
    [
        ([[1, 2, 3], [0.5, 1, 2]], "not_square"),
        ([], "not_square"),
        ([[1, -2], [-0.5, 1]], "not_positive"),
        ([[1, 0], [0, 1]], "not_positive"),
        ([[2, 2], [0.5, 2]], "bad_diagonal"),
        ([[1, 3], [0.5, 1]], "not_reciprocal"),
        ([[1, "x"], [1, 1]], "not_numeric"),
        (np.ones((11, 11)), "too_large"),
    ],
)
def test_ahp_refuses_malformed_matrices(matrix: object, code: str) -> None:
    with pytest.raises(WeightError) as info:
        ahp(matrix)  # type: ignore[arg-type]
    assert info.value.code == code


def test_ahp_accepts_three_decimal_reciprocals() -> None:
    # Evaluators type 0.333 for 1/3; the consistent weights are unchanged to 1e-3.
    result = ahp([[1, 3], [0.333, 1]])
    assert result.weights == pytest.approx((0.75, 0.25), abs=1e-3)


# --- entropy ---------------------------------------------------------------------------------------


def test_entropy_hand_worked_example() -> None:
    # Three units; A benefit, B cost, C benefit, D constant.
    # A = (10, 20, 30): min–max → (0, .5, 1); p = (0, 1/3, 2/3).
    # B = (5, 3, 1), cost: (max − x)/(max − min) = (0, .5, 1); same p as A.
    # e_A = e_B = −(1/ln 3)·(1/3·ln 1/3 + 2/3·ln 2/3) = (0.366204 + 0.270310)/1.098612 = 0.579380;
    #   d = 0.420620.
    # C = (1, 1, 4): → (0, 0, 1); p = (0, 0, 1); e = 0 (0·ln 0 = 0, 1·ln 1 = 0); d = 1.
    # D constant → d = 0.
    # Σd = 2·0.420620 + 1 = 1.841240; w_A = w_B = 0.420620/1.841240 = 0.228444, w_C = 0.543112, w_D = 0.
    frame = pd.DataFrame({"A": [10, 20, 30], "B": [5, 3, 1], "C": [1, 1, 4], "D": [7, 7, 7]})
    weights = entropy(frame, {"A": True, "B": False, "C": True, "D": True})
    assert list(weights.index) == ["A", "B", "C", "D"]
    assert weights.to_numpy() == pytest.approx([0.228444, 0.228444, 0.543112, 0.0], abs=1e-6)


def test_entropy_benefit_list_and_default_direction() -> None:
    frame = pd.DataFrame({"A": [10, 20, 30], "B": [5, 3, 1]})
    # Listing only A as benefit makes B a cost indicator: B mirrors A, so weights are equal.
    assert entropy(frame, ["A"]).to_numpy() == pytest.approx([0.5, 0.5])
    # Treated as benefit, B = (5, 3, 1) → (1, .5, 0): still the same spread, so still equal.
    assert entropy(frame).to_numpy() == pytest.approx([0.5, 0.5])


def test_entropy_properties_on_random_data() -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(50, 6)), columns=[f"x{i}" for i in range(6)])
    frame["flat"] = 3.0
    weights = entropy(frame)
    assert weights.sum() == pytest.approx(1.0)
    assert (weights >= 0).all()
    assert weights["flat"] == 0.0
    # Direction does not change a column's spread under min–max, only its orientation.
    flipped = entropy(-frame.drop(columns="flat"), benefit=[])
    assert flipped.to_numpy() == pytest.approx(weights.drop("flat").to_numpy() / weights.drop("flat").sum())


def test_entropy_concentrated_column_weighs_more() -> None:
    # One unit stands out on "rare" → low entropy → more weight than an evenly spread column.
    frame = pd.DataFrame({"even": [1, 2, 3, 4], "rare": [0, 0, 0, 9]})
    weights = entropy(frame)
    assert weights["rare"] > weights["even"]


@pytest.mark.parametrize(
    ("frame", "benefit", "code"),
    [
        (pd.DataFrame({"A": [1, 1], "B": [2, 2]}), None, "all_constant"),
        (pd.DataFrame({"A": [1.0]}), None, "too_few_rows"),
        (pd.DataFrame(index=[0, 1]), None, "no_indicators"),
        (pd.DataFrame({"A": [1.0, math.nan, 2.0]}), None, "missing_values"),
        (pd.DataFrame({"A": ["a", "b"]}), None, "not_numeric"),
        (pd.DataFrame({"A": [1, 2]}), {"A": True, "Z": False}, "unknown_indicator"),
        (pd.DataFrame({"A": [1, 2], "B": [2, 1]}), {"A": True}, "direction_missing"),
        (pd.DataFrame({"A": [1, 2]}), ["Z"], "unknown_indicator"),
    ],
)
def test_entropy_refuses_bad_input(frame: pd.DataFrame, benefit: object, code: str) -> None:
    with pytest.raises(WeightError) as info:
        entropy(frame, benefit)  # type: ignore[arg-type]
    assert info.value.code == code


# --- direct ----------------------------------------------------------------------------------------


def test_normalise_direct() -> None:
    # Published composite practice 10/50/40 (response/resolution/satisfaction) → 0.1/0.5/0.4.
    assert normalise_direct({"response": 10, "resolution": 50, "satisfaction": 40}) == pytest.approx(
        {"response": 0.1, "resolution": 0.5, "satisfaction": 0.4}
    )
    assert normalise_direct({"a": 0, "b": 2}) == {"a": 0.0, "b": 1.0}


@pytest.mark.parametrize(
    ("weights", "code"),
    [
        ({}, "no_weights"),
        ({"a": 0, "b": 0}, "all_zero"),
        ({"a": -1, "b": 2}, "negative_weight"),
        ({"a": math.inf}, "negative_weight"),
        ({"a": "x"}, "not_numeric"),
        ({"a": True}, "not_numeric"),
    ],
)
def test_normalise_direct_refuses(weights: dict[str, object], code: str) -> None:
    with pytest.raises(WeightError) as info:
        normalise_direct(weights)  # type: ignore[arg-type]
    assert info.value.code == code
