"""Statistics for the quarterly public-service satisfaction survey: pure functions over numpy/pandas.

Satisfaction index (0–100)
--------------------------
A Likert answer x on a ``points``-point scale (1 = 很不满意 … points = 很满意) maps linearly to

    index(x) = (x − 1) / (points − 1) × 100

so on the usual 5-point scale 1, 2, 3, 4, 5 → 0, 25, 50, 75, 100. "不了解/不适用" answers are stored as
NaN/None: they are neither 0 nor 50, they are kept out of every numerator and denominator. A respondent's
score is the mean of the items they answered; a respondent who answered none is left out. The index of a
unit is the (optionally weighted) mean of respondent scores, with a t interval on those scores (for weighted
data the degrees of freedom come from Kish's effective sample size, see :func:`mean_t_interval`).

Weights
-------
:func:`poststratify` and :func:`rake` return weights that sum to the sample size (mean weight 1); multiply
by N/n for expansion weights. Population figures may be given as counts or shares: they are normalised to
shares.

Errors
------
Bad input raises :class:`StatsError` (a ``ValueError``) with a short machine ``code`` and a zh-CN message.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "IndexResult",
    "ProportionComparison",
    "StatsError",
    "adjust_p_values",
    "bounded_interval",
    "compare_proportions",
    "compare_quarters",
    "cronbach_alpha",
    "kish_effective_n",
    "likert_to_index",
    "mean_t_interval",
    "poststratify",
    "rake",
    "required_sample_size",
    "required_sample_size_mean",
    "satisfaction_index",
    "wilson_interval",
    "wilson_interval_array",
    "z_value",
]

FloatArray = NDArray[np.float64]
LikertInput = TypeVar("LikertInput", pd.DataFrame, pd.Series, FloatArray)


class StatsError(ValueError):
    """Bad input to a statistics function: ``code`` is for machines, the message is for people (zh-CN)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------- helpers


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, int | float) and 0.0 < float(confidence) < 1.0):
        raise StatsError("bad_confidence", f"置信水平必须在 0 与 1 之间（不含端点），收到 {confidence!r}。")


def z_value(confidence: float = 0.95) -> float:
    """Two-sided standard-normal critical value for ``confidence`` (0.95 → 1.959964…)."""
    _check_confidence(confidence)
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def _to_float_array(values: Any, code: str, what: str) -> FloatArray:
    """Convert scalars, sequences, Series or DataFrames to a float array; None/pd.NA become NaN."""
    try:
        if isinstance(values, pd.DataFrame | pd.Series):
            return np.asarray(values.to_numpy(dtype=float, na_value=np.nan), dtype=float)
        objects = np.asarray(values, dtype=object)
        flat = pd.Series(objects.ravel(), dtype=object).to_numpy(dtype=float, na_value=np.nan)
        return flat.reshape(objects.shape)
    except (TypeError, ValueError) as exc:
        raise StatsError(code, f"{what}必须是数值（缺失用空值表示）。") from exc


def _check_weights(weights: Any, n: int, index: pd.Index | None = None) -> FloatArray:
    """Weights aligned to the data: a Series is aligned by index, anything else by position."""
    if isinstance(weights, pd.Series) and index is not None:
        if not weights.index.is_unique or not index.isin(weights.index).all():
            raise StatsError("bad_weights", "权重的索引与数据不一致。")
        weights = weights.reindex(index)
    w = _to_float_array(weights, "bad_weights", "权重")
    if w.shape != (n,):
        raise StatsError("bad_weights", f"权重个数（{w.size}）与观测个数（{n}）不一致。")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise StatsError("bad_weights", "权重必须是有限的非负数。")
    return w


def kish_effective_n(weights: ArrayLike) -> float:
    """Kish's effective sample size (Σw)² / Σw² (Kish 1965, *Survey Sampling*, §11.7)."""
    w = _to_float_array(weights, "bad_weights", "权重")
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise StatsError("bad_weights", "权重必须是有限的非负数，且总和大于 0。")
    return float(w.sum() ** 2 / np.square(w).sum())


