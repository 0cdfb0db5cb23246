"""Workbench for handlers, dispatchers and operators, and the resident's rating on the status page.

Every view loads the case through ``routing.services.case_for`` (a case the user may not see is a
404, never a 403, so existence is not leaked) and offers exactly ``services.allowed_actions``. A POST
re-checks the action with the lifecycle before the form is read: not this user's to take → 403; not
possible in the case's state → 409 with the Chinese reason; a refused payload → 422 with the reason.
Nothing is changed in either case.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, cast

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    MultipleFileField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.i18n import message_of
from app.photos import attach, photo_list, read_photos
from app.redis_conn import current_redis
from app.web.present import STATE_LABELS, register_nav
from app.web.public import duplicates_by_ids, token_key
from core.db import utcnow
from core.i18n import N_
from core.images import ProcessedImage
from core.models import ROLE_LABELS, Category, Level, Role, Unit, UnitKind, User
from core.units import children_of, departments
from routing import lifecycle, notify, services
from routing.calendar import WorkingHours
from routing.intake import check_token, find_case
from routing.lifecycle import (
    RETURN_REASON_LABELS,
    SATISFACTION_LABELS,
    Action,
    State,
    TransitionError,
)
from routing.models import Case, CaseEvent, Notice
from routing.narrative import describe

bp = Blueprint("workbench", __name__)


def dbs() -> Session:
    """The request's session, typed as the plain Session the services take (the scoped one proxies it)."""
    return cast(Session, db.session)


PER_PAGE = 20
QUEUE_ROLES = (Role.handler, Role.dispatcher, Role.operator, Role.admin)
# Refusals that mean "not yours to do" (403) rather than "not now" (409).
FORBIDDEN_CODES = frozenset({"role_forbidden", "out_of_scope", "not_summoned"})
OPEN_STATES = tuple(s.value for s in lifecycle.OPEN_STATES)

register_nav("workbench.queue", N_("工作台"), Role.handler, Role.dispatcher, Role.operator, Role.admin)


def options(pairs: Iterable[tuple[str, str]]) -> list[SelectChoice]:
    """Select options from (value, label) pairs (wtforms 3.3 deprecates plain tuples)."""
    return [SelectChoice(value, label) for value, label in pairs]


# --- forms ---------------------------------------------------------------------------------------


class QueueFilterForm(FlaskForm):
    """Filters of the unit queue (a GET form: no CSRF token needed, nothing changes)."""

    class Meta:
        csrf = False

    state = SelectField(_l("状态"), validate_choice=False, validators=[Optional()])
    category = SelectField(_l("类别"), validate_choice=False, validators=[Optional()])
    overdue = BooleanField(_l("只看超时"))
    q = StringField(
        _l("搜索"),
        validators=[Optional(), Length(max=100)],
        render_kw={"placeholder": _l("受理编号、地址或内容")},
    )
    page = IntegerField(_l("页码"), default=1, validators=[Optional()])


class ActionForm(FlaskForm):
    """Base of the case action forms: ``values()`` gives the service's keyword arguments."""

    def values(self) -> dict[str, Any]:
        """Plain values for the action's service."""
        return {}


class NoteForm(ActionForm):
    """Sign for, approve an extension, close: an optional note."""

    note = StringField(_l("备注"), validators=[Optional(), Length(max=500)])

    def values(self) -> dict[str, Any]:
        """The note."""
        return {"note": self.note.data or ""}


class ReasonForm(ActionForm):
    """Refuse an extension, reopen, supervise: a required reason."""

    reason = TextAreaField(_l("理由"), validators=[DataRequired(message=_l("请填写理由")), Length(max=1000)])

    def values(self) -> dict[str, Any]:
        """The reason."""
        return {"reason": self.reason.data or ""}


