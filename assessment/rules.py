"""Pure quarterly assessment scoring rules (考评) of units against an indicator tree (work plan 二(四)).

The tree and the arithmetic, in one place:

* Every indicator has a ``weight``; siblings' weights are relative (they need not sum to 1). A node's
  *nominal share* of the total is the product of its and its ancestors' weights, each normalised
  over the scoring siblings. A leaf's rule is evaluated against its nominal points
  (nominal share × full marks), so "每项扣 2 分" means 2 of the points printed in the indicator table.
* Not applicable (value None/NaN): the leaf drops out and its siblings that apply share its weight
  in proportion to their own (renormalisation); a node whose scoring children all drop out is itself
  not applicable. A leaf's achievement ratio (rule score ÷ nominal points) is multiplied by its
  *effective* points (effective share × full marks).
* ``Bonus`` leaves (加分项) take no weight: their points (per item, capped) are added on top of their
  parent's points, so a total may exceed full marks by at most the sum of the bonus caps.
* ``Veto`` leaves (一票否决): with ``veto_scope='leaf'`` the leaf is an ordinary weighted pass/fail item
  (full or 0); with ``'node'`` it is a gate without weight and, when crossed, its parent's whole
  subtree scores 0; with ``'unit'`` the unit's whole tree, total included, scores 0.

``score_tree`` explains one unit node by node; ``score_units`` computes the same numbers for many units
with numpy, one array per indicator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd

from core.i18n import N_, DomainError

VetoScope = Literal["leaf", "node", "unit"]
VETO_SCOPES: tuple[str, ...] = ("leaf", "node", "unit")
TOTAL_COLUMN = "total"
VETOED_COLUMN = "vetoed"
NOT_APPLICABLE_TEXT = N_("无数据，不适用，其权重由同级适用指标按比例分摊")


class ScoringError(DomainError):
    """A rule, indicator tree or data set was refused; carries a machine ``code`` and a zh-CN message."""


@dataclass(frozen=True)
class RuleOutcome:
    """One rule applied to one value: points (None = not applicable), veto flag and a zh-CN explanation."""

    score: float | None
    vetoed: bool
    explanation: str


def _fmt(x: float) -> str:
    """Format an input value compactly (0.875, 87.5, 3) for explanations."""
    return f"{x:.6g}"


def _number(value: Any, what: str) -> float:
    """Return ``value`` as a finite float or raise ``ScoringError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ScoringError("not_numeric", N_("{what}必须是数字"), what=what)
    number = float(value)
    if not math.isfinite(number):
        raise ScoringError("not_finite", N_("{what}必须是有限的数字"), what=what)
    return number


def _not_applicable() -> RuleOutcome:
    """Outcome for a missing value."""
    return RuleOutcome(None, False, NOT_APPLICABLE_TEXT)


def _check_count(values: np.ndarray) -> None:
    """Refuse negative item counts (NaN means not applicable and passes)."""
    if np.any(values < 0):
        raise ScoringError("negative_count", N_("扣分/加分事项的数量不能为负数"))