# --------------------------------------------------------------------------------------------- proportions


def wilson_interval_array(
    successes: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Vectorised Wilson score interval; entries with n == 0 give NaN bounds instead of raising."""
    z = z_value(confidence)
    s_arr, n_arr = np.broadcast_arrays(
        _to_float_array(successes, "bad_count", "成功数"), _to_float_array(n, "bad_count", "样本量")
    )
    if np.ndim(successes) == 0 and np.ndim(n) == 0:
        s_arr, n_arr = s_arr.reshape(1), n_arr.reshape(1)
    if not (np.all(np.isfinite(s_arr)) and np.all(np.isfinite(n_arr))):
        raise StatsError("bad_count", "成功数和样本量不能为空值或无穷大。")
    if np.any(n_arr < 0) or np.any(s_arr < 0) or np.any(s_arr > n_arr):
        raise StatsError("bad_count", "必须满足 0 ≤ 成功数 ≤ 样本量。")
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        p = s_arr / n_arr
        denom = 1.0 + z2 / n_arr
        centre = (p + z2 / (2.0 * n_arr)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n_arr + z2 / (4.0 * n_arr * n_arr))
    low = np.clip(centre - half, 0.0, 1.0)
    high = np.clip(centre + half, 0.0, 1.0)
    # The bounds are exactly 0 and 1 at the edges; rounding would leave ±1e-17 otherwise.
    low = np.where(s_arr == 0, 0.0, low)
    high = np.where(s_arr == n_arr, 1.0, high)
    empty = n_arr == 0
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    return low.astype(float), high.astype(float)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) for the proportion successes / n."""
    if n == 0:
        raise StatsError("empty", "样本量为 0，无法计算比例的置信区间。")
    low, high = wilson_interval_array(successes, n, confidence)
    return float(low[0]), float(high[0])


@dataclass(frozen=True, slots=True)
class ProportionComparison:
    """Two-sided test of p1 = p2; ``statistic`` is z (z test) or the sample odds ratio (Fisher)."""

    p1: float
    p2: float
    difference: float
    statistic: float
    p_value: float
    method: Literal["z", "fisher"]


def compare_proportions(
    s1: int, n1: int, s2: int, n2: int, method: Literal["auto", "z", "fisher"] = "auto"
) -> ProportionComparison:
    """Two-proportion pooled z test, or Fisher's exact test when an expected count is below 5 ("auto")."""
    for s, n in ((s1, n1), (s2, n2)):
        if n == 0:
            raise StatsError("empty", "样本量为 0，无法比较比例。")
        if not (0 <= s <= n) or int(s) != s or int(n) != n:
            raise StatsError("bad_count", "必须满足 0 ≤ 成功数 ≤ 样本量，且都是整数。")
    if method not in ("auto", "z", "fisher"):
        raise StatsError("bad_method", f"未知的检验方法：{method!r}。")
    p1, p2 = s1 / n1, s2 / n2
    pooled = (s1 + s2) / (n1 + n2)
    if method == "auto":
        # Cochran's rule: the normal approximation needs every expected cell count ≥ 5.
        expected = np.array([n1, n2]) * np.array([[pooled], [1.0 - pooled]])
        method = "fisher" if bool(np.any(expected < 5)) else "z"
    if method == "fisher":
        table = [[int(s1), int(n1 - s1)], [int(s2), int(n2 - s2)]]
        res = sps.fisher_exact(table, alternative="two-sided")
        return ProportionComparison(p1, p2, p1 - p2, float(res.statistic), float(res.pvalue), "fisher")
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        # Pooled proportion 0 or 1 means both samples are all-failure or all-success: no difference at all.
        return ProportionComparison(p1, p2, 0.0, 0.0, 1.0, "z")
    z = (p1 - p2) / se
    return ProportionComparison(p1, p2, p1 - p2, z, float(2.0 * sps.norm.sf(abs(z))), "z")


# --------------------------------------------------------------------------------------------- reliability


def cronbach_alpha(frame: pd.DataFrame) -> float:
    """Cronbach's alpha (1951) of item columns, rows with any missing answer deleted listwise."""
    if not isinstance(frame, pd.DataFrame):
        raise StatsError("bad_input", "需要一个以受访者为行、题目为列的表格。")
    data = _to_float_array(frame, "bad_input", "题目得分")
    k = data.shape[1]
    if k < 2:
        raise StatsError("too_few_items", "计算 Cronbach α 至少需要 2 道题。")
    complete = data[~np.isnan(data).any(axis=1)]
    if complete.shape[0] < 2:
        raise StatsError("too_few_rows", "计算 Cronbach α 至少需要 2 份完整作答的问卷。")
    item_var = complete.var(axis=0, ddof=1).sum()
    total_var = complete.sum(axis=1).var(ddof=1)
    if total_var == 0:
        raise StatsError("no_variance", "总分没有差异（方差为 0），无法计算 Cronbach α。")
    return float(k / (k - 1) * (1.0 - item_var / total_var))


# ------------------------------------------------------------------------------------- satisfaction index


def likert_to_index(values: LikertInput | Sequence[Any] | float | None, points: int = 5) -> Any:
    """Map Likert answers 1..points to 0..100 by (x − 1)/(points − 1)·100; NaN/None (不了解) stay NaN."""
    if isinstance(points, bool) or not isinstance(points, int | np.integer) or points < 2:
        raise StatsError("bad_points", f"量表级数必须是不小于 2 的整数，收到 {points!r}。")
    arr = _to_float_array(values, "bad_likert", "量表答案")
    if isinstance(values, pd.DataFrame | pd.Series):
        arr = arr.reshape(values.shape)
    answered = arr[~np.isnan(arr)]
    if np.any((answered < 1) | (answered > points) | (answered != np.round(answered))):
        raise StatsError("bad_likert", f"量表答案必须是 1 到 {points} 的整数（不了解/不适用请留空）。")
    scores = (arr - 1.0) / (points - 1) * 100.0
    if isinstance(values, pd.DataFrame):
        return pd.DataFrame(scores, index=values.index, columns=values.columns)
    if isinstance(values, pd.Series):
        return pd.Series(scores, index=values.index, name=values.name)
    return scores


def mean_t_interval(
    values: ArrayLike, confidence: float = 0.95, weights: ArrayLike | None = None
) -> tuple[float, float, float]:
    """Mean with a Student-t interval; NaNs dropped; weighted: Kish n_eff for the SE and df = n_eff − 1.

    With weights, mean = Σwx/Σw, s² = Σw(x − mean)²/Σw · n_eff/(n_eff − 1), SE = s/√n_eff; equal weights
    give the ordinary interval. With n_eff ≤ 1 the bounds are NaN (no spread can be estimated).
    """
    _check_confidence(confidence)
    x = np.atleast_1d(_to_float_array(values, "bad_values", "数值")).ravel()
    w = np.ones_like(x) if weights is None else _check_weights(weights, x.size)
    keep = ~np.isnan(x)
    x, w = x[keep], w[keep]
    if x.size == 0:
        raise StatsError("empty", "没有有效数值，无法计算均值。")
    if w.sum() <= 0:
        raise StatsError("bad_weights", "有效观测的权重总和必须大于 0。")
    mean = float(np.sum(w * x) / w.sum())
    n_eff = float(w.sum() ** 2 / np.square(w).sum())
    if n_eff <= 1.0 + 1e-12:
        return mean, math.nan, math.nan
    var = float(np.sum(w * np.square(x - mean)) / w.sum()) * n_eff / (n_eff - 1.0)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df=n_eff - 1.0)) * math.sqrt(var / n_eff)
    return mean, mean - half, mean + half


