"""Assessment services (考评, work plan 二(四)): indicator system versions, the quarterly run, the review list.

Inputs arrive as DataFrames so that this package never reads cases itself (surveys must not import routing):

* ``case_frame``: one row per community unit id (the index) with the rate columns of ``CASE_RATES``
  (percentages, 0–100, NaN when the denominator is 0; ``requests_per_1000`` per 1,000 residents) and the
  count columns named in ``CASE_RATES`` as denominators. ``app.case_rates.case_rates`` builds it in SQL.
* ``survey_frame``: long, one row per community × question/indicator code with columns ``community_id``,
  ``code``, ``n``, ``index`` (0–100), ``low``, ``high`` (``surveys.frames.community_results``).
* ``entries``: evaluators' values, columns ``unit_id``, ``code``, ``value`` (``entries_frame``).

A leaf's source is ``case:<rate>`` (or ``case:composite``, the 三率 composite), ``survey:<code>`` (or
``survey:*``, all codes weighted by respondents) or ``entry:<code>``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import stats as sps
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.i18n import N_, DomainError
from core.models import Level, Unit
from core.quarter import Quarter
from surveys import scoring, weights
from surveys.indicators import (
    REVIEW_KINDS,
    ROLLUP_MODES,
    RUN_DRAFT,
    RUN_PUBLISHED,
    CompositeWeights,
    EvaluatorEntry,
    IndicatorSystem,
    ReviewItem,
    Score,
    ScoringRun,
)
from surveys.stats import compare_proportions, z_value

# rate → (label, denominator count column); rates are percentages of the denominator.
CASE_RATES: dict[str, tuple[str, str]] = {
    "response_rate": (N_("响应率"), "dispatched"),
    "resolution_rate": (N_("解决率"), "rated"),
    "satisfaction_rate": (N_("满意率"), "rated"),
    "on_time_rate": (N_("按时办结率"), "resolved"),
    "return_rate": (N_("退单率"), "dispatched"),
    "reopen_rate": (N_("重办率"), "resolved"),
    "requests_per_1000": (N_("千人诉求量"), "requests"),
}
PROPORTION_RATES = frozenset(CASE_RATES) - {"requests_per_1000"}
COMPOSITE = "composite"
COMPOSITE_PARTS = ("response_rate", "resolution_rate", "satisfaction_rate")
DEFAULT_COMPOSITE = (0.30, 0.35, 0.35)
ALTERNATIVE_COMPOSITE = (0.10, 0.50, 0.40)
SURVEY_ALL = "*"
WEIGHT_METHODS = ("direct", "ahp", "entropy")
DEFAULT_REVIEW_THRESHOLDS = {"survey_item": 60.0, "case_category": 60.0}
ALPHA = 0.05
SOURCE_KINDS = ("case", "survey", "entry")


class AssessmentError(DomainError):
    """A refused assessment operation: machine ``code`` and zh-CN message."""


# --- indicator systems ------------------------------------------------------------------------------


def _leaf(code: str, name: str, weight: float, rule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"code": code, "name": name, "weight": weight, "rule": rule, **extra}


def _linear(lower: float, upper: float, higher: bool = True) -> dict[str, Any]:
    return {"kind": "linear", "lower": lower, "upper": upper, "higher_is_better": higher}


def default_system() -> tuple[dict[str, Any], dict[str, str]]:
    """The work plan's first-level indicators plus the city's 诉求办理（民呼我应）, with leaf sources."""
    tree = {
        "code": "TOTAL",
        "name": "社区考评总分",
        "weight": 1.0,
        "children": [
            {
                "code": "DJ",
                "name": "党建引领",
                "weight": 15,
                "children": [
                    _leaf("DJ1", "党组织建设清单达标", 60, _linear(60, 100)),
                    _leaf(
                        "DJ2",
                        "党员志愿服务",
                        40,
                        {"kind": "steps", "thresholds": [[1, 0.6], [3, 0.8], [5, 1.0]]},
                    ),
                ],
            },
            {
                "code": "ZS",
                "name": "社区自身建设",
                "weight": 20,
                "children": [
                    _leaf("ZS1", "明察暗访问题", 60, {"kind": "deduction", "per_item": 2}),
                    _leaf("ZS2", "网上巡查得分", 40, _linear(60, 100)),
                ],
            },
            {
                "code": "GF",
                "name": "公共服务职能",
                "weight": 25,
                "children": [
                    _leaf("GF1", "公共服务满意度指数", 60, _linear(60, 100)),
                    _leaf("GF2", "诉求按时办结率", 40, _linear(60, 100)),
                ],
            },
            {
                "code": "JM",
                "name": "居民自治",
                "weight": 15,
                "children": [
                    _leaf("JM1", "居民自治清单达标", 100, _linear(60, 100)),
                    _leaf("JM2", "居民议事会召开次数", 0, {"kind": "bonus", "per_item": 0.5, "cap": 2}),
                ],
            },
            {
                "code": "MH",
                "name": "诉求办理（民呼我应）",
                "weight": 25,
                "children": [
                    _leaf("MH1", "三率综合", 60, _linear(60, 100)),
                    _leaf("MH2", "退单率", 20, _linear(0, 20, higher=False)),
                    _leaf("MH3", "重办率", 20, _linear(0, 20, higher=False)),
                    _leaf(
                        "MHV",
                        "重大群体性事件（一票否决）",
                        0,
                        {"kind": "veto", "threshold": 0, "below": False},
                        veto_scope="unit",
                    ),
                ],
            },
        ],
    }
    sources = {
        "DJ1": "entry:party_checklist",
        "DJ2": "entry:volunteer_events",
        "ZS1": "entry:inspection_failings",
        "ZS2": "entry:online_check",
        "GF1": "survey:*",
        "GF2": "case:on_time_rate",
        "JM1": "entry:autonomy_checklist",
        "JM2": "entry:council_meetings",
        "MH1": "case:composite",
        "MH2": "case:return_rate",
        "MH3": "case:reopen_rate",
        "MHV": "entry:major_incident",
    }
    return tree, sources


def parse_source(source: str) -> tuple[str, str]:
    """Split ``"case:response_rate"`` into its kind and key, refusing unknown kinds and rates."""
    kind, sep, key = (source or "").partition(":")
    if not sep or kind not in SOURCE_KINDS or not key.strip():
        raise AssessmentError(
            "bad_source",
            N_("数据来源「{s}」无效，应为 case:<比率>、survey:<题目编码> 或 entry:<编码>").format(s=source),
        )
    if kind == "case" and key not in CASE_RATES and key != COMPOSITE:
        raise AssessmentError(
            "unknown_rate",
            N_("未知的诉求比率「{k}」，可选：{opts}").format(k=key, opts="、".join([*CASE_RATES, COMPOSITE])),
        )
    return kind, key.strip()


def validate_system(tree: Mapping[str, Any], sources: Mapping[str, str]) -> scoring.Indicator:
    """Check the tree and that every leaf has a valid source; return the parsed tree."""
    root = scoring.indicator_from_config(tree)
    leaves = [node.code for node in root.walk() if not node.children]
    missing = [code for code in leaves if not sources.get(code)]
    if missing:
        raise AssessmentError(
            "missing_source", N_("以下末级指标未设置数据来源：{c}").format(c="、".join(missing))
        )
    unknown = sorted(set(sources) - set(leaves))
    if unknown:
        raise AssessmentError(
            "unknown_leaf", N_("数据来源指向不存在的末级指标：{c}").format(c="、".join(unknown))
        )
    for code in leaves:
        parse_source(sources[code])
    return root


def create_system(
    session: Session,
    quarter: Quarter | str,
    tree: Mapping[str, Any],
    sources: Mapping[str, str],
    *,
    weight_methods: Mapping[str, Any] | None = None,
    rollup: str = "population",
    tie_rule: str = "min",
    name: str = "",
    note: str = "",
    user_id: int | None = None,
) -> IndicatorSystem:
    """Store a new version of the quarter's indicator system (validated; flush only)."""
    quarter = _quarter(quarter)
    if published_quarter(session, quarter):
        raise AssessmentError(
            "system_frozen",
            N_("{q}的考评结果已发布，该季度的指标体系已冻结，不能再保存新版本").format(q=quarter.label_zh),
        )
    validate_system(tree, sources)
    if rollup not in ROLLUP_MODES:
        raise AssessmentError("bad_rollup", N_("汇总方式必须是 population（按人口加权）或 equal（等权）"))
    if tie_rule not in scoring.TIE_RULES:
        raise AssessmentError("bad_tie_rule", N_("未知的并列名次规则：{t}").format(t=tie_rule))
    version = (
        session.scalar(
            select(func.max(IndicatorSystem.version)).where(IndicatorSystem.quarter == str(quarter))
        )
        or 0
    ) + 1
    system = IndicatorSystem(
        quarter=str(quarter),
        version=version,
        name=name or N_("{q}考评指标体系").format(q=quarter.label_zh),
        tree=copy.deepcopy(dict(tree)),
        sources=dict(sources),
        weight_methods=copy.deepcopy(dict(weight_methods or {})),
        rollup=rollup,
        tie_rule=tie_rule,
        note=note,
        created_by_id=user_id,
    )
    session.add(system)
    session.flush()
    return system


