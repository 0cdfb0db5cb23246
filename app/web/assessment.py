"""Evaluator pages (考评): rankings, drill-down to the cases behind a number, indicator system, entries,
review list (逐项审核), workers' figures, XLSX/CSV ledger (电子台帐) and a printable report."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.utils import secure_filename

from app.audit import audit
from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.i18n import TranslatedLabels, message_of
from app.web.assessment_forms import (
    ActionForm,
    CompositeForm,
    CopyForm,
    DecisionForm,
    DeleteForm,
    EntryForm,
    JsonForm,
    NodeForm,
    QuarterForm,
    WeightsForm,
    messages,
)
from app.web.present import local, register_nav
from assessment import inputs, labels, missing, rankings, services, vocabulary
from assessment import significance as tests_of_change
from assessment import systems as indicator_systems
from assessment.jobs import RUN_QUARTER
from assessment.models import RUN_PUBLISHED, EvaluatorEntry, IndicatorSystem, ReviewItem, ScoringRun
from assessment.weights import SAATY_1980_RANDOM_INDEX
from core import jobs
from core.i18n import N_, DomainError
from core.inputs import column_length, fit_filename
from core.models import LEVEL_LABELS, Level, Role, Unit
from core.quarter import Quarter

bp = Blueprint("assessment", __name__, url_prefix="/assessment")
STAFF = (Role.evaluator, Role.admin)
register_nav("assessment.dashboard", N_("考评"), *STAFF)


@bp.context_processor
def _vocabulary() -> dict[str, Any]:
    """The assessment's label tables for its templates (one vocabulary, assessment.vocabulary)."""
    return {
        "RUN_STATUS_LABELS": TranslatedLabels(vocabulary.RUN_STATUS_LABELS),
        "ROLLUP_LABELS": TranslatedLabels(vocabulary.ROLLUP_LABELS),
        "label": labels.label,
    }


KIND_LABELS = vocabulary.REVIEW_KIND_LABELS
SURVEY_LEVEL_ORDER = {"overall": 0, "indicator": 1, "question": 2}


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
    return Quarter.parse(latest) if latest else Quarter.current().previous()


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
        return _("数据不足")
    if p <= tests_of_change.ALPHA:
        return _("显著（BH 校正 p = %(p)s）", p=format(p, ".3f"))
    return _("不显著（BH 校正 p = %(p)s）", p=format(p, ".3f"))


def _job_in_beijing_time(job: dict[str, str] | None) -> dict[str, str] | None:
    """The job status with its UTC ISO time also as Beijing time (``at_local``) for the page."""
    if job is None:
        return None
    try:
        moment = datetime.fromisoformat(job.get("at", ""))
    except ValueError:
        return {**job, "at_local": ""}
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return {**job, "at_local": local(moment)}


def _run_or_none(quarter: Quarter) -> ScoringRun | None:
    return indicator_systems.run_for(_db(), quarter)


