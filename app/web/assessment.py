"""Evaluator pages (考评): rankings, drill-down to the cases behind a number, indicator system, entries,
review list (逐项审核), workers' figures, XLSX/CSV ledger (电子台帐) and a printable report."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any, cast

import pandas as pd
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from markupsafe import Markup, escape
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from app import case_rates
from app.assessment_runner import survey_results
from app.auth import roles_required, signed_in_user
from app.exports import csv_text, safe_row
from app.extensions import db
from app.web.present import register_nav
from core import jobs
from core.i18n import DomainError
from core.inputs import bounded_number, column_length, fit_filename
from core.models import LEVEL_LABELS, Level, Role, Unit
from core.quarter import Quarter
from surveys import assessment, scoring
from surveys.indicators import RUN_PUBLISHED, EvaluatorEntry, IndicatorSystem, ReviewItem, ScoringRun
from surveys.weights import SAATY_1980_RANDOM_INDEX

bp = Blueprint("assessment", __name__, url_prefix="/assessment")
STAFF = (Role.evaluator, Role.admin)
register_nav("assessment.dashboard", "考评", *STAFF)
KIND_LABELS = {"survey_item": "问卷题目", "case_category": "诉求类别"}
# Evidence of 明察暗访 and checks: photos, scans, documents, recordings (downloaded as attachments only).
EVIDENCE_SUFFIXES = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".webp",
        ".heic",
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".txt",
        ".csv",
        ".mp3",
        ".m4a",
        ".wav",
        ".mp4",
        ".mov",
    ]
)


def _db() -> Session:
    """The request's session, typed as the plain SQLAlchemy Session the services take."""
    return cast(Session, db.session)


def _quarter(text: str | None) -> Quarter:
    try:
        return Quarter.parse(text or "")
    except ValueError:
        abort(404)


def _default_quarter() -> Quarter:
    latest = _db().scalar(select(ScoringRun.quarter).order_by(ScoringRun.quarter.desc()).limit(1))
    return Quarter.parse(latest) if latest else Quarter.of(date.today()).previous()


def _user_id() -> int | None:
    user = signed_in_user()
    return user.id if user is not None else None


def _unit_or_404(code: str) -> Unit:
    unit = _db().scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        abort(404)
    return unit


