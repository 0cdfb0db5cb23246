"""Admin pages: dispatch rule sets (versions, CSV import/export) and failed RQ jobs (list, requeue).

Redis may be down while the database is fine: the jobs page then says so in Chinese instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import StringField
from wtforms.validators import Length, Optional

from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.queue import QUEUES, queue_name
from app.redis_conn import redis_for
from app.web.present import register_nav
from core.csvio import ImportRejected
from core.models import Role
from routing import services
from routing.models import RoutingFailure, RuleSet
from routing.rules import rules_to_csv

bp = Blueprint("admin", __name__, url_prefix="/admin")


def dbs() -> Session:
    """The request's session, typed as the plain Session the services take (the scoped one proxies it)."""
    return cast(Session, db.session)


register_nav("admin.index", "系统管理", Role.admin)
REDIS_DOWN = (
    "无法连接任务队列（Redis），暂时无法查看或重新执行失败任务；工单数据不受影响，Redis 恢复后会自动补派。"
)


class RulesUploadForm(FlaskForm):
    """A CSV of dispatch rules to publish as a new version."""

    file = FileField("规则文件（CSV）", validators=[FileRequired(message="请选择 CSV 文件")])
    note = StringField("版本说明", validators=[Optional(), Length(max=200)])


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
    """Publish a new version from an uploaded CSV (all or nothing, errors by line)."""
    form = RulesUploadForm()
    if form.validate_on_submit():
        try:
            published = services.import_rules_csv(
                dbs(), form.file.data.read(), signed_in_user(), note=form.note.data or ""
            )
        except ImportRejected as rejected:
            dbs().rollback()
            errors = [
                _("第 %(line)s 行：%(message)s", line=e.line, message=_(e.message)) for e in rejected.errors
            ]
            return _rules_page(form, errors, 422)
        dbs().commit()
        flash(_("已发布派单规则第 %(version)s 版", version=published.version))
        return redirect(url_for("admin.rules"))
    errors = [_(str(e)) for field_errors in form.errors.values() for e in field_errors]
    return _rules_page(form, errors, 422)


def _rules_page(form: RulesUploadForm, errors: list[str], status: int) -> Any:
    current = services.current_rules(dbs())
    page = render_template(
        "admin/rules.html",
        versions=services.rule_set_versions(dbs()),
        current=current,
        form=form,
        errors=errors,
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
