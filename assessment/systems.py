"""Indicator systems (考评指标体系): the default tree, validation, versions, tree editing, weights, 三率 weights.

The tree of an ``IndicatorSystem`` is stored as ``rules.Indicator.to_config`` JSON; every edit is a new
version, and a version a published run used is frozen.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assessment import rankings, rules, weights
from assessment.models import CompositeWeights, IndicatorSystem, ScoringRun
from assessment.vocabulary import (
    CASE_RATES,
    CO_GOVERNANCE_MEASURES,
    COMPOSITE,
    ROLLUP_MODES,
    RULE_KIND_LABELS,
    RUN_PUBLISHED,
    SOURCE_KIND_LABELS,
    SURVEY_ALL,
    VETO_SCOPE_LABELS,
    AssessmentError,
    as_quarter,
    parse_source,
)
from core.i18n import N_
from core.quarter import Quarter

DEFAULT_COMPOSITE = (0.30, 0.35, 0.35)
ALTERNATIVE_COMPOSITE = (0.10, 0.50, 0.40)
WEIGHT_METHODS = ("direct", "ahp", "entropy")


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


def validate_system(tree: Mapping[str, Any], sources: Mapping[str, str]) -> rules.Indicator:
    """Check the tree and that every leaf has a valid source; return the parsed tree."""
    root = rules.indicator_from_config(tree)
    leaves = [node.code for node in root.walk() if not node.children]
    missing = [code for code in leaves if not sources.get(code)]
    if missing:
        raise AssessmentError("missing_source", N_("以下末级指标未设置数据来源：{c}"), c="、".join(missing))
    unknown = sorted(set(sources) - set(leaves))
    if unknown:
        raise AssessmentError("unknown_leaf", N_("数据来源指向不存在的末级指标：{c}"), c="、".join(unknown))
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
    quarter = as_quarter(quarter)
    if published_quarter(session, quarter):
        raise AssessmentError(
            "system_frozen",
            N_("{q}的考评结果已发布，该季度的指标体系已冻结，不能再保存新版本"),
            q=quarter.label_zh,
        )
    validate_system(tree, sources)
    if rollup not in ROLLUP_MODES:
        raise AssessmentError("bad_rollup", N_("汇总方式必须是 population（按人口加权）或 equal（等权）"))
    if tie_rule not in rankings.TIE_RULES:
        raise AssessmentError("bad_tie_rule", N_("未知的并列名次规则：{t}"), t=tie_rule)
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
    quarter = as_quarter(quarter)
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


def create_default_system(
    session: Session, quarter: Quarter | str, *, user_id: int | None = None
) -> IndicatorSystem:
    """A new version of the quarter's system with the work plan's default tree (flush only)."""
    tree, sources = default_system()
    return create_system(session, quarter, tree, sources, user_id=user_id, note=N_("按工作方案的默认体系"))


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
    check_frozen: bool = False,
) -> IndicatorSystem:
    """New version with one group's child weights set directly, by AHP (CR < 0.10) or by entropy at run time.

    With ``check_frozen`` a version a published run used is refused (the editor's rule; copying a
    frozen version's weights to another quarter passes ``quarter`` instead).
    """
    if check_frozen:
        _check_editable(session, system)
    if method not in WEIGHT_METHODS:
        raise AssessmentError("bad_method", N_("权重方法必须是 direct、ahp 或 entropy"))
    tree = copy.deepcopy(system.tree)
    node = _find(tree, node_code)
    if node is None or not node.get("children"):
        raise AssessmentError("not_a_group", N_("指标「{c}」不存在或没有子指标"), c=node_code)
    children = [c for c in node["children"] if _weighted(c)]
    codes = [c["code"] for c in children]
    record: dict[str, Any] = {"method": method, "children": codes}
    if method == "direct":
        values = weights.normalise_direct({code: (direct or {}).get(code, 0.0) for code in codes})
        for child in children:
            child["weight"] = round(values[child["code"]] * 100, 6)
    elif method == "ahp":
        if matrix is None or len(matrix) != len(codes):
            raise AssessmentError("bad_matrix", N_("判断矩阵必须是 {n}×{n}（{n} 个子指标）"), n=len(codes))
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


# Form field → (rule key, zh-CN label, type); the editor's forms post these names.
RULE_FORM_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "linear": (("lower", N_("下限"), "number"), ("upper", N_("上限"), "number"),
               ("higher_is_better", N_("越高越好"), "bool")),
    "steps": (("thresholds", N_("档位"), "steps"),),
    "deduction": (("per_item", N_("每项扣分"), "number"),),
    "bonus": (("per_item", N_("每项加分"), "number"), ("cap", N_("加分上限"), "number")),
    "veto": (("threshold", N_("否决线"), "number"), ("below", N_("低于否决线即否决"), "bool")),
}  # fmt: skip
MAX_CODE_LENGTH = 60  # Score.node_code


def _form_number(text: Any, label: str, code: str = "not_numeric") -> float:
    """Read a number typed into a form ("3", "0.5", "1/3" not allowed here) or refuse in Chinese."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text or "").strip()
        if not raw:
            raise AssessmentError("missing_value", N_("请填写{label}"), label, label=label)
        try:
            value = float(raw)
        except ValueError:
            raise AssessmentError(code, N_("{label}必须是数字"), label, label=label) from None
    if not math.isfinite(value):
        raise AssessmentError(code, N_("{label}必须是有限的数字"), label, label=label)
    return value


def _form_bool(text: Any) -> bool:
    return str(text).strip().lower() in ("1", "true", "on", "yes", "y", "是")


def rule_config_from_form(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the editor's rule fields into a rule config, validated by ``rules.rule_from_config``.

    Steps are typed one per line as "门槛:得分比例" (e.g. "3:0.8"). Errors are zh-CN ``AssessmentError``s
    (missing or non-numeric fields) or ``rules.ScoringError``s (e.g. lower ≥ upper).
    """
    if kind not in RULE_FORM_FIELDS:
        raise AssessmentError(
            "unknown_kind", N_("请选择评分规则类型（{k}）"), k="、".join(RULE_KIND_LABELS.values())
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
                        N_("档位每行写“门槛:得分比例”，如 3:0.8；无法读取「{l}」"),
                        l=line.strip(),
                    )
                pairs.append([_form_number(left, N_("档位门槛")), _form_number(right, N_("档位得分比例"))])
            if not pairs:
                raise AssessmentError("missing_value", N_("请填写至少一个档位（门槛:得分比例）"))
            config[key] = pairs
        else:
            config[key] = _form_number(raw, label)
    return rules.rule_from_config(config).to_config()


def describe_rule(config: Mapping[str, Any] | None, veto_scope: str = "node") -> str:
    """A rule config in plain Chinese words, for the editor and the ledger."""
    if not config:
        return ""
    rule = rules.rule_from_config(config)
    f = rules._fmt  # the same number format as the score explanations
    if isinstance(rule, rules.Linear):
        if rule.higher_is_better:
            return N_("线性：≤{lo} 得 0 分，≥{hi} 得满分，其间按比例（越高越好）").format(
                lo=f(rule.lower), hi=f(rule.upper)
            )
        return N_("线性：≤{lo} 得满分，≥{hi} 得 0 分，其间按比例（越低越好）").format(
            lo=f(rule.lower), hi=f(rule.upper)
        )
    if isinstance(rule, rules.Steps):
        steps = "；".join(N_("≥{t} 得 {p}%").format(t=f(t), p=f(s * 100)) for t, s in rule.thresholds)
        return N_("分档：{steps}；未达最低档得 0 分").format(steps=steps)
    if isinstance(rule, rules.Deduction):
        return N_("扣分：每项扣 {p} 分，扣完为止").format(p=f(rule.per_item))
    if isinstance(rule, rules.Bonus):
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
    elif kind in CO_GOVERNANCE_MEASURES:
        what = CO_GOVERNANCE_MEASURES[kind][key]
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
        raise AssessmentError("no_node", N_("指标「{c}」不存在"), c=code)
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
        if veto_scope not in rules.VETO_SCOPES:
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
        raise AssessmentError("duplicate_code", N_("指标编码重复：{c}"), "code", c=code)
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


def save_node(
    session: Session,
    system: IndicatorSystem,
    action: str,
    *,
    parent_code: str,
    code: str,
    name: str,
    weight: float | str,
    rule_kind: str,
    rule_fields: Mapping[str, Any],
    source_kind: str,
    source_key: str,
    veto_scope: str = "node",
    user_id: int | None = None,
) -> IndicatorSystem:
    """The editor's add (``action='add'`` under ``parent_code``) or edit of node ``code`` from typed fields.

    The rule and source are read from the fields (``rule_config_from_form``, ``source_from_form``); a group
    being edited keeps its children and takes neither.
    """
    if action == "add":
        return add_node(
            session, system, parent_code, code=code, name=name, weight=weight,
            rule=rule_config_from_form(rule_kind, rule_fields), source=source_from_form(source_kind, source_key),
            veto_scope=veto_scope, user_id=user_id,
        )  # fmt: skip
    if action != "edit":
        raise AssessmentError("bad_action", N_("未知的操作"))
    found = _find(system.tree, code)
    rule: dict[str, Any] | None = None
    source: str | None = None
    if found is not None and not found.get("children"):
        rule, source = (
            rule_config_from_form(rule_kind, rule_fields),
            source_from_form(source_kind, source_key),
        )
    return update_node(
        session, system, code, name=name, weight=weight, rule=rule, source=source, veto_scope=veto_scope,
        user_id=user_id,
    )  # fmt: skip


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
            N_("「{p}」只剩这一个子指标，不能删除；请先添加其他子指标或删除「{p}」本身"),
            p=parent.get("name", parent["code"]),
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
    quarter = as_quarter(quarter)
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
            N_("{q}的考评结果已发布，该季度的指标体系已冻结；可复制到其他季度后再修改"),
            q=as_quarter(system.quarter).label_zh,
        )


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


def apply_entropy(
    root: rules.Indicator, methods: Mapping[str, Any], values: pd.DataFrame
) -> tuple[rules.Indicator, dict[str, dict[str, float]]]:
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
    return rules.indicator_from_config(config), derived


def _benefit(rule: Mapping[str, Any]) -> bool:
    if rule.get("kind") == "deduction":
        return False
    return bool(rule.get("higher_is_better", True))


def run_for(session: Session, quarter: Quarter | str) -> ScoringRun | None:
    """The quarter's run, if any."""
    return session.scalar(select(ScoringRun).where(ScoringRun.quarter == str(as_quarter(quarter))))