def system_for(session: Session, quarter: Quarter | str) -> IndicatorSystem | None:
    """The newest version for the quarter, else the newest of the latest earlier quarter."""
    quarter = _quarter(quarter)
    query = (
        select(IndicatorSystem)
        .where(IndicatorSystem.quarter <= str(quarter))
        .order_by(IndicatorSystem.quarter.desc(), IndicatorSystem.version.desc())
        .limit(1)
    )
    return session.scalar(query)


def ensure_system(session: Session, quarter: Quarter | str, user_id: int | None = None) -> IndicatorSystem:
    """The quarter's system, creating the default one (work plan) when none exists yet."""
    system = system_for(session, quarter)
    if system is None:
        tree, sources = default_system()
        system = create_system(
            session, quarter, tree, sources, user_id=user_id, note=N_("按工作方案生成的默认体系")
        )
    return system


def set_node_weights(
    session: Session,
    system: IndicatorSystem,
    node_code: str,
    method: str,
    *,
    direct: Mapping[str, float] | None = None,
    matrix: Sequence[Sequence[float]] | None = None,
    quarter: Quarter | str | None = None,
    user_id: int | None = None,
) -> IndicatorSystem:
    """New version with one group's child weights set directly, by AHP (CR < 0.10) or by entropy at run time."""
    if method not in WEIGHT_METHODS:
        raise AssessmentError("bad_method", N_("权重方法必须是 direct、ahp 或 entropy"))
    tree = copy.deepcopy(system.tree)
    node = _find(tree, node_code)
    if node is None or not node.get("children"):
        raise AssessmentError("not_a_group", N_("指标「{c}」不存在或没有子指标").format(c=node_code))
    children = [c for c in node["children"] if _weighted(c)]
    codes = [c["code"] for c in children]
    record: dict[str, Any] = {"method": method, "children": codes}
    if method == "direct":
        values = weights.normalise_direct({code: (direct or {}).get(code, 0.0) for code in codes})
        for child in children:
            child["weight"] = round(values[child["code"]] * 100, 6)
    elif method == "ahp":
        if matrix is None or len(matrix) != len(codes):
            raise AssessmentError(
                "bad_matrix", N_("判断矩阵必须是 {n}×{n}（{n} 个子指标）").format(n=len(codes))
            )
        result = weights.ahp(matrix)  # raises InconsistentMatrixError (CR ≥ 0.10) with the zh-CN message
        for child, w in zip(children, result.weights, strict=True):
            child["weight"] = round(w * 100, 6)
        record.update(
            matrix=[[float(x) for x in row] for row in matrix],
            cr=result.cr,
            ci=result.ci,
            lambda_max=result.lambda_max,
        )
    methods = copy.deepcopy(system.weight_methods)
    methods[node_code] = record
    return create_system(
        session,
        quarter or system.quarter,
        tree,
        system.sources,
        weight_methods=methods,
        rollup=system.rollup,
        tie_rule=system.tie_rule,
        name=system.name,
        note=N_("调整「{c}」的权重（{m}）").format(c=node_code, m=method),
        user_id=user_id,
    )


def _weighted(config: Mapping[str, Any]) -> bool:
    """Whether a node config takes part in its parent's weighted mean (not a bonus, not a veto gate)."""
    rule = config.get("rule") or {}
    if config.get("children"):
        return True
    if rule.get("kind") == "bonus":
        return False
    return not (rule.get("kind") == "veto" and config.get("veto_scope", "node") != "leaf")


def _find(tree: dict[str, Any], code: str) -> dict[str, Any] | None:
    if tree.get("code") == code:
        return tree
    for child in tree.get("children") or []:
        found = _find(child, code)
        if found is not None:
            return found
    return None


# --- tree editor: one operation = one new version ------------------------------------------------------

RULE_KIND_LABELS: dict[str, str] = {
    "linear": N_("线性（区间内按比例得分）"),
    "steps": N_("分档（达到门槛得相应比例）"),
    "deduction": N_("扣分（每项扣分，扣完为止）"),
    "bonus": N_("加分（每项加分，封顶）"),
    "veto": N_("一票否决"),
}
# Form field → (rule key, zh-CN label, type); the editor's forms post these names.
RULE_FORM_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "linear": (("lower", N_("下限"), "number"), ("upper", N_("上限"), "number"),
               ("higher_is_better", N_("越高越好"), "bool")),
    "steps": (("thresholds", N_("档位"), "steps"),),
    "deduction": (("per_item", N_("每项扣分"), "number"),),
    "bonus": (("per_item", N_("每项加分"), "number"), ("cap", N_("加分上限"), "number")),
    "veto": (("threshold", N_("否决线"), "number"), ("below", N_("低于否决线即否决"), "bool")),
}  # fmt: skip
VETO_SCOPE_LABELS = {
    "leaf": N_("仅本项得 0 分"),
    "node": N_("上级指标整体得 0 分"),
    "unit": N_("整个单位总分为 0"),
}
SOURCE_KIND_LABELS = {"case": N_("诉求数据"), "survey": N_("问卷调查"), "entry": N_("考评录入")}
MAX_CODE_LENGTH = 60  # Score.node_code


