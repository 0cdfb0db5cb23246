"""Known answers for the declared missing-data policy (assessment.missing)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from assessment import missing


def test_shrinkage_is_the_beta_binomial_posterior_mean() -> None:
    # 3 of 4 satisfied (75 %), parent 90 %, m = 10: (3 + 10 × 0.9)/(4 + 10) = 12/14 = 85.714 %.
    out = missing.shrink(np.array([75.0]), np.array([4.0]), np.array([90.0]), 10.0)
    assert out[0] == pytest.approx(1200 / 14)
    # No observation: the parent's value; many observations: close to the own value.
    assert missing.shrink(np.array([np.nan]), np.array([0.0]), np.array([90.0]), 10.0)[0] == 90.0
    assert missing.shrink(np.array([75.0]), np.array([990.0]), np.array([90.0]), 10.0)[0] == pytest.approx(
        75.15
    )


def test_parent_falls_back_from_street_to_district_to_city() -> None:
    index = pd.Index([1, 2, 3, 4], name="unit_id")
    value = pd.Series([80.0, 60.0, np.nan, np.nan], index=index)
    n = pd.Series([10.0, 30.0, 0.0, 0.0], index=index)
    street = pd.Series([11, 11, 12, 13], index=index)
    district = pd.Series([101, 101, 101, 102], index=index)
    parent = missing.parent_values(value, n, street, district)
    # Street 11: (80·10 + 60·30)/40 = 65; street 12 has no data → district 101 = 65; district 102 → city 65.
    assert parent.tolist() == [65.0, 65.0, 65.0, 65.0]
    value = pd.Series([80.0, 60.0, 50.0, np.nan], index=index)
    n = pd.Series([10.0, 30.0, 20.0, 0.0], index=index)
    parent = missing.parent_values(value, n, street, district)
    # City: (800 + 1800 + 1000)/60 = 60; district 101 the same units; street 12 = 50.
    assert parent.tolist() == [65.0, 65.0, 50.0, 60.0]


def test_flags_and_values_by_situation() -> None:
    index = pd.Index([1, 2, 3, 4], name="unit_id")
    value = pd.Series([90.0, 50.0, np.nan, np.nan], index=index)
    n = pd.Series([40.0, 2.0, 0.0, 0.0], index=index)
    expected = pd.Series([True, True, True, False], index=index)
    street = pd.Series([1, 1, 1, 1], index=index)
    used, flag, parent = missing.apply("case", value, n, expected, street, street)
    p = (90 * 40 + 50 * 2) / 42
    assert parent.iloc[0] == pytest.approx(p)
    assert used.iloc[0] == 90.0 and flag.iloc[0] == missing.FLAG_OK  # n ≥ 10: own value
    assert used.iloc[1] == pytest.approx((50 * 2 + 10 * p) / 12) and flag.iloc[1] == missing.FLAG_SMALL
    assert used.iloc[2] == pytest.approx(p) and flag.iloc[2] == missing.FLAG_IMPUTED  # expected, no sample
    assert math.isnan(used.iloc[3]) and flag.iloc[3] == missing.FLAG_OK  # nothing expected: not applicable


def test_survey_minimum_is_thirty_respondents() -> None:
    index = pd.Index([1, 2], name="unit_id")
    used, flag, _ = missing.apply(
        "survey",
        pd.Series([70.0, 80.0], index=index),
        pd.Series([30.0, 29.0], index=index),
        pd.Series([True, True], index=index),
        pd.Series([1, 1], index=index),
        pd.Series([1, 1], index=index),
    )
    assert flag.tolist() == [missing.FLAG_OK, missing.FLAG_SMALL] and used.iloc[0] == 70.0


def test_benjamini_hochberg_across_units_known_answer() -> None:
    from assessment.significance import bh_by_group

    # Sorted 0.005, 0.01, 0.03, 0.04 (m = 4): ×4/1, ×4/2, ×4/3, ×4/4 = 0.02, 0.02, 0.04, 0.04 (monotone).
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.04, np.nan])
    groups = np.array(["T", "T", "T", "T", "A", "A"])
    q = bh_by_group(p, groups)
    assert q[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert q[4] == pytest.approx(0.04) and math.isnan(q[5])  # a family of one is not adjusted
    # Uncorrected, all four totals were "significant" at 0.05; corrected, all still are — but with ten
    # units at p = 0.04 and nine at 0.9, none would be.
    many = bh_by_group(np.array([0.04] + [0.9] * 9), np.array(["T"] * 10))
    assert many[0] == pytest.approx(0.4)