class ReturnForm(ActionForm):
    """退单: one of the fixed reasons and a note."""

    # No reason is preselected: the handler must pick one (a blank first option).
    reason = SelectField(
        _l("退单理由"),
        choices=options(
            [("", _l("请选择退单理由")), *((k.value, v) for k, v in RETURN_REASON_LABELS.items())]
        ),
        validators=[DataRequired(message=_l("请选择退单理由"))],
    )
    note = StringField(_l("说明"), validators=[Optional(), Length(max=500)])

    def values(self) -> dict[str, Any]:
        """Reason code and note."""
        return {"reason": self.reason.data, "note": self.note.data or ""}


class UnitChoiceForm(ActionForm):
    """下派 / 派单: the unit to send the case to."""

    unit_code = SelectField(
        _l("承办单位"), validate_choice=False, validators=[DataRequired(message=_l("请选择单位"))]
    )
    note = StringField(_l("备注"), validators=[Optional(), Length(max=500)])

    def values(self) -> dict[str, Any]:
        """Unit code and note."""
        return {"unit_code": self.unit_code.data or "", "note": self.note.data or ""}


class DispatchForm(UnitChoiceForm):
    """派单 by a dispatcher: may force a unit that returned the case (强制指派), with the reason."""

    force = BooleanField(_l("强制指派（派回曾退回此工单的单位）"))
    note = StringField(_l("备注（强制指派时必填理由）"), validators=[Length(max=500)])

    def validate_note(self, field: Any) -> None:
        """Forcing is audited: its reason is required."""
        if self.force.data and not (field.data or "").strip():
            raise ValidationError(_("强制指派须填写理由"))

    def values(self) -> dict[str, Any]:
        """Unit code, the force flag and the note (the audited reason when forced)."""
        return {**super().values(), "force": bool(self.force.data)}


class EscalateForm(ActionForm):
    """上报 / 吹哨: the level above and/or departments, and why."""

    # Ticked boxes under a search box (site.js filters them), not a Ctrl-click list; no default target.
    to_unit_codes = SelectMultipleField(
        _l("吹哨对象（可多选）"),
        validate_choice=False,
        validators=[DataRequired(message=_l("请至少选择一个吹哨对象"))],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        # Not `required` on each box: a browser would then insist on ticking every one of them.
        # "At least one" is checked on the server, which keeps what was typed (post-redirect-get).
        render_kw={"required": False},
    )
    note = TextAreaField(
        _l("上报事由"), validators=[DataRequired(message=_l("请填写上报事由")), Length(max=1000)]
    )

    def values(self) -> dict[str, Any]:
        """Unit codes and note."""
        return {"to_unit_codes": list(self.to_unit_codes.data or []), "note": self.note.data or ""}


class RespondForm(ActionForm):
    """部门报到: the summoned unit's response."""

    response = TextAreaField(
        _l("响应内容"), validators=[DataRequired(message=_l("请填写响应内容")), Length(max=1000)]
    )

    def values(self) -> dict[str, Any]:
        """The response."""
        return {"response": self.response.data or ""}


class ExtensionForm(ActionForm):
    """申请延期: the new date (deadline at the end of that working day) and why."""

    new_date = DateField(_l("延期至（日期）"), validators=[InputRequired(message=_l("请选择延期后的日期"))])
    reason = TextAreaField(
        _l("延期理由"), validators=[DataRequired(message=_l("请填写延期理由")), Length(max=1000)]
    )

    def values(self) -> dict[str, Any]:
        """New deadline (UTC) and reason."""
        return {"new_deadline": end_of_day_utc(self.new_date.data), "reason": self.reason.data or ""}