def _form_number(text: Any, label: str, code: str = "not_numeric") -> float:
    """Read a number typed into a form ("3", "0.5", "1/3" not allowed here) or refuse in Chinese."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text or "").strip()
        if not raw:
            raise AssessmentError("missing_value", N_("请填写{label}").format(label=label), label)
        try:
            value = float(raw)
        except ValueError:
            raise AssessmentError(code, N_("{label}必须是数字").format(label=label), label) from None
    if not math.isfinite(value):
        raise AssessmentError(code, N_("{label}必须是有限的数字").format(label=label), label)
    return value


def _form_bool(text: Any) -> bool:
    return str(text).strip().lower() in ("1", "true", "on", "yes", "y", "是")


def rule_config_from_form(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the editor's rule fields into a rule config, validated by ``scoring.rule_from_config``.

    Steps are typed one per line as "门槛:得分比例" (e.g. "3:0.8"). Errors are zh-CN ``AssessmentError``s
    (missing or non-numeric fields) or ``scoring.ScoringError``s (e.g. lower ≥ upper).
    """
    if kind not in RULE_FORM_FIELDS:
        raise AssessmentError(
            "unknown_kind", N_("请选择评分规则类型（{k}）").format(k="、".join(RULE_KIND_LABELS.values()))
        )
    config: dict[str, Any] = {"kind": kind}
    for key, label, kind_of in RULE_FORM_FIELDS[kind]:
        raw = fields.get(key, "")
        if kind_of == "bool":
            config[key] = _form_bool(raw)
        elif kind_of == "steps":
            pairs = []
            for line in str(raw or "").replace("；", "\n").replace(";", "\n").splitlines():
                if not line.strip():
                    continue
                left, sep, right = line.replace("：", ":").partition(":")
                if not sep:
                    raise AssessmentError(
                        "bad_steps",
                        N_("档位每行写“门槛:得分比例”，如 3:0.8；无法读取「{l}」").format(l=line.strip()),
                    )
                pairs.append([_form_number(left, N_("档位门槛")), _form_number(right, N_("档位得分比例"))])
            if not pairs:
                raise AssessmentError("missing_value", N_("请填写至少一个档位（门槛:得分比例）"))
            config[key] = pairs
        else:
            config[key] = _form_number(raw, label)
    return scoring.rule_from_config(config).to_config()


def describe_rule(config: Mapping[str, Any] | None, veto_scope: str = "node") -> str:
    """A rule config in plain Chinese words, for the editor and the ledger."""
    if not config:
        return ""
    rule = scoring.rule_from_config(config)
    f = scoring._fmt  # the same number format as the score explanations
    if isinstance(rule, scoring.Linear):
        if rule.higher_is_better:
            return N_("线性：≤{lo} 得 0 分，≥{hi} 得满分，其间按比例（越高越好）").format(
                lo=f(rule.lower), hi=f(rule.upper)
            )
        return N_("线性：≤{lo} 得满分，≥{hi} 得 0 分，其间按比例（越低越好）").format(
            lo=f(rule.lower), hi=f(rule.upper)
        )
    if isinstance(rule, scoring.Steps):
        steps = "；".join(N_("≥{t} 得 {p}%").format(t=f(t), p=f(s * 100)) for t, s in rule.thresholds)
        return N_("分档：{steps}；未达最低档得 0 分").format(steps=steps)
    if isinstance(rule, scoring.Deduction):
        return N_("扣分：每项扣 {p} 分，扣完为止").format(p=f(rule.per_item))
    if isinstance(rule, scoring.Bonus):
        return N_("加分：每项加 {p} 分，封顶 {c} 分（不占权重）").format(p=f(rule.per_item), c=f(rule.cap))
    side = N_("低于") if rule.below else N_("高于")
    return N_("一票否决：取值{side} {t} 即否决（{scope}）").format(
        side=side, t=f(rule.threshold), scope=VETO_SCOPE_LABELS.get(veto_scope, veto_scope)
    )


def describe_source(source: str) -> str:
    """A leaf source in plain Chinese words ("诉求数据：按时办结率")."""
    if not source:
        return ""
    try:
        kind, key = parse_source(source)
    except AssessmentError:
        return source
    if kind == "case":
        what = N_("三率综合") if key == COMPOSITE else CASE_RATES[key][0]
    elif kind == "survey":
        what = N_("总体满意度指数") if key == SURVEY_ALL else N_("题目/指标 {k}").format(k=key)
    else:
        what = N_("录入项 {k}").format(k=key)
    return f"{SOURCE_KIND_LABELS[kind]}：{what}"


def source_from_form(kind: str, key: str) -> str:
    """``case``/``survey``/``entry`` plus a key typed in the editor → a checked source string."""
    source = f"{(kind or '').strip()}:{(key or '').strip()}"
    kind_, key_ = parse_source(source)
    return f"{kind_}:{key_}"


def published_quarter(session: Session, quarter: Quarter | str) -> bool:
    """Whether the quarter's run is published (its indicator system versions are then frozen)."""
    run = run_for(session, quarter)
    return run is not None and run.status == RUN_PUBLISHED


def system_frozen(session: Session, system: IndicatorSystem) -> bool:
    """Whether a published run used this version (or its quarter is published): no new version for it."""
    used = session.scalar(
        select(func.count())
        .select_from(ScoringRun)
        .where(ScoringRun.system_id == system.id, ScoringRun.status == RUN_PUBLISHED)
    )
    return bool(used) or published_quarter(session, system.quarter)


def _derive(
    session: Session,
    system: IndicatorSystem,
    tree: dict[str, Any],
    sources: Mapping[str, str],
    note: str,
    user_id: int | None,
    weight_methods: Mapping[str, Any] | None = None,
) -> IndicatorSystem:
    """A new version of ``system``'s quarter with the edited tree (validated by ``create_system``)."""
    return create_system(
        session,
        system.quarter,
        tree,
        sources,
        weight_methods=system.weight_methods if weight_methods is None else weight_methods,
        rollup=system.rollup,
        tie_rule=system.tie_rule,
        name=system.name,
        note=note,
        user_id=user_id,
    )


def _node_or_error(tree: dict[str, Any], code: str) -> dict[str, Any]:
    node = _find(tree, code)
    if node is None:
        raise AssessmentError("no_node", N_("指标「{c}」不存在").format(c=code))
    return node


