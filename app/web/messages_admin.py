"""Admin page of the delivery log: every SMS and e-mail sent about cases, recipients masked."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import roles_required
from app.extensions import db
from app.web.present import local, register_nav
from core.i18n import N_
from core.models import Role
from routing import messages
from routing.models import Case

bp = Blueprint("messages_admin", __name__, url_prefix="/admin/messages")
register_nav("messages_admin.index", N_("短信与邮件"), Role.admin)
LIMIT = 200


@bp.route("")
@roles_required(Role.admin)
def index() -> Any:
    """The latest deliveries, filterable by status and channel."""
    session = cast(Session, db.session)
    status = request.args.get("status") or None
    channel = request.args.get("channel") or None
    rows = messages.log_page(session, status=status, channel=channel, limit=LIMIT)
    case_ids = {row.case_id for row in rows if row.case_id is not None}
    numbers = (
        {
            row.id: row.tracking_number
            for row in session.execute(select(Case.id, Case.tracking_number).where(Case.id.in_(case_ids)))
        }
        if case_ids
        else {}
    )
    return render_template(
        "messages/log.html",
        rows=rows,
        numbers=numbers,
        local=local,
        status=status if status in messages.STATUSES else "",
        channel=channel if channel in messages.CHANNELS else "",
        statuses=messages.STATUS_LABELS,
        events=messages.EVENT_LABELS,
        limit=LIMIT,
    )
