"""Admin pages: dispatch rule sets (versions, CSV import/export), failed RQ jobs (list, requeue), users
(create, disable, reset, move; audited) and the audit trail (search, CSV export).

Redis may be down while the database is fine: the jobs page then says so in Chinese instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import BooleanField, DateField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from app import staged_rules
from app.accounts import UserChange, create_user, disable_totp, set_password, update_user
from app.audit import audit
from app.auth import roles_required, signed_in_user
from app.exports import csv_text
from app.extensions import db
from app.i18n import message_of
from app.queue import QUEUES, queue_name
from app.redis_conn import redis_for
from app.web.present import local, register_nav
from core.audit import ACTIONS, AuditEvent, AuditQuery, search
from core.csvio import ImportRejected
from core.i18n import N_, DomainError
from core.models import ROLE_LABELS, Role, User
from core.quarter import beijing_midnight_utc
from routing import services
from routing.models import RoutingFailure, RuleSet
from routing.rules import rules_to_csv

bp = Blueprint("admin", __name__, url_prefix="/admin")


def dbs() -> Session:
    """The request's session, typed as the plain Session the services take (the scoped one proxies it)."""
    return cast(Session, db.session)


register_nav("admin.index", N_("系统管理"), Role.admin)
REDIS_DOWN = (
    "无法连接任务队列（Redis），暂时无法查看或重新执行失败任务；工单数据不受影响，Redis 恢复后会自动补派。"
)


class RulesUploadForm(FlaskForm):
    """A CSV of dispatch rules to publish as a new version."""

    file = FileField(_l("规则文件（CSV）"), validators=[FileRequired(message=_l("请选择 CSV 文件"))])
    note = StringField(_l("版本说明"), validators=[Optional(), Length(max=200)])


# The CSV columns of a rules file as the error list and the preview name them.
RULE_COLUMN_LABELS = {
    "category": "类别编码",
    "group": "类别分组",
    "place": "地点",
    "level": "处理层级",
    "unit": "承办单位",
    "priority": "优先级",
}


@dataclass(frozen=True)
class FailedJob:
    """One failed job as the page shows it."""

    queue: str
    id: str
    call: str
    error: str
    ended_at: str


@bp.route("/")
@roles_required(Role.admin)
def index() -> Any:
    """The admin landing page."""
    return render_template("admin/index.html")


@bp.route("/rules")
@roles_required(Role.admin)
def rules() -> Any:
    """Rule-set versions, the current one, and the upload form."""
    current = services.current_rules(dbs())
    dbs().commit()  # version 1 may just have been generated from the catalogue
    return render_template(
        "admin/rules.html",
        versions=services.rule_set_versions(dbs()),
        current=current,
        form=RulesUploadForm(),
    )


@bp.route("/rules/<int:version>")
@roles_required(Role.admin)
def rule_set(version: int) -> Any:
    """The rules of one version."""
    row = dbs().scalar(select(RuleSet).where(RuleSet.version == version))
    if row is None:
        abort(404)
    return render_template(
        "admin/rule_set.html", rule_set=row, view=services.rules_of_version(dbs(), version)
    )


@bp.route("/rules/upload", methods=["POST"])
@roles_required(Role.admin)
def upload_rules() -> Any:
    """Check a whole uploaded CSV: every bad row listed (nothing published), or, when it is valid,
    the upload staged and the admin sent to its preview (the diff against the active rule set)."""
    form = RulesUploadForm()
    if not form.validate_on_submit():
        errors = [_(str(e)) for field_errors in form.errors.values() for e in field_errors]
        return _rules_page(form, errors, 422)
    try:
        parsed = services.check_rules_csv(dbs(), form.file.data.read())
    except ImportRejected as rejected:
        dbs().rollback()
        return _rules_page(form, [], 422, rejected=rejected)
    current = services.current_rules(dbs())
    dbs().commit()  # version 1 may just have been generated from the catalogue
    user = signed_in_user()
    assert user is not None
    filename = (getattr(form.file.data, "filename", "") or "")[:200]
    token = staged_rules.stage(user.id, current.version, parsed, form.note.data or "", filename)
    return redirect(url_for("admin.preview_rules", token=token))


def _staged_or_404(token: str) -> staged_rules.StagedRules:
    user = signed_in_user()
    staged = staged_rules.load(token, user.id) if user is not None else None
    if staged is None:
        message = _("该预览不存在、已发布、已取消或已过期，未发布任何规则；请重新上传规则文件")
        abort(make_response(render_template("error.html", status=404, message=message), 404))
    return staged


