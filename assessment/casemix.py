"""Case-mix-adjusted rates (诉求类别构成调整): each unit's observed rate beside the rate expected from its
mix of categories and volume, the observed/expected ratio with an exact interval, and bootstrap rank
intervals, so that evaluators see which differences between units are real.

Method: **indirect standardisation** by case category. For a rate with numerator ``num`` and denominator
``den`` (``assessment.vocabulary.RATES``) and a unit u,

    expected_u = Σ_c den_uc × city_rate_c,   city_rate_c = Σ_units num_c ÷ Σ_units den_c

so a unit is compared with what the whole city achieves on the same categories in the same numbers
(volume enters through den_uc). ``ratio = observed ÷ expected`` (O/E, 1 = as expected; above 1 = better
than its mix predicts for these higher-is-better rates), ``observed_rate = O ÷ den`` and
``expected_rate = E ÷ den`` (both percentages, inside 0–100).

Why not a logistic model (statsmodels): per unit and category the counts are small (tens), a model with
unit and category effects has thousands of parameters and separates on empty cells, while indirect
standardisation is exact arithmetic an auditor can redo in a spreadsheet (the unit tests do one by hand),
needs no iteration or new dependency, and gives Σ O = Σ E over the city by construction.

Interval of O/E: the exact (Garwood) Poisson interval of the observed count divided by E, treating E as
fixed: ``[χ²(α/2; 2O)/2, χ²(1−α/2; 2O+2)/2] ÷ E`` (Breslow & Day 1987, vol. II §2.3). A unit whose interval
excludes 1 is flagged 高于预期 / 低于预期.

Rank intervals: a seeded parametric bootstrap of the cases within each unit × category cell. Each resample
draws the cell's rate from its Jeffreys posterior Beta(num + ½, den − num + ½) and then the cell's count from
Binomial(den, that rate) — drawing from the observed rate alone would never move a cell at 0 % or 100 % (3 of 3
would look as certain as 300 of 300). Each resample recomputes the city's category rates, every unit's E and
O/E and the competition ranks (1 = best); the interval is the α/2 and 1−α/2 quantiles of a unit's ranks
(whole numbers). Resamples are bounded (``MAX_RESAMPLES``), each drawn from its own child of the seed
(``numpy.random.SeedSequence.spawn``) so results do not depend on how they are chunked, and drawn in chunks
so memory stays small. Units with no cases in the denominator (or an expected count of 0) are listed apart
and never ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from sqlalchemy import select
from sqlalchemy.orm import Session

from assessment.inputs import category_rates
from assessment.vocabulary import RATE_BY_KEY, AssessmentError
from core.i18n import N_
from core.models import LEVEL_ORDER, Level, Unit
from core.quarter import Quarter

ADJUSTED_RATES = ("response_rate", "resolution_rate", "satisfaction_rate")
DEFAULT_RESAMPLES = 500  # bench/bench_casemix.py: cost grows with unit × category cells × resamples
MAX_RESAMPLES = 5000
DEFAULT_SEED = 20260101
ALPHA = 0.05
CHUNK_CELLS = 2_000_000  # resample × cell draws held in memory at once (int64: ~16 MB)
ABOVE, BELOW, AS_EXPECTED, NOT_COMPARABLE = "above", "below", "as_expected", "not_comparable"
VERDICT_LABELS = {
    ABOVE: N_("高于预期（显著）"),
    BELOW: N_("低于预期（显著）"),
    AS_EXPECTED: N_("与预期无显著差异"),
    NOT_COMPARABLE: N_("无可比数据"),
}


@dataclass(frozen=True)
class Adjusted:
    """One rate's case-mix-adjusted table: per unit O, E, rates, O/E with interval, ranks; and the settings."""

    rate: str
    table: pd.DataFrame
    resamples: int
    seed: int
    alpha: float


