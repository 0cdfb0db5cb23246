"""Indicator weights: AHP (principal eigenvector), the entropy weight method, and direct entry.

Pure functions over numbers and DataFrames, used when an evaluator builds the quarterly assessment
indicator system (考评指标体系, work plan 二(四)). Libraries disagree on the AHP priority method and on the
random-index table, and on the normalisation used by the entropy method, so each is named here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.i18n import N_, DomainError

# Saaty's random consistency index RI, Saaty (1980) *The Analytic Hierarchy Process*, McGraw-Hill,
# indexed by matrix order n. n = 1, 2 are always consistent (RI = 0, CR defined as 0).
SAATY_1980_RANDOM_INDEX: dict[int, float] = {
    1: 0.0,
    2: 0.0,
    3: 0.58,
    4: 0.90,
    5: 1.12,
    6: 1.24,
    7: 1.32,
    8: 1.41,
    9: 1.45,
    10: 1.49,
}
MAX_AHP_ORDER = max(SAATY_1980_RANDOM_INDEX)
# Saaty's rule of thumb: judgments with CR >= 0.10 should be revised.
CR_LIMIT = 0.10


class WeightError(DomainError):
    """Weights could not be derived from the input; carries a machine ``code`` and a zh-CN message."""


class InconsistentMatrixError(WeightError):
    """The pairwise comparison matrix is too inconsistent (CR ≥ 0.10); ``result`` holds what was computed."""

    def __init__(self, result: AhpResult, limit: float) -> None:
        super().__init__(
            "inconsistent_matrix",
            N_("判断矩阵一致性比率 CR = {cr:.3f}，不小于 {limit:.2f}，请调整两两比较判断后重试").format(
                cr=result.cr, limit=limit
            ),
        )
        self.result = result


@dataclass(frozen=True)
class AhpResult:
    """AHP priorities (sum 1) with the principal eigenvalue, consistency index and consistency ratio."""

    weights: tuple[float, ...]
    lambda_max: float
    ci: float
    cr: float


def ahp(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    *,
    tolerance: float = 5e-3,
    cr_limit: float = CR_LIMIT,
) -> AhpResult:
    """Derive weights from a pairwise comparison matrix by Saaty's principal right eigenvector method.

    ``a[i][j]`` says how much more important item i is than item j (Saaty's 1–9 scale). The weights are
    the real eigenvector of the largest real eigenvalue λmax (``numpy.linalg.eig``), normalised to sum 1;
    CI = (λmax − n)/(n − 1) and CR = CI/RI with RI from Saaty (1980), see ``SAATY_1980_RANDOM_INDEX``.
    ``tolerance`` bounds |a_ij·a_ji − 1| so that entries rounded to three decimals still pass.
    Raises ``WeightError`` for a malformed matrix and ``InconsistentMatrixError`` when CR ≥ ``cr_limit``.
    """
    a = _as_comparison_matrix(matrix, tolerance)
    n = a.shape[0]
    eigenvalues, eigenvectors = np.linalg.eig(a)
    # A positive matrix has a simple real Perron root that is the largest eigenvalue (Perron–Frobenius);
    # rounding can leave tiny imaginary parts, so compare real parts.
    index = int(np.argmax(eigenvalues.real))
    lambda_max = float(eigenvalues[index].real)
    vector = eigenvectors[:, index].real
    # The Perron vector has entries of one sign; dividing by the sum fixes both sign and scale.
    weights = vector / vector.sum()
    ci = 0.0 if n <= 2 else (lambda_max - n) / (n - 1)
    random_index = SAATY_1980_RANDOM_INDEX[n]
    cr = 0.0 if random_index == 0.0 else ci / random_index
    result = AhpResult(
        weights=tuple(float(w) for w in weights), lambda_max=lambda_max, ci=float(ci), cr=float(cr)
    )
    if cr >= cr_limit:
        raise InconsistentMatrixError(result, cr_limit)
    return result


def _as_comparison_matrix(matrix: Sequence[Sequence[float]] | np.ndarray, tolerance: float) -> np.ndarray:
    """Check that ``matrix`` is a square, positive, reciprocal matrix with unit diagonal; return it."""
    try:
        a = np.array(matrix, dtype=float)
    except (TypeError, ValueError) as exc:
        raise WeightError("not_numeric", N_("判断矩阵必须全部为数字")) from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise WeightError("not_square", N_("判断矩阵必须是非空方阵（行数等于列数）"))
    n = a.shape[0]
    if n > MAX_AHP_ORDER:
        raise WeightError(
            "too_large",
            N_("判断矩阵最多 {limit} 阶，当前为 {n} 阶；请将指标分组后分层比较"),
            limit=MAX_AHP_ORDER,
            n=n,
        )
    if not np.all(np.isfinite(a)) or not np.all(a > 0):
        raise WeightError("not_positive", N_("判断矩阵的元素必须都是正数"))
    if not np.allclose(np.diag(a), 1.0, rtol=0.0, atol=tolerance):
        raise WeightError("bad_diagonal", N_("判断矩阵对角线元素必须为 1"))
    product = a * a.T
    bad = np.argwhere(np.abs(product - 1.0) > tolerance)
    if bad.size:
        i, j = (int(k) for k in bad[0])
        raise WeightError(
            "not_reciprocal",
            N_(
                "判断矩阵不满足互反性：第 {i} 行第 {j} 列为 {aij:g}，"
                "第 {j} 行第 {i} 列应为其倒数，实为 {aji:g}"
            ),
            i=i + 1,
            j=j + 1,
            aij=a[i, j],
            aji=a[j, i],
        )
    return a


def entropy(
    frame: pd.DataFrame,
    benefit: Mapping[str, bool] | Sequence[str] | None = None,
) -> pd.Series:
    """Entropy weight method (熵权法) over units (rows) × indicators (columns); returns weights summing to 1.

    Normalisation is min–max per indicator: a benefit indicator (larger is better) maps x to
    (x − min)/(max − min), a cost indicator to (max − x)/(max − min). Then p_ij = x'_ij / Σ_i x'_ij,
    e_j = −(1/ln m) Σ_i p_ij ln p_ij with 0·ln 0 = 0 (m = number of rows), d_j = 1 − e_j and
    w_j = d_j / Σ_k d_k. A constant indicator carries no information: d_j = 0, weight 0.

    ``benefit`` is a mapping naming the direction of every column (True = benefit), a list of the
    benefit columns (all others are cost), or None (all benefit).
    """
    if frame.shape[1] == 0:
        raise WeightError("no_indicators", N_("没有可计算权重的指标列"))
    if frame.shape[0] < 2:
        raise WeightError("too_few_rows", N_("熵权法至少需要 2 个评价对象（行）"))
    columns = [str(c) for c in frame.columns]
    directions = _directions(columns, benefit)
    try:
        x = frame.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise WeightError("not_numeric", N_("熵权法的指标数据必须全部为数字")) from exc
    if not np.all(np.isfinite(x)):
        raise WeightError("missing_values", N_("熵权法的指标数据不能有缺失值或无穷值"))

    m = x.shape[0]
    low = x.min(axis=0)
    span = x.max(axis=0) - low
    constant = span == 0
    if constant.all():
        raise WeightError("all_constant", N_("所有指标在各评价对象间取值相同，无法用熵权法区分权重"))
    safe_span = np.where(constant, 1.0, span)
    benefit_mask = np.array([directions[c] for c in columns])
    normalised = np.where(benefit_mask, (x - low) / safe_span, (low + span - x) / safe_span)
    column_sums = normalised.sum(axis=0)
    p = np.divide(normalised, column_sums, out=np.zeros_like(normalised), where=column_sums > 0)
    # 0·ln 0 = 0: take logs only where p > 0.
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    e = -plogp.sum(axis=0) / math.log(m)
    d = np.where(constant, 0.0, 1.0 - e)
    weights = d / d.sum()
    return pd.Series(weights, index=pd.Index(columns, name=frame.columns.name), name="weight", dtype=float)


def _directions(columns: list[str], benefit: Mapping[str, bool] | Sequence[str] | None) -> dict[str, bool]:
    """Resolve the benefit/cost direction of every column, refusing unknown or missing names."""
    if benefit is None:
        return dict.fromkeys(columns, True)
    if isinstance(benefit, Mapping):
        unknown = sorted(set(map(str, benefit)) - set(columns))
        missing = [c for c in columns if c not in benefit]
        if unknown:
            raise WeightError(
                "unknown_indicator", N_("指标方向中有不存在的指标：{names}"), names="、".join(unknown)
            )
        if missing:
            raise WeightError(
                "direction_missing",
                N_("请为每个指标说明方向（正向/逆向），缺少：{names}"),
                names="、".join(missing),
            )
        return {c: bool(benefit[c]) for c in columns}
    if isinstance(benefit, str):
        benefit = [benefit]
    named = [str(c) for c in benefit]
    unknown = sorted(set(named) - set(columns))
    if unknown:
        raise WeightError(
            "unknown_indicator", N_("正向指标中有不存在的指标：{names}"), names="、".join(unknown)
        )
    return {c: c in named for c in columns}


def normalise_direct(weights: Mapping[str, float]) -> dict[str, float]:
    """Scale directly entered weights (non-negative, not all zero) so that they sum to 1."""
    if not weights:
        raise WeightError("no_weights", N_("没有填写任何权重"))
    values: dict[str, float] = {}
    for name, raw in weights.items():
        if isinstance(raw, bool):
            raise WeightError("not_numeric", N_("指标「{name}」的权重必须是数字"), name=name)
        try:
            value = float(raw)
        except (TypeError, ValueError) as exc:
            raise WeightError("not_numeric", N_("指标「{name}」的权重必须是数字"), name=name) from exc
        if not math.isfinite(value) or value < 0:
            raise WeightError("negative_weight", N_("指标「{name}」的权重必须是非负数"), name=name)
        values[name] = value
    total = math.fsum(values.values())
    if total == 0:
        raise WeightError("all_zero", N_("权重不能全部为 0"))
    return {name: value / total for name, value in values.items()}
