"""Serving case photos: to the holder of the case's private link, and to staff who may see the case."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, abort, request, send_file
from sqlalchemy import select

from app.auth import signed_in_user
from app.extensions import db
from app.photos import photo_path
from app.web.public import token_key
from routing.access import can_view
from routing.intake import check_token, find_case
from routing.models import CasePhoto

bp = Blueprint("photos", __name__)


@bp.route("/requests/<tracking_number>/photos/<key>/<any(full, thumb):size>.jpg")
def photo(tracking_number: str, key: str, size: str) -> Any:
    """One photo of a case, for the private-link holder or staff who may see the case (else 404)."""
    case = find_case(db.session, tracking_number)
    if case is None:
        abort(404)
    token = request.args.get("k") or request.headers.get("X-Case-Token")
    if not (check_token(token_key(), case.tracking_number, token) or can_view(signed_in_user(), case)):
        abort(404)
    found = db.session.scalar(select(CasePhoto).where(CasePhoto.case_id == case.id, CasePhoto.key == key))
    if found is None:
        abort(404)
    path = photo_path(found, thumbnail=size == "thumb")
    if not path.is_file():
        abort(404)
    # Cache headers come from the app's policy for private-link pages (no shared cache keeps them).
    # Read whole (photos are small): no open file outlives a response that is never closed.
    data = io.BytesIO(path.read_bytes())
    return send_file(data, mimetype="image/jpeg", etag=f"{found.key}-{size}", conditional=True)