def bounded_interval(
    mean: ArrayLike, half: ArrayLike, lower: float = 0.0, upper: float = 100.0
) -> tuple[FloatArray, FloatArray]:
    """A symmetric interval ``mean ± half`` (e.g. Student t) redrawn on the logit scale so it stays in bounds.

    With p = (mean − lower)/(upper − lower) strictly inside (0, 1) and half > 0 the interval is
    expit(logit p ± (half/range)/(p(1 − p))) mapped back (the delta method on the logit: the same width
    near the middle, squeezed near the bounds, never outside them); at a bound, or with no spread, the
    ordinary interval clipped to [lower, upper]. NaN half-widths (n < 2) stay NaN.
    """
    m = np.asarray(mean, dtype=float)
    h = np.asarray(half, dtype=float)
    span = upper - lower
    p = (m - lower) / span
    inside = (p > 0) & (p < 1) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        centre = np.log(p / (1 - p))
        width = (h / span) / (p * (1 - p))
        lo = lower + span / (1 + np.exp(-(centre - width)))
        hi = lower + span / (1 + np.exp(-(centre + width)))
    low = np.where(inside, lo, np.clip(m - h, lower, upper))
    high = np.where(inside, hi, np.clip(m + h, lower, upper))
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


@dataclass(frozen=True, slots=True)
class IndexResult:
    """A satisfaction index (0–100) with respondent count, Kish effective n and a t interval on the logit scale."""

    index: float
    n: int
    low: float
    high: float
    n_effective: float