def _poisson_limits(observed: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) limits of Poisson means for observed counts (lower limit 0 at 0 events)."""
    low = np.where(observed > 0, sps.chi2.ppf(alpha / 2, 2 * np.maximum(observed, 1)) / 2, 0.0)
    high = sps.chi2.ppf(1 - alpha / 2, 2 * observed + 2) / 2
    return low, high


def poisson_ratio_interval(observed: float, expected: float, alpha: float = ALPHA) -> tuple[float, float]:
    """Exact (Garwood) Poisson interval of ``observed`` divided by ``expected`` (NaN when expected ≤ 0)."""
    if not expected > 0:
        return (float("nan"), float("nan"))
    low, high = _poisson_limits(np.array([float(observed)]), alpha)
    return (float(low[0]) / expected, float(high[0]) / expected)


def _check_strata(strata: pd.DataFrame) -> pd.DataFrame:
    missing = {"unit_id", "stratum", "num", "den"} - set(strata.columns)
    if missing:
        raise ValueError(f"strata lacks columns {sorted(missing)}")
    frame = strata[["unit_id", "stratum", "num", "den"]].copy()
    frame["stratum"] = frame["stratum"].fillna(-1)
    frame = frame.groupby(["unit_id", "stratum"], as_index=False)[["num", "den"]].sum()
    if (frame["num"] < 0).any() or (frame["num"] > frame["den"]).any():
        raise ValueError("each cell needs 0 <= num <= den")
    return frame


def _expected(cells: pd.DataFrame, num: np.ndarray) -> np.ndarray:
    """Per cell: den × the city's rate of the cell's stratum, for numerators ``num`` (cells × …)."""
    codes, _ = pd.factorize(cells["stratum"])
    den = cells["den"].to_numpy(dtype=float)
    city_den = np.bincount(codes, weights=den)
    if num.ndim == 1:
        city_num = np.bincount(codes, weights=num)
        rate = np.divide(city_num, city_den, out=np.zeros(city_num.shape), where=city_den > 0)
        return den * rate[codes]
    city_num = np.stack([np.bincount(codes, weights=row, minlength=len(city_den)) for row in num])
    rate = np.divide(city_num, city_den, out=np.zeros(city_num.shape), where=city_den > 0)
    return den * rate[:, codes]


def indirect_standardisation(strata: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Per unit: cases, observed, expected, observed/expected rates (%), O/E and its exact interval, verdict.

    ``strata`` has one row per unit × stratum (category) with columns ``unit_id``, ``stratum``, ``num`` and
    ``den``; the city's stratum rates are computed from the same rows.
    """
    cells = _check_strata(strata)
    cells["expected"] = _expected(cells, cells["num"].to_numpy(dtype=float))
    table = cells.groupby("unit_id").agg(
        cases=("den", "sum"), observed=("num", "sum"), expected=("expected", "sum")
    )
    table = table.astype({"cases": "int64", "observed": "int64"})
    cases = table["cases"].astype(float).where(table["cases"] > 0)
    table["observed_rate"] = table["observed"] / cases * 100.0
    table["expected_rate"] = table["expected"] / cases * 100.0
    comparable = table["expected"] > 0
    table["ratio"] = (table["observed"] / table["expected"].where(comparable)).astype(float)
    low, high = _poisson_limits(table["observed"].to_numpy(dtype=float), alpha)
    expected = table["expected"].to_numpy(dtype=float)
    safe = np.where(expected > 0, expected, np.nan)
    table["ratio_low"], table["ratio_high"] = low / safe, high / safe
    table["verdict"] = np.select(
        [~comparable, table["ratio_low"] > 1.0, table["ratio_high"] < 1.0],
        [NOT_COMPARABLE, ABOVE, BELOW],
        default=AS_EXPECTED,
    )
    return table


def _competition_ranks(values: np.ndarray) -> np.ndarray:
    """Competition ranks (1, 2, 2, 4) of each row, highest first."""
    return sps.rankdata(-values, method="min", axis=-1).astype(np.int64)


