"""Admin upload of the unit tree (CSV): queued for a job, with a page that follows its progress."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField
from sqlalchemy import select

from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.web.forms import Form
from core import jobs
from core.csvio import DEFAULT_LIMITS
from core.models import Role
from core.unit_imports import UnitImport, queue_unit_import

bp = Blueprint("imports", __name__, url_prefix="/admin/units")


class UnitFileForm(Form):
    """A unit tree CSV (code,name,level,parent_code,kind,note[,population])."""

    file = FileField(_l("单位 CSV 文件"))


@bp.route("/import", methods=["GET", "POST"])
@roles_required(Role.admin)
def units() -> Any:
    """Upload a unit CSV: it is imported by a job (all or nothing); recent imports are listed."""
    form = UnitFileForm()
    error, status = "", 200
    if request.method == "POST" and form.validate_on_submit():
        storage = form.file.data
        data = storage.read() if storage is not None and storage.filename else b""
        if not data:
            error, status = _("请选择要上传的 CSV 文件"), 422
        elif len(data) > DEFAULT_LIMITS.max_bytes:
            error, status = _("文件过大（最多 %(n)s MB）", n=DEFAULT_LIMITS.max_bytes // (1024 * 1024)), 422
        else:
            user = signed_in_user()
            row = queue_unit_import(db.session, data, storage.filename, user.id if user else None)
            db.session.commit()
            jobs.enqueue("core.unit_jobs.import_unit_file", row.id)
            return redirect(url_for("imports.unit_import", import_id=row.id))
    elif request.method == "POST":
        error, status = _("请选择要上传的 CSV 文件"), 422
    recent = db.session.scalars(select(UnitImport).order_by(UnitImport.id.desc()).limit(20)).all()
    return render_template("imports/units.html", form=form, error=error, recent=recent), status


@bp.route("/imports/<int:import_id>")
@roles_required(Role.admin)
def unit_import(import_id: int) -> Any:
    """One unit import: its state while the job runs, then the counts or the problems."""
    row = db.session.get(UnitImport, import_id)
    if row is None:
        abort(404)
    return render_template("imports/unit_import.html", row=row, running=row.status in ("queued", "running"))
