"""Survey pages: the evaluator's editor, links and QR codes, paper upload, progress, results; the public form."""

from __future__ import annotations

import io
import json
import math
import secrets
from collections.abc import Sequence
from typing import Any, cast

import segno
from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from markupsafe import Markup, escape
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange

from app.auth import roles_required, signed_in_user
from app.exports import csv_text, safe_frame
from app.extensions import db, limiter
from app.i18n import TranslatedLabels, message_of
from app.ratelimit import limit_from_config
from app.security import public_url
from app.web.forms import Form
from app.web.present import register_nav
from assessment.inputs import callback_results
from assessment.missing import MIN_SAMPLE
from core import jobs
from core.csvio import ImportRejected, RowError
from core.i18n import N_
from core.models import Level, Role, Unit
from core.quarter import Quarter
from surveys import expressions, frames, integrity, services
from surveys import paper as paper_import
from surveys.definitions import (
    AGE_BANDS,
    GENDERS,
    LIKERT_LABELS,
    QuestionSpec,
    SurveyError,
    likert_choices,
    parse_choices,
)
from surveys.imports import parse_xlsform
from surveys.models import (
    KIND_LABELS,
    RESPONSE_STATUS_LABELS,
    STATUS_LABELS,
    PaperUpload,
    QuestionKind,
    Survey,
    SurveyStatus,
)

bp = Blueprint("surveys", __name__)
EVALUATORS = (Role.evaluator, Role.admin)
MAX_LINKS = 300
MAX_BARS = 60
DEVICE_COOKIE = "survey_device"
DEVICE_COOKIE_AGE = 400 * 86400  # the longest browsers keep a cookie


def _db() -> Session:
    return cast(Session, db.session)


# ------------------------------------------------------------------------------------------------ forms


class CreateForm(Form):
    """A new survey, optionally from an XLSForm workbook."""

    quarter = StringField(_l("季度"), validators=[DataRequired(message=_l("请填写季度")), Length(max=6)])
    title = StringField(_l("问卷标题"), validators=[Length(max=200)])
    xlsform = FileField(_l("XLSForm 文件（可选，.xlsx）"))


class SectionForm(Form):
    """A new section."""

    title = StringField(
        _l("分组标题"), validators=[DataRequired(message=_l("请填写分组标题")), Length(max=200)]
    )


class QuestionForm(Form):
    """A new question."""

    name = StringField(
        _l("题目代码"), validators=[DataRequired(message=_l("请填写题目代码")), Length(max=80)]
    )
    label = TextAreaField(_l("题目文字"), validators=[DataRequired(message=_l("请填写题目文字"))])
    kind = SelectField(_l("题型"), choices=[SelectChoice(k.value, label) for k, label in KIND_LABELS.items()])
    section = SelectField(_l("所属分组"), validate_choice=False)
    required = BooleanField(_l("必答"))
    dont_know = BooleanField(_l("提供“不了解/不适用”选项（不计入分母）"))
    choices = TextAreaField(_l("选项（每行一个，可写成 代码=文字；五级量表可留空用默认标签）"))
    hint = StringField(_l("提示"), validators=[Length(max=500)])
    indicator_code = StringField(_l("对应指标代码"), validators=[Length(max=40)])
    service_area = StringField(_l("服务领域"), validators=[Length(max=80)])


class ImportForm(FlaskForm):
    """An XLSForm workbook for a draft survey."""

    xlsform = FileField(_l("XLSForm 文件（.xlsx）"))


class TokenForm(FlaskForm):
    """How many one-time panel tokens to make."""

    count = IntegerField(
        _l("生成答卷码数量"),
        validators=[DataRequired(message=_l("请填写数量")), NumberRange(1, 500, _l("1 到 500 之间"))],
    )


class PaperForm(FlaskForm):
    """A paper questionnaire file."""

    file = FileField(_l("CSV 或 XLSX 文件"))


class ReviewForm(FlaskForm):
    """Accept or exclude the selected held answers."""

    responses = SelectMultipleField(_l("答卷"), coerce=int, validate_choice=False)
    accept = SubmitField(_l("计入结果"))
    exclude = SubmitField(_l("排除"))


class MarginsForm(FlaskForm):
    """Population margins for weighting (CSV: dimension, category, share_or_count)."""

    file = FileField(_l("总体边际分布（CSV）"))


# ---------------------------------------------------------------------------------------------- helpers


def _survey(survey_id: int) -> Survey:
    survey = _db().get(Survey, survey_id)
    if survey is None:
        abort(404)
    return survey