def _resample(rng: np.random.Generator, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """One resample of every cell's count: rate from Beta(num + ½, den − num + ½), count from Binomial(den, rate)."""
    rate = rng.beta(num + 0.5, den - num + 0.5)
    return rng.binomial(den, rate).astype(float)


def rank_intervals(
    strata: pd.DataFrame, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED, alpha: float = ALPHA
) -> pd.DataFrame:
    """Per comparable unit: rank of its O/E (1 = best) and the bootstrap rank interval (see the module doc)."""
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise AssessmentError("bad_resamples", N_("重抽样次数应在 1 到 {n} 之间"), n=MAX_RESAMPLES)
    cells = _check_strata(strata)
    table = indirect_standardisation(cells, alpha)
    cells = cells[cells["den"] > 0].reset_index(drop=True)  # an empty cell draws nothing: skip it
    units = table.index[table["expected"] > 0]
    out = pd.DataFrame(index=table.index, columns=["rank", "rank_low", "rank_high"], dtype="Int64")
    if len(units) == 0:
        return out
    unit_codes = pd.Index(units).get_indexer(cells["unit_id"])
    den = cells["den"].to_numpy(dtype=np.int64)
    keep = unit_codes >= 0
    observed = table.loc[units, "ratio"].to_numpy(dtype=float)
    out.loc[units, "rank"] = _competition_ranks(observed)
    num = cells["num"].to_numpy(dtype=float)
    children = np.random.SeedSequence(seed).spawn(resamples)
    step = max(1, CHUNK_CELLS // max(len(den), 1))
    ranks: list[np.ndarray] = []
    for start in range(0, resamples, step):
        draws = np.stack(
            [_resample(np.random.default_rng(child), num, den) for child in children[start : start + step]]
        )
        expected = _expected(cells, draws)
        o = np.stack(
            [np.bincount(unit_codes[keep], weights=row[keep], minlength=len(units)) for row in draws]
        )
        e = np.stack(
            [np.bincount(unit_codes[keep], weights=row[keep], minlength=len(units)) for row in expected]
        )
        # A resample can leave a unit with no expected count (its categories' city rates all drew 0):
        # it then also observed 0, which carries no evidence either way; it counts as "as expected".
        ratio = np.divide(o, e, out=np.ones_like(o), where=e > 0)
        ranks.append(_competition_ranks(ratio))
    every = np.concatenate(ranks)
    out.loc[units, "rank_low"] = np.quantile(every, alpha / 2, axis=0, method="lower").astype(np.int64)
    out.loc[units, "rank_high"] = np.quantile(every, 1 - alpha / 2, axis=0, method="higher").astype(np.int64)
    return out


def adjust(
    strata: pd.DataFrame,
    rate: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    alpha: float = ALPHA,
) -> Adjusted:
    """Indirect standardisation plus bootstrap rank intervals for one rate, ordered by rank (unranked last)."""
    table = indirect_standardisation(strata, alpha).join(rank_intervals(strata, resamples, seed, alpha))
    table = table.sort_values(["rank", "ratio"], ascending=[True, False], na_position="last")
    return Adjusted(rate, table, resamples, seed, alpha)


# --- reading the strata from the database -----------------------------------------------------------


def rate_strata(counts: pd.DataFrame, rate: str, unit_of: pd.Series | None = None) -> pd.DataFrame:
    """Strata (unit_id, stratum, num, den) of one rate from per community × category counts.

    ``counts`` is ``inputs.category_rates``' frame; ``unit_of`` maps community ids to the unit the table is
    for (a street or district); communities it does not map are dropped.
    """
    if rate not in ADJUSTED_RATES:
        raise AssessmentError(
            "unknown_rate", N_("类别构成调整只适用于：{opts}"), opts="、".join(ADJUSTED_RATES)
        )
    definition = RATE_BY_KEY[rate]
    units = counts["community_id"] if unit_of is None else counts["community_id"].map(unit_of)
    frame = pd.DataFrame(
        {
            "unit_id": units,
            "stratum": counts["category_id"],
            "num": counts[definition.numerator].astype("int64"),
            "den": counts[definition.denominator].astype("int64"),
        }
    )
    return frame.dropna(subset=["unit_id"]).astype({"unit_id": "int64"})


def community_to_level(session: Session, level: Level) -> pd.Series:
    """Map community id → the id of its ancestor at ``level`` (district, street or the community itself)."""
    rows = session.execute(select(Unit.id, Unit.parent_id, Unit.level)).all()
    parent = {r.id: r.parent_id for r in rows}
    level_of = {r.id: r.level for r in rows}
    mapping: dict[int, int] = {}
    for unit_id, unit_level in level_of.items():
        if unit_level != Level.community:
            continue
        current: int | None = unit_id
        while current is not None and LEVEL_ORDER[level_of[current]] > LEVEL_ORDER[level]:
            current = parent.get(current)
        if current is not None and level_of[current] == level:
            mapping[unit_id] = current
    return pd.Series(mapping, dtype="int64")


def adjusted_tables(
    session: Session,
    quarter: Quarter,
    level: Level = Level.community,
    rates: Sequence[str] = ADJUSTED_RATES,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Adjusted]:
    """The quarter's case-mix-adjusted tables per rate for units at ``level``, with unit code and name."""
    counts = category_rates(session, quarter)
    unit_of = None if level == Level.community else community_to_level(session, level)
    names = {
        r.id: (r.code, r.name)
        for r in session.execute(select(Unit.id, Unit.code, Unit.name).where(Unit.level == level)).all()
    }
    tables: dict[str, Adjusted] = {}
    for rate in rates:
        strata = rate_strata(counts, rate, unit_of)
        result = adjust(strata, rate, resamples, seed)
        table = result.table
        table.insert(0, "unit_code", [names.get(i, ("", ""))[0] for i in table.index])
        table.insert(1, "unit_name", [names.get(i, ("", ""))[1] for i in table.index])
        tables[rate] = result
    return tables