class ResolveForm(ActionForm):
    """办结: what was done and the reply to the resident."""

    result = TextAreaField(
        _l("办理结果"), validators=[DataRequired(message=_l("请填写办理结果")), Length(max=2000)]
    )
    reply = TextAreaField(
        _l("答复居民"), validators=[DataRequired(message=_l("请填写答复居民的内容")), Length(max=2000)]
    )
    evidence = MultipleFileField(
        _l("办结照片（可选，居民可见）"), render_kw={"accept": "image/jpeg,image/png,image/heic,image/heif"}
    )

    # Offered only while summoned units have not reported in (see ``_fill_choices``).
    despite_unanswered = BooleanField(_l("仍有被吹哨单位未报到，我确认现在办结"))

    def values(self) -> dict[str, Any]:
        """Result, reply and whether unanswered summons were confirmed (the evidence photos are stored by
        the view)."""
        return {
            "result": self.result.data or "",
            "reply": self.reply.data or "",
            "despite_unanswered": bool(
                getattr(self, "despite_unanswered", None) and self.despite_unanswered.data
            ),
        }


class MergeForm(ActionForm):
    """合并: the earlier case's tracking number."""

    into_tracking_number = StringField(
        _l("合并到（受理编号）"), validators=[DataRequired(message=_l("请填写目标受理编号")), Length(max=32)]
    )
    reason = StringField(_l("说明"), validators=[Optional(), Length(max=500)])

    def values(self) -> dict[str, Any]:
        """Target tracking number and reason."""
        return {
            "into_tracking_number": self.into_tracking_number.data or "",
            "reason": self.reason.data or "",
        }


class CallbackForm(ActionForm):
    """回访: solved? and how satisfied, with a comment (operator by phone, or the resident online)."""

    solved = RadioField(
        _l("问题是否解决"),
        choices=options([("yes", _l("已解决")), ("no", _l("未解决"))]),
        validators=[InputRequired(_l("请选择是否解决"))],
    )
    satisfaction = RadioField(
        _l("满意程度"),
        choices=options((k.value, v) for k, v in SATISFACTION_LABELS.items()),
        validators=[InputRequired(_l("请选择满意程度"))],
    )
    comment = TextAreaField(_l("意见"), validators=[Optional(), Length(max=1000)])

    def values(self) -> dict[str, Any]:
        """Solved flag, rating and comment."""
        return {
            "solved": self.solved.data == "yes",
            "satisfaction": self.satisfaction.data,
            "comment": self.comment.data or "",
        }


FORMS: dict[Action, type[ActionForm]] = {
    Action.accept: NoteForm,
    Action.return_case: ReturnForm,
    Action.pass_down: UnitChoiceForm,
    Action.escalate: EscalateForm,
    Action.respond_escalation: RespondForm,
    Action.request_extension: ExtensionForm,
    Action.approve_extension: NoteForm,
    Action.refuse_extension: ReasonForm,
    Action.resolve: ResolveForm,
    Action.dispatch: DispatchForm,
    Action.reopen: ReasonForm,
    Action.supervise: ReasonForm,
    Action.merge: MergeForm,
    Action.close: NoteForm,
    Action.callback: CallbackForm,
}


def end_of_day_utc(day: date | None) -> datetime | None:
    """The end of office hours on ``day`` in Beijing time, as naive UTC."""
    if day is None:
        return None
    return services.to_utc(datetime.combine(day, WorkingHours().day_end))


# --- queries the views need ----------------------------------------------------------------------


def state_counts(user: User) -> dict[str, int]:
    """Open cases at the user's unit, per state."""
    if user.unit_id is None:
        return {}
    rows = dbs().execute(
        select(Case.state, func.count(Case.id))
        .where(Case.current_unit_id == user.unit_id, Case.state.in_(OPEN_STATES))
        .group_by(Case.state)
    )
    return {state: count for state, count in rows}


def callback_queue(limit: int = 50) -> list[Case]:
    """Resolved cases still waiting for their callback (回访), oldest first: the operators' list."""
    stmt = (
        select(Case)
        .where(Case.state == State.resolved.value, Case.satisfaction.is_(None))
        .order_by(Case.resolved_at)
        .limit(limit)
    )
    return list(dbs().scalars(stmt))


