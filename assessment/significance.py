"""Significance of changes against last quarter: per-leaf tests and the delta-method SE of the total."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps
from sqlalchemy import select
from sqlalchemy.orm import Session

from assessment import rules
from assessment.inputs import LeafInputs
from assessment.models import RUN_PUBLISHED, Score, ScoringRun
from assessment.vocabulary import COMPOSITE, PROPORTION_RATES, RECORDED_KINDS, parse_source
from core.models import Level
from core.quarter import Quarter
from surveys.stats import adjust_p_values, compare_proportions, z_value

ALPHA = 0.05


def previous_inputs(previous: pd.DataFrame, now: LeafInputs, half_width: pd.DataFrame) -> LeafInputs:
    """Last quarter's leaf values and sample sizes (from its published Score rows) shaped like ``now``."""
    leaves = list(now.values.columns)
    rows = previous[previous["node_code"].isin(leaves)]

    def wide(column: str) -> pd.DataFrame:
        table = rows.pivot_table(
            index="unit_id", columns="node_code", values=column, aggfunc="first", dropna=False
        )
        return table.reindex(index=now.values.index, columns=leaves).astype(float)

    return LeafInputs(wide("prev_value"), wide("prev_n"), half_width.reindex(columns=leaves))


def bh_by_group(p_values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values within each group (e.g. one indicator across all units of a
    level): every unit is tested at once, so the flags control the false discovery rate at ``ALPHA``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    keys = np.asarray(groups)
    for key in pd.unique(keys):
        mask = (keys == key) & ~np.isnan(p)
        if mask.any():
            out[mask] = adjust_p_values(p[mask], "fdr_bh")
    return out


def total_significance(long: pd.DataFrame, root_code: str, se: pd.Series | None) -> pd.DataFrame:
    """BH-adjusted p-value and significance of each unit's total change from its delta-method SE, across the
    level's units (NaN SE → 数据不足)."""
    if se is None:
        return long
    is_total = (long["node_code"] == root_code).to_numpy()
    change = long["change"].to_numpy(dtype=float, na_value=np.nan)
    sd = long["unit_id"].map(se).to_numpy(dtype=float, na_value=np.nan)
    ok = is_total & ~np.isnan(change) & (sd > 0)
    p = long["p_value"].to_numpy(dtype=float, na_value=np.nan).copy()
    p[ok] = 2.0 * sps.norm.sf(np.abs(change[ok]) / sd[ok])
    p[ok] = adjust_p_values(p[ok], "fdr_bh") if ok.any() else p[ok]
    significant = list(long["significant"])
    for i in np.flatnonzero(is_total):
        significant[i] = bool(p[i] <= ALPHA) if ok[i] else None
    return long.assign(p_value=p, significant=significant)


def previous_scores(session: Session, quarter: Quarter) -> pd.DataFrame | None:
    """Last quarter's published scores (unit_id, node_code, score, value, n), or None."""
    run_id = session.scalar(
        select(ScoringRun.id).where(
            ScoringRun.quarter == str(quarter.previous()), ScoringRun.status == RUN_PUBLISHED
        )
    )
    if run_id is None:
        return None
    rows = session.execute(
        select(Score.unit_id, Score.node_code, Score.score, Score.value, Score.n).where(
            Score.run_id == run_id
        )
    ).all()
    return pd.DataFrame(rows, columns=["unit_id", "node_code", "prev_score", "prev_value", "prev_n"])


def compare_with_previous(
    long: pd.DataFrame,
    previous: pd.DataFrame | None,
    inputs: LeafInputs,
    level: str,
    leaf_codes: set[str],
    sources: Mapping[str, str],
) -> pd.DataFrame:
    """Change against last quarter's published run and, for sampled leaves, a two-sided test of the change."""
    if previous is None:
        return long.assign(change=np.nan, p_value=np.nan, significant=None)
    merged = long.merge(previous, on=["unit_id", "node_code"], how="left")
    merged["change"] = merged["score"] - merged["prev_score"]
    p_values = np.full(len(merged), np.nan)
    if level == Level.community.value:
        kinds = {code: parse_source(sources[code]) for code in leaf_codes}
        node = merged["node_code"].to_numpy()
        value = merged["value"].to_numpy(dtype=float, na_value=np.nan)
        prev_value = merged["prev_value"].to_numpy(dtype=float, na_value=np.nan)
        n = merged["n"].to_numpy(dtype=float, na_value=np.nan)
        prev_n = merged["prev_n"].to_numpy(dtype=float, na_value=np.nan)
        both = ~np.isnan(value) & ~np.isnan(prev_value) & (n > 0) & (prev_n > 0)
        for i in np.flatnonzero(both):
            kind, key = kinds.get(str(node[i]), ("", ""))
            if kind == "case" and key in PROPORTION_RATES:
                # Rates are percentages of n: back to counts for the two-proportion test.
                s1, s2 = round(prev_value[i] / 100 * prev_n[i]), round(value[i] / 100 * n[i])
                p_values[i] = compare_proportions(int(s1), int(prev_n[i]), int(s2), int(n[i])).p_value
        # Survey indexes: z test of the difference from each quarter's CI half-width (normal approximation).
        half = inputs.half_width.stack(future_stack=True)
        survey_codes = [c for c, (k, _) in kinds.items() if k == "survey"]
        if survey_codes:
            z = z_value(0.95)
            halves = merged.set_index(["unit_id", "node_code"]).index.map(lambda key: half.get(key, np.nan))
            se_now = np.asarray(halves, dtype=float) / z
            # Previous CI is not stored; assume the same spread (conservative only when samples are alike).
            se = np.sqrt(2.0) * se_now
            diff = value - prev_value
            mask = np.isin(node, survey_codes) & both & (se > 0)
            p_values[mask] = 2.0 * sps.norm.sf(np.abs(diff[mask]) / se[mask])
    p_values = bh_by_group(p_values, merged["node_code"].to_numpy())  # one family per indicator
    merged["p_value"] = p_values
    merged["significant"] = [None if math.isnan(p) else bool(p <= ALPHA) for p in p_values]
    return merged.drop(columns=["prev_score", "prev_value", "prev_n"])


def leaf_variance(
    kind: str, key: str, value: np.ndarray, n: np.ndarray, half_width: np.ndarray
) -> np.ndarray:
    """Sampling variance of a leaf input (in its own units, e.g. percentage points²); NaN = unknown.

    * case proportion rates (and the 三率 composite, approximated as one rate over the rated cases):
      binomial, with the Agresti–Caffo adjustment p̃ = (s + 1)/(n + 2), Var = p̃(1 − p̃)/(n + 2)
      (Agresti & Caffo 2000, The American Statistician 54(4): 280–288), so 0 % and 100 % still carry error;
    * ``requests_per_1000``: Poisson count of requests, Var = value²/requests;
    * survey indexes: (CI half-width / t₀.₉₇₅,ₙ₋₁)², the t interval ``surveys.frames`` reports;
    * evaluators' entries: 0 (a recorded value, not a sample).
    """
    value = np.asarray(value, dtype=float)
    n = np.asarray(n, dtype=float)
    out = np.full(value.shape, np.nan)
    if kind in RECORDED_KINDS:
        return np.where(np.isnan(value), np.nan, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if kind == "case" and (key in PROPORTION_RATES or key == COMPOSITE):
            ok = ~np.isnan(value) & (n > 0)
            s = np.round(value / 100.0 * n)
            p = (s + 1.0) / (n + 2.0)
            out = np.where(ok, 1e4 * p * (1.0 - p) / (n + 2.0), np.nan)
        elif kind == "case":
            out = np.where(~np.isnan(value) & (n > 0), value**2 / n, np.nan)
        elif kind == "survey":
            half = np.asarray(half_width, dtype=float)
            ok = ~np.isnan(value) & (n > 1) & ~np.isnan(half)
            t = sps.t.ppf(0.975, np.where(ok, n - 1.0, 1.0))
            out = np.where(ok, (half / t) ** 2, np.nan)
    return out


def total_change_se(
    root: rules.Indicator,
    sources: Mapping[str, str],
    now: LeafInputs,
    previous: LeafInputs,
) -> pd.Series:
    """Standard error of each unit's change in total score, by the delta method; NaN = 数据不足.

    Var(Δ) ≈ Σ_leaf g² (Var_now + Var_prev), g = ∂total/∂leaf at this quarter's values (forward
    difference through ``rules.score_units``, so weights, renormalisation and clipping are those of the
    current tree), leaves independent, variances from ``leaf_variance``. The data allow it when every
    sampled leaf (case or survey) that applies in either quarter applies in both with a known variance,
    and the result is > 0 (a change made only of evaluators' entries, or a saturated score, has none).
    Limits: step rules and bound-clipped leaves have slope 0 locally, so their error is not counted.
    """
    leaves = [node.code for node in root.walk() if not node.children]
    values = now.values[leaves]
    prev = previous.values[leaves].reindex(values.index)
    prev_n = previous.n[leaves].reindex(values.index)
    prev_half = previous.half_width[leaves].reindex(values.index)
    base = rules.score_units(root, values, ceilings=now.ceilings)[rules.TOTAL_COLUMN].to_numpy(
        dtype=float, na_value=np.nan
    )
    var = np.zeros(len(values))
    known = ~np.isnan(base)
    sampled_any = np.zeros(len(values), dtype=bool)
    for code in leaves:
        kind, key = parse_source(sources[code])
        if kind in RECORDED_KINDS:
            continue
        x = values[code].to_numpy(dtype=float, na_value=np.nan)
        x_prev = prev[code].to_numpy(dtype=float, na_value=np.nan)
        v_now = leaf_variance(kind, key, x, now.n[code].to_numpy(dtype=float, na_value=np.nan),
                              now.half_width[code].to_numpy(dtype=float, na_value=np.nan))  # fmt: skip
        v_prev = leaf_variance(kind, key, x_prev, prev_n[code].to_numpy(dtype=float, na_value=np.nan),
                               prev_half[code].to_numpy(dtype=float, na_value=np.nan))  # fmt: skip
        present = ~np.isnan(x) | ~np.isnan(x_prev)
        both = ~np.isnan(v_now) & ~np.isnan(v_prev)
        known &= ~present | both
        if not both.any():
            continue
        h = 1e-6 * np.maximum(1.0, np.abs(np.nan_to_num(x)))
        bumped = values.copy()
        bumped[code] = x + h
        total = rules.score_units(root, bumped, ceilings=now.ceilings)[rules.TOTAL_COLUMN].to_numpy(
            dtype=float, na_value=np.nan
        )
        g = (total - base) / h
        contribution = np.where(both, g**2 * (v_now + v_prev), 0.0)
        var += np.nan_to_num(contribution)
        sampled_any |= both
    se = np.where(known & sampled_any & (var > 0), np.sqrt(var), np.nan)
    return pd.Series(se, index=values.index, name="se")


def rollup_se(se: pd.Series, scores: pd.Series, parent_of: Mapping[int, int], weight: pd.Series) -> pd.Series:
    """SE of a parent's change from its scored communities': √Σ(wᵢ/W)² seᵢ² (independent; NaN if any unknown)."""
    frame = pd.DataFrame({"se": se, "score": scores, "w": weight.reindex(se.index).astype(float)})
    frame = frame[frame["score"].notna() & (frame["w"] > 0)]
    frame = frame.assign(parent=frame.index.map(lambda u: parent_of.get(int(u))))
    out: dict[int, float] = {}
    for parent, group in frame.groupby("parent", sort=False):
        total_w = float(group["w"].sum())
        if group["se"].isna().any() or total_w <= 0:
            out[int(parent)] = math.nan
        else:
            out[int(parent)] = math.sqrt(float((((group["w"] / total_w) * group["se"]) ** 2).sum()))
    return pd.Series(out, dtype=float)
