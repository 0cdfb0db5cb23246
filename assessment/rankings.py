"""Ranking and roll-up of unit scores: the declared tie rules and the population-weighted mean."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from assessment.rules import ScoringError, _number
from core.i18n import N_

TIE_RULES: dict[str, str] = {
    "min": N_("竞争排名（1, 2, 2, 4）：并列者取最高名次，其后名次跳过"),
    "dense": N_("密集排名（1, 2, 2, 3）：并列者同名次，其后名次不跳过"),
    "first": N_("按出现顺序（1, 2, 3, 4）：并列者按数据顺序排先后"),
}


def rank(scores: pd.Series, tie: str = "min") -> pd.Series:
    """Rank units highest score first; default tie rule is competition ranking (1, 2, 2, 4).

    ``tie`` is one of ``TIE_RULES``: ``'min'`` competition ranking, ``'dense'`` (1, 2, 2, 3), ``'first'``
    (order of appearance). Missing scores get no rank (<NA>).
    """
    if tie not in TIE_RULES:
        raise ScoringError(
            "bad_tie_rule",
            N_("未知的并列名次规则：{tie}（可选：{rules}）"),
            tie=tie,
            rules="、".join(TIE_RULES),
        )
    numeric = pd.to_numeric(scores, errors="raise").astype(float)
    ranks = numeric.rank(method=tie, ascending=False, na_option="keep")
    return ranks.astype("Int64").rename("rank")


def rollup(
    unit_scores: pd.Series,
    parent_of: Mapping[str, str],
    weights: Mapping[str, float] | None = None,
) -> pd.Series:
    """Roll unit scores up one level (community → street, or straight to district): weighted or plain mean.

    ``weights`` (e.g. population) gives each unit's weight; without it every unit counts equally. Units
    without a score (NaN) are left out of their parent's mean; a parent with no scored unit gets NaN.
    """
    unknown = [str(code) for code in unit_scores.index if code not in parent_of]
    if unknown:
        raise ScoringError("unknown_parent", N_("以下单位没有上级单位：{codes}"), codes="、".join(unknown))
    score = pd.to_numeric(unit_scores, errors="raise").astype(float).to_numpy()
    if weights is None:
        weight = np.ones(len(unit_scores))
    else:
        lacking = [str(code) for code in unit_scores.index if code not in weights]
        if lacking:
            raise ScoringError(
                "missing_weight", N_("以下单位缺少权重（如人口）：{codes}"), codes="、".join(lacking)
            )
        weight = np.array([_number(weights[code], N_("单位权重")) for code in unit_scores.index])
        if (weight < 0).any():
            raise ScoringError("negative_weight", N_("单位权重不能为负数"))
    used = ~np.isnan(score)
    parents = pd.Index([parent_of[code] for code in unit_scores.index], name="parent")
    frame = pd.DataFrame(
        {"weighted": np.where(used, score * weight, 0.0), "weight": np.where(used, weight, 0.0)},
        index=parents,
    )
    sums = frame.groupby(level=0, sort=True).sum()
    result = sums["weighted"] / sums["weight"].where(sums["weight"] > 0)
    return result.rename("score")


TOP_N = 10


def whole_ranks(ranks: pd.Series) -> pd.Series:
    """Ranks as Python ints (1, 2, 2, 4 — never 1.0) or None, in an object column templates can test."""
    return pd.Series(
        [None if r is None or pd.isna(r) else round(float(r)) for r in ranks], index=ranks.index, dtype=object
    )


@dataclass(frozen=True)
class Standing:
    """A level's units split for display: the best, the worst (never overlapping) and those without a score."""

    ranked: pd.DataFrame  # every scored unit, best first
    top: pd.DataFrame
    bottom: pd.DataFrame  # worst last
    unscored: pd.DataFrame  # no score: listed apart, never ranked


def standing(frame: pd.DataFrame, k: int = TOP_N) -> Standing:
    """Split a frame with ``score`` and ``rank`` columns: top k and bottom k of the scored units only.

    With fewer than 2k scored units the lists share them out without overlap: the top takes ⌈n/2⌉ (at most
    k), the bottom the rest (at most k). Ranks come back as whole numbers (``whole_ranks``).
    """
    scored = frame[frame["score"].notna()].copy()
    scored["rank"] = whole_ranks(scored["rank"])
    scored = scored.assign(_order=[float("inf") if r is None else r for r in scored["rank"]])
    order = ["_order", "unit_code"] if "unit_code" in scored.columns else ["_order"]
    scored = scored.sort_values(order, kind="stable").drop(columns="_order")
    n = len(scored)
    top_n = min(k, (n + 1) // 2)
    bottom_n = min(k, n - top_n)
    unscored = frame[frame["score"].isna()].assign(rank=None)
    return Standing(
        scored, scored.head(top_n), scored.tail(bottom_n) if bottom_n else scored.head(0), unscored
    )