def case_notices(case: Case, kind: str, recipient_id: int | None) -> list[Notice]:
    """The notices about ``case`` sent to one unit or resident, newest first, each text once (a case
    dispatched to the unit twice sent the same 新工单 notice twice)."""
    if recipient_id is None:
        return []
    stmt = (
        select(Notice)
        .where(Notice.case_id == case.id, Notice.recipient_kind == kind, Notice.recipient_id == recipient_id)
        .order_by(Notice.id.desc())
    )
    once: dict[str, Notice] = {}
    for notice in dbs().scalars(stmt):
        once.setdefault(notice.message, notice)
    return list(once.values())


def _unit_label(unit: Unit) -> str:
    return f"{unit.name}（{unit.code}）"


def _places_below(unit: Unit | None, everything: bool) -> list[Unit]:
    """Active places in the subtree of ``unit`` (the whole tree when ``everything``), by path."""
    stmt = select(Unit).where(
        Unit.active.is_(True), Unit.kind.not_in([UnitKind.department, UnitKind.utility])
    )
    stmt = stmt.where(Unit.level != Level.city)
    if not everything:
        if unit is None:
            return []
        stmt = stmt.where(Unit.path.startswith(unit.path))
    return list(dbs().scalars(stmt.order_by(Unit.path)))


def _fill_choices(form: ActionForm, action: Action, case: Case, user: User) -> None:
    """Unit options of the forms that choose units."""
    if action is Action.pass_down and isinstance(form, UnitChoiceForm):
        # A blank first option: nothing is preselected, the dispatcher chooses (DataRequired refuses "").
        form.unit_code.choices = options(
            [
                ("", _("请选择单位")),
                *((u.code, _unit_label(u)) for u in children_of(dbs(), case.current_unit)),
            ]
        )
    elif action is Action.dispatch and isinstance(form, UnitChoiceForm):
        everything = user.role == Role.admin or services.acts_for_city(user)
        places = _places_below(user.unit, everything)
        depts = departments(dbs()) if everything else []
        returned = services.snapshot(case, summons=False).returned_by
        form.unit_code.choices = options(
            [
                ("", _("请选择单位")),
                *(
                    (u.code, _unit_label(u) + (_("（曾退回，需强制指派）") if u.id in returned else ""))
                    for u in [*depts, *places]
                ),
            ]
        )
    elif action is Action.resolve and isinstance(form, ResolveForm):
        if not any(s.closed_at is None for s in case.summons):
            del form.despite_unanswered
    elif action is Action.escalate and isinstance(form, EscalateForm):
        targets = services.escalation_targets(dbs(), case)
        form.to_unit_codes.choices = options((u.code, _unit_label(u)) for u in targets)


def _form(action: Action, case: Case, user: User, formdata: Any = None) -> ActionForm:
    form = FORMS[action](prefix=action.value, formdata=formdata)
    _fill_choices(form, action, case, user)
    return form


def _load(tracking_number: str) -> tuple[User, Case]:
    """The signed-in user and the case, or 404 if the user may not see it."""
    user = signed_in_user()
    case = find_case(dbs(), tracking_number)
    if user is None or case is None:
        abort(404)
    try:
        services.case_for(dbs(), case.id, user)
    except services.CaseNotFound:
        abort(404)
    return user, case


def _refusal(case: Case, user: User, action: Action) -> TransitionError | None:
    """Why the lifecycle would refuse ``action`` by ``user`` now, whatever the payload."""
    actor = services.actor_for(dbs(), user)
    try:
        lifecycle.check_action(services.snapshot(case), action, actor, utcnow(), services.POLICY)
    except TransitionError as refused:
        return refused
    return None


