"""Admin pages of the working calendar: years covered, one year's days, and the notice import (CSV).

Also the admin pages' banner: a date in the next 90 days whose year has no notice is a warning on
every page of the admin area (the cached calendar answers it, no query per page).
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from flask import Blueprint, abort, flash, has_request_context, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wtforms import StringField
from wtforms.validators import Length, Optional

from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.i18n import message_of
from app.web.present import register_nav
from core.csvio import ImportRejected
from core.db import utcnow
from core.i18n import N_
from core.models import Role
from routing import calendar_store
from routing.calendar import DayKind, statutory_holidays
from routing.calendar_services import import_notice
from routing.models import CalendarDate, CalendarYear, Case
from routing.services import to_local

bp = Blueprint("calendar_admin", __name__, url_prefix="/admin/calendar")
register_nav("calendar_admin.index", N_("工作日历"), Role.admin)
# Blueprints whose pages carry the uncovered-calendar banner.
ADMIN_AREA = frozenset({"admin", "calendar_admin"})
WINDOW_DAYS = 90
WEEKDAYS = "一二三四五六日"


def dbs() -> Session:
    """The request's session, typed as the plain Session the services take."""
    return cast(Session, db.session)


def beijing_today() -> date:
    """Today's date in Beijing."""
    return to_local(utcnow()).date()


class NoticeUploadForm(FlaskForm):
    """A State Council holiday notice as CSV (date,kind,name)."""

    file = FileField(_l("节假日安排文件（CSV）"), validators=[FileRequired(message=_l("请选择 CSV 文件"))])
    note = StringField(_l("说明（如通知文号）"), validators=[Optional(), Length(max=200)])


def calendar_warning() -> str | None:
    """The banner text when a date in the next 90 days has no notice; None otherwise."""
    gaps = calendar_store.uncovered_dates(dbs(), beijing_today(), WINDOW_DAYS)
    if not gaps:
        return None
    years = "、".join(str(y) for y in sorted({d.year for d in gaps}))
    return _(
        "工作日历提醒：%(year)s 年的节假日安排尚未导入，自 %(first)s 起的 %(n)s 天办理时限按法定节假日暂定计算。",
        year=years,
        first=gaps[0].isoformat(),
        n=len(gaps),
    )


@bp.app_context_processor
def banner() -> dict[str, Any]:
    """Expose the calendar warning to the admin area's pages (admins only)."""
    if not has_request_context() or request.blueprint not in ADMIN_AREA:
        return {}
    user = signed_in_user()
    if user is None or user.role != Role.admin:
        return {}
    return {"calendar_warning": calendar_warning()}


def _index_page(form: NoticeUploadForm, errors: list[str] | None = None, status: int = 200) -> Any:
    session = dbs()
    provisional = session.scalar(select(func.count(Case.id)).where(Case.deadline_provisional.is_(True)))
    page = render_template(
        "calendar/index.html",
        years=calendar_store.coverage(session),
        provisional=provisional or 0,
        form=form,
        errors=errors or [],
        this_year=beijing_today().year,
    )
    return page, status


@bp.route("/")
@roles_required(Role.admin)
def index() -> Any:
    """Years covered, the count of 暂定 deadlines, and the import form."""
    return _index_page(NoticeUploadForm())


@bp.route("/import", methods=["POST"])
@roles_required(Role.admin)
def upload() -> Any:
    """Import an uploaded notice: all or nothing, errors by line; recounts the 暂定 deadlines."""
    form = NoticeUploadForm()
    if not form.validate_on_submit():
        errors = [_(str(e)) for field_errors in form.errors.values() for e in field_errors]
        return _index_page(form, errors, 422)
    try:
        summary = import_notice(dbs(), form.file.data.read(), signed_in_user(), note=form.note.data or "")
    except ImportRejected as rejected:
        dbs().rollback()
        calendar_store.invalidate()
        errors = [
            _("第 %(line)s 行：%(message)s", line=e.line, message=message_of(e)) for e in rejected.errors
        ]
        return _index_page(form, errors, 422)
    dbs().commit()
    flash(
        _(
            "已导入 %(years)s 年节假日安排：放假 %(h)s 天，调休上班 %(w)s 天；重新计算暂定时限 %(n)s 件",
            years="、".join(str(y) for y in summary.years),
            h=summary.holidays,
            w=summary.workdays,
            n=summary.recomputed,
        )
    )
    return redirect(url_for("calendar_admin.index"))


@bp.route("/<int:year>")
@roles_required(Role.admin)
def year(year: int) -> Any:
    """One year's days off and make-up days, or its statutory holidays when no notice is stored."""
    if not 2000 <= year <= 2100:
        abort(404)
    session = dbs()
    stored = session.get(CalendarYear, year)
    if stored is not None:
        rows = [
            (d.day, d.kind == DayKind.workday.value, d.name)
            for d in session.scalars(
                select(CalendarDate).where(CalendarDate.year == year).order_by(CalendarDate.day)
            )
        ]
    else:
        rows = [(day, False, name) for day, name in statutory_holidays(year).items()]
    return render_template(
        "calendar/year.html",
        year=year,
        stored=stored,
        rows=rows,
        weekday=lambda d: WEEKDAYS[d.weekday()],
        prev_year=year - 1,
        next_year=year + 1,
    )