@bp.route("/")
@roles_required(*STAFF)
def dashboard() -> Any:
    """Rankings of districts (and the top and bottom communities) for a quarter, with run/publish."""
    quarter = _quarter(request.args.get("quarter")) if request.args.get("quarter") else _default_quarter()
    run = _run_or_none(quarter)
    districts = communities = pd.DataFrame()
    system = indicator_systems.system_for(_db(), quarter)
    root_code = system.tree["code"] if system else "TOTAL"
    done = services.computed(run)
    if run is not None and done:
        root_code = run.system.tree["code"] if run.system else root_code
        districts = services.scores_frame(_db(), run, Level.district.value, root_code)
        communities = services.scores_frame(_db(), run, Level.community.value, root_code)
    standing = rankings.standing(communities) if len(communities) else None
    chart = bar_chart([(r.unit_name, r.score) for r in districts.itertuples()]) if len(districts) else None
    return render_template(
        "assessment/dashboard.html",
        quarter=quarter,
        run=run,
        computed=done,
        job=_job_in_beijing_time(services.job_status(run)),
        districts=districts,
        standing=standing,
        district_rates=inputs.three_rates(_db(), quarter, Level.district.value).to_dict("index")
        if done
        else {},
        min_sample=missing.MIN_SAMPLE["case"],
        policy=missing.POLICY_ROWS,
        chart=chart,
        definitions=vocabulary.RATE_DEFINITIONS,
        composite=indicator_systems.current_composite(_db()),
        tie_rule=rankings.TIE_RULES.get(system.tie_rule if system else "min", ""),
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
        flash(_("%(quarter)s的考评结果已发布，不能重新计算", quarter=q.label_zh))
        return redirect(url_for("assessment.dashboard", quarter=str(q)))
    indicator_systems.ensure_system(_db(), q, _user_id())
    indicator_systems.current_composite(_db())
    services.mark_job(_db(), q, vocabulary.JOB_QUEUED)
    _db().commit()
    try:
        jobs.enqueue(RUN_QUARTER, str(q))
    except DomainError as error:
        flash(message_of(error))
    except Exception:  # inline mode (RQ_ASYNC off) runs the job here; it recorded its failure for the page
        flash(_("%(quarter)s的考评计算失败，详见下方任务状态", quarter=q.label_zh))
    else:
        flash(_("已提交%(quarter)s的考评计算", quarter=q.label_zh))
    return redirect(url_for("assessment.dashboard", quarter=str(q)))


@bp.route("/<quarter>/publish", methods=["POST"])
@roles_required(*STAFF)
def publish(quarter: str) -> Any:
    """Publish (freeze) the quarter's draft."""
    q = _quarter(quarter)
    try:
        run = services.publish_run(_db(), q, _user_id())
    except DomainError as error:
        _db().rollback()
        flash(message_of(error))
    else:
        audit("scoring.publish", signed_in_user(), "scoring_run", run.id, {"quarter": str(q)})
        _db().commit()
        flash(_("%(quarter)s的考评结果已发布", quarter=q.label_zh))
    return redirect(url_for("assessment.dashboard", quarter=str(q)))


def _run_for_view(quarter: Quarter) -> ScoringRun:
    run = _run_or_none(quarter)
    if run is None or run.system is None or not services.computed(run):
        abort(404)
    return run


def _flagged_units(run: ScoringRun, level: str) -> set[int]:
    """Units of a level with a leaf input flagged 样本不足 or 无样本 (marked * on charts)."""
    frame = services.scores_frame(_db(), run, level)
    return {int(u) for u in frame.loc[frame["sample_flag"].fillna("") != "", "unit_id"]}


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
    mine = services.scores_frame(_db(), run, place.level.value)
    mine = mine[mine["unit_id"] == place.id].set_index("node_code")
    if mine.empty:
        abort(404)
    children = pd.DataFrame()
    lower: Level | None = None
    if place.level != Level.community:
        lower = Level.street if place.level == Level.district else Level.community
        frame = services.scores_frame(_db(), run, lower.value, root_code)
        if place.level == Level.district:
            street_ids = set(_db().scalars(select(Unit.id).where(Unit.parent_id == place.id)))
            children = frame[frame["unit_id"].isin(street_ids)]
        else:
            children = frame[frame["parent_id"] == place.id]
        children = children.sort_values("score", ascending=False, na_position="last")
    flagged = _flagged_units(run, lower.value) if lower else set()
    chart = (
        bar_chart(
            [(r.unit_name + ("*" if r.unit_id in flagged else ""), r.score) for r in children.itertuples()]
        )
        if len(children)
        else None
    )
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
        LEVEL_LABELS=TranslatedLabels(LEVEL_LABELS),
        rates=inputs.three_rates(_db(), q, place.level.value).to_dict("index"),
        child_rates=inputs.three_rates(_db(), q, lower.value).to_dict("index") if lower else {},
        FLAG_LABELS=TranslatedLabels(missing.FLAG_LABELS),
    )