def bar_chart(items: list[tuple[str, float | None]], maximum: float = 100.0, width: int = 560) -> Markup:
    """A horizontal bar chart as inline SVG (drawn on the server: the network is closed, no chart CDN)."""
    row, label_w = 24, 190
    height = row * max(len(items), 1) + 8
    parts = [
        f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    span = width - label_w - 60
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        parts.append(f'<text x="0" y="{y + 16}" font-size="13">{escape(label[:14])}</text>')
        if value is None or value != value:
            parts.append(f'<text x="{label_w}" y="{y + 16}" font-size="12" fill="#666">无数据</text>')
            continue
        w = max(0.0, min(1.0, value / maximum)) * span
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#c0392b"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 16}" font-size="12">{value:.2f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def significance(row: Any) -> str:
    """How a total's change reads: "显著 (p = …)", "不显著 (p = …)", "数据不足", or "—" with no comparison."""
    change, p = getattr(row, "change", None), getattr(row, "p_value", None)
    if change is None or pd.isna(change):
        return "—"
    if p is None or pd.isna(p):
        return "数据不足"
    return f"{'显著' if p <= assessment.ALPHA else '不显著'}（p = {p:.3f}）"


def _run_or_none(quarter: Quarter) -> ScoringRun | None:
    return assessment.run_for(_db(), quarter)


@bp.route("/")
@roles_required(*STAFF)
def dashboard() -> Any:
    """Rankings of districts (and the top and bottom communities) for a quarter, with run/publish."""
    quarter = _quarter(request.args.get("quarter")) if request.args.get("quarter") else _default_quarter()
    run = _run_or_none(quarter)
    districts = communities = pd.DataFrame()
    system = assessment.system_for(_db(), quarter)
    root_code = system.tree["code"] if system else "TOTAL"
    done = assessment.computed(run)
    if run is not None and done:
        root_code = run.system.tree["code"] if run.system else root_code
        districts = assessment.scores_frame(_db(), run, Level.district.value, root_code)
        communities = assessment.scores_frame(_db(), run, Level.community.value, root_code)
    chart = bar_chart([(r.unit_name, r.score) for r in districts.itertuples()]) if len(districts) else None
    return render_template(
        "assessment/dashboard.html",
        quarter=quarter,
        run=run,
        computed=done,
        job=assessment.job_status(run),
        districts=districts,
        top=communities.head(10),
        bottom=communities.dropna(subset=["score"]).tail(10) if len(communities) else communities,
        chart=chart,
        definitions=case_rates.RATE_DEFINITIONS,
        composite=assessment.current_composite(_db()),
        tie_rule=scoring.TIE_RULES.get(system.tie_rule if system else "min", ""),
        system=system,
        significance=significance,
    )


@bp.route("/<quarter>/run", methods=["POST"])
@roles_required(*STAFF)
def run_quarter(quarter: str) -> Any:
    """Compute (or recompute) the quarter's draft on the scoring queue."""
    q = _quarter(quarter)
    run = _run_or_none(q)
    if run is not None and run.status == RUN_PUBLISHED:
        flash(f"{q.label_zh}的考评结果已发布，不能重新计算")
        return redirect(url_for("assessment.dashboard", quarter=str(q)))
    assessment.ensure_system(_db(), q, _user_id())
    assessment.current_composite(_db())
    assessment.mark_job(_db(), q, assessment.JOB_QUEUED)
    _db().commit()
    try:
        jobs.enqueue("app.assessment_runner.run_quarter", str(q))
    except DomainError as error:
        flash(error.message)
    except Exception:  # inline mode (RQ_ASYNC off) runs the job here; it recorded its failure for the page
        flash(f"{q.label_zh}的考评计算失败，详见下方任务状态")
    else:
        flash(f"已提交{q.label_zh}的考评计算")
    return redirect(url_for("assessment.dashboard", quarter=str(q)))


@bp.route("/<quarter>/publish", methods=["POST"])
@roles_required(*STAFF)
def publish(quarter: str) -> Any:
    """Publish (freeze) the quarter's draft."""
    q = _quarter(quarter)
    try:
        assessment.publish_run(_db(), q, _user_id())
    except DomainError as error:
        _db().rollback()
        flash(error.message)
    else:
        _db().commit()
        flash(f"{q.label_zh}的考评结果已发布")
    return redirect(url_for("assessment.dashboard", quarter=str(q)))


def _run_for_view(quarter: Quarter) -> ScoringRun:
    run = _run_or_none(quarter)
    if run is None or run.system is None or not assessment.computed(run):
        abort(404)
    return run


def _tree_rows(config: dict[str, Any], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    rows = [(depth, config)]
    for child in config.get("children") or []:
        rows.extend(_tree_rows(child, depth + 1))
    return rows


@bp.route("/<quarter>/unit/<code>")
@roles_required(*STAFF)
def unit(quarter: str, code: str) -> Any:
    """Drill-down: a unit's indicator scores with explanations, and its sub-units ranked."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    place = _unit_or_404(code)
    assert run.system is not None
    root_code = run.system.tree["code"]
    mine = assessment.scores_frame(_db(), run, place.level.value)
    mine = mine[mine["unit_id"] == place.id].set_index("node_code")
    if mine.empty:
        abort(404)
    children = pd.DataFrame()
    if place.level != Level.community:
        lower = Level.street if place.level == Level.district else Level.community
        frame = assessment.scores_frame(_db(), run, lower.value, root_code)
        if place.level == Level.district:
            street_ids = set(_db().scalars(select(Unit.id).where(Unit.parent_id == place.id)))
            children = frame[frame["unit_id"].isin(street_ids)]
        else:
            children = frame[frame["parent_id"] == place.id]
        children = children.sort_values("score", ascending=False, na_position="last")
    chart = bar_chart([(r.unit_name, r.score) for r in children.itertuples()]) if len(children) else None
    return render_template(
        "assessment/unit.html",
        quarter=q,
        run=run,
        place=place,
        rows=_tree_rows(run.system.tree),
        scores=mine.to_dict("index"),
        sources=run.system.sources,
        children=children,
        chart=chart,
        LEVEL_LABELS=LEVEL_LABELS,
    )


@bp.route("/<quarter>/unit/<code>/node/<node>")
@roles_required(*STAFF)
def why(quarter: str, code: str, node: str) -> Any:
    """Why this score: the explanation, the input and the cases, survey results or entries behind it."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    place = _unit_or_404(code)
    assert run.system is not None
    frame = assessment.scores_frame(_db(), run, place.level.value, node)
    frame = frame[frame["unit_id"] == place.id]
    if frame.empty:
        abort(404)
    row = frame.iloc[0].to_dict()
    source = run.system.sources.get(node, "")
    kind, key = assessment.parse_source(source) if source else ("", "")
    cases: list[Any] = []
    survey_rows: list[dict[str, Any]] = []
    entries: list[EvaluatorEntry] = []
    if place.level == Level.community:
        if kind == "case":
            cases = case_rates.cases_behind(_db(), q, place.id)
        elif kind == "survey":
            results = survey_results(_db(), q)
            if len(results) and "community_code" in results.columns:
                mine = results[results["community_code"] == place.code]
                if key != assessment.SURVEY_ALL:
                    mine = mine[mine["code"].astype(str) == key]
                survey_rows = mine.to_dict("records")
        elif kind == "entry":
            entries = list(
                _db().scalars(
                    select(EvaluatorEntry)
                    .where(
                        EvaluatorEntry.quarter == str(q),
                        EvaluatorEntry.unit_id == place.id,
                        EvaluatorEntry.code == key,
                    )
                    .order_by(EvaluatorEntry.id.desc())
                )
            )
    return render_template(
        "assessment/why.html",
        quarter=q,
        place=place,
        node=node,
        row=row,
        source=source,
        kind=kind,
        key=key,
        cases=cases,
        survey_rows=survey_rows,
        entries=entries,
        definitions={d[0]: d for d in case_rates.RATE_DEFINITIONS},
    )


# --- indicator system editor -------------------------------------------------------------------------


@bp.route("/systems", methods=["GET", "POST"])
@roles_required(*STAFF)
def systems() -> Any:
    """Versions of the indicator system; create the default (work plan) version for a quarter."""
    if request.method == "POST":
        q = _quarter(request.form.get("quarter"))
        tree, sources = assessment.default_system()
        system = assessment.create_system(
            _db(), q, tree, sources, user_id=_user_id(), note="按工作方案的默认体系"
        )
        _db().commit()
        return redirect(url_for("assessment.system", system_id=system.id))
    versions = (
        _db()
        .scalars(
            select(IndicatorSystem).order_by(IndicatorSystem.quarter.desc(), IndicatorSystem.version.desc())
        )
        .all()
    )
    return render_template("assessment/systems.html", versions=versions, quarter=_default_quarter())


@bp.route("/systems/<int:system_id>", methods=["GET", "POST"])
@roles_required(*STAFF)
def system(system_id: int) -> Any:
    """One version as an editable tree; every saved change (add, edit, delete, weights, JSON) is a new version."""
    current = _db().get(IndicatorSystem, system_id) or abort(404)
    errors: list[str] = []
    if request.method == "POST":
        action = request.form.get("action", "")
        try:
            new = _save_system(current, action)
        except DomainError as error:
            _db().rollback()
            errors.append(error.message)
        except (ValueError, json.JSONDecodeError):
            _db().rollback()
            errors.append("提交的内容格式不正确：请检查 JSON 或矩阵中的数字")
        else:
            _db().commit()
            flash(f"已保存为 {new.quarter} 新版本 v{new.version}：{new.note}")
            return redirect(url_for("assessment.system", system_id=new.id))
        current = _db().get(IndicatorSystem, system_id) or abort(404)
    values = request.values
    mode, target = "", ""
    if values.get("action") in ("add", "edit"):
        mode, target = values["action"], values.get("parent" if values["action"] == "add" else "code", "")
    elif values.get("edit"):
        mode, target = "edit", values["edit"]
    elif values.get("add"):
        mode, target = "add", values["add"]
    return render_template(
        "assessment/system.html",
        system=current,
        rows=_tree_rows(current.tree),
        tree_json=json.dumps(current.tree, ensure_ascii=False, indent=2),
        sources_json=json.dumps(current.sources, ensure_ascii=False, indent=2),
        errors=errors,
        form=request.form,
        mode=mode,
        target=_node_form(current, mode, target, request.form if request.method == "POST" else None),
        frozen=assessment.system_frozen(_db(), current),
        describe_rule=_describe_rule,
        describe_source=assessment.describe_source,
        rule_kinds=assessment.RULE_KIND_LABELS,
        veto_scopes=assessment.VETO_SCOPE_LABELS,
        source_kinds=assessment.SOURCE_KIND_LABELS,
        case_rates=[*assessment.CASE_RATES, assessment.COMPOSITE],
        random_index=SAATY_1980_RANDOM_INDEX,
        tie_rules=scoring.TIE_RULES,
        definitions=case_rates.RATE_DEFINITIONS,
        composite=assessment.current_composite(_db()),
        versions=_db()
        .scalars(
            select(IndicatorSystem)
            .where(IndicatorSystem.quarter == current.quarter)
            .order_by(IndicatorSystem.version.desc())
        )
        .all(),
    )


def _describe_rule(config: dict[str, Any]) -> str:
    try:
        return assessment.describe_rule(config.get("rule"), config.get("veto_scope", "node"))
    except DomainError:
        return json.dumps(config.get("rule"), ensure_ascii=False)


def _node_form(system: IndicatorSystem, mode: str, code: str, posted: Any | None) -> dict[str, Any] | None:
    """The add/edit form's values: what was posted (kept after an error), else the node's own."""
    if not mode:
        return None
    node = _find_node(system.tree, code)
    if node is None:
        return None
    if posted is not None:
        return {"node": node, **{k: v for k, v in posted.items()}}
    if mode == "add":
        return {"node": node, "parent": code, "weight": "10", "rule_kind": "linear", "lower": "60",
                "upper": "100", "higher_is_better": "1", "source_kind": "entry", "veto_scope": "node"}  # fmt: skip
    rule = dict(node.get("rule") or {})
    kind, _, key = system.sources.get(code, "").partition(":")
    values: dict[str, Any] = {
        "node": node,
        "code": code,
        "name": node.get("name", ""),
        "weight": node.get("weight", ""),
        "rule_kind": rule.get("kind", ""),
        "veto_scope": node.get("veto_scope", "node"),
        "source_kind": kind,
        "source_key": key,
    }
    for key_, value in rule.items():
        if key_ == "thresholds":
            values["thresholds"] = "\n".join(f"{t:g}:{s:g}" for t, s in value)
        elif isinstance(value, bool):
            values[key_] = "1" if value else ""
        elif key_ != "kind":
            values[key_] = f"{value:g}"
    if rule.get("kind") == "linear" and "higher_is_better" not in rule:
        values["higher_is_better"] = "1"
    return values


def _find_node(tree: dict[str, Any], code: str) -> dict[str, Any] | None:
    if tree.get("code") == code:
        return tree
    for child in tree.get("children") or []:
        found = _find_node(child, code)
        if found is not None:
            return found
    return None


def _rule_and_source(form: Any) -> tuple[dict[str, Any], str]:
    rule = assessment.rule_config_from_form(form.get("rule_kind", ""), form)
    source = assessment.source_from_form(form.get("source_kind", ""), form.get("source_key", ""))
    return rule, source


def _save_system(current: IndicatorSystem, action: str) -> IndicatorSystem:
    form = request.form
    user_id = _user_id()
    if action == "add":
        new_rule, new_source = _rule_and_source(form)
        return assessment.add_node(
            _db(), current, form.get("parent", ""), code=form.get("code", ""), name=form.get("name", ""),
            weight=form.get("weight", ""), rule=new_rule, source=new_source,
            veto_scope=form.get("veto_scope", "node"), user_id=user_id,
        )  # fmt: skip
    if action == "edit":
        found = _find_node(current.tree, form.get("code", ""))
        rule: dict[str, Any] | None = None
        source: str | None = None
        if found is not None and not found.get("children"):
            rule, source = _rule_and_source(form)
        return assessment.update_node(
            _db(), current, form.get("code", ""), name=form.get("name", ""), weight=form.get("weight", ""),
            rule=rule, source=source, veto_scope=form.get("veto_scope", "node"), user_id=user_id,
        )  # fmt: skip
    if action == "delete":
        return assessment.delete_node(_db(), current, form.get("code", ""), user_id=user_id)
    if action == "copy":
        return assessment.copy_system(_db(), current, form.get("quarter", ""), user_id=user_id)
    if action == "json":
        return assessment.create_system(
            _db(),
            form.get("quarter") or current.quarter,
            json.loads(form.get("tree", "")),
            json.loads(form.get("sources", "")),
            weight_methods=current.weight_methods,
            rollup=form.get("rollup", current.rollup),
            tie_rule=form.get("tie_rule", current.tie_rule),
            name=current.name,
            note="导入 JSON",
            user_id=user_id,
        )
    if action == "weights":
        node = form.get("node", "")
        method = form.get("method", "direct")
        direct = {k[2:]: _weight_number(v) for k, v in form.items() if k.startswith("w_") and v.strip()}
        matrix = None
        if method == "ahp":
            text = form.get("matrix", "").strip()
            matrix = [
                [_fraction(x) for x in line.replace(",", " ").split()]
                for line in text.splitlines()
                if line.strip()
            ]
        if assessment.system_frozen(_db(), current):
            raise DomainError(
                "system_frozen", "该版本已用于已发布的考评结果，已冻结；可复制到其他季度后再修改"
            )
        return assessment.set_node_weights(
            _db(), current, node, method, direct=direct, matrix=matrix, user_id=user_id
        )
    raise DomainError("bad_action", "未知的操作")


def _weight_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DomainError("not_numeric", f"权重「{text}」必须是数字") from None


def _fraction(text: str) -> float:
    """Read "3", "0.333" or "1/3" (how judges write reciprocals)."""
    if "/" in text:
        top, bottom = text.split("/", 1)
        return float(top) / float(bottom)
    return float(text)


@bp.route("/composite", methods=["POST"])
@roles_required(*STAFF)
def composite() -> Any:
    """New version of the 三率 composite weights."""
    try:
        values = [float(request.form.get(k, "")) for k in ("response", "resolution", "satisfaction")]
        assessment.create_composite(_db(), *values, note=request.form.get("note", ""), user_id=_user_id())
    except DomainError as error:
        _db().rollback()
        flash(error.message)
    except ValueError:
        flash("三率权重必须是数字")
    else:
        _db().commit()
        flash("已保存新的三率权重版本")
    return redirect(url_for("assessment.dashboard"))


# --- evaluator entries ------------------------------------------------------------------------------


def _evidence_dir() -> Path:
    path = Path(current_app.instance_path) / "evidence"
    path.mkdir(parents=True, exist_ok=True)
    return path


@bp.route("/entries", methods=["GET", "POST"])
@roles_required(*STAFF)
def entries() -> Any:
    """Evaluators' entries (明察暗访, online checks, checklists) with evidence files."""
    quarter = _quarter(request.values.get("quarter")) if request.values.get("quarter") else _default_quarter()
    errors: list[str] = []
    if request.method == "POST":
        place = _db().scalar(select(Unit).where(Unit.code == request.form.get("unit", "").strip()))
        try:
            value = bounded_number(request.form.get("value", ""), -1e9, 1e9)  # no inf, no 400 digits
        except ValueError:
            value = float("nan")
        if place is None:
            errors.append("单位编码不存在")
        if value != value:
            errors.append("取值必须是数字")
        upload = request.files.get("evidence")
        stored = name = ""
        if upload is not None and upload.filename:
            name = fit_filename(upload.filename, column_length(EvaluatorEntry.evidence_name) or 255)
            if Path(name).suffix.lower() not in EVIDENCE_SUFFIXES:
                errors.append("证据文件类型不支持，请上传图片、PDF、Office 文档、文本或音视频文件")
            # A random stored name: the client's file name never becomes a path (it is only shown).
            stored = fit_filename(
                f"{uuid.uuid4().hex}_{secure_filename(name) or 'file'}",
                column_length(EvaluatorEntry.evidence_file) or 255,
            )
        if not errors and place is not None:
            try:
                assessment.add_entry(
                    _db(),
                    quarter,
                    place,
                    request.form.get("code", "").strip(),
                    value,
                    note=request.form.get("note", ""),
                    evidence_file=stored,
                    evidence_name=name,
                    user_id=_user_id(),
                )
            except DomainError as error:
                _db().rollback()
                errors.append(error.message)
            else:
                if upload is not None and stored:
                    upload.save(_evidence_dir() / stored)  # only once the entry is valid: no orphan files
                _db().commit()
                flash("已保存录入")
                return redirect(url_for("assessment.entries", quarter=str(quarter)))
    rows = (
        _db()
        .scalars(
            select(EvaluatorEntry)
            .where(EvaluatorEntry.quarter == str(quarter))
            .order_by(EvaluatorEntry.id.desc())
        )
        .all()
    )
    system = assessment.system_for(_db(), quarter)
    codes = sorted(
        {s.split(":", 1)[1] for s in (system.sources.values() if system else []) if s.startswith("entry:")}
    )
    return render_template(
        "assessment/entries.html", quarter=quarter, rows=rows, errors=errors, form=request.form, codes=codes
    )


@bp.route("/entries/<int:entry_id>/evidence")
@roles_required(*STAFF)
def evidence(entry_id: int) -> Any:
    """Download an entry's evidence file."""
    entry = _db().get(EvaluatorEntry, entry_id)
    if entry is None or not entry.evidence_file:
        abort(404)
    return send_file(
        _evidence_dir() / entry.evidence_file, as_attachment=True, download_name=entry.evidence_name
    )


# --- review list -----------------------------------------------------------------------------------


def _review_rows() -> list[ReviewItem]:
    return list(
        _db().scalars(
            select(ReviewItem).order_by(
                ReviewItem.decided_at.is_not(None), ReviewItem.quarter_to.desc(), ReviewItem.id
            )
        )
    )


@bp.route("/review")
@roles_required(*STAFF)
def review() -> Any:
    """逐项审核: items residents stayed dissatisfied with, open ones first."""
    return render_template("assessment/review.html", items=_review_rows(), KIND_LABELS=KIND_LABELS)


@bp.route("/review/<int:item_id>/decision", methods=["POST"])
@roles_required(*STAFF)
def decide(item_id: int) -> Any:
    """Record the decision on one review item."""
    try:
        assessment.record_decision(_db(), item_id, request.form.get("decision", ""), _user_id())
    except DomainError as error:
        _db().rollback()
        flash(error.message)
    else:
        _db().commit()
        flash("已记录审核结论")
    return redirect(url_for("assessment.review"))


def _review_table() -> list[list[Any]]:
    header = [
        "单位编码",
        "单位",
        "类型",
        "项目",
        "项目编码",
        "起始季度",
        "截止季度",
        "阈值",
        "证据",
        "审核结论",
        "审核人",
        "审核时间",
    ]
    rows: list[list[Any]] = [header]
    for item in _review_rows():
        evidence_text = "；".join(f"{e['quarter']}: {e['value']:.1f}（n={e['n']}）" for e in item.evidence)
        rows.append(
            [
                item.unit.code,
                item.unit.name,
                KIND_LABELS.get(item.kind, item.kind),
                item.item_label,
                item.item_code,
                item.quarter_from,
                item.quarter_to,
                item.threshold,
                evidence_text,
                item.decision,
                item.decided_by.display_name if item.decided_by else "",
                item.decided_at.isoformat(timespec="minutes") if item.decided_at else "",
            ]
        )
    return rows


def _csv(rows: list[list[Any]], filename: str) -> Response:
    # Excel opens UTF-8 CSV correctly only with a BOM; csv_text adds it and neutralises formulas.
    return Response(
        csv_text(rows),
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename={filename}"},
    )


@bp.route("/review.csv")
@roles_required(*STAFF)
def review_csv() -> Any:
    """The review list as CSV."""
    return _csv(_review_table(), "review.csv")


# --- exports, workers, report ----------------------------------------------------------------------


def _score_table(run: ScoringRun, level: str) -> list[list[Any]]:
    assert run.system is not None
    frame = assessment.scores_frame(_db(), run, level)
    nodes = [config["code"] for _, config in _tree_rows(run.system.tree)]
    names = {config["code"]: config["name"] for _, config in _tree_rows(run.system.tree)}
    # One index level only: with dropna=False, a (code, name) index would be their Cartesian product.
    wide = frame.pivot_table(index="unit_code", columns="node_code", values="score", dropna=False)
    unit_names = frame.drop_duplicates("unit_code").set_index("unit_code")["unit_name"]
    ranks = frame[frame["node_code"] == nodes[0]].set_index("unit_code")["rank"]
    changes = frame[frame["node_code"] == nodes[0]].set_index("unit_code")["change"]
    header = ["排名", "单位编码", "单位", *[names[c] for c in nodes], "较上季度变化"]
    rows: list[list[Any]] = [header]
    for unit_code, values in wide.iterrows():
        rank = ranks.get(unit_code)
        rows.append(
            [
                None if rank is None or pd.isna(rank) else int(rank),
                unit_code,
                unit_names[unit_code],
                *[_cell(values.get(c)) for c in nodes],
                _cell(changes.get(unit_code)),
            ]
        )
    rows[1:] = sorted(rows[1:], key=lambda r: (r[0] is None, r[0] or 0, r[1]))
    return rows


def _cell(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return round(float(value), 4)


@bp.route("/<quarter>/export.xlsx")
@roles_required(*STAFF)
def export_xlsx(quarter: str) -> Any:
    """电子台帐: one sheet per level, the indicator system, the review list."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    assert run.system is not None
    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for level in (Level.district, Level.street, Level.community):
        sheet = book.create_sheet(f"{LEVEL_LABELS[level]}得分")
        for row in _score_table(run, level.value):
            sheet.append(safe_row(row))
    sheet = book.create_sheet("指标体系")
    sheet.append(["层级", "编码", "名称", "权重", "评分规则", "数据来源"])
    for depth, config in _tree_rows(run.system.tree):
        sheet.append(
            safe_row(
                [
                    depth,
                    config["code"],
                    config["name"],
                    config.get("weight"),
                    json.dumps(config.get("rule"), ensure_ascii=False) if config.get("rule") else "",
                    run.system.sources.get(config["code"], ""),
                ]
            )
        )
    sheet = book.create_sheet("逐项审核")
    for row in _review_table():
        sheet.append(safe_row(row))
    sheet = book.create_sheet("比率定义")
    sheet.append(["列名", "名称", "分子", "分母"])
    for definition in case_rates.RATE_DEFINITIONS:
        sheet.append(safe_row(definition[:4]))
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    return send_file(
        buffer,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"assessment-{q}.xlsx",
    )


@bp.route("/<quarter>/export.csv")
@roles_required(*STAFF)
def export_csv(quarter: str) -> Any:
    """Community scores of the quarter as CSV (level=district|street|community)."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    level = request.args.get("level", Level.community.value)
    if level not in (Level.district.value, Level.street.value, Level.community.value):
        abort(404)
    return _csv(_score_table(run, level), f"assessment-{q}-{level}.csv")


@bp.route("/<quarter>/workers")
@roles_required(*STAFF)
def workers(quarter: str) -> Any:
    """Community workers' figures per handler: cases handled, on time, satisfaction (CSV with ?format=csv)."""
    q = _quarter(quarter)
    frame = case_rates.worker_figures(_db(), q)
    if request.args.get("format") == "csv":
        header = [
            "用户名",
            "姓名",
            "单位编码",
            "单位",
            "办结工单",
            "按时办结",
            "按时办结率%",
            "已评价",
            "满意",
            "满意率%",
        ]
        rows: list[list[Any]] = [header]
        for r in frame.itertuples():
            rows.append(
                [
                    r.username, r.display_name, r.unit_code, r.unit_name, r.handled, r.on_time,
                    _cell(r.on_time_rate), r.rated, r.satisfied, _cell(r.satisfaction_rate),
                ]
            )  # fmt: skip
        return _csv(rows, f"workers-{q}.csv")
    return render_template("assessment/workers.html", quarter=q, rows=frame.to_dict("records"))


@bp.route("/<quarter>/report")
@roles_required(*STAFF)
def report(quarter: str) -> Any:
    """A printable report: districts, streets and communities ranked, with definitions."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    tables = {
        level: _score_table(run, level.value) for level in (Level.district, Level.street, Level.community)
    }
    return render_template(
        "assessment/report.html",
        quarter=q,
        run=run,
        tables=tables,
        LEVEL_LABELS=LEVEL_LABELS,
        definitions=case_rates.RATE_DEFINITIONS,
        tie_rule=scoring.TIE_RULES.get(run.params.get("tie_rule", "min"), ""),
    )
