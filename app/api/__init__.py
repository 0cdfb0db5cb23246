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
from app.security import MAX_JSON_DEPTH, json_too_deep
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
API_FIELDS = {"idempotency_key": "Idempotency-Key"}  # intake field names the API spells differently


def init_app(app: Flask) -> None:
    """Register the API; it takes JSON bodies, not forms, so CSRF does not apply (see README)."""
    csrf.exempt(bp)
    limiter.shared_limit(limit_from_config("API_LIMIT"), scope="api")(bp)  # one budget for the whole API
    app.register_blueprint(bp)
    from app.api import open311

    open311.init_app(app)


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


def case_json(case: Case, full: bool, codes: tuple[str, str] | None = None) -> dict[str, Any]:
    """A case as the API shows it; contacts masked unless the viewer may see them.

    ``codes`` (category, community) spares loading both for a case just taken in, which has no unit yet.
    """
    category, community = codes or (case.category.code, case.community.code)
    unit = case.current_unit if case.current_unit_id is not None else None
    data: dict[str, Any] = {
        "tracking_number": case.tracking_number,
        "state": case.state,
        "state_label": STATE_LABELS.get(case.state, case.state),
        "category": category,
        "community": community,
        "current_unit": {"code": unit.code, "name": unit.name} if unit else None,
        "handling_level": case.handling_level,
        "deadline": case.deadline.isoformat() + "Z" if case.deadline else None,
        "deadline_provisional": bool(case.deadline_provisional),
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
    if body is None and json_too_deep(request.get_data()):
        message = _("JSON 嵌套层数过多（最多 %(n)s 层）", n=MAX_JSON_DEPTH)
        return api_error(400, [_field_error("", "too_deep", message)])
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
        return api_error(
            422,
            [_field_error(API_FIELDS.get(e.field, e.field), e.code, _(e.message)) for e in rejected.errors],
        )
    except IdempotencyConflict as conflict:
        db.session.rollback()
        return api_error(409, [_field_error("Idempotency-Key", conflict.code, _(conflict.message))])
    if result.created:
        # Built before the commit from what was just stored, so the commit expires nothing we reload.
        case = result.case
        body = {
            **case_json(case, full=False, codes=(data.category.strip(), data.community.strip())),
            "token": result.token,
        }
        case_id = case.id
        db.session.commit()
        jobs.enqueue("routing.jobs.route_case", case_id)
        return jsonify(body), 201
    db.session.commit()
    return jsonify({**case_json(result.case, full=False), "token": result.token}), 200


@bp.get("/requests/<tracking_number>")
def get_request(tracking_number: str) -> Any:
    """A case's state, current unit, deadline and events, for its token holder or staff who may see it.

    The answer never tells whether a tracking number exists: without a token (and no staff session that
    may see the case) it is 401 either way; with a token, a wrong one and an unknown number are both 404.
    """
    case = find_case(db.session, tracking_number)
    token = request.args.get("token") or request.headers.get("X-Case-Token")
    user = signed_in_user()
    if case is not None and user is not None and can_view(user, case):
        return jsonify(case_json(case, full=True))
    if not token:
        return api_error(401)
    # The token is checked for an unknown number too, so the work (and time) does not depend on it.
    number = case.tracking_number if case is not None else (tracking_number or "").strip().upper()
    if not check_token(token_key(), number, token) or case is None:
        return api_error(404)
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
