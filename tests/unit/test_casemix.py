"""Case-mix adjustment (indirect standardisation, exact O/E intervals, bootstrap rank intervals) on hand-built data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assessment import casemix
from assessment.vocabulary import AssessmentError


def strata(rows: list[tuple[int, str, int, int]]) -> pd.DataFrame:
    """Cells (unit, category, numerator, denominator)."""
    return pd.DataFrame(rows, columns=["unit_id", "stratum", "num", "den"])


# Worked by hand. Categories A (easy) and B (hard):
#   unit 1: A 9/10, B 3/10;  unit 2: A 24/30, B 4/10.
# City rates: A = 33/40 = 0.825, B = 7/20 = 0.35.
# E1 = 10×0.825 + 10×0.35 = 11.75, O1 = 12, O/E = 1.02128; observed 60 %, expected 58.75 %.
# E2 = 30×0.825 + 10×0.35 = 28.25, O2 = 28, O/E = 0.99115; observed 70 %, expected 70.625 %.
# Raw rates rank unit 2 first (70 % vs 60 %); given its easier mix, unit 1 did better than expected.
HAND = [(1, "A", 9, 10), (1, "B", 3, 10), (2, "A", 24, 30), (2, "B", 4, 10)]


def test_indirect_standardisation_worked_example() -> None:
    table = casemix.indirect_standardisation(strata(HAND))
    assert table.loc[1, "expected"] == pytest.approx(11.75)
    assert table.loc[2, "expected"] == pytest.approx(28.25)
    assert table.loc[1, "observed"] == 12 and table.loc[2, "observed"] == 28
    assert table.loc[1, "cases"] == 20 and table.loc[2, "cases"] == 40
    assert table.loc[1, "ratio"] == pytest.approx(12 / 11.75)
    assert table.loc[2, "ratio"] == pytest.approx(28 / 28.25)
    assert table.loc[1, "observed_rate"] == pytest.approx(60.0)
    assert table.loc[1, "expected_rate"] == pytest.approx(58.75)
    assert table.loc[2, "expected_rate"] == pytest.approx(70.625)
    # Indirect standardisation against the same population: Σ O = Σ E.
    assert table["expected"].sum() == pytest.approx(table["observed"].sum())
    # Exact Poisson limits for 12 events (Garwood table: 6.20–20.96), divided by E.
    assert table.loc[1, "ratio_low"] == pytest.approx(6.2006 / 11.75, abs=1e-4)
    assert table.loc[1, "ratio_high"] == pytest.approx(20.9616 / 11.75, abs=1e-4)
    assert set(table["verdict"]) == {casemix.AS_EXPECTED}


@pytest.mark.parametrize(
    ("observed", "low", "high"),
    [(0, 0.0, 3.6889), (1, 0.0253, 5.5716), (10, 4.7954, 18.3904)],  # tabulated exact Poisson limits
)
def test_poisson_ratio_interval_matches_the_table(observed: int, low: float, high: float) -> None:
    got = casemix.poisson_ratio_interval(observed, 2.0)
    assert got == pytest.approx((low / 2.0, high / 2.0), abs=1e-4)


def test_poisson_interval_without_expectation_is_nan() -> None:
    assert all(np.isnan(v) for v in casemix.poisson_ratio_interval(3, 0.0))


def test_clear_differences_are_flagged_and_rank_intervals_separate() -> None:
    # Same mix, 200 cases each: 190/200 vs 100/200 vs 40/200 — the O/E intervals exclude 1 for the extremes.
    rows = []
    for unit, good in ((1, 95), (2, 50), (3, 20)):
        rows += [(unit, "A", good, 100), (unit, "B", good, 100)]
    result = casemix.adjust(strata(rows), "satisfaction_rate", resamples=400, seed=7)
    table = result.table
    assert list(table.index) == [1, 2, 3]
    assert table.loc[1, "verdict"] == casemix.ABOVE
    assert table.loc[3, "verdict"] == casemix.BELOW
    assert [int(r) for r in table["rank"]] == [1, 2, 3]
    # Differences this large never swap order in a resample: each interval is its rank.
    assert [(int(a), int(b)) for a, b in zip(table["rank_low"], table["rank_high"], strict=True)] == [
        (1, 1),
        (2, 2),
        (3, 3),
    ]


def test_rank_intervals_overlap_when_units_are_indistinguishable() -> None:
    rows = [(1, "A", 6, 10), (2, "A", 5, 10), (3, "A", 4, 10)]
    ranks = casemix.rank_intervals(strata(rows), resamples=500, seed=1)
    assert int(ranks.loc[1, "rank"]) == 1
    assert int(ranks.loc[1, "rank_low"]) == 1
    assert int(ranks.loc[1, "rank_high"]) == 3
    assert int(ranks.loc[3, "rank_low"]) == 1
    assert all(ranks["rank_low"] <= ranks["rank"]) and all(ranks["rank"] <= ranks["rank_high"])


def test_bootstrap_is_seeded_and_chunking_does_not_change_it(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [(u, c, n, 12) for u, n in ((1, 7), (2, 8), (3, 9), (4, 6)) for c in ("A", "B")]
    first = casemix.rank_intervals(strata(rows), resamples=300, seed=42)
    again = casemix.rank_intervals(strata(rows), resamples=300, seed=42)
    pd.testing.assert_frame_equal(first, again)
    monkeypatch.setattr(casemix, "CHUNK_CELLS", 16)  # two resamples per chunk: each from its own child seed
    chunked = casemix.rank_intervals(strata(rows), resamples=300, seed=42)
    pd.testing.assert_frame_equal(first, chunked)


def test_units_without_denominator_are_listed_apart_and_never_ranked() -> None:
    rows = [*HAND, (3, "A", 0, 0)]
    result = casemix.adjust(strata(rows), "response_rate", resamples=50)
    table = result.table
    assert table.loc[3, "verdict"] == casemix.NOT_COMPARABLE
    assert pd.isna(table.loc[3, "rank"]) and pd.isna(table.loc[3, "ratio"])
    assert list(table.index)[-1] == 3
    assert int(table.loc[1, "rank"]) == 1  # unit 1 beats its expectation, unit 2 falls short


def test_resamples_are_bounded() -> None:
    with pytest.raises(AssessmentError):
        casemix.rank_intervals(strata(HAND), resamples=casemix.MAX_RESAMPLES + 1)
    with pytest.raises(AssessmentError):
        casemix.rank_intervals(strata(HAND), resamples=0)


def test_bad_cells_are_refused() -> None:
    with pytest.raises(ValueError):
        casemix.indirect_standardisation(strata([(1, "A", 5, 3)]))


def test_rate_strata_maps_communities_and_refuses_other_rates() -> None:
    counts = pd.DataFrame(
        {
            "community_id": [10, 10, 11, 12],
            "category_id": [1, 2, 1, None],
            "dispatched": [5, 4, 3, 2],
            "responded_in_time": [4, 4, 1, 2],
        }
    )
    frame = casemix.rate_strata(counts, "response_rate", pd.Series({10: 100, 11: 100}))
    assert list(frame["unit_id"]) == [100, 100, 100]
    assert list(frame["num"]) == [4, 4, 1] and list(frame["den"]) == [5, 4, 3]
    with pytest.raises(AssessmentError):
        casemix.rate_strata(counts, "return_rate")


def test_empty_quarter_gives_empty_tables() -> None:
    result = casemix.adjust(strata([]), "response_rate", resamples=10)
    assert result.table.empty


def test_a_perfect_small_unit_is_not_certain_of_its_rank() -> None:
    # 3 of 3 is 100 %, but far less certain than 300 of 300 or 190 of 200.
    rows = [(1, "A", 3, 3), (2, "A", 300, 300), (3, "A", 190, 200), (4, "A", 150, 200)]
    ranks = casemix.rank_intervals(strata(rows), resamples=500, seed=3)
    assert int(ranks.loc[1, "rank"]) == 1 and int(ranks.loc[2, "rank"]) == 1  # tied on the point estimate
    assert int(ranks.loc[1, "rank_high"]) >= 3  # the small unit could well be third
    assert (int(ranks.loc[2, "rank_low"]), int(ranks.loc[2, "rank_high"])) == (1, 2)
    assert int(ranks.loc[1, "rank_high"]) == 4  # … or even below 150 of 200
    assert (
        int(ranks.loc[4, "rank_low"]) == 3 and int(ranks.loc[4, "rank_high"]) == 4
    )  # only the small unit swaps