def _parent_of(tree: dict[str, Any], code: str) -> dict[str, Any] | None:
    for child in tree.get("children") or []:
        if child.get("code") == code:
            return tree
        found = _parent_of(child, code)
        if found is not None:
            return found
    return None


def _leaf_fields(
    node: dict[str, Any], rule: Mapping[str, Any], veto_scope: str, sources: dict[str, str], source: str
) -> None:
    node["rule"] = dict(rule)
    node.pop("veto_scope", None)
    if rule.get("kind") == "veto":
        if veto_scope not in scoring.VETO_SCOPES:
            raise AssessmentError("bad_veto_scope", N_("请选择一票否决的范围"))
        node["veto_scope"] = veto_scope
    sources[node["code"]] = source


def add_node(
    session: Session,
    system: IndicatorSystem,
    parent_code: str,
    *,
    code: str,
    name: str,
    weight: float | str,
    rule: Mapping[str, Any],
    source: str,
    veto_scope: str = "node",
    user_id: int | None = None,
) -> IndicatorSystem:
    """New version with a leaf added under ``parent_code`` (a leaf parent becomes a group: its rule goes)."""
    _check_editable(session, system)
    code, name = (code or "").strip(), (name or "").strip()
    if not code or len(code) > MAX_CODE_LENGTH:
        raise AssessmentError("bad_code", N_("请填写指标编码（最多 60 个字符）"), "code")
    if not name:
        raise AssessmentError("missing_name", N_("请填写指标名称"), "name")
    tree = copy.deepcopy(system.tree)
    sources = dict(system.sources)
    parent = _node_or_error(tree, parent_code)
    if _find(tree, code) is not None:
        raise AssessmentError("duplicate_code", N_("指标编码重复：{c}").format(c=code), "code")
    node: dict[str, Any] = {"code": code, "name": name, "weight": _form_number(weight, N_("权重"))}
    _leaf_fields(node, rule, veto_scope, sources, source)
    note = N_("在「{p}」下新增指标「{n}」").format(p=parent.get("name", parent_code), n=name)
    if not parent.get("children"):
        # A leaf that gets a child becomes a group: a group scores from its children, never from a rule.
        parent.pop("rule", None)
        parent.pop("veto_scope", None)
        sources.pop(parent_code, None)
        parent["children"] = []
        note += N_("（「{p}」改为分组指标，原评分规则和数据来源已移除）").format(
            p=parent.get("name", parent_code)
        )
    parent["children"].append(node)
    return _derive(session, system, tree, sources, note, user_id)


def update_node(
    session: Session,
    system: IndicatorSystem,
    code: str,
    *,
    name: str,
    weight: float | str,
    rule: Mapping[str, Any] | None = None,
    source: str | None = None,
    veto_scope: str = "node",
    user_id: int | None = None,
) -> IndicatorSystem:
    """New version with one node's name and weight (and, for a leaf, rule and source) changed."""
    _check_editable(session, system)
    name = (name or "").strip()
    if not name:
        raise AssessmentError("missing_name", N_("请填写指标名称"), "name")
    tree = copy.deepcopy(system.tree)
    sources = dict(system.sources)
    node = _node_or_error(tree, code)
    node["name"] = name
    node["weight"] = _form_number(weight, N_("权重"))
    if not node.get("children"):
        if rule is None or source is None:
            raise AssessmentError("missing_rule", N_("末级指标必须设置评分规则和数据来源"))
        _leaf_fields(node, rule, veto_scope, sources, source)
    methods = copy.deepcopy(system.weight_methods or {})
    parent = _parent_of(tree, code)
    if parent is not None and methods.get(parent["code"], {}).get("method") == "ahp":
        # A hand-set weight overrides the AHP result for that group; keeping the record would mislead.
        methods.pop(parent["code"])
    return _derive(
        session, system, tree, sources, N_("修改指标「{n}」").format(n=name), user_id, weight_methods=methods
    )


def delete_node(
    session: Session, system: IndicatorSystem, code: str, *, user_id: int | None = None
) -> IndicatorSystem:
    """New version without the node and its subtree (the root cannot be deleted)."""
    _check_editable(session, system)
    tree = copy.deepcopy(system.tree)
    node = _node_or_error(tree, code)
    parent = _parent_of(tree, code)
    if parent is None:
        raise AssessmentError("delete_root", N_("不能删除指标体系的根节点"))
    removed = {n for n in _codes(node)}
    parent["children"] = [c for c in parent["children"] if c.get("code") != code]
    if not parent["children"]:
        raise AssessmentError(
            "last_child",
            N_("「{p}」只剩这一个子指标，不能删除；请先添加其他子指标或删除「{p}」本身").format(
                p=parent.get("name", parent["code"])
            ),
        )
    sources = {k: v for k, v in system.sources.items() if k not in removed}
    methods = {k: v for k, v in (system.weight_methods or {}).items() if k not in removed}
    if parent["code"] in methods and methods[parent["code"]].get("method") == "ahp":
        methods.pop(parent["code"])  # the pairwise matrix no longer matches the children
    note = N_("删除指标「{n}」").format(n=node.get("name", code))
    return _derive(session, system, tree, sources, note, user_id, weight_methods=methods)


def copy_system(
    session: Session, system: IndicatorSystem, quarter: Quarter | str, *, user_id: int | None = None
) -> IndicatorSystem:
    """A new version for another quarter with the same tree, sources, weights and options."""
    quarter = _quarter(quarter)
    return create_system(
        session,
        quarter,
        system.tree,
        system.sources,
        weight_methods=system.weight_methods,
        rollup=system.rollup,
        tie_rule=system.tie_rule,
        name=N_("{q}考评指标体系").format(q=quarter.label_zh),
        note=N_("复制自 {q} v{v}").format(q=system.quarter, v=system.version),
        user_id=user_id,
    )


def _codes(node: Mapping[str, Any]) -> list[str]:
    out = [str(node.get("code"))]
    for child in node.get("children") or []:
        out.extend(_codes(child))
    return out


def _check_editable(session: Session, system: IndicatorSystem) -> None:
    if system_frozen(session, system):
        raise AssessmentError(
            "system_frozen",
            N_("{q}的考评结果已发布，该季度的指标体系已冻结；可复制到其他季度后再修改").format(
                q=_quarter(system.quarter).label_zh
            ),
        )


# --- composite weights and entries --------------------------------------------------------------------


def current_composite(session: Session) -> CompositeWeights:
    """The newest 三率 weights version; creates 30/35/35 as version 1 when none exists (flush only)."""
    latest = session.scalar(select(CompositeWeights).order_by(CompositeWeights.version.desc()).limit(1))
    if latest is None:
        latest = create_composite(session, *DEFAULT_COMPOSITE, note=N_("默认：响应 30%、解决 35%、满意 35%"))
    return latest


