"""The co-governance ledgers (电子台帐) for community staff: a form with an evidence file, a list with
filters (unit, dates) and CSV/XLSX exports; evaluators read them all."""

from __future__ import annotations

import io
from datetime import date
from typing import Any, cast

import pandas as pd
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import roles_required, signed_in_user
from app.exports import csv_text, safe_row
from app.extensions import db
from app.i18n import message_of
from app.web.governance import _save, attachments
from app.web.present import register_nav
from assessment.inputs import co_governance_frame
from core.i18n import N_
from core.models import Level, Role, Unit, User
from core.quarter import Quarter
from governance import ledgers
from governance.models import PartyMember, SocialOrganisation
from governance.rules import GovernanceError

bp = Blueprint("ledgers", __name__, url_prefix="/ledgers")
EDITORS = (Role.handler, Role.dispatcher, Role.admin)
READERS = (*EDITORS, Role.evaluator)


def _root(user: User) -> Unit | None:
    """Whose records the user sees: evaluators and admins the whole city, staff their subtree."""
    return None if user.role in (Role.admin, Role.evaluator) else user.unit


def may_read_evidence(user: User | None, kind: str, row_id: int) -> bool:
    """A ledger row's evidence file: for those who may read that ledger row (its unit's subtree)."""
    if user is None or user.role not in READERS:
        return False
    return ledgers.in_subtree(db.session, kind, row_id, _root(user))


def _spec(kind: str) -> ledgers.Ledger:
    if kind not in ledgers.LEDGERS:
        abort(404)
    return ledgers.ledger(kind)


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name) or "")
    except ValueError:
        return None


def _filters(user: User) -> tuple[Unit | None, date | None, date | None]:
    root = _root(user)
    code = request.args.get("unit")
    if code:
        unit = db.session.scalar(select(Unit).where(Unit.code == code))
        if unit is not None and (root is None or unit.path.startswith(root.path)):
            root = unit
    return root, _day("start"), _day("end")


def _units(user: User) -> list[Unit]:
    """Units the user may keep ledgers for (their subtree's districts to compounds)."""
    root = user.unit if user.role is not Role.admin else None
    stmt = select(Unit).where(Unit.level.in_([Level.district, Level.street, Level.community, Level.compound]))
    if root is not None:
        stmt = stmt.where(Unit.path.startswith(root.path, autoescape=True))
    return list(db.session.scalars(stmt.order_by(Unit.path).limit(2000)))


def _parents(spec: ledgers.Ledger, root: Unit | None) -> list[tuple[int, str]]:
    if spec.parent is None:
        return []
    model: Any = PartyMember if spec.parent[1] is PartyMember else SocialOrganisation
    stmt = select(model).join(Unit, Unit.id == model.community_id)
    if root is not None:
        stmt = stmt.where(Unit.path.startswith(root.path, autoescape=True))
    return [
        (r.id, f"{r.name}（{r.community.name}）")
        for r in db.session.scalars(stmt.order_by(model.id).limit(2000))
    ]


@bp.route("/")
@roles_required(*READERS)
def index() -> Any:
    """The ledgers and how many rows each holds in the user's subtree."""
    user = signed_in_user()
    assert user is not None
    counts = {
        kind: len(ledgers.rows(db.session, kind, _root(user), limit=100_000)) for kind in ledgers.LEDGERS
    }
    return render_template("governance/ledgers.html", specs=ledgers.LEDGERS, counts=counts)


@bp.route("/<kind>", methods=["GET", "POST"])
@roles_required(*READERS)
def ledger(kind: str) -> Any:
    """A ledger's list (filters: unit, start, end) and, for community staff, its entry form."""
    spec = _spec(kind)
    user = signed_in_user()
    assert user is not None
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    if request.method == "POST":
        if user.role not in EDITORS:
            abort(403)
        values = {f.name: request.form.get(f.name, "") for f in spec.fields}
        unit = db.session.scalar(select(Unit).where(Unit.code == request.form.get("unit", "")))
        try:
            row = ledgers.create(db.session, user, kind, unit, values)
        except ledgers.LedgerRejected as rejected:
            db.session.rollback()
            errors = {k: _(v) for k, v in rejected.errors.items()}
        except GovernanceError as error:
            db.session.rollback()
            if error.code == "out_of_scope":
                abort(404)
            errors = {error.field or "unit": message_of(error)}
        else:
            _save(request.files.get("evidence"), kind, row.id, user)
            db.session.commit()
            flash(_("已登记"))
            return redirect(url_for("ledgers.ledger", kind=kind))
    root, start, end = _filters(user)
    found = ledgers.rows(db.session, kind, root, start, end, limit=500)
    return render_template(
        "governance/ledger.html",
        spec=spec,
        kind=kind,
        headers=ledgers.headers(kind),
        rows=[(ledgers.cells(kind, r), attachments(kind, r.id)) for r in found],
        errors=errors,
        values=values,
        units=_units(user) if user.role in EDITORS and spec.parent is None else [],
        parents=_parents(spec, _root(user)) if user.role in EDITORS else [],
        editor=user.role in EDITORS,
        status=422 if errors else 200,
    ), (422 if errors else 200)


@bp.route("/<kind>/export.<fmt>")
@roles_required(*READERS)
def export(kind: str, fmt: str) -> Any:
    """The filtered ledger as CSV or XLSX (cells made formula-safe)."""
    spec = _spec(kind)
    user = signed_in_user()
    assert user is not None
    root, start, end = _filters(user)
    table = [ledgers.headers(kind)] + [
        ledgers.cells(kind, r) for r in ledgers.rows(db.session, kind, root, start, end)
    ]
    if fmt == "csv":
        return Response(
            csv_text(table),
            mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename={kind}.csv"},
        )
    if fmt != "xlsx":
        abort(404)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = spec.label[:31]
    for line in table:
        sheet.append(safe_row(line))
    buffer = io.BytesIO()
    book.save(buffer)
    buffer.seek(0)
    return send_file(
        buffer,
        as_attachment=True,
        download_name=f"{kind}.xlsx",
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def add_co_governance_sheets(book: Workbook, quarter: Quarter) -> None:
    """One sheet per co-governance ledger (the quarter's rows) and the per-community measures the
    assessment's ``ledger:`` / ``topic:`` sources read, so each number can be traced to its records."""
    for kind, spec in ledgers.LEDGERS.items():
        sheet = book.create_sheet(f"台帐-{spec.label}"[:31])
        sheet.append(ledgers.headers(kind))
        for row in ledgers.rows(db.session, kind, None, quarter.start, quarter.end):
            sheet.append(safe_row(ledgers.cells(kind, row)))
    figures = co_governance_frame(cast(Session, db.session), quarter)
    names = dict(
        db.session.execute(
            select(Unit.id, Unit.name).where(Unit.id.in_([int(i) for i in figures.index]))
        ).all()
    )
    labels = {f"ledger:{k}": v for k, v in ledgers.LEDGER_MEASURES.items()}
    labels.update({f"topic:{k}": v for k, v in ledgers.TOPIC_MEASURES.items()})
    sheet = book.create_sheet("共治指标")
    sheet.append(["社区", *(f"{labels.get(c, c)}（{c}）" for c in figures.columns)])
    for unit_id, values in figures.iterrows():
        cells = [None if pd.isna(v) else round(float(v), 2) for v in values]
        sheet.append(safe_row([names.get(int(unit_id), unit_id), *cells]))


register_nav("ledgers.index", N_("电子台帐"), Role.evaluator)
