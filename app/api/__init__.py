"""JSON API v1: intake, a case's status, the catalogue and the unit tree."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from app.api.schemas import read_request
from app.auth import signed_in_user
from app.dispatch import queue_routing
from app.errors import api_error
from app.extensions import csrf, db
from app.i18n import message_of
from app.photos import attach, photo_list, read_photos
from app.ratelimit import Counter, count_apart, too_many
from app.security import MAX_JSON_DEPTH, json_too_deep
from app.web.present import STATE_LABELS, contact_name, contact_phone
from app.web.public import duplicates_for, token_key
from core.catalogue import HANDLING_LEVEL_LABELS, active_categories
from core.i18n import N_
from core.models import Unit
from core.units import children_of
from routing.access import can_view
from routing.intake import IdempotencyConflict, IntakeRejected, Submission, check_token, find_case, submit
from routing.models import Case
from routing.narrative import describe
from routing.places import boundary_index, known_addresses

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
FIELDS = ("category", "community", "address", "description", "contact_name", "contact_phone")
OPTIONAL = ("street", "district", "lat", "lng", "anonymous", "sms_opt_in")
API_FIELDS = {"idempotency_key": "Idempotency-Key"}  # intake field names the API spells differently
# One budget per address for the whole API (API_LIMIT: v1 and Open311 together), counted directly (see
# ratelimit.Counter): Flask-Limiter leaves the API's requests alone.
ADDRESS_LIMIT = Counter("api")
count_apart(bp.name)


def over_address_limit() -> int | None:
    """Count this call against its address's API budget: None while within it, else the seconds until
    the window resets."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return None
    limit = str(current_app.config["API_LIMIT"])
    address = get_remote_address()
    if ADDRESS_LIMIT.hit(limit, address):
        return None
    return ADDRESS_LIMIT.retry_after(limit, address)


@bp.before_request
def _address_limit() -> Any:
    seconds = over_address_limit()
    return too_many(seconds) if seconds is not None else None


def init_app(app: Flask) -> None:
    """Register the API; it takes JSON bodies, not forms, so CSRF does not apply (see README)."""
    csrf.exempt(bp)
    from app.api import topics  # noqa: F401 - adds the co-governance routes to this blueprint

    app.register_blueprint(bp)
    from app.api import open311, webhooks  # noqa: F401 - webhooks listens for committed case events

    open311.init_app(app)


def _field_error(field: str, code: str, message: str) -> dict[str, Any]:
    return {"field": field, "code": code, "message": message}


KEY_MESSAGES = {
    "invalid": N_("api_key 无效"),
    "revoked": N_("api_key 已被吊销"),
    "scope": N_("该 api_key 无权进行此操作"),
    "rate_limited": N_("该 api_key 请求过于频繁，请稍后再试"),
}


def _partner_key(scope: str) -> tuple[Any, Any]:
    """The partner key of ``X-Api-Key`` checked for ``scope``: (key or None, error response or None).

    No header: (None, None), the request goes on as a resident's or staff member's.
    """
    from app.api import keys

    presented = request.headers.get("X-Api-Key")
    if not presented:
        return None, None
    check = keys.authorise(db.session, presented, scope)
    db.session.commit()  # the use (or the refusal) stays recorded
    if check.key is None:
        status = 429 if check.error == "rate_limited" else 403
        code = check.error or "invalid"
        return None, api_error(
            status, [_field_error("X-Api-Key", code, _(KEY_MESSAGES.get(code, KEY_MESSAGES["invalid"])))]
        )
    return check.key, None


def _read_submission(body: Any) -> tuple[Submission | None, list[dict[str, Any]]]:
    """Shape checks on the JSON body by the schema the OpenAPI document shows; intake checks the content."""
    model, errors = read_request(body)
    if model is None:
        return None, [{**e, "message": _(e["message"])} for e in errors]
    given = model.model_dump(exclude_unset=True)
    values: dict[str, Any] = {k: given.get(k) or "" for k in FIELDS}
    values.update({k: given[k] for k in OPTIONAL if k in given and given[k] is not None})
    return Submission(**values), []


