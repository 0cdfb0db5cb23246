"""JSON API v1: intake, a case's status, the catalogue and the unit tree."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask_babel import gettext as _
from sqlalchemy import select

from app.auth import signed_in_user
from app.errors import api_error
from app.extensions import csrf, db, limiter
from app.ratelimit import limit_from_config
from app.web.present import STATE_LABELS, contact_name, contact_phone
from app.web.public import token_key
from core import jobs
from core.catalogue import HANDLING_LEVEL_LABELS, active_categories
from core.models import Unit
from core.units import children_of
from routing.access import can_view
from routing.intake import IdempotencyConflict, IntakeRejected, Submission, check_token, find_case, submit
from routing.models import Case
from routing.narrative import describe

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
FIELDS = ("category", "community", "address", "description", "contact_name", "contact_phone")
OPTIONAL = ("street", "district", "lat", "lng", "anonymous")


def init_app(app: Flask) -> None:
    """Register the API; it takes JSON bodies, not forms, so CSRF does not apply (see README)."""
    csrf.exempt(bp)
    limiter.shared_limit(limit_from_config("API_LIMIT"), scope="api")(bp)  # one budget for the whole API
    app.register_blueprint(bp)


def _field_error(field: str, code: str, message: str) -> dict[str, Any]:
    return {"field": field, "code": code, "message": message}


def _read_submission(body: Any) -> tuple[Submission | None, list[dict[str, Any]]]:
    """Shape checks on the JSON body (types); the intake service checks the content."""
    if not isinstance(body, dict):
        return None, [_field_error("", "invalid", _("请求体必须是 JSON 对象"))]
    errors = []
    for name in (*FIELDS, "street", "district"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(_field_error(name, "invalid", _("该字段必须是字符串")))
    for name in ("lat", "lng"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.append(_field_error(name, "invalid", _("该字段必须是数字")))
    if "anonymous" in body and not isinstance(body["anonymous"], bool):
        errors.append(_field_error("anonymous", "invalid", _("该字段必须是 true 或 false")))
    unknown = sorted(set(body) - set(FIELDS) - set(OPTIONAL))
    errors += [_field_error(name, "unknown_field", _("不支持的字段")) for name in unknown]
    if errors:
        return None, errors
    values: dict[str, Any] = {k: body.get(k) or "" for k in FIELDS}
    values.update({k: body[k] for k in OPTIONAL if k in body})
    return Submission(**values), []


def case_json(case: Case, full: bool) -> dict[str, Any]:
    """A case as the API shows it; contacts masked unless the viewer may see them."""
    data: dict[str, Any] = {
        "tracking_number": case.tracking_number,
        "state": case.state,
        "state_label": STATE_LABELS.get(case.state, case.state),
        "category": case.category.code,
        "community": case.community.code,
        "current_unit": {"code": case.current_unit.code, "name": case.current_unit.name}
        if case.current_unit
        else None,
        "handling_level": case.handling_level,
        "deadline": case.deadline.isoformat() + "Z" if case.deadline else None,
        "created_at": case.created_at.isoformat() + "Z",
    }
    if full:
        data.update(
            {
                "address": case.address,
                "description": case.description,
                "contact_name": contact_name(case),
                "contact_phone": contact_phone(case),
                "events": [
                    {"action": e.action, "at": e.created_at.isoformat() + "Z", "text": describe(e)}
                    for e in case.events
                ],
            }
        )
    return data


@bp.post("/requests")
def create_request() -> Any:
    """Submit a request; 201 with tracking number and private token (200 on an idempotent replay)."""
    if not request.is_json:
        return api_error(415)
    body = request.get_json(silent=True)
    if body is None:
        return api_error(400, [_field_error("", "malformed_json", _("请求体不是合法的 JSON"))])
    data, errors = _read_submission(body)
    if data is None:
        return api_error(422, errors)
    try:
        result = submit(
            db.session,
            data,
            channel="api",
            token_key=token_key(),
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
    except IntakeRejected as rejected:
        db.session.rollback()
        return api_error(422, [_field_error(e.field, e.code, _(e.message)) for e in rejected.errors])
    except IdempotencyConflict as conflict:
        db.session.rollback()
        return api_error(409, [_field_error("Idempotency-Key", conflict.code, _(conflict.message))])
    db.session.commit()
    if result.created:
        jobs.enqueue("routing.jobs.route_case", result.case.id)
    body = {**case_json(result.case, full=False), "token": result.token}
    return jsonify(body), 201 if result.created else 200


@bp.get("/requests/<tracking_number>")
def get_request(tracking_number: str) -> Any:
    """A case's state, current unit, deadline and events, for its token holder or staff who may see it."""
    case = find_case(db.session, tracking_number)
    token = request.args.get("token") or request.headers.get("X-Case-Token")
    user = signed_in_user()
    if case is None:
        return api_error(404)
    if user is not None and can_view(user, case):
        return jsonify(case_json(case, full=True))
    if not token:
        return api_error(401)
    if not check_token(token_key(), case.tracking_number, token):
        return api_error(403)
    return jsonify(case_json(case, full=True))


@bp.get("/categories")
def categories() -> Any:
    """The active dispatch catalogue."""
    return jsonify(
        [
            {
                "code": c.code,
                "name": c.name,
                "group": c.group,
                "department": c.department.code if c.department else None,
                "default_level": c.default_level,
                "default_level_label": HANDLING_LEVEL_LABELS.get(c.default_level, c.default_level),
                "urgency": c.urgency.value,
                "sign_for_hours": c.sign_for_hours,
                "resolution_limit": c.resolution_limit,
                "resolution_unit": c.resolution_unit.value,
            }
            for c in active_categories(db.session)
        ]
    )


@bp.get("/units")
def units() -> Any:
    """Places below ``parent`` (the districts when omitted), for dependent selects."""
    code = request.args.get("parent")
    parent = None
    if code:
        parent = db.session.scalar(select(Unit).where(Unit.code == code))
        if parent is None:
            return api_error(404, [_field_error("parent", "unknown", _("上级单位不存在"))])
    return jsonify(
        [
            {"code": u.code, "name": u.name, "level": u.level.value, "kind": u.kind.value}
            for u in children_of(db.session, parent)
        ]
    )
