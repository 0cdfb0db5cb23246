"""The declared missing-data and small-sample policy of the assessment (pure functions over arrays).

A sampled input (a case rate over its denominator, a survey index over its respondents) is used as follows:

| situation (per unit and leaf)                              | flag       | value used                              | points                          |
|------------------------------------------------------------|------------|-----------------------------------------|---------------------------------|
| n ≥ the input's minimum sample (``MIN_SAMPLE``)            | —          | the unit's own value                    | by the leaf's rule              |
| 0 < n < minimum                                            | 样本不足   | shrunk toward the parent: (x·n + m·p)/(n + m) | by the leaf's rule        |
| n = 0 although data were expected (the unit had dispatched cases; a survey ran in its parent) | 无样本 | the parent's value p | by the rule, at most ``IMPUTED_CEILING`` of the leaf's points |
| n = 0 and nothing expected (no cases at all; no survey in the parent) | 不适用 | none | dropped, siblings share its weight |

x is the unit's own value, n its sample size, p the parent's pooled value (the street's Σx·n / Σn over its
communities; the district's when the street has no data; the city's when the district has none) and m the
declared prior strength ``PRIOR_STRENGTH`` (a beta-binomial / normal-normal posterior mean with the
parent's value as the prior mean worth m observations). So a unit with few ratings is pulled toward its
street, a unit with none can never earn more than its street, and no input that was expected is dropped
(dropping moved its weight to the other leaves: 0 % response and no ratings scored 25/25 on 诉求办理).
The 三率 composite is built from its three parts after this policy, so it always uses all three rates
whenever the unit had dispatched cases, and says which values it used.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.i18n import N_

# Minimum sample per input kind (case rates: cases in the denominator; survey: respondents).
MIN_SAMPLE: Mapping[str, int] = {"case": 10, "survey": 30}
# Prior strength m of the shrinkage toward the parent's value, in observations.
PRIOR_STRENGTH: Mapping[str, float] = {"case": 10.0, "survey": 10.0}
# The share of a leaf's points an imputed input (no own observation) can earn at most.
IMPUTED_CEILING = 0.8

FLAG_OK, FLAG_SMALL, FLAG_IMPUTED = "", "small_sample", "imputed"
FLAG_LABELS = {FLAG_SMALL: N_("样本不足"), FLAG_IMPUTED: N_("无样本，按上级单位估计")}


def shrink(value: np.ndarray, n: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """Posterior mean (x·n + m·p)/(n + m) of a value x observed n times with prior mean p worth m observations."""
    value = np.asarray(value, dtype=float)
    n = np.asarray(n, dtype=float)
    prior = np.asarray(prior, dtype=float)
    own = np.where(n > 0, np.nan_to_num(value) * n, 0.0)
    return (own + strength * prior) / (np.where(n > 0, n, 0.0) + strength)


def pooled(value: pd.Series, n: pd.Series, group: pd.Series) -> pd.Series:
    """Σ value·n / Σ n per group (units with n = 0 or no value left out); NaN for a group without data."""
    ok = value.notna() & (n > 0)
    frame = pd.DataFrame({"w": (value * n).where(ok, 0.0), "n": n.where(ok, 0.0), "g": group})
    sums = frame.groupby("g", sort=False)[["w", "n"]].sum()
    return sums["w"] / sums["n"].where(sums["n"] > 0)


def parent_values(value: pd.Series, n: pd.Series, street: pd.Series, district: pd.Series) -> pd.Series:
    """Each unit's parent value: its street's pooled value, else its district's, else the city's."""
    by_street = street.map(pooled(value, n, street))
    by_district = district.map(pooled(value, n, district))
    ok = value.notna() & (n > 0)
    total = float(n.where(ok, 0.0).sum())
    city = float((value * n).where(ok, 0.0).sum()) / total if total > 0 else np.nan
    return by_street.fillna(by_district).fillna(city).astype(float)


def apply(
    kind: str,
    value: pd.Series,
    n: pd.Series,
    expected: pd.Series,
    street: pd.Series,
    district: pd.Series,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The policy for one input across units: (value used, flag, parent value), all on ``value``'s index.

    ``expected`` says where an empty sample is a gap (the unit had dispatched cases; a survey ran nearby)
    rather than "not applicable".
    """
    n = n.reindex(value.index).fillna(0).astype(float)
    parent = parent_values(value, n, street.reindex(value.index), district.reindex(value.index))
    minimum, strength = MIN_SAMPLE[kind], PRIOR_STRENGTH[kind]
    has_own = value.notna() & (n > 0)
    small = has_own & (n < minimum) & parent.notna()
    gap = ~has_own & expected.reindex(value.index).fillna(False).astype(bool) & parent.notna()
    used = value.where(has_own)
    shrunk = pd.Series(shrink(value.to_numpy(), n.to_numpy(), parent.to_numpy(), strength), index=value.index)
    used = used.mask(small, shrunk).mask(gap, parent)
    flag = pd.Series(FLAG_OK, index=value.index, dtype=object).mask(small, FLAG_SMALL).mask(gap, FLAG_IMPUTED)
    return used.astype(float), flag, parent


# The policy as a table for the pages, the ledger and the README: (situation, flag, value used, points).
POLICY_ROWS: tuple[tuple[str, str, str, str], ...] = (
    (N_("样本量不少于最低样本（诉求比率 10 件，问卷 30 人）"), N_("—"), N_("本单位取值"), N_("按评分规则")),
    (
        N_("有样本但少于最低样本"),
        N_("样本不足"),
        N_("向上级单位收缩：(x·n + m·p)/(n + m)，m = 10"),
        N_("按评分规则"),
    ),
    (
        N_("应有数据而无样本（有派单工单却无评价、无办结；所在区开展了问卷而本社区无人作答）"),
        N_("无样本"),
        N_("上级单位（街道→区→全市）合并比率"),
        N_("按评分规则，最多得该项 80% 分值"),
    ),
    (
        N_("本无数据（本季度无工单；所在区未开展问卷）"),
        N_("不适用"),
        N_("无"),
        N_("不计，权重由同级指标分摊"),
    ),
)