@bp.route("/<quarter>/unit/<code>/node/<node>")
@roles_required(*STAFF)
def why(quarter: str, code: str, node: str) -> Any:
    """Why this score: the explanation, the input and the cases, survey results or entries behind it."""
    q = _quarter(quarter)
    run = _run_for_view(q)
    place = _unit_or_404(code)
    assert run.system is not None
    frame = services.scores_frame(_db(), run, place.level.value, node)
    frame = frame[frame["unit_id"] == place.id]
    if frame.empty:
        abort(404)
    row = frame.iloc[0].to_dict()
    source = run.system.sources.get(node, "")
    kind, key = vocabulary.parse_source(source) if source else ("", "")
    cases: list[Any] = []
    survey_rows: list[dict[str, Any]] = []
    entries: list[EvaluatorEntry] = []
    questions = inputs.survey_item_labels(_db(), q) if kind == "survey" else {}
    if place.level == Level.community:
        if kind == "case":
            cases = inputs.cases_behind(_db(), q, place.id)
        elif kind == "survey":
            results = inputs.survey_results(_db(), q)
            if len(results) and "community_code" in results.columns:
                mine = results[results["community_code"] == place.code]
                if key != vocabulary.SURVEY_ALL:
                    mine = mine[mine["code"].astype(str) == key]
                order = {code: i for i, code in enumerate(questions)}  # the editor's order
                survey_rows = sorted(
                    mine.to_dict("records"),
                    key=lambda r: (
                        SURVEY_LEVEL_ORDER.get(str(r["level"]), 9),
                        order.get(str(r["code"]), len(order)),
                    ),
                )
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
        definitions={d[0]: d for d in vocabulary.RATE_DEFINITIONS},
        questions=questions,
        node_name=(_find_node(run.system.tree, node) or {}).get("name", node),
    )


# --- indicator system editor -------------------------------------------------------------------------


@bp.route("/systems", methods=["GET", "POST"])
@roles_required(*STAFF)
def systems() -> Any:
    """Versions of the indicator system; create the default (work plan) version for a quarter."""
    form = QuarterForm()
    if form.validate_on_submit():
        system = indicator_systems.create_default_system(_db(), form.quarter.data, user_id=_user_id())
        _db().commit()
        return redirect(url_for("assessment.system", system_id=system.id))
    for message in messages(form) if form.is_submitted() else []:
        flash(message)
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
    posted: dict[str, Any] | None = None
    if request.method == "POST":
        action = ActionForm().action.data or ""
        form = SYSTEM_FORMS.get(action, ActionForm)()
        cells = {k: v for k, v in request.form.items() if k.startswith("m_")}  # the AHP grid, kept on errors
        posted = {**form.data, **cells, "action": action}
        try:
            new = _save_system(current, action, form)
        except DomainError as error:
            _db().rollback()
            errors.append(message_of(error))
        except FormInvalid as invalid:
            errors.extend(invalid.messages)
        else:
            audit(
                "indicators.change", signed_in_user(), "indicator_system", new.id,
                {"action": action, "quarter": new.quarter, "version": new.version, "from": system_id},
            )  # fmt: skip
            _db().commit()
            flash(
                _(
                    "已保存为 %(quarter)s 新版本 v%(version)s：%(note)s",
                    quarter=new.quarter,
                    version=new.version,
                    note=new.note,
                )
            )
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
    ahp_code = (posted or {}).get("node") or values.get("weights") or current.tree["code"]
    return render_template(
        "assessment/system.html",
        ahp_node=_find_node(current.tree, str(ahp_code)) or current.tree,
        source_keys=_source_keys(current),
        system=current,
        rows=_tree_rows(current.tree),
        tree_json=json.dumps(current.tree, ensure_ascii=False, indent=2),
        sources_json=json.dumps(current.sources, ensure_ascii=False, indent=2),
        errors=errors,
        form=posted or {},
        mode=mode,
        target=_node_form(current, mode, target, posted),
        frozen=indicator_systems.system_frozen(_db(), current),
        describe_rule=_describe_rule,
        describe_source=indicator_systems.describe_source,
        rule_kinds=vocabulary.RULE_KIND_LABELS,
        veto_scopes=vocabulary.VETO_SCOPE_LABELS,
        source_kinds=vocabulary.SOURCE_KIND_LABELS,
        case_rates=[*vocabulary.CASE_RATES, vocabulary.COMPOSITE],
        random_index=SAATY_1980_RANDOM_INDEX,
        tie_rules=rankings.TIE_RULES,
        definitions=vocabulary.RATE_DEFINITIONS,
        composite=indicator_systems.current_composite(_db()),
        versions=_db()
        .scalars(
            select(IndicatorSystem)
            .where(IndicatorSystem.quarter == current.quarter)
            .order_by(IndicatorSystem.version.desc())
        )
        .all(),
    )