def create_composite(
    session: Session,
    response: float,
    resolution: float,
    satisfaction: float,
    *,
    note: str = "",
    user_id: int | None = None,
) -> CompositeWeights:
    """Store a new version of the 三率 weights (normalised to sum 1; flush only)."""
    values = weights.normalise_direct(
        {"response": response, "resolution": resolution, "satisfaction": satisfaction}
    )
    version = (session.scalar(select(func.max(CompositeWeights.version))) or 0) + 1
    row = CompositeWeights(version=version, note=note, created_by_id=user_id, **values)
    session.add(row)
    session.flush()
    return row


def add_entry(
    session: Session,
    quarter: Quarter | str,
    unit: Unit,
    code: str,
    value: float,
    *,
    note: str = "",
    evidence_file: str = "",
    evidence_name: str = "",
    user_id: int | None = None,
) -> EvaluatorEntry:
    """Record an evaluator's value with its evidence; the newest entry per unit and code counts (flush only)."""
    quarter = _quarter(quarter)
    if not code or len(code) > 60:
        raise AssessmentError("bad_code", N_("请填写录入项编码（最多 60 个字符）"), "code")
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise AssessmentError("bad_value", N_("取值必须是有限的数字"), "value")
    entry = EvaluatorEntry(
        quarter=str(quarter),
        unit_id=unit.id,
        code=code,
        value=float(value),
        note=note,
        evidence_file=evidence_file,
        evidence_name=evidence_name,
        entered_by_id=user_id,
    )
    session.add(entry)
    session.flush()
    return entry