@dataclass(frozen=True)
class Linear:
    """Linear band: 0 at/below ``lower``, full at/above ``upper``, linear between (mirrored: lower better)."""

    lower: float
    upper: float
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        lower = _number(self.lower, N_("线性区间下限"))
        upper = _number(self.upper, N_("线性区间上限"))
        if not isinstance(self.higher_is_better, bool):
            raise ScoringError("not_boolean", N_("“越高越好”必须是 true 或 false"))
        if lower >= upper:
            raise ScoringError("bad_band", N_("线性区间下限必须小于上限"))
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def fraction(self, values: np.ndarray) -> np.ndarray:
        """Share of full marks earned, in 0..1 (NaN stays NaN)."""
        width = self.upper - self.lower
        raw = (values - self.lower) / width if self.higher_is_better else (self.upper - values) / width
        return np.clip(raw, 0.0, 1.0)

    def score_array(self, values: np.ndarray, max_score: float) -> np.ndarray:
        """Vectorised ``score`` for many units; NaN = not applicable."""
        return self.fraction(values) * max_score

    def score(self, value: float | None, max_score: float) -> RuleOutcome:
        """Score one value out of ``max_score`` and say why."""
        if _missing(value):
            return _not_applicable()
        assert value is not None
        share = float(self.fraction(np.array([value], dtype=float))[0])
        points = share * max_score
        lo, hi, v = _fmt(self.lower), _fmt(self.upper), _fmt(value)
        total = f"{max_score:.2f}"
        if 0.0 < share < 1.0:
            formula = (
                f"({v} − {lo})/({hi} − {lo})" if self.higher_is_better else f"({hi} − {v})/({hi} − {lo})"
            )
            text = N_(
                "取值 {v}，在 {lo}–{hi} 之间线性得分：{formula} = {pct:.1f}%，得 {pts:.2f} 分（满分 {total}）"
            )
            return RuleOutcome(
                points,
                False,
                text.format(v=v, lo=lo, hi=hi, formula=formula, pct=share * 100, pts=points, total=total),
            )
        if self.higher_is_better:
            text = (
                N_("取值 {v}，达到 {hi}，得满分 {total}") if share else N_("取值 {v}，不高于 {lo}，得 0 分")
            )
        else:
            text = (
                N_("取值 {v}，不高于 {lo}，得满分 {total}") if share else N_("取值 {v}，不低于 {hi}，得 0 分")
            )
        return RuleOutcome(points, False, text.format(v=v, lo=lo, hi=hi, total=total))

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of ``rule_from_config``."""
        return {
            "kind": "linear",
            "lower": self.lower,
            "upper": self.upper,
            "higher_is_better": self.higher_is_better,
        }


@dataclass(frozen=True)
class Steps:
    """Thresholds: value ≥ threshold earns that share of full marks; the highest threshold reached counts."""

    thresholds: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if isinstance(self.thresholds, str | bytes) or not hasattr(self.thresholds, "__iter__"):
            raise ScoringError("bad_steps", N_("档位必须是 [门槛, 得分比例] 的列表"))
        pairs: list[tuple[float, float]] = []
        for pair in self.thresholds:
            if isinstance(pair, str | bytes) or not hasattr(pair, "__len__") or len(pair) != 2:
                raise ScoringError("bad_steps", N_("每个档位必须是 [门槛, 得分比例] 两个数"))
            threshold = _number(pair[0], N_("档位门槛"))
            share = _number(pair[1], N_("档位得分比例"))
            if not 0.0 <= share <= 1.0:
                raise ScoringError("bad_share", N_("档位得分比例必须在 0 到 1 之间"))
            pairs.append((threshold, share))
        if not pairs:
            raise ScoringError("bad_steps", N_("至少需要一个档位"))
        if len({t for t, _ in pairs}) != len(pairs):
            raise ScoringError("duplicate_threshold", N_("档位门槛不能重复"))
        object.__setattr__(self, "thresholds", tuple(sorted(pairs)))

    def fraction(self, values: np.ndarray) -> np.ndarray:
        """Share of full marks earned, in 0..1 (NaN stays NaN)."""
        share = np.zeros_like(values, dtype=float)
        # Ascending thresholds: each later (higher) threshold reached overwrites the lower ones.
        for threshold, step_share in self.thresholds:
            share = np.where(values >= threshold, step_share, share)
        return np.where(np.isnan(values), np.nan, share)

    def score_array(self, values: np.ndarray, max_score: float) -> np.ndarray:
        """Vectorised ``score`` for many units; NaN = not applicable."""
        return self.fraction(values) * max_score

    def score(self, value: float | None, max_score: float) -> RuleOutcome:
        """Score one value out of ``max_score`` and say why."""
        if _missing(value):
            return _not_applicable()
        assert value is not None
        reached = [(t, s) for t, s in self.thresholds if value >= t]
        if not reached:
            text = N_("取值 {v}，未达到最低档 ≥ {t}，得 0 分").format(
                v=_fmt(value), t=_fmt(self.thresholds[0][0])
            )
            return RuleOutcome(0.0, False, text)
        threshold, share = reached[-1]
        points = share * max_score
        text = N_("取值 {v}，达到 ≥ {t} 档，得 {pct:.1f}%，即 {pts:.2f} 分（满分 {total:.2f}）").format(
            v=_fmt(value), t=_fmt(threshold), pct=share * 100, pts=points, total=max_score
        )
        return RuleOutcome(points, False, text)

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of ``rule_from_config``."""
        return {"kind": "steps", "thresholds": [[t, s] for t, s in self.thresholds]}