def _source_keys(system: IndicatorSystem) -> list[tuple[str, str]]:
    """Picker entries for a leaf's source key: case rates, survey questions and entry codes, with labels."""
    keys = [
        (key, f"{labels.label('case')}：{labels.label(key)}")
        for key in [*vocabulary.CASE_RATES, vocabulary.COMPOSITE]
    ]
    keys.append((vocabulary.SURVEY_ALL, f"{labels.label('survey')}：{labels.label(vocabulary.SURVEY_ALL)}"))
    for code, text in inputs.survey_item_labels(_db(), system.quarter).items():
        keys.append((code, f"{labels.label('survey')}：{text}"))
    entry_codes = sorted({s.split(":", 1)[1] for s in system.sources.values() if s.startswith("entry:")})
    keys.extend((code, f"{labels.label('entry')}：{code}") for code in entry_codes)
    return keys


def _describe_rule(config: dict[str, Any]) -> str:
    try:
        return indicator_systems.describe_rule(config.get("rule"), config.get("veto_scope", "node"))
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


class FormInvalid(Exception):
    """A posted form failed its checks; ``messages`` says why in Chinese."""

    def __init__(self, messages_: list[str]) -> None:
        super().__init__("; ".join(messages_))
        self.messages = messages_


def _valid(form: Any) -> Any:
    if not form.validate_on_submit():
        raise FormInvalid(messages(form) or [_("提交的内容不完整，请检查后重试")])
    return form


SYSTEM_FORMS: dict[str, type[FlaskForm]] = {
    "add": NodeForm,
    "edit": NodeForm,
    "delete": DeleteForm,
    "copy": CopyForm,
    "json": JsonForm,
    "weights": WeightsForm,
}


def _save_system(current: IndicatorSystem, action: str, form: Any) -> IndicatorSystem:
    """One edit of the system, posted through its form, as one service call (each makes a new version)."""
    user_id = _user_id()
    _valid(form)
    if action in ("add", "edit"):
        node = form
        return indicator_systems.save_node(
            _db(), current, action, parent_code=node.parent.data or "", code=node.code.data or "",
            name=node.name.data or "", weight=node.weight.data or "", rule_kind=node.rule_kind.data or "",
            rule_fields=node.rule_fields(), source_kind=node.source_kind.data or "",
            source_key=node.source_key.data or "", veto_scope=node.veto_scope.data or "node", user_id=user_id,
        )  # fmt: skip
    if action == "delete":
        return indicator_systems.delete_node(_db(), current, form.code.data, user_id=user_id)
    if action == "copy":
        return indicator_systems.copy_system(_db(), current, form.quarter.data, user_id=user_id)
    if action == "json":
        posted = form
        return indicator_systems.create_system(
            _db(),
            posted.quarter.data or current.quarter,
            json.loads(posted.tree.data),
            json.loads(posted.sources.data),
            weight_methods=current.weight_methods,
            rollup=posted.rollup.data or current.rollup,
            tie_rule=posted.tie_rule.data or current.tie_rule,
            name=current.name,
            note="导入 JSON",
            user_id=user_id,
        )
    if action == "weights":
        weights = form
        return indicator_systems.set_node_weights(
            _db(), current, weights.node.data, weights.method.data or "direct", direct=weights.direct,
            matrix=weights.parsed_matrix(), user_id=user_id, check_frozen=True,
        )  # fmt: skip
    raise DomainError("bad_action", N_("未知的操作"))