def _timeline(case: Case) -> list[dict[str, Any]]:
    """Each audit event with who, which unit, from, to, why and when."""
    ids = {e.actor_id for e in case.events if e.actor_id is not None}
    users = {u.id: u for u in dbs().scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    rows = []
    for event in case.events:
        actor = users.get(event.actor_id) if event.actor_id is not None else None
        rows.append(
            {
                "event": event,
                "text": describe(event, for_resident=False),
                "who": actor.display_name if actor is not None else _who_without_user(event),
                "role": _role_label(event),
            }
        )
    return rows


def _who_without_user(event: CaseEvent) -> str:
    return _("系统") if event.actor_role in (None, "system") else _("居民（凭查询链接）")


def _role_label(event: CaseEvent) -> str:
    try:
        return ROLE_LABELS[Role(event.actor_role or "")]
    except ValueError:
        return _("系统") if event.actor_role == "system" else ""


DRAFT_KEY = "workbench_draft"
DRAFT_SECONDS = 600  # a refused form's typed text is kept this long for the page it returns to


def _back_with_draft(case: Case, action: Action) -> Any:
    """Post-redirect-get for a refused action: what was typed waits in the session for the case page
    (which shows it once, with the field errors), and the browser leaves the POST address."""
    typed = {k: request.form.getlist(k) for k in request.form if k != "csrf_token"}
    # The text can be far over a cookie's 4 KB: it waits in Redis, the (cookie) session holds its key.
    key = f"{DRAFT_KEY}:{secrets.token_urlsafe(16)}"
    draft = {"case": case.tracking_number, "action": action.value, "form": typed}
    current_redis().set(key, json.dumps(draft, ensure_ascii=False), ex=DRAFT_SECONDS)
    session[DRAFT_KEY] = key
    return redirect(url_for("workbench.case_page", tracking_number=case.tracking_number), 303)


def _draft_form(case: Case, user: User) -> tuple[Action, ActionForm] | None:
    """The refused form of the last POST on this case, re-bound to what was typed (then forgotten)."""
    key = session.pop(DRAFT_KEY, None)
    raw = current_redis().getdel(key) if isinstance(key, str) else None
    draft = json.loads(raw) if raw else None
    if not draft or draft.get("case") != case.tracking_number:
        return None
    try:
        action = Action(draft.get("action"))
    except ValueError:
        return None
    # CSRF stays on: the re-bound form must render a fresh token, or the corrected form cannot be
    # sent again (a browser got 400 "表单凭证无效" on the second try); the draft holds no token, so that
    # one check's error is dropped after re-validation.
    form = FORMS[action](prefix=action.value, formdata=MultiDict(_pairs(draft.get("form") or {})))
    _fill_choices(form, action, case, user)
    form.validate()  # the field errors again, beside the fields
    token = getattr(form, "csrf_token", None)
    if token is not None:
        token.errors = []
    return action, form


def _pairs(typed: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(key, value) for key, values in typed.items() for value in values]


def _render_case(
    case: Case, user: User, status: int = 200, bound: tuple[Action, ActionForm] | None = None
) -> Any:
    actions = services.allowed_actions(dbs(), case, user)
    forms = {a: _form(a, case, user) for a in actions if a in FORMS}
    bound = bound or _draft_form(case, user)
    if bound is not None and bound[0] in forms:
        forms[bound[0]] = bound[1]
    now = utcnow()
    body = render_template(
        "workbench/case.html",
        case=case,
        forms=forms,
        timeline=_timeline(case),
        notices=case_notices(case, "unit", user.unit_id),
        overdue=case.deadline is not None and case.state in services.HANDLING_STATES and case.deadline < now,
        summons=case.summons,
        Action=Action,
        photos=photo_list(case, None),
        duplicates=duplicates_by_ids(
            case.category_id, case.community_id, case.description, exclude_id=case.id
        )
        if case.merged_into_id is None and case.state in OPEN_STATES
        else [],
    )
    return body, status


# --- views ---------------------------------------------------------------------------------------


@bp.route("/workbench")
@roles_required(*QUEUE_ROLES)
def queue() -> Any:
    """My unit's queue with filters, search and pages; dispatchers also see their subtree's waiting cases."""
    user = signed_in_user()
    assert user is not None
    form = QueueFilterForm(request.args)
    form.state.choices = options([("", "全部状态"), *((s, STATE_LABELS[s]) for s in OPEN_STATES)])
    categories = dbs().scalars(select(Category).order_by(Category.code))
    form.category.choices = options([("", "全部类别"), *((c.code, c.name) for c in categories)])
    form.validate()
    page = max(form.page.data or 1, 1) if not form.page.errors else 1
    rows = services.unit_queue(
        dbs(),
        user,
        state=form.state.data or None,
        category=form.category.data or None,
        overdue=True if form.overdue.data else None,
        search=form.q.data or None,
        limit=PER_PAGE + 1,
        offset=(page - 1) * PER_PAGE,
    )
    waiting = services.triage_queue(dbs(), user) if user.role in (Role.dispatcher, Role.admin) else []
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "workbench/queue.html",
        form=form,
        cases=rows[:PER_PAGE],
        page=page,
        prev_url=url_for("workbench.queue", page=page - 1, **args) if page > 1 else None,
        next_url=url_for("workbench.queue", page=page + 1, **args) if len(rows) > PER_PAGE else None,
        counts=state_counts(user),
        waiting=waiting,
        whistles=services.pending_summons(dbs(), user) if user.role in (Role.dispatcher, Role.admin) else [],
        callbacks=callback_queue() if user.role in (Role.operator, Role.admin) else [],
        notices=notify.unread_notices(dbs(), "unit", user.unit_id, limit=10) if user.unit_id else [],
        now=utcnow(),
    )