def satisfaction_index(
    frame_or_series: pd.DataFrame | pd.Series,
    weights: pd.Series | ArrayLike | None = None,
    points: int | None = 5,
    confidence: float = 0.95,
) -> IndexResult:
    """Satisfaction index 0–100: mean over respondents of their mean answered-item score, with t interval.

    Rows are respondents, columns items, cells Likert answers 1..points (NaN = 不了解/不适用). With
    ``points=None`` the cells are already 0–100 scores. ``weights`` (a Series is aligned by index) are
    respondent weights, e.g. from :func:`rake`.
    """
    frame = frame_or_series.to_frame() if isinstance(frame_or_series, pd.Series) else frame_or_series
    if not isinstance(frame, pd.DataFrame):
        raise StatsError("bad_input", "需要一个以受访者为行、题目为列的表格。")
    if points is None:
        scores = _to_float_array(frame, "bad_values", "得分").reshape(frame.shape)
        answered = scores[~np.isnan(scores)]
        if np.any((answered < 0) | (answered > 100)):
            raise StatsError("bad_values", "满意度得分必须在 0 到 100 之间。")
    else:
        scores = likert_to_index(frame, points).to_numpy(dtype=float)
    w = None if weights is None else _check_weights(weights, frame.shape[0], frame.index)
    has_answer = ~np.isnan(scores).all(axis=1)
    if not has_answer.any():
        raise StatsError("empty", "没有任何有效作答，无法计算满意度指数。")
    respondent = np.nanmean(scores[has_answer], axis=1)
    rw = None if w is None else w[has_answer]
    mean, low, high = mean_t_interval(respondent, confidence, rw)
    bounded = bounded_interval(mean, (high - low) / 2)  # an index stays inside 0–100
    low, high = float(bounded[0]), float(bounded[1])
    n_eff = float(respondent.size) if rw is None else kish_effective_n(rw)
    return IndexResult(index=mean, n=int(respondent.size), low=low, high=high, n_effective=n_eff)


# ----------------------------------------------------------------------------------------------- weighting


def _as_shares(population: Mapping[Any, float] | pd.Series, what: str) -> pd.Series:
    """Population counts or shares → shares summing to 1 (index = categories or cell tuples)."""
    series = population if isinstance(population, pd.Series) else pd.Series(dict(population), dtype=float)
    if series.empty or not series.index.is_unique:
        raise StatsError("bad_margin", f"{what}不能为空，且类别不能重复。")
    values = _to_float_array(series, "bad_margin", what)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise StatsError("bad_margin", f"{what}必须是有限的非负数，且总和大于 0。")
    return pd.Series(values / values.sum(), index=series.index)