@bp.route("/composite", methods=["POST"])
@roles_required(*STAFF)
def composite() -> Any:
    """New version of the 三率 composite weights."""
    form = CompositeForm()
    if not form.validate_on_submit():
        for message in messages(form):
            flash(message)
        return redirect(url_for("assessment.dashboard"))
    try:
        indicator_systems.create_composite(
            _db(), *form.values(), note=form.note.data or "", user_id=_user_id()
        )
    except DomainError as error:
        _db().rollback()
        flash(message_of(error))
    else:
        _db().commit()
        flash(_("已保存新的三率权重版本"))
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
    form = EntryForm()
    if form.is_submitted():
        upload = form.evidence.data if getattr(form.evidence.data, "filename", "") else None
        limit = column_length(EvaluatorEntry.evidence_name) or 255
        name = fit_filename(upload.filename, limit) if upload is not None else ""
        # A random stored name: the client's file name never becomes a path (it is only shown).
        stored = (
            fit_filename(f"{uuid.uuid4().hex}_{secure_filename(name) or 'file'}", limit)
            if upload is not None
            else ""
        )
        if not form.validate():
            errors = messages(form)
        else:
            try:
                inputs.add_entry(
                    _db(), quarter, form.unit.data.strip(), form.code.data.strip(), float(form.value.data),
                    note=form.note.data or "", evidence_file=stored, evidence_name=name, user_id=_user_id(),
                )  # fmt: skip
            except DomainError as error:
                _db().rollback()
                errors.append(message_of(error))
            else:
                if upload is not None:
                    upload.save(_evidence_dir() / stored)  # only once the entry is valid: no orphan files
                _db().commit()
                flash(_("已保存录入"))
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
    system = indicator_systems.system_for(_db(), quarter)
    names = {}
    if system is not None:
        names = {code: (_find_node(system.tree, code) or {}).get("name", code) for code in system.sources}
    codes = sorted(
        (source.split(":", 1)[1], names.get(node, node))
        for node, source in (system.sources.items() if system else [])
        if source.startswith("entry:")
    )
    units = (
        _db()
        .execute(select(Unit.code, Unit.name, Unit.level).where(Unit.level != Level.city).order_by(Unit.code))
        .all()
    )
    return render_template(
        "assessment/entries.html",
        quarter=quarter,
        rows=rows,
        errors=errors,
        form=form.data,
        codes=codes,
        units=units,
        entry_names=dict(codes),
        LEVEL_LABELS=TranslatedLabels(LEVEL_LABELS),
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
    return render_template(
        "assessment/review.html", items=_review_rows(), KIND_LABELS=TranslatedLabels(KIND_LABELS)
    )


@bp.route("/review/<int:item_id>/decision", methods=["POST"])
@roles_required(*STAFF)
def decide(item_id: int) -> Any:
    """Record the decision on one review item."""
    form = DecisionForm()
    if not form.validate_on_submit():
        for message in messages(form):
            flash(message)
        return redirect(url_for("assessment.review"))
    try:
        services.record_decision(_db(), item_id, form.decision.data, _user_id())
    except DomainError as error:
        _db().rollback()
        flash(message_of(error))
    else:
        _db().commit()
        flash(_("已记录审核结论"))
    return redirect(url_for("assessment.review"))