@bp.route("/workbench/notices/read", methods=["POST"])
@roles_required(*QUEUE_ROLES)
def read_notices() -> Any:
    """Mark my unit's notices as read."""
    user = signed_in_user()
    assert user is not None
    if FlaskForm().validate_on_submit() and user.unit_id is not None:
        ids = [n.id for n in notify.notices_for(dbs(), "unit", user.unit_id, limit=500) if n.read_at is None]
        notify.mark_read(dbs(), ids, "unit", user.unit_id)
        dbs().commit()
    return redirect(url_for("workbench.queue"))


@bp.route("/workbench/cases/<tracking_number>")
@roles_required(*QUEUE_ROLES)
def case_page(tracking_number: str) -> Any:
    """The case for staff: details, deadline, timeline, notices and exactly the allowed actions."""
    user, case = _load(tracking_number)
    page = _render_case(case, user)
    # Opening the case is reading its notices: the queue shows each notice until then, not again.
    if user.unit_id is not None and notify.mark_case_read(dbs(), case.id, "unit", user.unit_id):
        dbs().commit()
    return page


@bp.route("/workbench/cases/<tracking_number>/<action>", methods=["POST"])
@roles_required(*QUEUE_ROLES)
def act(tracking_number: str, action: str) -> Any:
    """Take one action on the case through its service; refusals change nothing."""
    user, case = _load(tracking_number)
    try:
        chosen = Action(action)
    except ValueError:
        abort(404)
    if chosen not in FORMS:
        abort(404)
    refused = _refusal(case, user, chosen)
    if refused is not None:
        if refused.code in FORBIDDEN_CODES:
            abort(403)
        flash(message_of(refused))
        return _back_with_draft(case, chosen)
    form = _form(chosen, case, user, formdata=request.form)
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors if isinstance(errors, list) else [errors]:
                flash(_(str(error)))
        return _back_with_draft(case, chosen)
    evidence: list[ProcessedImage] = []
    if isinstance(form, ResolveForm):
        evidence, problems = read_photos(request.files.getlist(form.evidence.name))
        if problems:
            for problem in problems:
                flash(problem.message)  # already translated by read_photos
            return _back_with_draft(case, chosen)
    try:
        services.perform(dbs(), chosen.value, case.id, user, **form.values())
        if evidence:
            attach(dbs(), case, evidence, "evidence")
    except TransitionError as refusal:
        dbs().rollback()
        flash(message_of(refusal))
        return _back_with_draft(case, chosen)
    dbs().commit()
    flash(_("已完成：%(action)s", action=_(chosen.label)))
    try:
        services.case_for(dbs(), case.id, user)
    except services.CaseNotFound:  # e.g. after 退单 the case left the unit: back to the queue, not a 404
        return redirect(url_for("workbench.queue"))
    return redirect(url_for("workbench.case_page", tracking_number=case.tracking_number))


