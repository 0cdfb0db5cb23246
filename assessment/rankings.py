"""Ranking and roll-up of unit scores: the declared tie rules and the population-weighted mean."""

from __future__ import annotations

from collections.abc import Mapping

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
            N_("未知的并列名次规则：{tie}（可选：{rules}）").format(tie=tie, rules="、".join(TIE_RULES)),
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
        raise ScoringError(
            "unknown_parent", N_("以下单位没有上级单位：{codes}").format(codes="、".join(unknown))
        )
    score = pd.to_numeric(unit_scores, errors="raise").astype(float).to_numpy()
    if weights is None:
        weight = np.ones(len(unit_scores))
    else:
        lacking = [str(code) for code in unit_scores.index if code not in weights]
        if lacking:
            raise ScoringError(
                "missing_weight", N_("以下单位缺少权重（如人口）：{codes}").format(codes="、".join(lacking))
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
