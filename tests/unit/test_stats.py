"""Unit tests for surveys.stats: published worked examples where they exist, hand-worked numbers otherwise."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from surveys import stats as S
from surveys.stats import StatsError


def raises_code(code: str) -> pytest.RaisesExc[StatsError]:
    """pytest.raises for a StatsError with the given machine code."""
    return pytest.raises(StatsError, check=lambda e: e.code == code)


# Student (1908) sleep data as printed in R's datasets::sleep (Cushny & Peebles): extra hours of sleep.
SLEEP_DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


# ------------------------------------------------------------------------------------------------ Wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe RG (1998) Stat Med 17:857–872, Table II, method 3 (Wilson score, no continuity correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # Hand-worked: with 0 successes the upper bound is z²/(n + z²) = 3.8415/13.8415.
        (0, 10, 0.0, 0.2775),
    ],
)
def test_wilson_interval_matches_newcombe_1998(successes: int, n: int, low: float, high: float) -> None:
    got_low, got_high = S.wilson_interval(successes, n)
    assert round(got_low, 4) == low
    assert round(got_high, 4) == high


def test_wilson_interval_edges_are_exact_and_symmetric() -> None:
    assert S.wilson_interval(10, 10)[1] == 1.0
    low, high = S.wilson_interval(3, 10)
    mirror_low, mirror_high = S.wilson_interval(7, 10)
    assert low == pytest.approx(1 - mirror_high)
    assert high == pytest.approx(1 - mirror_low)


def test_wilson_interval_widens_with_confidence() -> None:
    low90, high90 = S.wilson_interval(81, 263, 0.90)
    low99, high99 = S.wilson_interval(81, 263, 0.99)
    assert low99 < low90 < high90 < high99


def test_wilson_interval_array_matches_scalar_and_marks_empty() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(0, 400, size=5000)
    successes = rng.integers(0, n + 1)
    low, high = S.wilson_interval_array(successes, n, 0.95)
    assert low.shape == high.shape == (5000,)
    for i in np.flatnonzero(n > 0)[:200]:
        assert (low[i], high[i]) == pytest.approx(S.wilson_interval(int(successes[i]), int(n[i])))
    assert np.isnan(low[n == 0]).all() and np.isnan(high[n == 0]).all()
    assert np.all(low[n > 0] <= successes[n > 0] / n[n > 0])


def test_wilson_interval_errors() -> None:
    with raises_code("empty"):
        S.wilson_interval(0, 0)
    with raises_code("bad_count"):
        S.wilson_interval(11, 10)
    with raises_code("bad_count"):
        S.wilson_interval(-1, 10)
    with raises_code("bad_count"):
        S.wilson_interval_array([1, float("nan")], [5, 5])
    with raises_code("bad_count"):
        S.wilson_interval_array(["x"], [5])
    for confidence in (0.0, 1.0, 1.5, -0.1):
        with raises_code("bad_confidence"):
            S.wilson_interval(1, 10, confidence)


# ----------------------------------------------------------------------------------------- Cronbach alpha

# Henderson & Velleman (1981), Biometrics 37:391, as R's datasets::mtcars: columns cyl, gear, carb, hp.
MTCARS_CYL = [6, 6, 4, 6, 8, 6, 8, 4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 8, 8, 8, 8, 4, 4, 4, 8, 6, 8, 4]
MTCARS_GEAR = [4, 4, 4, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 3, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5, 4]
MTCARS_CARB = [4, 4, 1, 1, 2, 1, 4, 2, 2, 4, 4, 3, 3, 3, 4, 4, 4, 1, 2, 1, 1, 2, 2, 4, 2, 1, 2, 2, 4, 6, 8, 2]
MTCARS_HP = [110, 110, 93, 110, 175, 105, 245, 62, 95, 123, 123, 180, 180, 180, 205, 215, 230,
             66, 52, 65, 97, 150, 150, 245, 175, 66, 91, 113, 264, 175, 335, 109]  # fmt: skip


def test_cronbach_alpha_mtcars_matches_r() -> None:
    frame = pd.DataFrame({"cyl": MTCARS_CYL, "gear": MTCARS_GEAR, "carb": MTCARS_CARB, "hp": MTCARS_HP})
    # Transcription guard: the published column means are 6.1875, 3.6875, 2.8125 and 146.6875.
    assert frame.mean().tolist() == [6.1875, 3.6875, 2.8125, 146.6875]
    # R: performance::cronbachs_alpha(mtcars[, c("cyl", "gear", "carb", "hp")]) = 0.09463206
    # (easystats/performance tests/testthat/test-cronbachs_alpha.R; psych::alpha gives the same raw alpha).
    assert S.cronbach_alpha(frame) == pytest.approx(0.09463206, abs=1e-8)


def test_cronbach_alpha_hand_worked_two_items() -> None:
    # Items x = 1,2,3 and y = 1,3,2: var(x) = var(y) = 1, cov = 0.5, var(x + y) = 3;
    # alpha = 2/1 · (1 − 2/3) = 2/3.
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [1, 3, 2]})
    assert S.cronbach_alpha(frame) == pytest.approx(2 / 3)


def test_cronbach_alpha_listwise_deletion_and_parallel_items() -> None:
    frame = pd.DataFrame({"x": [1, 2, 3, np.nan], "y": [1, 3, 2, 5], "z": [None, None, None, None]})
    with raises_code("too_few_rows"):
        S.cronbach_alpha(frame)
    assert S.cronbach_alpha(frame[["x", "y"]]) == pytest.approx(2 / 3)
    identical = pd.DataFrame({"a": [1, 4, 2, 5], "b": [1, 4, 2, 5], "c": [1, 4, 2, 5]})
    assert S.cronbach_alpha(identical) == pytest.approx(1.0)


def test_cronbach_alpha_errors() -> None:
    with raises_code("too_few_items"):
        S.cronbach_alpha(pd.DataFrame({"x": [1, 2, 3]}))
    with raises_code("too_few_rows"):
        S.cronbach_alpha(pd.DataFrame({"x": [1, np.nan], "y": [2, 3]}))
    with raises_code("no_variance"):
        S.cronbach_alpha(pd.DataFrame({"x": [3, 3, 3], "y": [4, 4, 4]}))
    with raises_code("bad_input"):
        S.cronbach_alpha([[1, 2], [3, 4]])
    with raises_code("bad_input"):
        S.cronbach_alpha(pd.DataFrame({"x": ["很满意", "满意"], "y": [1, 2]}))


# ------------------------------------------------------------------------------------- satisfaction index


def test_likert_to_index_mapping() -> None:
    got = S.likert_to_index([1, 2, 3, 4, 5, None, float("nan")])
    np.testing.assert_array_equal(got, [0, 25, 50, 75, 100, np.nan, np.nan])
    # 7-point scale: (x − 1)/6 · 100, so 4 → 50 and 7 → 100.
    np.testing.assert_allclose(S.likert_to_index(np.array([1, 4, 7]), points=7), [0, 50, 100])


def test_likert_to_index_keeps_pandas_shape() -> None:
    series = pd.Series([5, None, 2], index=["r1", "r2", "r3"], name="q1")
    out = S.likert_to_index(series)
    assert isinstance(out, pd.Series)
    assert out.name == "q1" and list(out.index) == ["r1", "r2", "r3"]
    frame = pd.DataFrame({"q1": [5, 1], "q2": [pd.NA, 3]}, dtype="Int64")
    out_frame = S.likert_to_index(frame)
    assert isinstance(out_frame, pd.DataFrame)
    assert out_frame.to_numpy().tolist()[0][0] == 100.0
    assert math.isnan(out_frame.loc[0, "q2"])
    assert out_frame.loc[1, "q2"] == 50.0


@pytest.mark.parametrize("bad", [[0], [6], [2.5], ["不了解"], [-1]])
def test_likert_to_index_rejects_out_of_scale(bad: list[object]) -> None:
    with raises_code("bad_likert"):
        S.likert_to_index(bad)


@pytest.mark.parametrize("points", [1, 0, True, 4.0])
def test_likert_to_index_rejects_bad_points(points: object) -> None:
    with raises_code("bad_points"):
        S.likert_to_index([1], points=points)  # type: ignore[arg-type]


def test_satisfaction_index_hand_worked() -> None:
    # Respondent scores: (100 + 75)/2 = 87.5; 50 (one answer, one 不了解); all 不了解 → left out;
    # (0 + 25)/2 = 12.5.
    frame = pd.DataFrame({"q1": [5, 3, None, 1], "q2": [4, None, None, 2]})
    result = S.satisfaction_index(frame)
    assert result.n == 3
    assert result.index == pytest.approx(50.0)
    # sd = √((37.5² + 0 + 37.5²)/2) = 37.5, SE = 37.5/√3, t(0.975, 2) = 4.302653.
    # The t half-width 93.16 would give −43.2–143.2; on the logit scale around p = 0.5 the interval is
    # 100·expit(±(0.9316/0.25)) = 2.35–97.65.
    half = 4.302653 * 37.5 / math.sqrt(3)
    assert result.low == pytest.approx(100 / (1 + math.exp(half / 100 / 0.25)), abs=1e-4)
    assert result.high == pytest.approx(100 / (1 + math.exp(-half / 100 / 0.25)), abs=1e-4)
    assert 0 < result.low < result.high < 100
    assert result.n_effective == 3.0


def test_two_answers_stay_inside_zero_to_a_hundred() -> None:
    """A survey with 2 answers (25 and 75) showed "-267.7–367.7": t(0.975, 1) = 12.706 × 35.36/√2."""
    result = S.satisfaction_index(pd.DataFrame({"q1": [2, 4]}))
    assert result.index == pytest.approx(50.0)
    assert 0.0 <= result.low < 0.01 and 99.99 < result.high <= 100.0
    low, high = S.bounded_interval([80.0, 100.0, 0.0, 50.0], [5.0, 3.0, 3.0, float("nan")])
    # Inside: logit(0.8) ± 0.05/0.16 → 100·expit(1.386 ∓ 0.3125) = 74.53, 84.52; at a bound: clipped t.
    assert low[0] == pytest.approx(100 / (1 + math.exp(-(math.log(4) - 0.3125))))
    assert high[0] == pytest.approx(100 / (1 + math.exp(-(math.log(4) + 0.3125))))
    assert (low[1], high[1]) == (97.0, 100.0) and (low[2], high[2]) == (0.0, 3.0)
    assert math.isnan(low[3]) and math.isnan(high[3])


def test_satisfaction_index_weights_align_by_index_and_series_input() -> None:
    frame = pd.DataFrame({"q1": [5, 1, 3]}, index=["a", "b", "c"])
    weights = pd.Series({"c": 1.0, "b": 1.0, "a": 2.0})
    result = S.satisfaction_index(frame, weights=weights)
    # (2·100 + 1·0 + 1·50)/4 = 62.5
    assert result.index == pytest.approx(62.5)
    assert result.n_effective == pytest.approx(16 / 6)
    from_series = S.satisfaction_index(frame["q1"], weights=[2.0, 1.0, 1.0])
    assert from_series == result


def test_satisfaction_index_accepts_scores() -> None:
    frame = pd.DataFrame({"s": [80.0, 90.0, np.nan, 100.0]})
    result = S.satisfaction_index(frame, points=None)
    assert (result.index, result.n) == (pytest.approx(90.0), 3)


def test_satisfaction_index_errors() -> None:
    with raises_code("empty"):
        S.satisfaction_index(pd.DataFrame({"q1": [None, None]}))
    with raises_code("bad_weights"):
        S.satisfaction_index(pd.DataFrame({"q1": [1, 2]}), weights=[1.0])
    with raises_code("bad_weights"):
        S.satisfaction_index(pd.DataFrame({"q1": [1, 2]}), weights=[1.0, -1.0])
    with raises_code("bad_weights"):
        S.satisfaction_index(pd.DataFrame({"q1": [1, 2]}, index=["a", "b"]), weights=pd.Series({"a": 1.0}))
    with raises_code("bad_values"):
        S.satisfaction_index(pd.DataFrame({"s": [120.0]}), points=None)
    with raises_code("bad_likert"):
        S.satisfaction_index(pd.DataFrame({"q1": [9]}))
    with raises_code("bad_input"):
        S.satisfaction_index([1, 2])


# ------------------------------------------------------------------------------------------- t interval


def test_mean_t_interval_sleep_data_matches_r() -> None:
    # R: t.test(extra ~ group, data = sleep, paired = TRUE): mean difference −1.58,
    # 95% CI −2.4598858 to −0.7001142 (here drug 2 − drug 1, so the signs flip).
    diffs = np.subtract(SLEEP_DRUG2, SLEEP_DRUG1)
    mean, low, high = S.mean_t_interval(diffs)
    assert mean == pytest.approx(1.58)
    assert low == pytest.approx(0.7001142, abs=1e-7)
    assert high == pytest.approx(2.4598858, abs=1e-7)


def test_mean_t_interval_weighted_hand_worked() -> None:
    # x = 1, 2, 3 with w = 1, 1, 2: mean = 9/4 = 2.25; Σw(x − m)² = 1.5625 + 0.0625 + 2·0.5625 = 2.75;
    # n_eff = 4²/6 = 8/3; s² = 2.75/4 · (8/3)/(5/3) = 1.1; SE = √(1.1/(8/3)) = √0.4125; df = 5/3.
    mean, low, high = S.mean_t_interval([1, 2, 3], weights=[1, 1, 2])
    half = sps.t.ppf(0.975, 5 / 3) * math.sqrt(0.4125)
    assert mean == pytest.approx(2.25)
    assert (low, high) == pytest.approx((2.25 - half, 2.25 + half))


def test_mean_t_interval_equal_weights_and_nans() -> None:
    values = [3.0, 5.0, np.nan, 10.0, 2.0]
    plain = S.mean_t_interval(values)
    assert S.mean_t_interval(values, weights=[4, 4, 4, 4, 4]) == pytest.approx(plain)
    assert S.mean_t_interval([3.0, 5.0, 10.0, 2.0]) == pytest.approx(plain)
    mean, low, high = S.mean_t_interval([7.0])
    assert mean == 7.0 and math.isnan(low) and math.isnan(high)
    assert S.mean_t_interval([4.0, 4.0, 4.0]) == (4.0, 4.0, 4.0)


def test_mean_t_interval_errors() -> None:
    with raises_code("empty"):
        S.mean_t_interval([])
    with raises_code("empty"):
        S.mean_t_interval([np.nan, np.nan])
    with raises_code("bad_weights"):
        S.mean_t_interval([1, 2], weights=[0, 0])
    with raises_code("bad_weights"):
        S.mean_t_interval([1, 2], weights=[1, np.nan])
    with raises_code("bad_weights"):
        S.mean_t_interval([1, 2], weights=[1, 2, 3])
    with raises_code("bad_values"):
        S.mean_t_interval(["很好"])
    with raises_code("bad_confidence"):
        S.mean_t_interval([1, 2], confidence=95)


def test_kish_effective_n() -> None:
    assert S.kish_effective_n([1, 1, 2]) == pytest.approx(16 / 6)
    assert S.kish_effective_n([3, 3, 3, 3]) == 4.0
    with raises_code("bad_weights"):
        S.kish_effective_n([0, 0])


# --------------------------------------------------------------------------------------- poststratify


def test_poststratify_hand_worked_one_variable() -> None:
    # 60 men and 40 women; population 48% / 52% → weights 0.48/0.60 = 0.8 and 0.52/0.40 = 1.3.
    sample = pd.DataFrame({"gender": ["男"] * 60 + ["女"] * 40})
    weights = S.poststratify(sample, {"男": 480_000, "女": 520_000}, by=["gender"])
    assert weights.iloc[0] == pytest.approx(0.8)
    assert weights.iloc[-1] == pytest.approx(1.3)
    assert weights.sum() == pytest.approx(100.0)
    assert weights.index.equals(sample.index)


def test_poststratify_cells_reproduce_population_shares() -> None:
    rng = np.random.default_rng(1)
    sample = pd.DataFrame(
        {
            "age": rng.choice(["18-39", "40-59", "60+"], 500),
            "district": rng.choice(["江岸区", "武昌区"], 500),
        }
    )
    population = {
        (age, district): share
        for (age, district), share in zip(
            [(a, d) for a in ["18-39", "40-59", "60+"] for d in ["江岸区", "武昌区"]],
            [0.2, 0.15, 0.2, 0.15, 0.1, 0.2],
            strict=True,
        )
    }
    weights = S.poststratify(sample, population, by=["age", "district"])
    shares = weights.groupby([sample["age"], sample["district"]]).sum() / weights.sum()
    for cell, share in population.items():
        assert shares[cell] == pytest.approx(share)
    as_series = S.poststratify(sample, pd.Series(population), by=["age", "district"])
    pd.testing.assert_series_equal(as_series, weights)


def test_poststratify_errors() -> None:
    sample = pd.DataFrame({"gender": ["男", "女", "男"], "age": ["60+", None, "18-39"]})
    with raises_code("empty_cell"):
        S.poststratify(sample, {"男": 1, "女": 1, "其他": 1}, by=["gender"])
    with raises_code("unknown_cell"):
        S.poststratify(sample, {"男": 1}, by=["gender"])
    with raises_code("missing_column"):
        S.poststratify(sample, {"男": 1}, by=["district"])
    with raises_code("missing_column"):
        S.poststratify(sample, {"男": 1}, by=[])
    with raises_code("missing_value"):
        S.poststratify(sample, {"60+": 1, "18-39": 1}, by=["age"])
    with raises_code("bad_margin"):
        S.poststratify(sample, {"男": -1, "女": 2}, by=["gender"])
    with raises_code("bad_margin"):
        S.poststratify(sample, {}, by=["gender"])
    with raises_code("empty"):
        S.poststratify(sample.iloc[0:0], {"男": 1}, by=["gender"])


# ------------------------------------------------------------------------------------------------ raking


def test_rake_hand_worked_2x2_preserves_odds_ratio() -> None:
    # Seed table (gender × age): 30, 10 / 20, 40, odds ratio 6; both margins 50/50 of n = 100.
    # Raking keeps the seed's odds ratio, so the fitted table is x, 50 − x / 50 − x, x with
    # x²/(50 − x)² = 6, i.e. x = 50√6/(1 + √6) = 35.5051. Per-person weights are fitted / seed counts.
    cells = [("男", "青年", 30), ("男", "老年", 10), ("女", "青年", 20), ("女", "老年", 40)]
    sample = pd.DataFrame([(g, a) for g, a, count in cells for _ in range(count)], columns=["gender", "age"])
    weights = S.rake(sample, {"gender": {"男": 0.5, "女": 0.5}, "age": {"青年": 50, "老年": 50}})
    x = 50 * math.sqrt(6) / (1 + math.sqrt(6))
    expected = {("男", "青年"): x / 30, ("男", "老年"): (50 - x) / 10,
                ("女", "青年"): (50 - x) / 20, ("女", "老年"): x / 40}  # fmt: skip
    for (gender, age), w in expected.items():
        got = weights[(sample["gender"] == gender) & (sample["age"] == age)]
        assert got.to_numpy() == pytest.approx(w, rel=1e-7)


def test_rake_independent_sample_needs_one_pass() -> None:
    # Gender and age independent in the sample (20/20/30/30): the weight is the product of the two
    # one-way ratios, e.g. (0.6/0.4)·(0.3/0.5) = 0.9 for 男·青年.
    sample = pd.DataFrame(
        [("男", "青年")] * 20 + [("男", "老年")] * 20 + [("女", "青年")] * 30 + [("女", "老年")] * 30,
        columns=["gender", "age"],
    )
    weights = S.rake(
        sample, {"gender": {"男": 0.6, "女": 0.4}, "age": {"青年": 0.3, "老年": 0.7}}, max_iter=1
    )
    assert weights.iloc[0] == pytest.approx(0.6 / 0.4 * 0.3 / 0.5)
    assert weights.iloc[-1] == pytest.approx(0.4 / 0.6 * 0.7 / 0.5)


def test_rake_reproduces_three_margins() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    age = rng.choice(["18-39", "40-59", "60+"], n, p=[0.5, 0.3, 0.2])
    gender = np.where(rng.random(n) < np.where(age == "60+", 0.7, 0.45), "女", "男")
    district = rng.choice(["江岸区", "江汉区", "硚口区", "东湖高新区"], n, p=[0.4, 0.3, 0.2, 0.1])
    sample = pd.DataFrame({"age": age, "gender": gender, "district": district})
    margins = {
        "age": pd.Series({"18-39": 0.35, "40-59": 0.4, "60+": 0.25}),
        "gender": {"男": 510, "女": 490},
        "district": {"江岸区": 0.25, "江汉区": 0.25, "硚口区": 0.25, "东湖高新区": 0.25},
    }
    weights = S.rake(sample, margins, tol=1e-10)
    assert weights.sum() == pytest.approx(n)
    assert (weights > 0).all()
    for column, margin in margins.items():
        target = pd.Series(margin, dtype=float)
        target = target / target.sum()
        got = weights.groupby(sample[column]).sum() / weights.sum()
        for category, share in target.items():
            assert got[category] == pytest.approx(share, abs=1e-9)


def test_rake_one_margin_equals_poststratify() -> None:
    sample = pd.DataFrame({"gender": ["男", "男", "男", "女"]})
    margin = {"男": 0.5, "女": 0.5}
    pd.testing.assert_series_equal(
        S.rake(sample, {"gender": margin}), S.poststratify(sample, margin, ["gender"])
    )


def test_rake_errors() -> None:
    sample = pd.DataFrame({"gender": ["男", "女", "男", "女"], "age": ["青年", "青年", "老年", "青年"]})
    good_age = {"青年": 0.5, "老年": 0.5}
    with raises_code("empty_cell"):
        S.rake(sample, {"gender": {"男": 1, "女": 1}, "age": {"青年": 1, "老年": 1, "中年": 1}})
    with raises_code("unknown_cell"):
        S.rake(sample, {"gender": {"男": 1}, "age": good_age})
    with raises_code("not_converged"):
        S.rake(sample, {"gender": {"男": 0.5, "女": 0.5}, "age": {"青年": 0.2, "老年": 0.8}}, max_iter=1)
    with raises_code("not_converged"):
        # 女 are all 青年; a zero share for 青年 empties 女, which the gender margin still needs.
        S.rake(sample, {"age": {"青年": 0, "老年": 1}, "gender": {"男": 0.5, "女": 0.5}})
    with raises_code("missing_column"):
        S.rake(sample, {"district": {"江岸区": 1}})
    with raises_code("bad_margin"):
        S.rake(sample, {})
    with raises_code("bad_margin"):
        S.rake(sample, {"gender": {"男": 0, "女": 0}})
    with raises_code("bad_option"):
        S.rake(sample, {"age": good_age}, max_iter=0)
    with raises_code("missing_value"):
        S.rake(sample.assign(age=[None, "青年", "老年", "青年"]), {"age": good_age})


# ------------------------------------------------------------------------------ multiplicity correction

# Benjamini & Hochberg (1995) JRSS B 57:289–300, §4.3: the 15 p-values of Neuhaus et al. (1992).
# At q = 0.05 the BH step-up procedure rejects the 4 smallest. Holm by hand: 15·0.0001, 14·0.0004,
# 13·0.0019 = 0.0247 ≤ 0.05, then 12·0.0095 = 0.114 > 0.05, so Holm rejects 3.
BH_1995_P = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
             0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]  # fmt: skip


def test_adjust_p_values_benjamini_hochberg_1995_example() -> None:
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(BH_1995_P)
    bh = S.adjust_p_values(shuffled, "fdr_bh")
    holm = S.adjust_p_values(shuffled, "holm")
    assert int((bh <= 0.05).sum()) == 4
    assert int((holm <= 0.05).sum()) == 3
    # The fourth smallest: BH = min over j ≥ 4 of p(j)·15/j = 0.0095·15/4.
    assert bh[shuffled == 0.0095][0] == pytest.approx(0.0095 * 15 / 4)


def test_adjust_p_values_hand_worked_and_nan() -> None:
    # Holm: 5·0.01, 4·0.02, 3·0.03, max(0.09, 2·0.04), max(0.09, 0.05). BH: every p(i)·5/i = 0.05.
    p = [0.03, np.nan, 0.01, 0.05, 0.02, 0.04]
    holm = S.adjust_p_values(p, "holm")
    np.testing.assert_allclose(holm, [0.09, np.nan, 0.05, 0.09, 0.08, 0.09])
    np.testing.assert_allclose(S.adjust_p_values(p, "fdr_bh"), [0.05, np.nan, 0.05, 0.05, 0.05, 0.05])
    np.testing.assert_array_equal(S.adjust_p_values([0.4, 0.9], "holm"), [0.8, 0.9])
    assert np.isnan(S.adjust_p_values([np.nan], "holm")).all()


def test_adjust_p_values_errors() -> None:
    with raises_code("bad_p"):
        S.adjust_p_values([1.2])
    with raises_code("bad_method"):
        S.adjust_p_values([0.1], "bonferroni")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- compare_quarters


def _quarters() -> tuple[pd.DataFrame, pd.DataFrame]:
    prev = pd.DataFrame(
        {"unit": ["睡眠"] * 10 + ["单人"] + ["平"] * 3, "score": [*SLEEP_DRUG1, 80, 100, 100, 100]}
    )
    curr = pd.DataFrame(
        {
            "unit": ["睡眠"] * 10 + ["单人"] * 3 + ["平"] * 2 + ["新"] * 2,
            "score": [*SLEEP_DRUG2, 70, 75, 80, 100, 100, 60, 70],
        }
    )
    return prev, curr


def test_compare_quarters_welch_matches_r() -> None:
    prev, curr = _quarters()
    table = S.compare_quarters(prev, curr, group="unit", value="score")
    sleep = table.loc["睡眠"]
    # R: t.test(extra ~ group, data = sleep): t = −1.8608, df = 17.776, p-value = 0.07939.
    assert sleep["p_value"] == pytest.approx(0.0793941, abs=1e-7)
    assert sleep["change"] == pytest.approx(1.58)
    assert (sleep["n_prev"], sleep["n_curr"]) == (10, 10)
    # One respondent last quarter → no test; no spread on either side → no test; new unit → n_prev 0.
    assert math.isnan(table.loc["单人", "p_value"]) and not table.loc["单人", "significant"]
    assert math.isnan(table.loc["平", "p_value"]) and table.loc["平", "change"] == 0.0
    assert table.loc["新", "n_prev"] == 0 and math.isnan(table.loc["新", "mean_prev"])
    assert list(table.index) == sorted(["睡眠", "单人", "平", "新"])
    assert table.index.name == "unit"
    assert list(table.columns) == [
        "n_prev", "n_curr", "mean_prev", "mean_curr", "change", "p_value", "p_adjusted", "significant",
    ]  # fmt: skip
    # A single testable group: the adjusted p equals the raw p and is not significant at 0.05.
    assert sleep["p_adjusted"] == pytest.approx(sleep["p_value"])
    assert not sleep["significant"]
    assert S.compare_quarters(prev, curr, "unit", "score", alpha=0.1).loc["睡眠", "significant"]


def test_compare_quarters_mannwhitney_matches_r() -> None:
    prev, curr = _quarters()
    table = S.compare_quarters(prev, curr, group="unit", value="score", method="mannwhitney")
    # R: wilcox.test(extra ~ group, data = sleep): W = 25.5, p-value = 0.06933 (normal approximation with
    # continuity correction, because of ties).
    assert table.loc["睡眠", "p_value"] == pytest.approx(0.069328, abs=1e-6)
    # Rank test on constant samples is defined (p = 1) and runs without warnings.
    assert table.loc["平", "p_value"] == pytest.approx(1.0)


def test_compare_quarters_corrects_across_groups() -> None:
    rng = np.random.default_rng(11)
    units = [f"社区{i}" for i in range(8)]
    prev = pd.DataFrame({"unit": np.repeat(units, 30), "score": rng.normal(70, 10, 240)})
    shift = np.repeat([15, 0, 0, 0, 0, 0, 0, 0], 30)
    curr = pd.DataFrame({"unit": np.repeat(units, 30), "score": rng.normal(70, 10, 240) + shift})
    for correction in ("fdr_bh", "holm"):
        table = S.compare_quarters(prev, curr, "unit", "score", correction=correction)
        np.testing.assert_allclose(table["p_adjusted"], S.adjust_p_values(table["p_value"], correction))
        assert table.loc["社区0", "significant"]
        assert (table["significant"] == (table["p_adjusted"] <= 0.05)).all()
        assert table["significant"].dtype == bool


def test_compare_quarters_welch_with_one_constant_side() -> None:
    # Everyone gave 100 last quarter: scipy's raw-data t test warns on such samples; ours must not.
    # Hand-worked Welch: change = −8.333, SE² = 0/3 + 208.33/3 = 8.333², t = 1.0 on df = 2 → p = 0.4226.
    prev = pd.DataFrame({"unit": ["甲"] * 3, "score": [100.0, 100.0, 100.0]})
    curr = pd.DataFrame({"unit": ["甲"] * 3, "score": [100.0, 75.0, 100.0]})
    table = S.compare_quarters(prev, curr, "unit", "score")
    assert table.loc["甲", "p_value"] == pytest.approx(0.422650, abs=1e-6)
    assert table.loc["甲", "change"] == pytest.approx(-25 / 3)


def test_compare_quarters_significance_uses_adjusted_p() -> None:
    # Two units with the sleep data each: raw p = 0.0794 twice. At alpha = 0.10, BH keeps both
    # (0.0794·2/2), Holm adjusts both to 2·0.0794 = 0.159 and keeps neither.
    prev = pd.DataFrame({"unit": ["甲"] * 10 + ["乙"] * 10, "score": SLEEP_DRUG1 * 2})
    curr = pd.DataFrame({"unit": ["甲"] * 10 + ["乙"] * 10, "score": SLEEP_DRUG2 * 2})
    bh = S.compare_quarters(prev, curr, "unit", "score", alpha=0.1, correction="fdr_bh")
    holm = S.compare_quarters(prev, curr, "unit", "score", alpha=0.1, correction="holm")
    assert bh["significant"].all()
    assert holm["p_adjusted"].to_numpy() == pytest.approx([2 * 0.0793941] * 2, abs=1e-6)
    assert not holm["significant"].any()


def test_compare_quarters_errors() -> None:
    prev, curr = _quarters()
    with raises_code("bad_method"):
        S.compare_quarters(prev, curr, "unit", "score", method="ttest")  # type: ignore[arg-type]
    with raises_code("bad_method"):
        S.compare_quarters(prev, curr, "unit", "score", correction="bonferroni")  # type: ignore[arg-type]
    with raises_code("bad_alpha"):
        S.compare_quarters(prev, curr, "unit", "score", alpha=5)
    with raises_code("missing_column"):
        S.compare_quarters(prev, curr, "street", "score")
    with raises_code("bad_values"):
        S.compare_quarters(prev.assign(score="很好"), curr, "unit", "score")


# -------------------------------------------------------------------------------- compare_proportions


def test_compare_proportions_fisher_tea_tasting() -> None:
    # Fisher (1935) The Design of Experiments, lady tasting tea: 3 of 4 milk-first cups named correctly
    # against 1 of 4; two-sided exact p = 34/70 = 0.4857 (also Agresti 2002, Categorical Data Analysis §3.5).
    result = S.compare_proportions(3, 4, 1, 4)
    assert result.method == "fisher"
    assert result.p_value == pytest.approx(34 / 70)
    assert result.statistic == pytest.approx(9.0)  # sample odds ratio 3·3/(1·1)


def test_compare_proportions_z_hand_worked() -> None:
    # 15/50 vs 25/50: pooled 0.4, SE = √(0.4·0.6·(1/50 + 1/50)) = √0.0096, z = −0.2/√0.0096,
    # so z² = 0.04/0.0096 = 25/6 and p = P(χ²₁ > 25/6) = 0.04123.
    result = S.compare_proportions(15, 50, 25, 50)
    assert result.method == "z"
    assert result.statistic == pytest.approx(-math.sqrt(25 / 6))
    assert result.p_value == pytest.approx(0.041227, abs=1e-6)
    assert result.difference == pytest.approx(-0.2)
    # Same as Pearson's χ² without Yates' correction on the 2×2 table.
    chi2 = sps.chi2_contingency([[15, 35], [25, 25]], correction=False)
    assert result.p_value == pytest.approx(chi2.pvalue)


def test_compare_proportions_degenerate_and_forced() -> None:
    same = S.compare_proportions(0, 40, 0, 60, method="z")
    assert (same.statistic, same.p_value) == (0.0, 1.0)
    assert S.compare_proportions(15, 50, 25, 50, method="fisher").method == "fisher"


def test_compare_proportions_errors() -> None:
    with raises_code("empty"):
        S.compare_proportions(0, 0, 1, 2)
    with raises_code("bad_count"):
        S.compare_proportions(3, 2, 1, 2)
    with raises_code("bad_count"):
        S.compare_proportions(1.5, 2, 1, 2)  # type: ignore[arg-type]
    with raises_code("bad_method"):
        S.compare_proportions(1, 2, 1, 2, method="chi2")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- sample size


def test_required_sample_size_known_answers() -> None:
    # Cochran (1977) Sampling Techniques, §4.4: n0 = z²p(1 − p)/d², n = n0/(1 + (n0 − 1)/N).
    # The widely tabulated answers: ±5% at 95% → 385; ±3% → 1068; ±5% with N = 1000 → 278.
    assert S.required_sample_size(0.05) == 385
    assert S.required_sample_size(0.03) == 1068
    assert S.required_sample_size(0.05, population=1000) == 278
    # Hand-worked: p = 0.3 → 1.959964²·0.21/0.0025 = 322.69 → 323; 99% → 2.575829²·0.25/0.0025 = 663.5 → 664.
    assert S.required_sample_size(0.05, p=0.3) == 323
    assert S.required_sample_size(0.05, confidence=0.99) == 664
    # Hand-worked, small N where the "− 1" of eq. 4.2 matters: n0 = 96.04 for ±10%, N = 30:
    # 96.04/(1 + 95.04/30) = 23.04 → 24 (n0/(1 + n0/N) would give 22.86 → 23).
    assert S.required_sample_size(0.1, population=30) == 24
    # A tiny community cannot need more respondents than it has residents.
    assert S.required_sample_size(0.01, population=50) <= 50


def test_required_sample_size_mean_known_answer() -> None:
    # Triola, Elementary Statistics (Ch. 7, IQ example): σ = 15, within 3 points at 95% → 96.04 → 97.
    assert S.required_sample_size_mean(3, 15) == 97
    # Hand-worked FPC: n0 = 96.04, N = 500 → 96.04/(1 + 96.04/500) = 80.57 → 81.
    assert S.required_sample_size_mean(3, 15, population=500) == 81
    # For a mean the correction is n0/(1 + n0/N) (Cochran 1977, from V(ȳ) = (1 − f)S²/n):
    # 96.04/(1 + 96.04/30) = 22.86 → 23.
    assert S.required_sample_size_mean(3, 15, population=30) == 23


def test_required_sample_size_errors() -> None:
    for margin in (0, 1, -0.1):
        with raises_code("bad_margin_of_error"):
            S.required_sample_size(margin)
    for p in (0, 1):
        with raises_code("bad_p"):
            S.required_sample_size(0.05, p=p)
    for population in (0, -5, 10.5, True):
        with raises_code("bad_population"):
            S.required_sample_size(0.05, population=population)  # type: ignore[arg-type]
    with raises_code("bad_confidence"):
        S.required_sample_size(0.05, confidence=1.0)
    with raises_code("bad_margin_of_error"):
        S.required_sample_size_mean(0, 15)
    with raises_code("bad_sd"):
        S.required_sample_size_mean(3, 0)
    with raises_code("bad_sd"):
        S.required_sample_size_mean(3, float("nan"))


def test_stats_error_is_value_error_with_chinese_message() -> None:
    with pytest.raises(ValueError, match="样本量") as info:
        S.wilson_interval(0, 0)
    assert isinstance(info.value, StatsError) and info.value.code == "empty"