def _form_body() -> dict[str, Any]:
    """A multipart body's fields as the JSON body would carry them (lat/lng numbers, anonymous bool)."""
    body: dict[str, Any] = {k: v for k, v in request.form.items()}
    for name in ("lat", "lng"):
        if body.get(name, "").strip() == "":
            body.pop(name, None)
        else:
            with contextlib.suppress(ValueError):  # left a string: the shape check names the field
                body[name] = float(body[name])
    if "anonymous" in body:
        flag = body["anonymous"].strip().lower()
        body["anonymous"] = {"true": True, "1": True, "false": False, "0": False, "": False}.get(flag, flag)
    return body


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
    """Submit a request (JSON, or multipart with ``photos`` files); 201 with tracking number, private
    token and ``possible_duplicates`` (200 on an idempotent replay)."""
    images: list[Any] = []
    if request.mimetype == "multipart/form-data":
        body: Any = _form_body()
        images, problems = read_photos(request.files.getlist("photos"))
        if problems:
            return api_error(422, [_field_error("photos", p.code, p.message) for p in problems])
    elif not request.is_json:
        return api_error(415)
    else:
        body = request.get_json(silent=True)
    if body is None and json_too_deep(request.get_data()):
        message = _("JSON 嵌套层数过多（最多 %(n)s 层）", n=MAX_JSON_DEPTH)
        return api_error(400, [_field_error("", "too_deep", message)])
    if body is None:
        return api_error(400, [_field_error("", "malformed_json", _("请求体不是合法的 JSON"))])
    data, errors = _read_submission(body)
    if data is None:
        return api_error(422, errors)
    partner, refused = _partner_key("submit")
    if refused is not None:
        return refused
    try:
        result = submit(
            db.session,
            data,
            channel="api",
            token_key=token_key(),
            idempotency_key=request.headers.get("Idempotency-Key"),
            details={"api_key_id": partner.id} if partner is not None else None,
            duplicates_within_days=int(current_app.config["DUPLICATE_WINDOW_DAYS"]),
            standalone=not images,  # photos are stored beside the case, in its transaction
        )
    except IntakeRejected as rejected:
        db.session.rollback()
        return api_error(
            422,
            [_field_error(API_FIELDS.get(e.field, e.field), e.code, message_of(e)) for e in rejected.errors],
        )
    except IdempotencyConflict as conflict:
        db.session.rollback()
        return api_error(409, [_field_error("Idempotency-Key", conflict.code, message_of(conflict))])
    if result.created:
        # Built before the commit from what was just stored, so the commit expires nothing we reload.
        case = result.case
        if images:
            attach(db.session, case, images, "intake")
        body = {
            **case_json(case, full=False, codes=(data.category.strip(), data.community.strip())),
            "token": result.token,
            "possible_duplicates": [d.tracking_number for d in result.duplicates],
        }
        case_id = case.id
        db.session.commit()
        queue_routing(case_id, created=True)
        return jsonify(body), 201
    body, case_id, waiting = (
        {**case_json(result.case, full=False), "token": result.token},
        result.case.id,
        result.needs_routing,
    )
    db.session.commit()
    if waiting:
        queue_routing(case_id, created=False)
    return jsonify(body), 200


@bp.get("/requests/<tracking_number>")
def get_request(tracking_number: str) -> Any:
    """A case's state, current unit, deadline and events, for its token holder or staff who may see it.

    The answer never tells whether a tracking number exists: without a token (and no staff session that
    may see the case) it is 401 either way; with a token, a wrong one and an unknown number are both 404.
    """
    partner, refused = _partner_key("read")
    if refused is not None:
        return refused
    case = find_case(db.session, tracking_number)
    if partner is not None:  # a partner sees every case, contacts masked (no signed-in viewer)
        return jsonify(case_json(case, full=True)) if case is not None else api_error(404)
    token = request.args.get("token") or request.headers.get("X-Case-Token")
    user = signed_in_user()
    if case is not None and user is not None and can_view(user, case):
        return jsonify({**case_json(case, full=True), "photos": photo_list(case, None)})
    if not token:
        return api_error(401)
    # The token is checked for an unknown number too, so the work (and time) does not depend on it.
    number = case.tracking_number if case is not None else (tracking_number or "").strip().upper()
    if not check_token(token_key(), number, token) or case is None:
        return api_error(404)
    return jsonify({**case_json(case, full=True), "photos": photo_list(case, token)})


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


@bp.get("/openapi.json")
def openapi_document() -> Any:
    """The OpenAPI 3.1 document of this API."""
    from app.api.openapi import document

    return jsonify(document())


@bp.get("/docs")
def docs() -> Any:
    """The document as a readable page."""
    from flask import render_template

    from app.api.openapi import document

    return render_template("api/docs.html", doc=document())


def _text_arg(name: str, limit: int) -> str:
    return (request.args.get(name) or "").strip()[:limit]


@bp.get("/duplicates")
def duplicates() -> Any:
    """Open cases like the request being typed (same category and community), before it is submitted."""
    found = duplicates_for(
        _text_arg("category", 40), _text_arg("community", 40), _text_arg("description", 2000)
    )
    return jsonify(
        {
            "possible_duplicates": [
                {
                    "tracking_number": d.tracking_number,
                    "state": d.state,
                    "state_label": STATE_LABELS.get(d.state, d.state),
                    "created_at": d.created_at.isoformat() + "Z",
                    "me_too_count": d.me_too_count,
                    "snippet": d.snippet,
                }
                for d in found
            ]
        }
    )


@bp.get("/places/suggest")
def suggest_place() -> Any:
    """The community whose imported boundary contains ``lat``/``lng`` (``community`` null when none)."""
    try:
        lat, lng = float(request.args["lat"]), float(request.args["lng"])
    except (KeyError, ValueError):
        return api_error(422, [_field_error("lat", "invalid", _("地图坐标必须是数字"))])
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return api_error(422, [_field_error("lat", "out_of_range", _("地图坐标超出范围"))])
    found = boundary_index.suggest(db.session, lat, lng)
    if found is None:
        return jsonify({"community": None})
    return jsonify(
        {
            "community": found.community,
            "community_name": found.community_name,
            "street": found.street,
            "district": found.district,
        }
    )


@bp.get("/places/addresses")
def addresses() -> Any:
    """Addresses several residents gave for earlier requests in ``community`` starting with ``q``."""
    community = _text_arg("community", 40)
    if not community:
        return jsonify([])
    least = int(current_app.config["KNOWN_ADDRESS_MIN_REPORTERS"])
    return jsonify(known_addresses(db.session, community, _text_arg("q", 100), min_reporters=least))