def _check_columns(sample: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(sample, pd.DataFrame) or sample.empty:
        raise StatsError("empty", "样本为空，无法计算权重。")
    missing = [c for c in columns if c not in sample.columns]
    if missing:
        raise StatsError("missing_column", f"样本中缺少列：{', '.join(map(str, missing))}。")
    if sample[list(columns)].isna().to_numpy().any():
        raise StatsError("missing_value", f"加权变量（{', '.join(map(str, columns))}）中有空值。")


def _cell_key(key: Hashable, width: int) -> Hashable:
    """Normalise a population key: scalars for one variable, tuples for several."""
    if width == 1 and isinstance(key, tuple) and len(key) == 1:
        return key[0]
    return key


def poststratify(
    sample: pd.DataFrame, population: Mapping[Any, float] | pd.Series, by: list[str]
) -> pd.Series:
    """Post-stratification weights: each cell of ``by`` gets weight population share / sample share.

    ``population`` maps a cell (a value for one variable, a tuple for several) to its count or share.
    Weights sum to the sample size. A populated cell with no respondents, or a respondent in a cell the
    population lacks, raises :class:`StatsError`.
    """
    if not by:
        raise StatsError("missing_column", "至少需要一个分层变量。")
    _check_columns(sample, by)
    shares = _as_shares(population, "总体构成")
    pop = {_cell_key(k, len(by)): float(v) for k, v in shares.items()}
    grouped = sample.groupby(by if len(by) > 1 else by[0], sort=False)
    sizes = grouped.size()
    codes = grouped.ngroup().to_numpy()
    cells = [_cell_key(k, len(by)) for k in sizes.index]
    unknown = [c for c in cells if c not in pop]
    if unknown:
        raise StatsError("unknown_cell", f"样本中的分层在总体中不存在：{unknown[:5]}。")
    present = set(cells)
    empty = [c for c, share in pop.items() if share > 0 and c not in present]
    if empty:
        raise StatsError("empty_cell", f"以下分层在样本中没有受访者，无法事后分层：{empty[:5]}。")
    n = len(sample)
    cell_weight = np.array([pop[c] * n / size for c, size in zip(cells, sizes.to_numpy(), strict=True)])
    return pd.Series(cell_weight[codes], index=sample.index, name="weight")


def rake(
    sample: pd.DataFrame,
    margins: Mapping[str, Mapping[Any, float] | pd.Series],
    max_iter: int = 100,
    tol: float = 1e-8,
) -> pd.Series:
    """Raking (iterative proportional fitting, Deming & Stephan 1940) of weights to several margins.

    ``margins`` maps a column to its population counts or shares by category. Converged when every
    weighted margin share is within ``tol`` of its target after a full cycle; weights sum to the sample size.
    """
    if not margins:
        raise StatsError("bad_margin", "至少需要一个边际分布。")
    if max_iter < 1 or not tol > 0:
        raise StatsError("bad_option", "最大迭代次数必须 ≥ 1，容差必须 > 0。")
    columns = list(margins)
    _check_columns(sample, columns)
    n = len(sample)
    fitted: list[tuple[NDArray[np.intp], FloatArray]] = []
    for column in columns:
        target = _as_shares(margins[column], f"“{column}”的边际分布")
        codes = target.index.get_indexer(pd.Index(sample[column]))
        if np.any(codes < 0):
            extra = pd.unique(sample[column].to_numpy()[codes < 0])
            raise StatsError("unknown_cell", f"“{column}”中有总体边际里不存在的类别：{list(extra[:5])}。")
        counts = np.bincount(codes, minlength=target.size)
        absent = target.index[(counts == 0) & (target.to_numpy() > 0)]
        if len(absent):
            raise StatsError("empty_cell", f"“{column}”的类别在样本中没有受访者：{list(absent[:5])}。")
        fitted.append((codes, target.to_numpy()))
    w = np.ones(n)
    for _ in range(max_iter):
        for codes, target in fitted:
            totals = np.bincount(codes, weights=w, minlength=target.size)
            if np.any((totals <= 0) & (target > 0)):
                # Another margin's zero share emptied every respondent of this category.
                raise StatsError("not_converged", "边际分布相互矛盾，加权无法收敛。")
            factor = np.divide(target * w.sum(), totals, out=np.zeros_like(totals), where=totals > 0)
            w = w * factor[codes]
        worst = max(
            float(np.max(np.abs(np.bincount(c, weights=w, minlength=t.size) / n - t))) for c, t in fitted
        )
        if worst < tol:
            return pd.Series(w, index=sample.index, name="weight")
    raise StatsError("not_converged", f"迭代 {max_iter} 次后加权仍未收敛（容差 {tol}）。")


# ----------------------------------------------------------------------------------- quarter-over-quarter


def adjust_p_values(p_values: ArrayLike, method: Literal["fdr_bh", "holm"] = "fdr_bh") -> FloatArray:
    """Multiplicity-adjusted p-values (Benjamini–Hochberg 1995 or Holm 1979); NaNs stay NaN, uncounted."""
    p = _to_float_array(p_values, "bad_p", "p 值")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise StatsError("bad_p", "p 值必须在 0 与 1 之间。")
    out = np.full_like(p, np.nan)
    if not finite.any():
        return out
    valid = p[finite]
    if method == "fdr_bh":
        out[finite] = sps.false_discovery_control(valid, method="bh")
    elif method == "holm":
        # Holm step-down: the i-th smallest p (1-based) times (m − i + 1), made monotone, capped at 1.
        m = valid.size
        order = np.argsort(valid, kind="stable")
        stepped = np.maximum.accumulate(valid[order] * (m - np.arange(m)))
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
        out[finite] = adjusted
    else:
        raise StatsError("bad_method", f"未知的多重比较校正方法：{method!r}。")
    return out


def compare_quarters(
    prev: pd.DataFrame,
    curr: pd.DataFrame,
    group: str,
    value: str,
    method: Literal["welch", "mannwhitney"] = "welch",
    alpha: float = 0.05,
    correction: Literal["fdr_bh", "holm"] = "fdr_bh",
) -> pd.DataFrame:
    """Per-group change of ``value`` from ``prev`` to ``curr`` quarter, tested and corrected for multiplicity.

    Returns one row per group (sorted) with n_prev, n_curr, mean_prev, mean_curr, change, p_value,
    p_adjusted, significant. Groups with fewer than 2 observations on a side, or with no spread on both
    sides (Welch), get NaN p-values and are left out of the correction.
    """
    if method not in ("welch", "mannwhitney"):
        raise StatsError("bad_method", f"未知的检验方法：{method!r}。")
    if correction not in ("fdr_bh", "holm"):
        raise StatsError("bad_method", f"未知的多重比较校正方法：{correction!r}。")
    if not 0.0 < alpha < 1.0:
        raise StatsError("bad_alpha", f"显著性水平必须在 0 与 1 之间，收到 {alpha!r}。")
    sides = []
    for frame in (prev, curr):
        if not isinstance(frame, pd.DataFrame) or group not in frame.columns or value not in frame.columns:
            raise StatsError("missing_column", f"数据中需要“{group}”和“{value}”两列。")
        numbers = pd.Series(_to_float_array(frame[value], "bad_values", "指标值"), index=frame.index)
        side = pd.DataFrame({"g": frame[group], "v": numbers}).dropna()
        sides.append(side)
    stats = []
    for side in sides:
        agg = side.groupby("g")["v"].agg(["count", "mean", "var"])
        stats.append(agg)
    groups = stats[0].index.union(stats[1].index).sort_values()
    a, b = (s.reindex(groups) for s in stats)
    n_prev = a["count"].fillna(0).to_numpy(dtype=int)
    n_curr = b["count"].fillna(0).to_numpy(dtype=int)
    mean_prev, mean_curr = a["mean"].to_numpy(dtype=float), b["mean"].to_numpy(dtype=float)
    var_prev, var_curr = a["var"].to_numpy(dtype=float), b["var"].to_numpy(dtype=float)
    p_value = np.full(len(groups), np.nan)
    testable = (n_prev >= 2) & (n_curr >= 2)
    if method == "welch":
        # From summary statistics: scipy's raw-data path warns on constant samples (all 100s is common).
        testable &= (var_prev + var_curr) > 0
        if testable.any():
            res = sps.ttest_ind_from_stats(
                mean_prev[testable],
                np.sqrt(var_prev[testable]),
                n_prev[testable],
                mean_curr[testable],
                np.sqrt(var_curr[testable]),
                n_curr[testable],
                equal_var=False,
            )
            p_value[testable] = res.pvalue
    else:
        values = [side.groupby("g")["v"].apply(np.asarray) for side in sides]
        for i in np.flatnonzero(testable):
            key = groups[i]
            res_mw = sps.mannwhitneyu(values[0][key], values[1][key], alternative="two-sided")
            p_value[i] = float(res_mw.pvalue)
    p_adjusted = adjust_p_values(p_value, correction)
    significant = np.where(np.isnan(p_adjusted), False, p_adjusted <= alpha)
    return pd.DataFrame(
        {
            "n_prev": n_prev,
            "n_curr": n_curr,
            "mean_prev": mean_prev,
            "mean_curr": mean_curr,
            "change": mean_curr - mean_prev,
            "p_value": p_value,
            "p_adjusted": p_adjusted,
            "significant": significant.astype(bool),
        },
        index=pd.Index(groups, name=group),
    )


# ------------------------------------------------------------------------------------------- sample size


def _finite_population(n0: float, population: int | None, proportion: bool) -> int:
    """Apply Cochran's finite population correction to n0 and round up (capped at N).

    Cochran (1977), *Sampling Techniques*, 3rd ed.: for a proportion V(p) carries (N − n)/(N − 1), which
    gives n = n0 / (1 + (n0 − 1)/N) (eq. 4.2); for a mean V(ȳ) carries (1 − n/N), giving n0 / (1 + n0/N).
    """
    if population is not None:
        if isinstance(population, bool) or not isinstance(population, int | np.integer) or population < 1:
            raise StatsError("bad_population", f"总体规模必须是正整数，收到 {population!r}。")
        n0 = n0 / (1.0 + ((n0 - 1.0) if proportion else n0) / population)
    # Tolerance so a value that is an integer up to rounding (e.g. 96.000000001) is not pushed up by one.
    n = math.ceil(n0 - 1e-9)
    return int(min(n, population)) if population is not None else int(n)


def required_sample_size(
    margin: float, confidence: float = 0.95, p: float = 0.5, population: int | None = None
) -> int:
    """Respondents needed for a proportion within ±margin: n0 = z²p(1−p)/margin², then Cochran's FPC."""
    if not 0.0 < margin < 1.0:
        raise StatsError("bad_margin_of_error", f"误差范围必须在 0 与 1 之间，收到 {margin!r}。")
    if not 0.0 < p < 1.0:
        raise StatsError("bad_p", f"预期比例必须在 0 与 1 之间（不含端点），收到 {p!r}。")
    z = z_value(confidence)
    return _finite_population(z * z * p * (1.0 - p) / (margin * margin), population, proportion=True)


def required_sample_size_mean(
    margin: float, sd: float, confidence: float = 0.95, population: int | None = None
) -> int:
    """Respondents needed to estimate a mean within ±margin: n0 = (z·sd/margin)², then Cochran's FPC."""
    if not (math.isfinite(margin) and margin > 0):
        raise StatsError("bad_margin_of_error", f"误差范围必须是正数，收到 {margin!r}。")
    if not (math.isfinite(sd) and sd > 0):
        raise StatsError("bad_sd", f"标准差必须是正数，收到 {sd!r}。")
    z = z_value(confidence)
    return _finite_population((z * sd / margin) ** 2, population, proportion=False)
