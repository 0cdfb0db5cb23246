"""The web side of the audit trail: who is asking, from which hashed address, and two automatic records.

- ``audit(...)``: record an action of the signed-in user in the request's session (the view commits).
- Contact views: the masking helpers call :func:`contact_shown` when they show a resident's full name or
  phone; after the response is built one ``contact.view`` row per case is committed.
- Exports: every successful download (``Content-Disposition: attachment``) by staff is recorded.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Flask, Response, g, request
from flask_login import current_user

from app.extensions import db
from app.ratelimit import address_hash
from core.audit import AuditEvent, record
from core.models import User


def _actor() -> User | None:
    return cast(User, current_user.user) if current_user.is_authenticated else None


def audit(
    action: str,
    actor: User | None = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record ``action`` by ``actor`` (default: the signed-in user) in db.session; the caller commits."""
    return record(
        db.session,
        action,
        actor=actor if actor is not None else _actor(),
        object_type=object_type,
        object_id=object_id,
        details=details,
        address_hash=address_hash(),
    )


def contact_shown(tracking_number: str) -> None:
    """Note that this response shows a case's full contact details (recorded after the response)."""
    shown: set[str] = g.setdefault("contacts_shown", set())
    shown.add(tracking_number)


def _after_request(response: Response) -> Response:
    shown: set[str] = g.pop("contacts_shown", set())
    exported = "attachment" in response.headers.get("Content-Disposition", "")
    if not (shown or exported) or response.status_code >= 500:
        return response  # nothing to record (most responses): the signed-in user need not be loaded
    actor = _actor()
    # A 422 form page with the contact on it is still a view; a 5xx page is not a delivered response.
    if actor is None or not (shown or (exported and actor.is_staff)):
        return response
    # The view's own transaction is over (committed, or discarded at teardown anyway); the audit rows
    # get a transaction of their own.
    db.session.rollback()
    for tracking_number in sorted(shown):
        audit("contact.view", actor, "case", tracking_number, {"endpoint": request.endpoint or ""})
    if exported:
        filename = response.headers.get("Content-Disposition", "").partition("filename=")[2].strip('"')
        audit("export", actor, "file", filename[:80], {"endpoint": request.endpoint or ""})
    db.session.commit()
    return response


def init_app(app: Flask) -> None:
    """Register the after-request recorder."""
    app.after_request(_after_request)