def entries_frame(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """The quarter's newest entry per unit and code: columns unit_id, code, value."""
    rows = session.execute(
        select(EvaluatorEntry.unit_id, EvaluatorEntry.code, EvaluatorEntry.value, EvaluatorEntry.id).where(
            EvaluatorEntry.quarter == str(_quarter(quarter))
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["unit_id", "code", "value", "id"])
    frame = frame.sort_values("id").drop_duplicates(["unit_id", "code"], keep="last")
    return frame.drop(columns="id").reset_index(drop=True)


# --- the quarterly run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeafInputs:
    """Per-community leaf values (columns = leaf codes) and their sample sizes, plus survey CIs for tests."""

    values: pd.DataFrame
    n: pd.DataFrame
    half_width: pd.DataFrame


def survey_by_code(
    survey_frame: pd.DataFrame | None, ids_by_code: Mapping[str, int] | None = None
) -> pd.DataFrame:
    """Normalise the survey contract to columns community_id, code, n, index, low, high.

    ``surveys.frames.community_results`` names communities by ``community_code`` (mapped to ids through
    ``ids_by_code``) and marks the overall index with level ``overall``; that row becomes code ``*``.
    Without it, ``*`` is each code's index weighted by its respondents.
    """
    columns = ["community_id", "code", "n", "index", "low", "high"]
    if survey_frame is None or len(survey_frame) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    frame = survey_frame
    if "community_id" not in frame.columns and "community_code" in frame.columns:
        frame = frame.assign(community_id=frame["community_code"].map(dict(ids_by_code or {})))
        frame = frame[frame["community_id"].notna()]
    if "community_id" not in frame.columns and "unit_id" in frame.columns:
        frame = frame.rename(columns={"unit_id": "community_id"})
    missing = [c for c in ("community_id", "code", "n", "index") if c not in frame.columns]
    if missing:
        raise AssessmentError("bad_survey_frame", N_("问卷结果缺少列：{c}").format(c="、".join(missing)))
    code = frame["code"].fillna("").astype(str)
    if "level" in frame.columns:
        code = code.where(frame["level"].astype(str) != "overall", SURVEY_ALL)
    frame = frame.assign(
        low=frame["low"] if "low" in frame.columns else np.nan,
        high=frame["high"] if "high" in frame.columns else np.nan,
        code=code,
        community_id=frame["community_id"].astype("int64"),
    )[columns]
    if (frame["code"] == SURVEY_ALL).any():
        return frame
    weighted = frame.assign(w=frame["index"] * frame["n"])
    overall = weighted.groupby("community_id", sort=False).agg(w=("w", "sum"), n=("n", "sum")).reset_index()
    overall = overall.assign(code=SURVEY_ALL, index=overall["w"] / overall["n"].where(overall["n"] > 0))
    overall = overall.assign(low=np.nan, high=np.nan)[columns]
    return pd.concat([frame, overall], ignore_index=True)


def leaf_inputs(
    root: scoring.Indicator,
    sources: Mapping[str, str],
    community_ids: Sequence[int],
    case_frame: pd.DataFrame | None,
    survey_frame: pd.DataFrame | None,
    entries: pd.DataFrame | None,
    composite: tuple[float, float, float],
    ids_by_code: Mapping[str, int] | None = None,
) -> LeafInputs:
    """Gather every leaf's value per community from its declared source (NaN = not applicable)."""
    index = pd.Index(list(community_ids), name="unit_id")
    cases = (
        case_frame.reindex(index) if case_frame is not None and len(case_frame) else pd.DataFrame(index=index)
    )
    survey = survey_by_code(survey_frame, ids_by_code)
    entry = (
        entries
        if entries is not None and len(entries)
        else pd.DataFrame(columns=["unit_id", "code", "value"])
    )
    values: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    halves: dict[str, Any] = {}
    nan = np.full(len(index), np.nan)
    for node in root.walk():
        if node.children:
            continue
        kind, key = parse_source(sources[node.code])
        n = nan
        half = nan
        if kind == "case":
            if key == COMPOSITE:
                parts = [_column(cases, p) for p in COMPOSITE_PARTS]
                value = sum(w * p for w, p in zip(composite, parts, strict=True))
                n = _column(cases, "rated")
            else:
                value = _column(cases, key)
                n = _column(cases, CASE_RATES[key][1])
        elif kind == "survey":
            rows = survey[survey["code"] == key].drop_duplicates("community_id").set_index("community_id")
            rows = rows.reindex(index)
            value = rows["index"].to_numpy(dtype=float, na_value=np.nan)
            n = rows["n"].to_numpy(dtype=float, na_value=np.nan)
            half = ((rows["high"] - rows["low"]) / 2).to_numpy(dtype=float, na_value=np.nan)
        else:
            rows = entry[entry["code"] == key].drop_duplicates("unit_id", keep="last").set_index("unit_id")
            value = rows["value"].reindex(index).to_numpy(dtype=float, na_value=np.nan)
        values[node.code], sizes[node.code], halves[node.code] = value, n, half
    return LeafInputs(
        pd.DataFrame(values, index=index), pd.DataFrame(sizes, index=index), pd.DataFrame(halves, index=index)
    )


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def apply_entropy(
    root: scoring.Indicator, methods: Mapping[str, Any], values: pd.DataFrame
) -> tuple[scoring.Indicator, dict[str, dict[str, float]]]:
    """Replace the child weights of groups marked ``entropy`` with entropy weights over this quarter's data."""
    derived: dict[str, dict[str, float]] = {}
    config = root.to_config()
    for code, record in methods.items():
        if record.get("method") != "entropy":
            continue
        node = _find(config, code)
        if node is None:
            continue
        children = [c for c in node.get("children") or [] if _weighted(c) and not c.get("children")]
        if len(children) < 2:
            continue
        frame = values[[c["code"] for c in children]].dropna()
        benefit = {c["code"]: _benefit(c.get("rule") or {}) for c in children}
        try:
            result = weights.entropy(frame, benefit=benefit)
        except weights.WeightError:
            continue  # too little data this quarter: keep the stored weights (recorded as not derived)
        for child in children:
            # Zero would make a leaf vanish from the tree's validation; keep a tiny floor instead.
            child["weight"] = max(float(result[child["code"]]), 1e-9)
        derived[code] = {str(k): float(v) for k, v in result.items()}
    return scoring.indicator_from_config(config), derived


def _benefit(rule: Mapping[str, Any]) -> bool:
    if rule.get("kind") == "deduction":
        return False
    return bool(rule.get("higher_is_better", True))


@dataclass(frozen=True)
class Places:
    """Communities with their street, district and population."""

    communities: pd.DataFrame  # index unit id; columns code, street_id, district_id, population


def load_places(session: Session) -> Places:
    """Active communities with their parents (by the tree), one query."""
    street = select(Unit.id, Unit.parent_id).where(Unit.level == Level.street).subquery()
    rows = session.execute(
        select(Unit.id, Unit.code, Unit.parent_id, street.c.parent_id, Unit.population)
        .join(street, street.c.id == Unit.parent_id)
        .where(Unit.level == Level.community, Unit.active.is_(True))
        .order_by(Unit.id)
    ).all()
    frame = pd.DataFrame(
        rows, columns=["unit_id", "code", "street_id", "district_id", "population"]
    ).set_index("unit_id")
    frame["population"] = frame["population"].fillna(0).astype(float)
    return Places(frame)


def run_scoring(
    session: Session,
    quarter: Quarter | str,
    case_frame: pd.DataFrame | None,
    survey_frame: pd.DataFrame | None,
    entries: pd.DataFrame | None,
    *,
    user_id: int | None = None,
    explain: bool = True,
    previous_survey_frame: pd.DataFrame | None = None,
) -> ScoringRun:
    """Score every community, roll up, rank, compare with last quarter; replace this quarter's draft (flush only).

    A published run is frozen: re-running it raises ``AssessmentError('run_published')``. The change of
    each unit's total carries a delta-method p-value where the data allow (``total_change_se``);
    ``previous_survey_frame`` gives last quarter's survey CIs (without it, this quarter's are assumed).
    """
    quarter = _quarter(quarter)
    run = session.scalar(select(ScoringRun).where(ScoringRun.quarter == str(quarter)).with_for_update())
    if run is not None and run.status == RUN_PUBLISHED:
        raise AssessmentError(
            "run_published", N_("{q}的考评结果已发布，不能重新计算").format(q=quarter.label_zh)
        )
    system = ensure_system(session, quarter, user_id)
    composite = current_composite(session)
    root = validate_system(system.tree, system.sources)
    places = load_places(session).communities
    ids = [int(i) for i in places.index]
    inputs = leaf_inputs(
        root,
        system.sources,
        ids,
        case_frame,
        survey_frame,
        entries,
        (composite.response, composite.resolution, composite.satisfaction),
        {str(code): int(uid) for uid, code in places["code"].items()},
    )
    root, derived = apply_entropy(root, system.weight_methods or {}, inputs.values)
    scored = scoring.score_units(root, inputs.values)
    node_codes = [node.code for node in root.walk()]
    scored = scored.rename(columns={scoring.TOTAL_COLUMN: root.code})

    weights_by_unit = (
        places["population"] if system.rollup == "population" else pd.Series(1.0, index=places.index)
    )
    frames: dict[str, pd.DataFrame] = {Level.community.value: scored[node_codes]}
    for level, column in ((Level.street.value, "street_id"), (Level.district.value, "district_id")):
        parent_of = {int(k): int(v) for k, v in places[column].items()}
        unit_weights = {int(k): float(v) for k, v in weights_by_unit.items()}
        # rollup is typed for unit codes but only needs hashable keys; unit ids are used here.
        frames[level] = pd.DataFrame(
            {
                code: scoring.rollup(scored[code], cast(Any, parent_of), cast(Any, unit_weights))
                for code in node_codes
            }
        )

    if run is None:
        run = ScoringRun(quarter=str(quarter), status=RUN_DRAFT)
        session.add(run)
        session.flush()
    previous = _previous_scores(session, quarter)
    leaf_codes = {node.code for node in root.walk() if not node.children}
    total_se: dict[str, pd.Series] = {}
    if previous is not None:
        ids_by_code = {str(code): int(uid) for uid, code in places["code"].items()}
        prev_half = (
            leaf_inputs(root, system.sources, ids, None, previous_survey_frame, None, (1, 0, 0), ids_by_code)
            if previous_survey_frame is not None
            else inputs
        ).half_width
        se = total_change_se(root, system.sources, inputs, _previous_inputs(previous, inputs, prev_half))
        total_se[Level.community.value] = se
        for level, column in ((Level.street.value, "street_id"), (Level.district.value, "district_id")):
            parent_of = {int(k): int(v) for k, v in places[column].items()}
            total_se[level] = rollup_se(se, scored[root.code], parent_of, weights_by_unit)
    rows: list[dict[str, Any]] = []
    for level, frame in frames.items():
        ranks = (
            scoring.rank(frame[root.code], tie=system.tie_rule) if len(frame) else pd.Series(dtype="Int64")
        )
        long = frame.stack(future_stack=True).rename("score").reset_index()
        long.columns = ["unit_id", "node_code", "score"]
        long["rank"] = np.where(
            long["node_code"] == root.code, long["unit_id"].map(ranks).astype("Float64"), np.nan
        )
        if level == Level.community.value:
            long = _attach_inputs(long, inputs, leaf_codes)
        else:
            long = long.assign(value=np.nan, n=np.nan)
        long = _compare(long, previous, inputs, level, leaf_codes, system.sources)
        long = _total_significance(long, root.code, total_se.get(level))
        long["level"] = level
        rows.extend(_records(long))
    if explain:
        _explain(rows, root, inputs.values, weights_label=system.rollup)
    session.execute(delete(Score).where(Score.run_id == run.id))
    if rows:
        # Core insert on the table: one batched executemany (the ORM bulk path splits batches at every NULL).
        session.execute(insert(cast(Table, Score.__table__)), [{**row, "run_id": run.id} for row in rows])
    run.system_id = system.id
    run.composite_id = composite.id
    run.computed_at = utcnow()
    run.params = {
        "system_version": system.version,
        "system_quarter": system.quarter,
        "composite": {
            "version": composite.version,
            "response": composite.response,
            "resolution": composite.resolution,
            "satisfaction": composite.satisfaction,
        },
        "rollup": system.rollup,
        "tie_rule": system.tie_rule,
        "entropy_weights": derived,
        "communities": len(ids),
        "scored": int(scored[root.code].notna().sum()),
        "compared_with": str(quarter.previous()) if previous is not None else None,
        "job": (run.params or {}).get("job"),
    }
    session.flush()
    return run


def _attach_inputs(long: pd.DataFrame, inputs: LeafInputs, leaf_codes: set[str]) -> pd.DataFrame:
    values = inputs.values.stack(future_stack=True).rename("value")
    sizes = inputs.n.stack(future_stack=True).rename("n")
    extra = pd.concat([values, sizes], axis=1).reset_index()
    extra.columns = ["unit_id", "node_code", "value", "n"]
    return long.merge(extra, on=["unit_id", "node_code"], how="left")


def _previous_inputs(previous: pd.DataFrame, now: LeafInputs, half_width: pd.DataFrame) -> LeafInputs:
    """Last quarter's leaf values and sample sizes (from its published Score rows) shaped like ``now``."""
    leaves = list(now.values.columns)
    rows = previous[previous["node_code"].isin(leaves)]

    def wide(column: str) -> pd.DataFrame:
        table = rows.pivot_table(
            index="unit_id", columns="node_code", values=column, aggfunc="first", dropna=False
        )
        return table.reindex(index=now.values.index, columns=leaves).astype(float)

    return LeafInputs(wide("prev_value"), wide("prev_n"), half_width.reindex(columns=leaves))


def _total_significance(long: pd.DataFrame, root_code: str, se: pd.Series | None) -> pd.DataFrame:
    """p-value and significance of each unit's total change from its delta-method SE (NaN SE → 数据不足)."""
    if se is None:
        return long
    is_total = (long["node_code"] == root_code).to_numpy()
    change = long["change"].to_numpy(dtype=float, na_value=np.nan)
    sd = long["unit_id"].map(se).to_numpy(dtype=float, na_value=np.nan)
    ok = is_total & ~np.isnan(change) & (sd > 0)
    p = long["p_value"].to_numpy(dtype=float, na_value=np.nan).copy()
    p[ok] = 2.0 * sps.norm.sf(np.abs(change[ok]) / sd[ok])
    significant = list(long["significant"])
    for i in np.flatnonzero(is_total):
        significant[i] = bool(p[i] <= ALPHA) if ok[i] else None
    return long.assign(p_value=p, significant=significant)


def _previous_scores(session: Session, quarter: Quarter) -> pd.DataFrame | None:
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


def _compare(
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
    merged["p_value"] = p_values
    merged["significant"] = [None if math.isnan(p) else bool(p <= ALPHA) for p in p_values]
    return merged.drop(columns=["prev_score", "prev_value", "prev_n"])


# --- significance of the total's change (delta method over the leaves' sampling error) --------------------


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
    if kind == "entry":
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
    root: scoring.Indicator,
    sources: Mapping[str, str],
    now: LeafInputs,
    previous: LeafInputs,
) -> pd.Series:
    """Standard error of each unit's change in total score, by the delta method; NaN = 数据不足.

    Var(Δ) ≈ Σ_leaf g² (Var_now + Var_prev), g = ∂total/∂leaf at this quarter's values (forward
    difference through ``scoring.score_units``, so weights, renormalisation and clipping are those of the
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
    base = scoring.score_units(root, values)[scoring.TOTAL_COLUMN].to_numpy(dtype=float, na_value=np.nan)
    var = np.zeros(len(values))
    known = ~np.isnan(base)
    sampled_any = np.zeros(len(values), dtype=bool)
    for code in leaves:
        kind, key = parse_source(sources[code])
        if kind == "entry":
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
        total = scoring.score_units(root, bumped)[scoring.TOTAL_COLUMN].to_numpy(dtype=float, na_value=np.nan)
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


def _records(long: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain dicts for INSERT, NaN → NULL."""
    out: list[dict[str, Any]] = []
    cols = [
        "unit_id",
        "node_code",
        "score",
        "rank",
        "value",
        "n",
        "change",
        "p_value",
        "significant",
        "level",
    ]
    for rec in long[cols].itertuples(index=False, name=None):
        unit_id, code, score, rank, value, n, change, p, sig, level = rec
        out.append(
            {
                "unit_id": int(unit_id),
                "node_code": str(code),
                "score": _num(score),
                "rank": None if _num(rank) is None else int(rank),
                "value": _num(value),
                "n": None if _num(n) is None else int(n),
                "change": _num(change),
                "p_value": _num(p),
                "significant": sig if isinstance(sig, bool) else None,
                "level": level,
                "explanation": "",
            }
        )
    return out


def _num(x: Any) -> float | None:
    if x is None or x is pd.NA:
        return None
    value = float(x)
    return None if math.isnan(value) else value


def _explain(
    rows: list[dict[str, Any]], root: scoring.Indicator, values: pd.DataFrame, weights_label: str
) -> None:
    """Fill explanations: each community's NodeScore texts; streets and districts say how they were averaged."""
    by_key = {(r["unit_id"], r["node_code"]): r for r in rows}
    leaves = [node.code for node in root.walk() if not node.children]
    records = values[leaves].to_dict("index")
    for unit_id, record in records.items():
        clean = {
            k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
            for k, v in record.items()
        }
        for node in scoring.score_tree(root, clean).walk():
            row = by_key.get((int(unit_id), node.code))
            if row is not None:
                row["explanation"] = node.explanation
    how = N_("按人口加权平均") if weights_label == "population" else N_("等权平均")
    for row in rows:
        if row["level"] != Level.community.value and not row["explanation"]:
            row["explanation"] = N_("所辖社区该项得分{how}（不适用的社区不计入）").format(how=how)


def publish_run(session: Session, quarter: Quarter | str, user_id: int | None = None) -> ScoringRun:
    """Freeze the quarter's draft run (flush only)."""
    quarter = _quarter(quarter)
    run = session.scalar(select(ScoringRun).where(ScoringRun.quarter == str(quarter)))
    if run is None:
        raise AssessmentError("no_run", N_("{q}尚未计算考评结果").format(q=quarter.label_zh))
    if run.status == RUN_PUBLISHED:
        raise AssessmentError("run_published", N_("{q}的考评结果已发布").format(q=quarter.label_zh))
    if not computed(run):
        raise AssessmentError("no_run", N_("{q}尚未计算考评结果").format(q=quarter.label_zh))
    run.status = RUN_PUBLISHED
    run.published_at = utcnow()
    run.published_by_id = user_id
    session.flush()
    return run


def run_for(session: Session, quarter: Quarter | str) -> ScoringRun | None:
    """The quarter's run, if any."""
    return session.scalar(select(ScoringRun).where(ScoringRun.quarter == str(_quarter(quarter))))


def scores_frame(
    session: Session, run: ScoringRun, level: str | None = None, node_code: str | None = None
) -> pd.DataFrame:
    """A run's Score rows as a frame (optionally one level and/or node), with unit code and name."""
    query = (
        select(
            Score.unit_id,
            Unit.code.label("unit_code"),
            Unit.name.label("unit_name"),
            Unit.parent_id,
            Score.level,
            Score.node_code,
            Score.score,
            Score.rank,
            Score.value,
            Score.n,
            Score.change,
            Score.p_value,
            Score.significant,
            Score.explanation,
        )
        .join(Unit, Unit.id == Score.unit_id)
        .where(Score.run_id == run.id)
    )
    if level is not None:
        query = query.where(Score.level == level)
    if node_code is not None:
        query = query.where(Score.node_code == node_code)
    rows = session.execute(query.order_by(Score.level, Score.rank, Unit.code)).all()
    columns = [
        "unit_id", "unit_code", "unit_name", "parent_id", "level", "node_code", "score", "rank", "value", "n",
        "change", "p_value", "significant", "explanation",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


# --- scoring job status (kept in ScoringRun.params["job"], so no extra table) ----------------------------

JOB_QUEUED, JOB_RUNNING, JOB_FINISHED, JOB_FAILED = "queued", "running", "finished", "failed"
JOB_STATE_LABELS = {
    JOB_QUEUED: N_("已排队，等待计算"),
    JOB_RUNNING: N_("正在计算"),
    JOB_FINISHED: N_("计算完成"),
    JOB_FAILED: N_("计算失败"),
}


def mark_job(session: Session, quarter: Quarter | str, state: str, error: str = "") -> ScoringRun:
    """Record the state of the quarter's scoring job (flush only); queued/running refuse a published run.

    The run row is created on first use without results (``system_id`` stays NULL until computed).
    """
    quarter = _quarter(quarter)
    if state not in JOB_STATE_LABELS:
        raise AssessmentError("bad_job_state", N_("未知的任务状态：{s}").format(s=state))
    run = run_for(session, quarter)
    if run is not None and run.status == RUN_PUBLISHED and state in (JOB_QUEUED, JOB_RUNNING):
        raise AssessmentError(
            "run_published", N_("{q}的考评结果已发布，不能重新计算").format(q=quarter.label_zh)
        )
    if run is None:
        run = ScoringRun(quarter=str(quarter), status=RUN_DRAFT, params={})
        session.add(run)
    # Reassign the JSON column: in-place changes of a plain JSON value are not tracked.
    run.params = {
        **(run.params or {}),
        "job": {"state": state, "at": utcnow().isoformat(timespec="seconds"), "error": error[:2000]},
    }
    session.flush()
    return run


def job_status(run: ScoringRun | None) -> dict[str, str] | None:
    """The last recorded job state of a run: state, label (zh-CN), at (ISO time, UTC), error; or None."""
    job = (run.params or {}).get("job") if run is not None else None
    if not job:
        return None
    state = str(job.get("state", ""))
    return {
        "state": state,
        "label": JOB_STATE_LABELS.get(state, state),
        "at": str(job.get("at", "")),
        "error": str(job.get("error", "")),
    }


def computed(run: ScoringRun | None) -> bool:
    """Whether the run holds results (a row created only to track a queued job does not)."""
    return run is not None and run.system_id is not None


# --- persistent dissatisfaction (逐项审核) ---------------------------------------------------------------


def detect_persistent_dissatisfaction(
    session: Session,
    quarter: Quarter | str,
    items_by_quarter: Mapping[str, pd.DataFrame],
    *,
    thresholds: Mapping[str, float] | None = None,
    min_quarters: int = 2,
    min_n: int = 5,
) -> list[ReviewItem]:
    """Put items below threshold in ≥ ``min_quarters`` consecutive quarters ending now on the review list.

    ``items_by_quarter`` maps "2026Q3" → frame with unit_id, kind (survey_item/case_category), item_code,
    item_label, value (0–100), n. Rows with n < ``min_n`` are too small to judge and break a streak.
    Idempotent: the same streak updates its open item (unique by unit, kind, item, first quarter).
    """
    quarter = _quarter(quarter)
    limits = {**DEFAULT_REVIEW_THRESHOLDS, **(thresholds or {})}
    frames = []
    for label, frame in items_by_quarter.items():
        if frame is not None and len(frame):
            frames.append(frame.assign(quarter=str(_quarter(label))))
    if not frames:
        return []
    data = pd.concat(frames, ignore_index=True)
    bad_kinds = sorted(set(data["kind"]) - set(REVIEW_KINDS))
    if bad_kinds:
        raise AssessmentError(
            "bad_kind", N_("未知的审核项类型：{k}").format(k="、".join(map(str, bad_kinds)))
        )
    data = data[data["n"].fillna(0) >= min_n]
    data = data.assign(below=data["value"] < data["kind"].map(limits))
    lookup = {(int(r.unit_id), str(r.kind), str(r.item_code), str(r.quarter)): r for r in data.itertuples()}
    current = data[(data["quarter"] == str(quarter)) & data["below"]]
    found: list[ReviewItem] = []
    for row in current.itertuples():
        streak = []
        q = quarter
        while True:
            hit = lookup.get((int(row.unit_id), str(row.kind), str(row.item_code), str(q)))
            if hit is None or not hit.below:
                break
            streak.append({"quarter": str(q), "value": float(hit.value), "n": int(hit.n)})
            q = q.previous()
        if len(streak) < min_quarters:
            continue
        streak.reverse()
        first = streak[0]["quarter"]
        item = session.scalar(
            select(ReviewItem).where(
                ReviewItem.unit_id == int(row.unit_id),
                ReviewItem.kind == str(row.kind),
                ReviewItem.item_code == str(row.item_code),
                ReviewItem.quarter_from == first,
            )
        )
        if item is None:
            item = ReviewItem(
                unit_id=int(row.unit_id),
                kind=str(row.kind),
                item_code=str(row.item_code),
                item_label=str(getattr(row, "item_label", "") or row.item_code),
                quarter_from=first,
                quarter_to=str(quarter),
                threshold=float(limits[str(row.kind)]),
                evidence=streak,
            )
            session.add(item)
        elif item.decided_at is None:
            item.quarter_to = str(quarter)
            item.evidence = streak
            # Labels improve over time (question text instead of its code): an open item takes the newest.
            item.item_label = str(getattr(row, "item_label", "") or item.item_label)
        found.append(item)
    session.flush()
    return found


def record_decision(session: Session, item_id: int, decision: str, user_id: int | None) -> ReviewItem:
    """Close a review item with the evaluators' decision (flush only)."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise AssessmentError("no_item", N_("审核项不存在"))
    text = (decision or "").strip()
    if not text:
        raise AssessmentError("empty_decision", N_("请填写审核结论"), "decision")
    item.decision = text
    item.decided_by_id = user_id
    item.decided_at = utcnow()
    session.flush()
    return item


def _quarter(quarter: Quarter | str) -> Quarter:
    if isinstance(quarter, Quarter):
        return quarter
    try:
        return Quarter.parse(quarter)
    except ValueError as exc:
        raise AssessmentError("bad_quarter", N_("季度格式应为 2026Q3")) from exc
