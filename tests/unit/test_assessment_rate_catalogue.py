"""The declared case-rate definitions, hand-worked: numerator ÷ denominator in percent, 0 denominators NaN."""

from __future__ import annotations

import math

import pandas as pd

from assessment.inputs import COUNT_COLUMNS, rates_from_counts
from assessment.vocabulary import RATE_DEFINITIONS


def _counts(**values: int) -> pd.DataFrame:
    row = dict.fromkeys(COUNT_COLUMNS, 0) | values
    return pd.DataFrame([row], index=pd.Index([7], name="community_id"))


def test_rates_are_numerator_over_denominator_in_percent() -> None:
    counts = _counts(
        requests=10, dispatched=8, responded_in_time=6, rated=5, solved=4, satisfied=3,
        resolved=4, closed_on_time=1, returned=2, reopened=1,
    )  # fmt: skip
    out = rates_from_counts(counts, pd.Series({7: 2500.0})).iloc[0]
    assert out["response_rate"] == 75.0  # 6 / 8
    assert out["resolution_rate"] == 80.0  # 4 / 5
    assert out["satisfaction_rate"] == 60.0  # 3 / 5
    assert out["on_time_rate"] == 25.0  # 1 / 4
    assert out["return_rate"] == 25.0  # 2 / 8
    assert out["reopen_rate"] == 25.0  # 1 / 4
    assert out["requests_per_1000"] == 4.0  # 10 / 2500 × 1000


def test_zero_denominator_is_not_applicable_not_zero() -> None:
    out = rates_from_counts(_counts(requests=3), pd.Series({7: 0.0})).iloc[0]
    for column, *_ in RATE_DEFINITIONS:
        assert math.isnan(out[column]), column
    assert math.isnan(out["requests_per_1000"])


def test_every_definition_names_existing_count_columns() -> None:
    for _column, label, numerator, denominator, num_col, den_col in RATE_DEFINITIONS:
        assert label and numerator and denominator
        assert num_col in COUNT_COLUMNS and den_col in COUNT_COLUMNS