@bp.route("/rules/preview/<token>")
@roles_required(Role.admin)
def preview_rules(token: str) -> Any:
    """A staged upload: what publishing it would add, remove and change, and the confirm button."""
    staged = _staged_or_404(token)
    current = services.current_rules(dbs())
    dbs().commit()
    stale = current.version != staged.based_on
    diff = services.diff_rules(current.rules, staged.rules)
    return render_template(
        "admin/rules_preview.html",
        staged=staged,
        current=current,
        diff=diff,
        stale=stale,
        columns=RULE_COLUMN_LABELS,
    ), (409 if stale else 200)


@bp.route("/rules/preview/<token>/publish", methods=["POST"])
@roles_required(Role.admin)
def publish_staged_rules(token: str) -> Any:
    """Publish exactly the previewed upload (read back from the server), unless the active rule set
    changed since the preview: then nothing is published and the admin is told to upload again."""
    staged = _staged_or_404(token)
    current = services.current_rules(dbs())
    diff = services.diff_rules(current.rules, staged.rules)
    try:
        published = services.publish_rules(
            dbs(),
            staged.rules,
            signed_in_user(),
            note=staged.note,
            source="csv",
            based_on=staged.based_on,
        )
    except services.StaleRuleSet as stale:
        dbs().rollback()
        staged_rules.discard(token)
        return _rules_page(RulesUploadForm(formdata=None), [_(stale.message)], 409)
    except ImportRejected as rejected:  # a unit or category named by the file was removed meanwhile
        dbs().rollback()
        staged_rules.discard(token)
        return _rules_page(RulesUploadForm(formdata=None), [], 409, rejected=rejected)
    audit(
        "rules.publish",
        object_type="rule_set",
        object_id=published.version,
        details={
            "source": "csv",
            "based_on": staged.based_on,
            "added": len(diff.added),
            "removed": len(diff.removed),
            "changed": len(diff.changed),
        },
    )
    dbs().commit()
    staged_rules.discard(token)
    flash(_("已发布派单规则第 %(version)s 版", version=published.version))
    return redirect(url_for("admin.rules"))


@bp.route("/rules/preview/<token>/cancel", methods=["POST"])
@roles_required(Role.admin)
def cancel_staged_rules(token: str) -> Any:
    """Drop a staged upload without publishing it."""
    _staged_or_404(token)
    staged_rules.discard(token)
    flash(_("已取消，本次上传的规则未发布"))
    return redirect(url_for("admin.rules"))


def _rules_page(
    form: RulesUploadForm, errors: list[str], status: int, rejected: ImportRejected | None = None
) -> Any:
    current = services.current_rules(dbs())
    page = render_template(
        "admin/rules.html",
        versions=services.rule_set_versions(dbs()),
        current=current,
        form=form,
        errors=errors,
        rejected=rejected,
        columns=RULE_COLUMN_LABELS,
    )
    return page, status


@bp.route("/rules/current.csv")
@roles_required(Role.admin)
def download_rules() -> Any:
    """The current rule set as CSV (UTF-8 with BOM so that Excel opens it correctly)."""
    current = services.current_rules(dbs())
    dbs().commit()
    body = "\ufeff" + rules_to_csv(current.rules)
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=dispatch-rules-v{current.version}.csv"},
    )


def failed_jobs(limit: int = 100) -> list[FailedJob]:
    """Failed jobs of every queue, newest first per queue; raises RedisError/OSError when Redis is down."""
    conn = redis_for(current_app)
    found: list[FailedJob] = []
    for name in QUEUES:
        queue = Queue(queue_name(current_app, name), connection=conn)
        registry = FailedJobRegistry(queue=queue)
        ids = registry.get_job_ids(0, limit - 1, desc=True)
        for job in Job.fetch_many(ids, connection=conn):
            if job is None:
                continue
            result = job.latest_result()
            error = ((result.exc_string if result is not None else "") or "").strip().splitlines()
            found.append(
                FailedJob(
                    queue=name,
                    id=job.id,
                    call=job.get_call_string() or "",
                    error=error[-1] if error else "",
                    ended_at=f"{job.ended_at:%Y-%m-%d %H:%M:%S}" if job.ended_at else "",
                )
            )
    return found


@bp.route("/jobs")
@roles_required(Role.admin)
def jobs() -> Any:
    """Failed RQ jobs of each queue (requeue buttons) and permanent routing failures."""
    try:
        rows, down = failed_jobs(), False
    except (RedisError, OSError):
        rows, down = [], True
    failures = dbs().scalars(select(RoutingFailure).order_by(RoutingFailure.id.desc()).limit(100)).all()
    return render_template(
        "admin/jobs.html",
        jobs=rows,
        redis_down=down,
        message=_(REDIS_DOWN),
        failures=failures,
        form=FlaskForm(),
    )


