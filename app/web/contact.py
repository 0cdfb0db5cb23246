"""Hotline callbacks (回访): an operator may reveal the resident's number of a case awaiting its callback.

Operators otherwise see contacts masked; the reveal is one audited POST per call, and the page that
shows the number is never cached.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from flask_wtf import FlaskForm

from app.audit import audit
from app.auth import roles_required, signed_in_user
from app.extensions import db
from core.models import Role
from routing.access import can_view
from routing.intake import find_case
from routing.lifecycle import State

bp = Blueprint("contact", __name__)


def awaits_callback(state: str, satisfaction: str | None) -> bool:
    """Whether a case is resolved and still waiting for the resident's answer (the callback list)."""
    return state == State.resolved.value and satisfaction is None


@bp.route("/workbench/cases/<tracking_number>/callback-number", methods=["POST"])
@roles_required(Role.operator)
def callback_number(tracking_number: str) -> Any:
    """Show the full phone number for the 回访 call, and record that it was shown."""
    user = signed_in_user()
    case = find_case(db.session, tracking_number)
    if case is None or user is None or not can_view(user, case):
        abort(404)
    if not FlaskForm().validate_on_submit() or not awaits_callback(case.state, case.satisfaction):
        abort(409)
    audit("contact.view", user, "case", case.tracking_number, {"purpose": "callback"})
    db.session.commit()
    page = render_template("callback_number.html", case=case)
    return page, 200, {"Cache-Control": "no-store"}