# --- the resident's side of the status page ------------------------------------------------------


def _resident_may_rate(case: Case, token: str | None) -> bool:
    """The holder of the private link, or the signed-in resident who submitted the case."""
    user = signed_in_user()
    if user is not None and user.role == Role.resident and case.resident_id == user.id:
        return True
    return check_token(token_key(), case.tracking_number, token)


def next_step(case: Case) -> str:
    """What happens next, in plain Chinese, with the responsible unit and the expected date."""
    unit = case.current_unit.name if case.current_unit is not None else _("市民服务热线")
    when = services.format_local(case.deadline)
    state = case.state
    if state in (State.submitted.value, State.dispatching.value, State.triage.value):
        return _("正在为您的诉求确定承办单位（当前在 %(unit)s）。", unit=unit)
    if state == State.dispatched.value:
        text = _("已交 %(unit)s 办理，等待签收。", unit=unit)
    elif state == State.accepted.value:
        text = _("%(unit)s 正在办理。", unit=unit)
    elif state == State.resolved.value:
        if case.satisfaction:
            return _("已办结，感谢您的评价。")
        return _("%(unit)s 已办结，请在下方告诉我们问题是否解决、您是否满意。", unit=unit)
    elif state == State.merged.value:
        return _("您的诉求与更早的同类诉求合并办理。")
    else:
        return _("诉求已归档。")
    if case.extension_pending:
        text += _("承办单位已申请延期，等待审批。")
    if when and case.deadline_provisional:  # the year's holiday notice is not yet known
        return text + _("预计 %(when)s 前办结（暂定，节假日安排公布后重新计算）。", when=when)
    return text + (_("预计 %(when)s 前办结。", when=when) if when else "")


@bp.app_template_global()
def resident_panel(case: Case) -> dict[str, Any]:
    """What the status page adds for the resident: next step, the rating form, notices."""
    token = request.args.get("k")
    may_rate = (
        case.state == State.resolved.value and not case.satisfaction and _resident_may_rate(case, token)
    )
    return {
        "next_step": next_step(case),
        "form": CallbackForm() if may_rate else None,
        "token": token,
        "notices": case_notices(case, "resident", case.resident_id),
    }


@bp.route("/status/<tracking_number>/callback", methods=["POST"])
def resident_callback(tracking_number: str) -> Any:
    """The resident rates the outcome; 不满意 or not solved reopens the case (the service decides)."""
    case = find_case(dbs(), tracking_number)
    token = request.args.get("k")
    if case is None or not _resident_may_rate(case, token):
        abort(404)
    back = url_for("web.status", tracking_number=case.tracking_number, k=token)
    form = CallbackForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(_(str(error)))
        return redirect(back)
    user = signed_in_user()
    actor = user if user is not None and user.role == Role.resident and case.resident_id == user.id else None
    try:
        services.callback(dbs(), case.id, actor, **form.values())
    except TransitionError as refusal:
        dbs().rollback()
        flash(message_of(refusal))
        return redirect(back)
    dbs().commit()
    if case.state == State.resolved.value:
        flash(_("感谢您的评价！"))
    elif case.state == State.dispatched.value:
        flash(_("已收到您的评价，诉求已重新交办承办单位办理。"))
    else:
        flash(_("已收到您的评价。"))
    return redirect(back)