def _upload(field: Any) -> tuple[bytes, str]:
    storage = field.data
    if storage is None or not getattr(storage, "filename", ""):
        return b"", ""
    return storage.read(), storage.filename


def _config_float(name: str, default: float) -> float:
    return float(current_app.config.get(name, default))


def qr_svg(url: str, scale: int = 4) -> Markup:
    """A QR code of ``url`` as inline SVG (segno, no external service)."""
    return Markup(segno.make(url, error="m").svg_inline(scale=scale, title="问卷二维码"))


def survey_url(survey: Survey, community_code: str, token: str | None = None) -> str:
    """The absolute public link of a survey for a community (with a panel token when given)."""
    return public_url("surveys.respond", survey_id=survey.id, code=community_code, t=token)


def _fmt(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def bar_chart_svg(
    labels: Sequence[str], values: Sequence[float], lows: Sequence[float], highs: Sequence[float], title: str
) -> Markup:
    """Horizontal bars (0–100) with interval whiskers, as inline SVG drawn on the server."""
    row, left, width = 22, 190, 360
    height = row * len(labels) + 40
    parts = [
        f'<svg class="chart" viewBox="0 0 {left + width + 60} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(0, 101, 25):
        x = left + width * tick / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - 22}" stroke="#e3e3e3"/>'
            f'<text x="{x:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">{tick}</text>'
        )
    for i, (label, value, low, high) in enumerate(zip(labels, values, lows, highs, strict=True)):
        y = 12 + i * row
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" font-size="12" text-anchor="end">{escape(label)}</text>'
        )
        if value is None or math.isnan(value):
            continue
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{width * value / 100:.1f}" height="{row - 8}" '
            f'fill="#c0392b" opacity=".75"><title>{escape(label)}：{value:.1f}</title></rect>'
        )
        if not (math.isnan(low) or math.isnan(high)):
            x1, x2, mid = left + width * max(low, 0) / 100, left + width * min(high, 100) / 100, y + row / 2
            parts.append(
                f'<path d="M{x1:.1f} {mid:.1f}H{x2:.1f}M{x1:.1f} {mid - 5:.1f}v10M{x2:.1f} '
                f'{mid - 5:.1f}v10" stroke="#222" stroke-width="1.5" fill="none"/>'
            )
        parts.append(f'<text x="{left + width + 6}" y="{y + 13}" font-size="11">{value:.1f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # every text inside is escaped above


def line_chart_svg(
    labels: Sequence[str], values: Sequence[float], lows: Sequence[float], highs: Sequence[float], title: str
) -> Markup:
    """A line over quarters with interval whiskers (0–100 axis), as inline SVG."""
    left, top, width, height = 40, 10, 480, 200
    step = width / max(len(labels) - 1, 1)

    def y(v: float) -> float:
        return top + height * (1 - v / 100)

    parts = [
        f'<svg class="chart" viewBox="0 0 {left + width + 40} {top + height + 30}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for tick in range(0, 101, 25):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + width}" y2="{y(tick):.1f}" '
            f'stroke="#e3e3e3"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{tick}</text>'
        )
    points = []
    for i, (label, value, low, high) in enumerate(zip(labels, values, lows, highs, strict=True)):
        x = left + i * step
        parts.append(
            f'<text x="{x:.1f}" y="{top + height + 20}" font-size="11" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
        if value is None or math.isnan(value):
            continue
        points.append(f"{x:.1f},{y(value):.1f}")
        if not (math.isnan(low) or math.isnan(high)):
            parts.append(
                f'<path d="M{x:.1f} {y(low):.1f}V{y(high):.1f}M{x - 5:.1f} {y(low):.1f}h10M'
                f'{x - 5:.1f} {y(high):.1f}h10" stroke="#222" fill="none"/>'
            )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="4" fill="#c0392b">'
            f"<title>{escape(label)}：{value:.1f}</title></circle>"
        )
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#c0392b" stroke-width="2"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # every text inside is escaped above


def _section_choices(survey: Survey) -> list[SelectChoice]:
    return [SelectChoice("", "（不分组）")] + [SelectChoice(str(s.id), s.title) for s in survey.sections]


def _error_page(survey: Survey, error: SurveyError) -> Any:
    _db().rollback()
    status = 409 if error.code == "frozen" else 422
    return _editor(survey, error=message_of(error)), status


# --------------------------------------------------------------------------------------- evaluator pages


@bp.route("/surveys", methods=["GET", "POST"])
@roles_required(*EVALUATORS)
def index() -> Any:
    """Survey list; create a survey (empty or from an XLSForm)."""
    form = CreateForm()
    problems: list[RowError] = []
    status = 200
    if form.validate_on_submit():
        data, _name = _upload(form.xlsform)
        try:
            spec = parse_xlsform(data) if data else None
            title = (form.title.data or "").strip() or (spec.title if spec else "")
            survey = services.create_survey(_db(), form.quarter.data or "", title)
            if spec is not None:
                services.apply_spec(_db(), survey, spec)
        except ImportRejected as rejected:
            _db().rollback()
            problems, status = rejected.errors, 422
        except SurveyError as error:
            _db().rollback()
            getattr(form, error.field or "title").errors.append(message_of(error))
            status = 422
        else:
            _db().commit()
            flash(_("问卷已创建"))
            return redirect(url_for("surveys.editor", survey_id=survey.id))
    elif request.method == "POST":
        status = 422
    surveys = (
        _db().scalars(select(Survey).order_by(Survey.quarter.desc(), Survey.title, Survey.version)).all()
    )
    return render_template(
        "surveys/list.html",
        form=form,
        surveys=surveys,
        problems=problems,
        STATUS_LABELS=TranslatedLabels(STATUS_LABELS),
    ), status


def _editor(survey: Survey, error: str = "", problems: Sequence[RowError] = (), **forms: Any) -> str:
    section_form = forms.get("section_form") or SectionForm(formdata=None)
    question_form = forms.get("question_form") or QuestionForm(formdata=None)
    question_form.section.choices = _section_choices(survey)
    return render_template(
        "surveys/editor.html",
        survey=survey,
        section_form=section_form,
        question_form=question_form,
        import_form=ImportForm(formdata=None),
        margins_form=MarginsForm(formdata=None),
        margins=services.survey_margins(_db(), survey.id),
        DIMENSION_LABELS=TranslatedLabels(frames.DIMENSION_LABELS),
        error=error,
        problems=problems,
        KIND_LABELS=TranslatedLabels(KIND_LABELS),
        STATUS_LABELS=TranslatedLabels(STATUS_LABELS),
    )


@bp.route("/surveys/<int:survey_id>")
@roles_required(*EVALUATORS)
def editor(survey_id: int) -> Any:
    """The survey editor: sections, questions, import, collection switches."""
    return _editor(_survey(survey_id))


@bp.route("/surveys/<int:survey_id>/sections", methods=["POST"])
@roles_required(*EVALUATORS)
def add_section(survey_id: int) -> Any:
    """Add a section."""
    survey = _survey(survey_id)
    form = SectionForm()
    if not form.validate():
        return _editor(survey, section_form=form), 422
    try:
        services.add_section(_db(), survey, form.title.data or "")
    except SurveyError as error:
        return _error_page(survey, error)
    _db().commit()
    return redirect(url_for("surveys.editor", survey_id=survey.id))


def _spec_from(form: QuestionForm) -> QuestionSpec:
    """The question the form describes (likert labels default to the standard five)."""
    kind = QuestionKind(form.kind.data)
    text = form.choices.data or ""
    if kind == QuestionKind.likert5:
        labels = [c[1] for c in parse_choices(text)] if text.strip() else list(LIKERT_LABELS)
        choices = likert_choices(labels)
    else:
        choices = parse_choices(text)
    return QuestionSpec(
        name=(form.name.data or "").strip(),
        label=form.label.data or "",
        kind=kind,
        required=bool(form.required.data),
        hint=form.hint.data or "",
        choices=choices,
        dont_know=bool(form.dont_know.data) and kind in (QuestionKind.likert5, QuestionKind.single),
        indicator_code=form.indicator_code.data or "",
        service_area=form.service_area.data or "",
    )


def _save_question(survey: Survey, form: QuestionForm, question_id: int | None) -> Any:
    """Add (``question_id`` None) or change a question through one service call; the editor on errors."""
    try:
        spec = _spec_from(form)
        section = next((s for s in survey.sections if str(s.id) == form.section.data), None)
        if question_id is None:
            services.add_question(_db(), survey, spec, section)
        else:
            services.update_question(_db(), survey, question_id, spec, section)
    except SurveyError as error:
        if error.code == "not_found":
            abort(404)
        if error.code == "frozen":
            return _error_page(survey, error)
        _db().rollback()
        target = getattr(form, error.field or "label", form.label)
        target.errors = [*target.errors, message_of(error)]
        if question_id is None:
            return _editor(survey, question_form=form), 422
        return _question_page(survey, question_id, form), 422
    _db().commit()
    return redirect(url_for("surveys.editor", survey_id=survey.id, _anchor="questions"))


@bp.route("/surveys/<int:survey_id>/questions", methods=["POST"])
@roles_required(*EVALUATORS)
def add_question(survey_id: int) -> Any:
    """Add a question."""
    survey = _survey(survey_id)
    form = QuestionForm()
    form.section.choices = _section_choices(survey)
    if not form.validate():
        return _editor(survey, question_form=form), 422
    return _save_question(survey, form, None)


def _question_page(survey: Survey, question_id: int, form: QuestionForm) -> str:
    question = next((q for q in survey.questions if q.id == question_id), None)
    if question is None:
        abort(404)
    form.section.choices = _section_choices(survey)
    return render_template("surveys/question.html", survey=survey, question=question, form=form)


def _question_form(question: Any) -> QuestionForm:
    """The edit form filled from a stored question (choices back as 代码=文字 lines)."""
    form = QuestionForm(formdata=None)
    form.name.data, form.label.data, form.kind.data = question.name, question.label, question.kind.value
    form.section.data = str(question.section_id or "")
    form.required.data, form.dont_know.data, form.hint.data = (
        question.required,
        question.dont_know,
        question.hint,
    )
    form.choices.data = "\n".join(f"{code}={label}" for code, label in question.choices or [])
    form.indicator_code.data, form.service_area.data = question.indicator_code, question.service_area
    return form


@bp.route("/surveys/<int:survey_id>/questions/<int:question_id>", methods=["GET", "POST"])
@roles_required(*EVALUATORS)
def edit_question(survey_id: int, question_id: int) -> Any:
    """Edit one question of a draft survey."""
    survey = _survey(survey_id)
    if survey.frozen:
        return _error_page(survey, SurveyError("frozen", "问卷已开始收集，不能再修改；如需修改请另建新版本"))
    if request.method == "GET":
        question = next((q for q in survey.questions if q.id == question_id), None)
        if question is None:
            abort(404)
        return _question_page(survey, question_id, _question_form(question))
    form = QuestionForm()
    form.section.choices = _section_choices(survey)
    if not form.validate():
        return _question_page(survey, question_id, form), 422
    return _save_question(survey, form, question_id)


@bp.route("/surveys/<int:survey_id>/questions/<int:question_id>/delete", methods=["POST"])
@roles_required(*EVALUATORS)
def delete_question(survey_id: int, question_id: int) -> Any:
    """Delete one question of a draft survey."""
    survey = _survey(survey_id)
    if not FlaskForm().validate():
        abort(400)
    try:
        services.delete_question(_db(), survey, question_id)
    except SurveyError as error:
        _db().rollback()
        return abort(404) if error.code == "not_found" else _error_page(survey, error)
    _db().commit()
    flash(_("题目已删除"))
    return redirect(url_for("surveys.editor", survey_id=survey.id, _anchor="questions"))


@bp.route("/surveys/<int:survey_id>/questions/<int:question_id>/<any(up, down):direction>", methods=["POST"])
@roles_required(*EVALUATORS)
def move_question(survey_id: int, question_id: int, direction: str) -> Any:
    """Move one question of a draft survey up or down by one place."""
    survey = _survey(survey_id)
    if not FlaskForm().validate():
        abort(400)
    try:
        services.move_question(_db(), survey, question_id, -1 if direction == "up" else 1)
    except SurveyError as error:
        _db().rollback()
        return abort(404) if error.code == "not_found" else _error_page(survey, error)
    _db().commit()
    return redirect(url_for("surveys.editor", survey_id=survey.id, _anchor=f"question-{question_id}"))


@bp.route("/surveys/<int:survey_id>/preview")
@roles_required(*EVALUATORS)
def preview(survey_id: int) -> Any:
    """The questionnaire as residents will see it, in the editor's order; nothing can be submitted."""
    survey = _survey(survey_id)
    return render_template(
        "surveys/respond.html",
        survey=survey,
        community={"name": _("预览")},
        raw={},
        errors={},
        message="",
        token=None,
        AGE_BANDS=AGE_BANDS,
        GENDERS=GENDERS,
        relevance=_relevance(survey),
        runs=_runs(survey),
        preview=True,
    )


@bp.route("/surveys/<int:survey_id>/import", methods=["POST"])
@roles_required(*EVALUATORS)
def import_xlsform(survey_id: int) -> Any:
    """Add an XLSForm's sections and questions to a draft survey (all or nothing)."""
    survey = _survey(survey_id)
    form = ImportForm()
    data, _name = _upload(form.xlsform)
    if not data:
        return _editor(survey, error=_("请选择要导入的 XLSForm 文件")), 422
    try:
        added = services.apply_spec(_db(), survey, parse_xlsform(data))
    except ImportRejected as rejected:
        _db().rollback()
        return _editor(survey, error=_("文件未导入，请修改以下问题后重试"), problems=rejected.errors), 422
    except SurveyError as error:
        return _error_page(survey, error)
    _db().commit()
    flash(_("已导入 %(n)s 道题", n=added))
    return redirect(url_for("surveys.editor", survey_id=survey.id))


@bp.route("/surveys/<int:survey_id>/margins", methods=["POST"])
@roles_required(*EVALUATORS)
def margins(survey_id: int) -> Any:
    """Replace (or with ``clear`` remove) the survey's population margins for weighting; all or nothing."""
    survey = _survey(survey_id)
    if request.form.get("clear"):
        services.clear_margins(_db(), survey)
        _db().commit()
        flash(_("已清除总体边际分布，结果只显示未加权指数"))
        return redirect(url_for("surveys.editor", survey_id=survey.id))
    data, _name = _upload(MarginsForm().file)
    if not data:
        return _editor(survey, error=_("请选择要上传的边际分布 CSV 文件")), 422
    try:
        count = services.set_margins(_db(), survey, data)
    except ImportRejected as rejected:
        _db().rollback()
        return _editor(survey, error=_("边际分布未保存，请修改以下问题后重试"), problems=rejected.errors), 422
    _db().commit()
    flash(_("已保存 %(n)s 条总体边际分布", n=count))
    return redirect(url_for("surveys.editor", survey_id=survey.id))


@bp.route("/surveys/<int:survey_id>/<any(open, close, version):action>", methods=["POST"])
@roles_required(*EVALUATORS)
def change_status(survey_id: int, action: str) -> Any:
    """Open or close collection, or start a new version."""
    survey = _survey(survey_id)
    try:
        if action == "open":
            services.open_survey(_db(), survey)
        elif action == "close":
            services.close_survey(_db(), survey)
        else:
            survey = services.new_version(_db(), survey)
    except SurveyError as error:
        return _error_page(survey, error)
    _db().commit()
    flash(
        {"open": _("已开始收集，问卷内容已冻结"), "close": _("已结束收集"), "version": _("已创建新版本")}[
            action
        ]
    )
    return redirect(url_for("surveys.editor", survey_id=survey.id))


@bp.route("/surveys/<int:survey_id>/links")
@roles_required(*EVALUATORS)
def links(survey_id: int) -> Any:
    """Public links per community (filter by a district or street code)."""
    survey = _survey(survey_id)
    under_code = request.args.get("under", "").strip()
    query = select(Unit).where(Unit.level == Level.community, Unit.active.is_(True)).order_by(Unit.code)
    under = _db().scalar(select(Unit).where(Unit.code == under_code)) if under_code else None
    if under is not None:
        query = query.where(Unit.path.startswith(under.path))
    communities = _db().scalars(query.limit(MAX_LINKS + 1)).all()
    return render_template(
        "surveys/links.html",
        survey=survey,
        communities=communities[:MAX_LINKS],
        more=len(communities) > MAX_LINKS,
        under=under_code,
        survey_url=survey_url,
    )


@bp.route("/surveys/<int:survey_id>/links/<code>", methods=["GET", "POST"])
@roles_required(*EVALUATORS)
def community_link(survey_id: int, code: str) -> Any:
    """One community's link and QR code; generate one-time panel tokens."""
    survey = _survey(survey_id)
    try:
        community = services.community_by_code(_db(), code)
    except SurveyError:
        abort(404)
    form = TokenForm()
    tokens: list[str] = []
    status = 200
    if form.validate_on_submit():
        try:
            tokens = services.generate_tokens(_db(), survey, community, form.count.data or 0)
        except SurveyError as error:
            _db().rollback()
            form.count.errors = [*form.count.errors, message_of(error)]
            status = 422
        else:
            _db().commit()
    elif request.method == "POST":
        status = 422
    url = survey_url(survey, code)
    return render_template(
        "surveys/community_link.html",
        survey=survey,
        community=community,
        url=url,
        qr=qr_svg(url),
        form=form,
        tokens=[(t, survey_url(survey, code, t)) for t in tokens],
    ), status


@bp.route("/surveys/<int:survey_id>/paper", methods=["GET", "POST"])
@roles_required(*EVALUATORS)
def paper(survey_id: int) -> Any:
    """Upload entered paper questionnaires (CSV or XLSX); show stored, duplicate and rejected rows."""
    survey = _survey(survey_id)
    form = PaperForm()
    upload: PaperUpload | None = None
    error = ""
    status = 200
    if request.method == "POST":
        data, name = _upload(form.file)
        if not data:
            error, status = _("请选择要上传的文件"), 422
        else:
            try:
                if len(data) > int(current_app.config["IMPORT_INLINE_BYTES"]):
                    # A large file is imported by a job, outside this process; its page shows progress.
                    queued = paper_import.queue_paper(_db(), survey, data, name, signed_in_user())
                    _db().commit()
                    jobs.enqueue("surveys.jobs.import_paper_upload", queued.id)
                    return redirect(url_for("surveys.upload", survey_id=survey.id, upload_id=queued.id))
                upload = services.import_paper(_db(), survey, data, name, signed_in_user())
            except ImportRejected as rejected:
                _db().rollback()
                error, status = str(rejected), 422
            except SurveyError as exc:
                _db().rollback()
                error, status = message_of(exc), 422
            else:
                _db().commit()
                status = 200 if not upload.rejected else 422
    uploads = (
        _db()
        .scalars(
            select(PaperUpload)
            .where(PaperUpload.survey_id == survey.id)
            .order_by(PaperUpload.id.desc())
            .limit(20)
        )
        .all()
    )
    columns = [
        "instance_id",
        "community",
        "age_band",
        "gender",
        "district",
        *(q.name for q in survey.questions if q.kind != QuestionKind.note),
    ]
    return render_template(
        "surveys/paper.html",
        survey=survey,
        form=form,
        upload=upload,
        error=error,
        rejected=services.rejected_rows(upload) if upload else [],
        uploads=uploads,
        columns=columns,
    ), status


@bp.route("/surveys/<int:survey_id>/uploads/<int:upload_id>")
@roles_required(*EVALUATORS)
def upload(survey_id: int, upload_id: int) -> Any:
    """One paper upload: the progress of its import job, then what was stored and rejected."""
    survey = _survey(survey_id)
    row = _db().get(PaperUpload, upload_id)
    if row is None or row.survey_id != survey_id:
        abort(404)
    return render_template(
        "surveys/upload.html",
        survey=survey,
        upload=row,
        rejected=services.rejected_rows(row),
        running=row.status in ("queued", "running"),
    )


@bp.route("/surveys/<int:survey_id>/uploads/<int:upload_id>/rejected.csv")
@roles_required(*EVALUATORS)
def rejected_csv(survey_id: int, upload_id: int) -> Any:
    """The rejected rows of a paper upload as CSV (line, column, reason)."""
    upload = _db().get(PaperUpload, upload_id)
    if upload is None or upload.survey_id != survey_id:
        abort(404)
    # The reasons quote the uploaded cells, so the file goes through the formula-safe writer.
    rows = [["行号", "列", "原因"], *([line, column, message] for line, column, message in upload.rejected)]
    return Response(
        csv_text(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=rejected-{upload.id}.csv"},
    )


@bp.route("/surveys/<int:survey_id>/progress")
@roles_required(*EVALUATORS)
def progress(survey_id: int) -> Any:
    """Responses against the required sample, per community."""
    survey = _survey(survey_id)
    margin = _config_float("SURVEY_MARGIN", services.DEFAULT_MARGIN)
    sd = _config_float("SURVEY_ASSUMED_SD", services.DEFAULT_SD)
    rows = services.progress(_db(), survey, margin, sd)
    reached = sum(1 for r in rows if r.responses >= r.required)
    return render_template(
        "surveys/progress.html",
        survey=survey,
        rows=rows,
        reached=reached,
        margin=margin,
        sd=sd,
        total=sum(r.responses for r in rows),
        exclusions=integrity.exclusions(_db(), [survey.id]),
    )


@bp.route("/surveys/<int:survey_id>/review", methods=["GET", "POST"])
@roles_required(*EVALUATORS)
def review(survey_id: int) -> Any:
    """Open-link answers held as bursts: the evaluator accepts them into the results or excludes them."""
    survey = _survey(survey_id)
    form = ReviewForm()
    status = 200
    if form.validate_on_submit():
        decision = "accept" if form.accept.data else "exclude"
        try:
            changed = integrity.decide(_db(), survey, form.responses.data or [], decision, signed_in_user())
        except SurveyError as error:
            _db().rollback()
            form.responses.errors = [*form.responses.errors, message_of(error)]
            status = 422
        else:
            _db().commit()
            flash(
                _("已计入 %(n)s 份答卷", n=changed)
                if decision == "accept"
                else _("已排除 %(n)s 份答卷", n=changed)
            )
            return redirect(url_for("surveys.review", survey_id=survey.id))
    elif request.method == "POST":
        status = 422
    rows = integrity.reviewable(_db(), survey)
    names = {q.id: q.label if len(q.label) <= 12 else q.label[:12] + "…" for q in survey.questions}
    return render_template(
        "surveys/review.html",
        survey=survey,
        form=form,
        rows=rows,
        names=names,
        summary=integrity.exclusions(_db(), [survey.id]),
        limits=survey_limits(),
        reason_label=integrity.reason_label,
        RESPONSE_STATUS_LABELS=TranslatedLabels(RESPONSE_STATUS_LABELS),
    ), status


def _results_quarter() -> Quarter:
    text = request.args.get("quarter", "").strip()
    if text:
        try:
            return Quarter.parse(text)
        except ValueError:
            abort(400)
    latest = _db().scalar(select(Survey.quarter).order_by(Survey.quarter.desc()).limit(1))
    return Quarter.parse(latest) if latest else Quarter.current()


@bp.route("/surveys/results")
@roles_required(*EVALUATORS)
def results() -> Any:
    """Per-community index with intervals, the quarterly trend, quarter-over-quarter change, callbacks."""
    quarter = _results_quarter()
    table = frames.community_results(_db(), quarter)
    overall = table[table["level"] == "overall"].sort_values("index", ascending=False)
    shown = overall.head(MAX_BARS)
    bars = bar_chart_svg(
        [f"{n}" for n in shown["community_name"]],
        shown["index"].tolist(),
        shown["low"].tolist(),
        shown["high"].tolist(),
        _("各社区满意度指数（95% 置信区间）"),
    )
    quarters = [quarter]
    for _i in range(5):
        quarters.insert(0, quarters[0].previous())
    series = frames.quarter_series(_db(), quarters)
    small = series["n"] < MIN_SAMPLE["survey"]  # the trend swung on 2 answers without a warning
    line = line_chart_svg(
        [f"{q}*" if flag else str(q) for q, flag in zip(quarters, small, strict=True)],
        series["index"].tolist(),
        series["low"].tolist(),
        series["high"].tolist(),
        _("全市满意度指数走势（* 样本不足 %(n)s 人）", n=MIN_SAMPLE["survey"])
        if small.any()
        else _("全市满意度指数走势"),
    )
    change = frames.quarter_change(_db(), quarter)
    callbacks = callback_results(_db(), quarter)
    surveys = (
        _db()
        .scalars(
            select(Survey)
            .where(Survey.quarter == str(quarter), Survey.status != SurveyStatus.draft)
            .order_by(Survey.title, Survey.version)
        )
        .all()
    )
    per_survey = [
        (
            survey,
            frames.reliability(_db(), survey.id),
            frames.weighted_results(_db(), survey.id, services.survey_margins(_db(), survey.id)),
        )
        for survey in surveys
    ]
    detail = table[table["level"] != "overall"]
    return render_template(
        "surveys/results.html",
        quarter=quarter,
        overall=overall,
        detail=detail,
        bars=bars,
        line=line,
        change=change.reset_index(),
        callbacks=callbacks,
        per_survey=per_survey,
        exclusions=integrity.exclusions(_db(), [s.id for s in surveys]),
        reason_label=integrity.reason_label,
        DIMENSION_LABELS=TranslatedLabels(frames.DIMENSION_LABELS),
        fmt=_fmt,
        more=len(overall) > MAX_BARS,
    )


@bp.route("/surveys/results.<any(csv, xlsx):fmt>")
@roles_required(*EVALUATORS)
def export(fmt: str) -> Any:
    """Export the results of a quarter as CSV (UTF-8 with BOM, for Excel) or XLSX."""
    quarter = _results_quarter()
    table = safe_frame(frames.results_export_frame(frames.community_results(_db(), quarter)))
    filename = f"survey-results-{quarter}.{fmt}"
    headers = {"Content-Disposition": f"attachment; filename={filename}"}
    if fmt == "csv":
        return Response("\ufeff" + table.to_csv(index=False), mimetype="text/csv", headers=headers)
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = str(quarter)
    sheet.append(list(table.columns))
    for record in table.itertuples(index=False):
        sheet.append([None if isinstance(v, float) and math.isnan(v) else v for v in record])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return Response(
        buffer.getvalue(),
        headers=headers,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


# ------------------------------------------------------------------------------------------- public form


@bp.route("/s/<int:survey_id>/<code>", methods=["GET", "POST"])
@limiter.limit(limit_from_config("SURVEY_ANSWER_LIMIT"), scope="survey-answer", methods=["POST"])
def respond(survey_id: int, code: str) -> Any:
    """The public questionnaire of one community (mobile-first); ``t`` carries a one-time panel token."""
    survey = _survey(survey_id)
    try:
        community = services.community_by_code(_db(), code)
    except SurveyError:
        abort(404)
    token = (request.values.get("t") or "").strip() or None
    raw: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    message = ""
    status = 200
    if survey.status != SurveyStatus.open:
        return render_template("surveys/closed.html", survey=survey), 410 if survey.frozen else 404
    device = _device_id()
    if request.method == "POST":
        raw = {key: request.form.getlist(key) for key in request.form}
        respondent = services.Respondent(request.form.get("age_band", ""), request.form.get("gender", ""))
        client = _client(survey, device)
        try:
            services.submit_online(
                _db(),
                survey,
                community,
                raw,
                respondent,
                token,
                None if token else request.form.get("contact", "").strip() or None,
                client,
                survey_limits(),
            )
        except integrity.LimitReached as refused:
            _db().rollback()
            integrity.record_refusal(_db(), survey, client, refused.outcome)
            _db().commit()
            message, status = message_of(refused), 429
        except services.InvalidAnswers as invalid:
            _db().rollback()
            errors = {k: _(v) for k, v in invalid.errors.items()}
            message, status = message_of(invalid), 422
        except SurveyError as error:
            _db().rollback()
            message = message_of(error)
            status = 409 if error.code in ("token_used", "duplicate") else 422
            if error.field:
                errors[error.field] = message
        else:
            _db().commit()
            page = render_template("surveys/thanks.html", survey=survey, community=community)
            return _with_device(Response(page), device)
    page = render_template(
        "surveys/respond.html",
        survey=survey,
        community=community,
        raw=raw,
        errors=errors,
        message=message,
        token=token,
        AGE_BANDS=AGE_BANDS,
        GENDERS=GENDERS,
        relevance=_relevance(survey),
        runs=_runs(survey),
    )
    return _with_device(Response(page, status), device)


def survey_limits() -> integrity.Limits:
    """The open-link limits from configuration."""
    config = current_app.config
    return integrity.Limits(
        window_seconds=int(config["SURVEY_LIMIT_WINDOW_SECONDS"]),
        per_device=int(config["SURVEY_LIMIT_PER_DEVICE"]),
        per_address=int(config["SURVEY_LIMIT_PER_ADDRESS"]),
        burst_seconds=int(config["SURVEY_BURST_SECONDS"]),
        burst_count=int(config["SURVEY_BURST_COUNT"]),
    )


def _device_id() -> str:
    """The browser's random survey device id (a new one when the cookie is missing or malformed)."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    return value if 16 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum() else ""


def _client(survey: Survey, device: str) -> integrity.Client:
    """Keyed hashes of this request's device cookie and address (the raw values are never stored)."""
    secret = current_app.config["SECRET_KEY"]
    address = request.remote_addr or ""
    return integrity.Client(
        device=integrity.client_hash(secret, survey, "device:" + device) if device else None,
        address=integrity.client_hash(secret, survey, "address:" + address) if address else None,
    )


def _with_device(response: Response, device: str) -> Response:
    """Give a browser without one its random device id (HttpOnly, this site only)."""
    if not device:
        response.set_cookie(
            DEVICE_COOKIE,
            secrets.token_urlsafe(18),
            max_age=DEVICE_COOKIE_AGE,
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        )
    return response


def _runs(survey: Survey) -> list[tuple[Any, list[Any]]]:
    """Questions in the editor's order, cut into consecutive runs of one section (or none)."""
    runs: list[tuple[Any, list[Any]]] = []
    for q in survey.questions:
        if runs and runs[-1][0] is q.section:
            runs[-1][1].append(q)
        else:
            runs.append((q.section, [q]))
    return runs


def _relevance(survey: Survey) -> dict[str, str]:
    """Each question's ``relevant`` as the JSON tree the page script evaluates (server rules on submit)."""
    out = {}
    for q in survey.questions:
        if q.relevant:
            try:
                out[q.name] = json.dumps(expressions.to_json(expressions.parse(q.relevant)))
            except expressions.Unsupported:
                continue
    return out


register_nav("surveys.index", N_("问卷调查"), *EVALUATORS)
register_nav("surveys.results", N_("调查结果"), *EVALUATORS)