@dataclass(frozen=True)
class Deduction:
    """Deductions: the value counts failings; score = max(0, full − per_item × count) (扣完为止)."""

    per_item: float

    def __post_init__(self) -> None:
        per_item = _number(self.per_item, N_("每项扣分"))
        if per_item <= 0:
            raise ScoringError("bad_per_item", N_("每项扣分必须大于 0"))
        object.__setattr__(self, "per_item", per_item)

    def score_array(self, values: np.ndarray, max_score: float) -> np.ndarray:
        """Vectorised ``score`` for many units; NaN = not applicable."""
        _check_count(values)
        return np.maximum(0.0, max_score - self.per_item * values)

    def score(self, value: float | None, max_score: float) -> RuleOutcome:
        """Score one count of failings out of ``max_score`` and say why."""
        if _missing(value):
            return _not_applicable()
        assert value is not None
        points = float(self.score_array(np.array([value], dtype=float), max_score)[0])
        deducted = self.per_item * value
        text = N_(
            "扣分事项 {n} 项 × 每项 {p} 分 = {d} 分，得 {pts:.2f} 分（满分 {total:.2f}，扣完为止）"
        ).format(n=_fmt(value), p=_fmt(self.per_item), d=_fmt(deducted), pts=points, total=max_score)
        return RuleOutcome(points, False, text)

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of ``rule_from_config``."""
        return {"kind": "deduction", "per_item": self.per_item}


@dataclass(frozen=True)
class Bonus:
    """Bonus (加分项): the value counts merits; adds min(cap, per_item × count) points to the parent."""

    per_item: float
    cap: float

    def __post_init__(self) -> None:
        per_item = _number(self.per_item, N_("每项加分"))
        cap = _number(self.cap, N_("加分上限"))
        if per_item <= 0:
            raise ScoringError("bad_per_item", N_("每项加分必须大于 0"))
        if cap <= 0:
            raise ScoringError("bad_cap", N_("加分上限必须大于 0"))
        object.__setattr__(self, "per_item", per_item)
        object.__setattr__(self, "cap", cap)

    def score_array(self, values: np.ndarray, max_score: float = 0.0) -> np.ndarray:
        """Vectorised bonus points (absolute, ``max_score`` ignored); NaN = not applicable."""
        _check_count(values)
        return np.minimum(self.cap, self.per_item * values)

    def score(self, value: float | None, max_score: float = 0.0) -> RuleOutcome:
        """Bonus points for one count of merits (``max_score`` is ignored) and why."""
        if _missing(value):
            return _not_applicable()
        assert value is not None
        points = float(self.score_array(np.array([value], dtype=float))[0])
        text = N_("加分事项 {n} 项 × 每项 {p} 分 = {raw} 分，封顶 {cap} 分，加 {pts:.2f} 分").format(
            n=_fmt(value),
            p=_fmt(self.per_item),
            raw=_fmt(self.per_item * value),
            cap=_fmt(self.cap),
            pts=points,
        )
        return RuleOutcome(points, False, text)

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of ``rule_from_config``."""
        return {"kind": "bonus", "per_item": self.per_item, "cap": self.cap}