@bp.route("/jobs/<queue>/<job_id>/requeue", methods=["POST"])
@roles_required(Role.admin)
def requeue(queue: str, job_id: str) -> Any:
    """Put one failed job back on its queue."""
    if queue not in QUEUES:
        abort(404)
    if FlaskForm().validate_on_submit():
        try:
            rq_queue = Queue(queue_name(current_app, queue), connection=redis_for(current_app))
            FailedJobRegistry(queue=rq_queue).requeue(job_id)
        except (RedisError, OSError):
            flash(_(REDIS_DOWN))
        except (NoSuchJobError, InvalidJobOperation):
            flash(_("该任务已不在失败列表中"))
        else:
            flash(_("任务 %(id)s 已重新排队", id=job_id))
    return redirect(url_for("admin.jobs"))


# --- users --------------------------------------------------------------------------------------------

ROLE_CHOICES = [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


class UserCreateForm(FlaskForm):
    """A new account: staff are bound to a unit (by its code)."""

    username = StringField(
        _l("用户名"), validators=[DataRequired(message=_l("请输入用户名")), Length(max=40)]
    )
    display_name = StringField(_l("姓名或称呼"), validators=[Optional(), Length(max=40)])
    role = SelectField(_l("角色"), choices=ROLE_CHOICES, default=Role.handler.value)
    unit = StringField(_l("单位代码"), validators=[Optional(), Length(max=40)])
    password = PasswordField(
        _l("初始密码（至少 10 位）"), validators=[DataRequired(message=_l("请输入密码")), Length(max=200)]
    )


class UserEditForm(FlaskForm):
    """Role, unit, active and display name of an account."""

    display_name = StringField(_l("姓名或称呼"), validators=[Optional(), Length(max=40)])
    role = SelectField(_l("角色"), choices=ROLE_CHOICES)
    unit = StringField(_l("单位代码"), validators=[Optional(), Length(max=40)])
    active = BooleanField(_l("启用（取消勾选即停用，停用后立即退出所有会话）"))


class PasswordResetForm(FlaskForm):
    """A new password set by an admin (the user's sessions end)."""

    password = PasswordField(
        _l("新密码（至少 10 位）"), validators=[DataRequired(message=_l("请输入密码")), Length(max=200)]
    )


def _user(user_id: int) -> User:
    user = dbs().get(User, user_id)
    if user is None:
        abort(404)
    return user


def _user_page(user: User, status: int = 200, **forms: Any) -> Any:
    edit = forms.get("edit") or UserEditForm(
        formdata=None,
        display_name=user.display_name,
        role=user.role.value,
        unit=user.unit.code if user.unit else "",
        active=user.active,
    )
    page = render_template(
        "admin/user.html",
        user=user,
        edit=edit,
        reset=forms.get("reset") or PasswordResetForm(formdata=None),
        plain=FlaskForm(),
    )
    return page, status


@bp.route("/users", methods=["GET", "POST"])
@roles_required(Role.admin)
def users() -> Any:
    """Accounts (search by username, filter by role) and the form to create one."""
    form = UserCreateForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                user = create_user(
                    dbs(),
                    (form.username.data or "").strip(),
                    form.password.data or "",
                    form.role.data or "",
                    (form.unit.data or "").strip() or None,
                    (form.display_name.data or "").strip(),
                )
            except DomainError as error:
                dbs().rollback()
                getattr(form, error.field or "username").errors.append(message_of(error))
            else:
                audit(
                    "user.create",
                    object_type="user",
                    object_id=user.id,
                    details={"role": user.role.value, "unit": user.unit.code if user.unit else None},
                )
                dbs().commit()
                flash(_("已创建用户 %(name)s", name=user.username))
                return redirect(url_for("admin.user", user_id=user.id))
        status = 422
    needle = (request.args.get("q") or "").strip()[:40]
    role = request.args.get("role") or ""
    statement = select(User).order_by(User.username).limit(200)
    if needle:
        statement = statement.where(User.username.contains(needle, autoescape=True))
    if role in {r.value for r in Role}:
        statement = statement.where(User.role == Role(role))
    rows = dbs().scalars(statement).all()
    roles = [(choice.value, choice.label) for choice in ROLE_CHOICES]
    page = render_template("admin/users.html", users=rows, form=form, q=needle, role=role, roles=roles)
    return page, status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@roles_required(Role.admin)
def user(user_id: int) -> Any:
    """One account: change role, unit, active; the change ends the user's sessions."""
    target = _user(user_id)
    if request.method == "GET":
        return _user_page(target)
    form = UserEditForm()
    if not form.validate_on_submit():
        return _user_page(target, 422, edit=form)
    actor = signed_in_user()
    if (
        actor is not None
        and actor.id == target.id
        and (form.role.data != Role.admin.value or not form.active.data)
    ):
        form.role.errors = [*form.role.errors, _("不能停用自己或取消自己的管理员角色")]
        return _user_page(target, 422, edit=form)
    change = UserChange(
        role=Role(form.role.data),
        unit_code=(form.unit.data or "").strip() or None,
        active=bool(form.active.data),
        display_name=(form.display_name.data or "").strip(),
    )
    try:
        changed = update_user(dbs(), target, change)
    except DomainError as error:
        dbs().rollback()
        getattr(form, error.field or "unit").errors.append(message_of(error))
        return _user_page(target, 422, edit=form)
    if changed:
        # Names are personal data: the trail says that the name changed, not what it was.
        details: dict[str, Any] = {k: v for k, v in changed.items() if k != "display_name"}
        if "display_name" in changed:
            details["display_name"] = "changed"
        audit("user.update", object_type="user", object_id=target.id, details=details)
    dbs().commit()
    flash(_("已保存") if changed else _("没有需要保存的修改"))
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@roles_required(Role.admin)
def reset_password(user_id: int) -> Any:
    """Set a new password for an account (policy applies; the user's sessions end)."""
    target = _user(user_id)
    form = PasswordResetForm()
    if not form.validate_on_submit():
        return _user_page(target, 422, reset=form)
    try:
        set_password(dbs(), target, form.password.data or "")
    except DomainError as error:
        dbs().rollback()
        form.password.errors = [*form.password.errors, message_of(error)]
        return _user_page(target, 422, reset=form)
    audit("user.password_reset", object_type="user", object_id=target.id)
    dbs().commit()
    flash(_("已重置密码，该用户需用新密码重新登录"))
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/users/<int:user_id>/totp/reset", methods=["POST"])
@roles_required(Role.admin)
def reset_totp(user_id: int) -> Any:
    """Remove an account's second factor (a lost phone); the user's sessions end."""
    target = _user(user_id)
    if FlaskForm().validate_on_submit() and target.totp_secret:
        disable_totp(dbs(), target)
        target.end_sessions()
        audit("user.totp_reset", object_type="user", object_id=target.id)
        dbs().commit()
        flash(_("已关闭该用户的两步验证"))
    return redirect(url_for("admin.user", user_id=target.id))


# --- audit trail --------------------------------------------------------------------------------------


class AuditSearchForm(FlaskForm):
    """Search terms: who, what, from and to (Beijing dates, inclusive)."""

    class Meta:
        csrf = False  # a GET search changes nothing

    username = StringField(_l("用户名"), validators=[Optional(), Length(max=80)])
    action = SelectField(
        _l("操作"),
        choices=[SelectChoice("", _l("全部"))] + [SelectChoice(k, v) for k, v in ACTIONS.items()],
        default="",
    )
    since = DateField(_l("起始日期"), validators=[Optional()])
    until = DateField(_l("截止日期"), validators=[Optional()])


def _audit_query(form: AuditSearchForm) -> AuditQuery:
    """Beijing calendar days → the UTC bounds the rows are stored in."""

    def utc(day: Any) -> datetime | None:
        return beijing_midnight_utc(day) if day else None

    until = utc(form.until.data)
    return AuditQuery(
        username=(form.username.data or "").strip(),
        action=form.action.data or "",
        since=utc(form.since.data),
        until=until + timedelta(days=1) if until else None,
    )


def _audit_rows(events: list[AuditEvent]) -> list[list[Any]]:
    return [
        [
            local(e.at, "%Y-%m-%d %H:%M:%S"),
            e.actor.username if e.actor else "",
            ROLE_LABELS.get(Role(e.actor_role), e.actor_role) if e.actor_role else "",
            e.action,
            _(ACTIONS.get(e.action, e.action)),
            e.object_type,
            e.object_id,
            ", ".join(f"{k}={v}" for k, v in sorted(e.details.items())),
            e.address_hash[:12],
        ]
        for e in events
    ]


AUDIT_HEADINGS = ["时间（北京）", "用户", "角色", "操作代码", "操作", "对象类型", "对象", "详情", "地址指纹"]


@bp.route("/audit")
@roles_required(Role.admin)
def audit_trail() -> Any:
    """Search the audit trail (newest first, at most 500 rows shown)."""
    form = AuditSearchForm(request.args)
    valid = form.validate()
    events = search(dbs(), _audit_query(form)) if valid else []
    return render_template(
        "admin/audit.html", form=form, rows=_audit_rows(events), headings=AUDIT_HEADINGS
    ), (200 if valid else 422)


@bp.route("/audit.csv")
@roles_required(Role.admin)
def audit_csv() -> Any:
    """The matching audit rows as CSV (every row, not only the 500 shown); the export is itself audited."""
    form = AuditSearchForm(request.args)
    if not form.validate():
        abort(422)
    events = search(dbs(), _audit_query(form), limit=None)
    body = csv_text([AUDIT_HEADINGS, *_audit_rows(events)])
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit-trail.csv"},
    )