@dataclass(frozen=True)
class Veto:
    """One-vote veto (一票否决): crossed when value < threshold (``below``), else when value > threshold."""

    threshold: float
    below: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", _number(self.threshold, N_("否决线")))
        if not isinstance(self.below, bool):
            raise ScoringError("not_boolean", N_("“低于否决线即否决”必须是 true 或 false"))

    def crossed_array(self, values: np.ndarray) -> np.ndarray:
        """Whether each value crosses the line (NaN = not applicable, never crossed)."""
        with np.errstate(invalid="ignore"):
            return values < self.threshold if self.below else values > self.threshold

    def score_array(self, values: np.ndarray, max_score: float) -> np.ndarray:
        """Pass/fail points: full when not crossed, 0 when crossed; NaN = not applicable."""
        points = np.where(self.crossed_array(values), 0.0, max_score)
        return np.where(np.isnan(values), np.nan, points)

    def score(self, value: float | None, max_score: float) -> RuleOutcome:
        """Pass/fail one value and say whether it triggers the veto."""
        if _missing(value):
            return _not_applicable()
        assert value is not None
        crossed = bool(self.crossed_array(np.array([value], dtype=float))[0])
        side = N_("低于") if self.below else N_("高于")
        if crossed:
            text = N_("取值 {v}，{side}否决线 {t}，一票否决").format(
                v=_fmt(value), side=side, t=_fmt(self.threshold)
            )
        else:
            text = N_("取值 {v}，未{side}否决线 {t}，未触发一票否决").format(
                v=_fmt(value), side=side, t=_fmt(self.threshold)
            )
        return RuleOutcome(0.0 if crossed else max_score, crossed, text)

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of ``rule_from_config``."""
        return {"kind": "veto", "threshold": self.threshold, "below": self.below}


Rule: TypeAlias = Linear | Steps | Deduction | Bonus | Veto

_RULE_FIELDS: dict[str, tuple[type[Any], frozenset[str], frozenset[str]]] = {
    # kind: (class, required keys, optional keys)
    "linear": (Linear, frozenset({"lower", "upper"}), frozenset({"higher_is_better"})),
    "steps": (Steps, frozenset({"thresholds"}), frozenset()),
    "deduction": (Deduction, frozenset({"per_item"}), frozenset()),
    "bonus": (Bonus, frozenset({"per_item", "cap"}), frozenset()),
    "veto": (Veto, frozenset({"threshold"}), frozenset({"below"})),
}


def rule_from_config(config: Mapping[str, Any]) -> Rule:
    """Build a rule from its JSON form, e.g. ``{"kind": "linear", "lower": 0.8, "upper": 0.95}``."""
    if not isinstance(config, Mapping):
        raise ScoringError("bad_config", N_("评分规则配置必须是一个对象"))
    kind = config.get("kind")
    if kind not in _RULE_FIELDS:
        raise ScoringError(
            "unknown_kind",
            N_("未知的评分规则类型：{kind}（可选：{kinds}）"),
            kind=kind,
            kinds="、".join(_RULE_FIELDS),
        )
    cls, required, optional = _RULE_FIELDS[kind]
    keys = set(config) - {"kind"}
    missing = sorted(required - keys)
    unknown = sorted(keys - required - optional)
    if missing:
        raise ScoringError(
            "missing_key", N_("评分规则 {kind} 缺少参数：{keys}"), kind=kind, keys="、".join(missing)
        )
    if unknown:
        raise ScoringError(
            "unknown_key", N_("评分规则 {kind} 有未知参数：{keys}"), kind=kind, keys="、".join(unknown)
        )
    rule: Rule = cls(**{k: config[k] for k in keys})
    return rule


def _missing(value: float | None) -> bool:
    """Whether a value means "not applicable" (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class Indicator:
    """A node of the indicator tree: leaves carry a rule, inner nodes carry children; weights are relative."""

    code: str
    name: str
    weight: float = 1.0
    rule: Rule | None = None
    children: list[Indicator] = field(default_factory=list)
    veto_scope: VetoScope = "node"

    def walk(self) -> Iterator[Indicator]:
        """This node and its descendants, parents before children (pre-order)."""
        yield self
        for child in self.children:
            yield from child.walk()

    def to_config(self) -> dict[str, Any]:
        """Plain-JSON form, the inverse of ``indicator_from_config``."""
        config: dict[str, Any] = {"code": self.code, "name": self.name, "weight": self.weight}
        if self.rule is not None:
            config["rule"] = self.rule.to_config()
            if isinstance(self.rule, Veto):
                config["veto_scope"] = self.veto_scope
        if self.children:
            config["children"] = [child.to_config() for child in self.children]
        return config


def indicator_from_config(config: Mapping[str, Any]) -> Indicator:
    """Build an indicator tree from its JSON form (see ``Indicator.to_config``) and validate it."""
    root = _indicator_from_config(config)
    _validate_tree(root)
    return root


def _indicator_from_config(config: Mapping[str, Any]) -> Indicator:
    """Recursive part of ``indicator_from_config`` (no whole-tree checks)."""
    if not isinstance(config, Mapping):
        raise ScoringError("bad_config", N_("指标配置必须是一个对象"))
    unknown = sorted(set(config) - {"code", "name", "weight", "rule", "children", "veto_scope"})
    if unknown:
        raise ScoringError("unknown_key", N_("指标配置有未知字段：{keys}"), keys="、".join(unknown))
    if "code" not in config or "name" not in config:
        raise ScoringError("missing_key", N_("指标配置必须有 code 和 name"))
    rule = None if config.get("rule") is None else rule_from_config(config["rule"])
    children = config.get("children") or []
    if not isinstance(children, list):
        raise ScoringError("bad_config", N_("子指标必须是列表"))
    return Indicator(
        code=config["code"],
        name=config["name"],
        weight=_number(config.get("weight", 1.0), N_("权重")),
        rule=rule,
        children=[_indicator_from_config(child) for child in children],
        veto_scope=config.get("veto_scope", "node"),
    )


# --- the tree --------------------------------------------------------------------------------------

_GROUP, _SCORED, _BONUS, _GATE = "group", "scored", "bonus", "gate"


def _kind(node: Indicator) -> str:
    """Role of a node: group (has children), scored leaf, bonus leaf, or veto gate (no weight)."""
    if node.children:
        return _GROUP
    if isinstance(node.rule, Bonus):
        return _BONUS
    if isinstance(node.rule, Veto) and node.veto_scope != "leaf":
        return _GATE
    return _SCORED


def _scoring(node: Indicator) -> bool:
    """Whether the node takes part in its parent's weighted mean."""
    return _kind(node) in (_GROUP, _SCORED)


def _validate_tree(root: Indicator) -> list[Indicator]:
    """Check the whole tree once; return its nodes in pre-order."""
    if not root.children:
        raise ScoringError("root_is_leaf", N_("指标体系的根节点必须有子指标"))
    nodes = list(root.walk())
    seen: set[str] = set()
    for node in nodes:
        if not isinstance(node.code, str) or not node.code.strip():
            raise ScoringError("bad_code", N_("每个指标都必须有编码"))
        if node.code in seen:
            raise ScoringError("duplicate_code", N_("指标编码重复：{code}").format(code=node.code))
        if node.code in (TOTAL_COLUMN, VETOED_COLUMN):
            raise ScoringError("reserved_code", N_("指标编码不能使用保留字：{code}").format(code=node.code))
        seen.add(node.code)
        label = N_("指标「{name}」").format(name=node.name)
        if node.veto_scope not in VETO_SCOPES:
            raise ScoringError(
                "bad_veto_scope", N_("{label}的否决范围必须是 leaf、node 或 unit"), label=label
            )
        if node.veto_scope != "node" and not isinstance(node.rule, Veto):
            raise ScoringError(
                "veto_scope_without_veto", N_("{label}不是一票否决规则，不能设置否决范围"), label=label
            )
        weight = _number(node.weight, N_("{label}的权重").format(label=label))
        if node.children:
            if node.rule is not None:
                raise ScoringError("rule_on_group", N_("{label}有子指标，不能再设评分规则"), label=label)
        elif node.rule is None:
            raise ScoringError("missing_rule", N_("{label}是末级指标，必须设置评分规则"), label=label)
        if node is not root and _scoring(node) and weight <= 0:
            raise ScoringError("bad_weight", N_("{label}的权重必须大于 0"), label=label)
        if weight < 0:
            raise ScoringError("bad_weight", N_("{label}的权重不能为负数"), label=label)
    # Structure last, so that a malformed node is reported as itself rather than as its parent's problem.
    for node in nodes:
        if node.children and not any(_scoring(child) for child in node.children):
            raise ScoringError(
                "no_scored_children", N_("指标「{name}」至少需要一个计权重的子指标"), name=node.name
            )
    return nodes


def _nominal_shares(root: Indicator) -> dict[str, float]:
    """Each scoring node's share of the total when everything applies (bonus and gates: 0)."""
    shares = {root.code: 1.0}
    for node in root.walk():
        scoring = [child for child in node.children if _scoring(child)]
        total = math.fsum(child.weight for child in scoring)
        for child in node.children:
            shares[child.code] = shares[node.code] * child.weight / total if _scoring(child) else 0.0
    return shares


def _check_full_marks(full_marks: float) -> float:
    """Full marks must be a positive finite number."""
    value = _number(full_marks, N_("满分"))
    if value <= 0:
        raise ScoringError("bad_full_marks", N_("满分必须大于 0"))
    return value


@dataclass
class NodeScore:
    """One node's result: points (None = not applicable) out of ``max_score``, share of total, and why."""

    code: str
    name: str
    score: float | None
    share: float
    applicable: bool
    vetoed: bool
    explanation: str
    children: list[NodeScore] = field(default_factory=list)
    max_score: float = 0.0

    def walk(self) -> Iterator[NodeScore]:
        """This result and its descendants in pre-order."""
        yield self
        for child in self.children:
            yield from child.walk()


def score_tree(
    root: Indicator,
    values: Mapping[str, float | None],
    full_marks: float = 100,
    ceilings: Mapping[str, float] | None = None,
) -> NodeScore:
    """Score one unit: ``values`` maps every leaf code to its value (None = not applicable).

    ``ceilings`` caps a leaf's points at that share of its (renormalised) points, e.g. 0.8 for an input
    estimated without any own observation (``assessment.missing``).
    """
    full = _check_full_marks(full_marks)
    nodes = _validate_tree(root)
    nominal = _nominal_shares(root)
    leaf_values: dict[str, float | None] = {}
    for node in nodes:
        if node.children:
            continue
        if node.code not in values:
            raise ScoringError(
                "missing_value",
                N_("缺少指标「{name}」（{code}）的取值；不适用请填空值").format(
                    name=node.name, code=node.code
                ),
            )
        raw = values[node.code]
        leaf_values[node.code] = None if raw is None or _missing(_number_or_nan(raw, node)) else float(raw)

    outcomes: dict[str, RuleOutcome] = {}
    for node in nodes:
        if node.rule is not None:
            outcomes[node.code] = node.rule.score(leaf_values[node.code], nominal[node.code] * full)

    applicable: dict[str, bool] = {}

    def mark(node: Indicator) -> bool:
        for child in node.children:
            mark(child)
        if node.children:
            applicable[node.code] = any(applicable[c.code] for c in node.children if _scoring(c))
        else:
            applicable[node.code] = leaf_values[node.code] is not None
        return applicable[node.code]

    mark(root)
    unit_vetoes = [
        n.name for n in nodes if _kind(n) == _GATE and n.veto_scope == "unit" and outcomes[n.code].vetoed
    ]

    def build(node: Indicator, share: float, zeroed_by: list[str]) -> NodeScore:
        if not node.children:
            ceiling = (ceilings or {}).get(node.code, 1.0)
            return _leaf_score(node, outcomes[node.code], nominal[node.code], share, zeroed_by, full, ceiling)
        own_vetoes = [
            c.name
            for c in node.children
            if _kind(c) == _GATE and c.veto_scope == "node" and outcomes[c.code].vetoed
        ]
        if node is root:
            own_vetoes = unit_vetoes + own_vetoes
        zeroed = zeroed_by + own_vetoes
        scoring_applicable = [c for c in node.children if _scoring(c) and applicable[c.code]]
        weight_sum = math.fsum(c.weight for c in scoring_applicable)
        children = []
        for child in node.children:
            child_share = share * child.weight / weight_sum if child in scoring_applicable else 0.0
            children.append(build(child, child_share, zeroed))
        is_applicable = applicable[node.code]
        max_score = share * full
        if not is_applicable:
            return NodeScore(
                node.code,
                node.name,
                None,
                0.0,
                False,
                bool(zeroed),
                N_("{name}：下属指标均不适用").format(name=node.name),
                children,
                0.0,
            )
        points = math.fsum(
            c.score
            for c, n in zip(children, node.children, strict=True)
            if c.score is not None and _kind(n) != _GATE
        )
        parts = [
            N_("{name}：得 {pts:.2f} 分（满分 {max:.2f}）").format(name=node.name, pts=points, max=max_score)
        ]
        skipped = [c.name for c in node.children if _scoring(c) and not applicable[c.code]]
        if skipped:
            parts.append(
                N_("「{names}」不适用，其权重由其余 {k} 项按比例分摊").format(
                    names="」「".join(skipped), k=len(scoring_applicable)
                )
            )
        bonus = math.fsum(
            c.score
            for c, n in zip(children, node.children, strict=True)
            if _kind(n) == _BONUS and c.score is not None
        )
        if bonus:
            parts.append(N_("含加分 {b:.2f} 分").format(b=bonus))
        if zeroed:
            points = 0.0
            parts = [
                N_("{name}：因「{names}」一票否决，计 0 分（满分 {max:.2f}）").format(
                    name=node.name, names="」「".join(zeroed), max=max_score
                )
            ]
        return NodeScore(
            node.code, node.name, points, share, True, bool(zeroed), "；".join(parts), children, max_score
        )

    return build(root, 1.0 if applicable[root.code] else 0.0, [])


def _number_or_nan(raw: Any, node: Indicator) -> float:
    """A leaf value as float, refusing text and other non-numbers."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | np.integer | np.floating):
        raise ScoringError(
            "not_numeric",
            N_("指标「{name}」（{code}）的取值必须是数字").format(name=node.name, code=node.code),
        )
    return float(raw)


def _leaf_score(
    node: Indicator,
    outcome: RuleOutcome,
    nominal: float,
    share: float,
    zeroed_by: list[str],
    full: float,
    ceiling: float = 1.0,
) -> NodeScore:
    """Turn a leaf's rule outcome into points on the unit's scale (renormalised share, vetoes)."""
    kind = _kind(node)
    text = f"{node.name}：{outcome.explanation}"
    if outcome.score is None:
        return NodeScore(node.code, node.name, None, 0.0, False, bool(zeroed_by), text, [], 0.0)
    max_score = share * full
    if kind == _GATE:
        # A gate carries no points; its effect shows on the node (or unit) it zeroes.
        return NodeScore(
            node.code, node.name, None, 0.0, True, outcome.vetoed or bool(zeroed_by), text, [], 0.0
        )
    if kind == _BONUS:
        points = outcome.score
    else:
        # Rules score against nominal points; the achievement ratio carries over to the renormalised share.
        points = outcome.score / (nominal * full) * max_score
        if not math.isclose(share, nominal):
            text += N_("；按重新分配后的满分 {max:.2f} 折算为 {pts:.2f} 分").format(max=max_score, pts=points)
        if ceiling < 1.0 and points > ceiling * max_score:
            points = ceiling * max_score
            text += N_("；无本单位样本，最多得 {c:.0f}% 分值，计 {pts:.2f} 分").format(
                c=ceiling * 100, pts=points
            )
    if zeroed_by:
        points = 0.0
        text += N_("；因「{names}」一票否决，计 0 分").format(names="」「".join(zeroed_by))
    return NodeScore(
        node.code, node.name, points, share, True, outcome.vetoed or bool(zeroed_by), text, [], max_score
    )


def score_units(
    root: Indicator, values: pd.DataFrame, full_marks: float = 100, ceilings: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Score many units at once: rows = units, columns = leaf codes (NaN = not applicable).

    ``ceilings`` (same shape, share 0–1, NaN = 1) caps leaf points as in ``score_tree``.

    Returns the same index with ``total``, ``vetoed`` (any veto triggered) and one column of points per
    indicator (NaN = not applicable; veto gates are always NaN, they carry no points). Numbers agree with
    ``score_tree``; the work is a few numpy operations per indicator, not a loop over units.
    """
    full = _check_full_marks(full_marks)
    nodes = _validate_tree(root)
    nominal = _nominal_shares(root)
    leaves = [node for node in nodes if not node.children]
    missing = [node.code for node in leaves if node.code not in values.columns]
    if missing:
        raise ScoringError(
            "missing_column", N_("数据缺少指标列：{codes}；不适用请留空值"), codes="、".join(missing)
        )
    n = len(values)
    data: dict[str, np.ndarray] = {}
    for node in leaves:
        try:
            data[node.code] = values[node.code].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise ScoringError(
                "not_numeric",
                N_("指标「{name}」（{code}）的取值必须是数字").format(name=node.name, code=node.code),
            ) from exc
        if np.isinf(data[node.code]).any():
            raise ScoringError(
                "not_finite",
                N_("指标「{name}」（{code}）的取值不能是无穷大").format(name=node.name, code=node.code),
            )

    parent: dict[str, Indicator] = {child.code: node for node in nodes for child in node.children}
    post_order = list(reversed(nodes))  # reversed pre-order visits children before their parent

    # Pass 1 (bottom-up): applicability and veto triggers.
    applicable: dict[str, np.ndarray] = {}
    crossed: dict[str, np.ndarray] = {}
    any_veto = np.zeros(n, dtype=bool)
    for node in post_order:
        if node.children:
            applicable[node.code] = np.logical_or.reduce(
                [applicable[c.code] for c in node.children if _scoring(c)] + [np.zeros(n, dtype=bool)]
            )
            continue
        applicable[node.code] = ~np.isnan(data[node.code])
        if isinstance(node.rule, Veto):
            crossed[node.code] = node.rule.crossed_array(data[node.code])
            any_veto |= crossed[node.code]
    unit_crossed = np.logical_or.reduce(
        [crossed[n.code] for n in nodes if _kind(n) == _GATE and n.veto_scope == "unit"]
        + [np.zeros(n, dtype=bool)]
    )

    # Pass 2 (top-down): effective (renormalised) shares and zeroing by vetoes.
    share: dict[str, np.ndarray] = {root.code: applicable[root.code].astype(float)}
    zeroed: dict[str, np.ndarray] = {}
    for node in nodes:
        if node.children:
            own = [crossed[c.code] for c in node.children if _kind(c) == _GATE and c.veto_scope == "node"]
            inherited = unit_crossed if node is root else zeroed[parent[node.code].code]
            zeroed[node.code] = np.logical_or.reduce([inherited, *own])
            weight_sum = np.zeros(n)
            for child in node.children:
                if _scoring(child):
                    weight_sum = weight_sum + child.weight * applicable[child.code]
            for child in node.children:
                if _scoring(child):
                    ratio = np.divide(child.weight, weight_sum, out=np.zeros(n), where=weight_sum > 0)
                    share[child.code] = np.where(applicable[child.code], share[node.code] * ratio, 0.0)
                else:
                    share[child.code] = np.zeros(n)
        else:
            zeroed[node.code] = zeroed[parent[node.code].code]

    # Pass 3 (bottom-up): points.
    points: dict[str, np.ndarray] = {}
    for node in post_order:
        kind = _kind(node)
        if kind == _GATE:
            points[node.code] = np.full(n, np.nan)
            continue
        if kind == _BONUS:
            assert isinstance(node.rule, Bonus)
            raw = node.rule.score_array(data[node.code])
        elif kind == _SCORED:
            assert node.rule is not None
            nominal_points = nominal[node.code] * full
            raw = (
                node.rule.score_array(data[node.code], nominal_points)
                / nominal_points
                * (share[node.code] * full)
            )
            if ceilings is not None and node.code in ceilings.columns:
                cap = ceilings[node.code].reindex(values.index).to_numpy(dtype=float, na_value=1.0)
                raw = np.minimum(raw, np.nan_to_num(cap, nan=1.0) * share[node.code] * full)
        else:
            raw = np.zeros(n)
            for child in node.children:
                if _kind(child) != _GATE:
                    raw = raw + np.nan_to_num(points[child.code], nan=0.0)
        raw = np.where(applicable[node.code], raw, np.nan)
        points[node.code] = np.where(applicable[node.code] & zeroed[node.code], 0.0, raw)

    columns: dict[str, Any] = {TOTAL_COLUMN: points[root.code], VETOED_COLUMN: any_veto}
    for node in nodes[1:]:
        columns[node.code] = points[node.code]
    return pd.DataFrame(columns, index=values.index)
