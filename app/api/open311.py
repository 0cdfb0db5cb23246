"""Open311 GeoReport v2 under ``/open311/v2/``: discovery, services, definitions, requests and tokens.

Follows the GeoReport v2 specification: every call in XML (required) and JSON (bare arrays), UTF-8,
timestamps with their offset (Beijing time), ``jurisdiction_id`` accepted when it names this city,
errors as the specification's list of ``code`` + ``description`` with the HTTP status of that code.
Submissions go through the one intake service (``routing.intake.submit``). Contacts (names, phones,
e-mail) are taken in but never leave through Open311; descriptions leave with phone numbers masked.
"""

from __future__ import annotations

import math
import re
import secrets
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, json, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api import keys, over_address_limit
from app.api.models import Open311Token
from app.dispatch import queue_routing
from app.extensions import csrf, db
from app.i18n import message_of
from app.ratelimit import count_apart
from app.web.public import token_key
from core.catalogue import active_categories
from core.db import utcnow
from core.models import Category, Level, Unit
from core.privacy import scrub
from core.quarter import to_beijing
from routing.intake import IdempotencyConflict, IntakeRejected, Submission, submit
from routing.lifecycle import OPEN_STATES
from routing.models import Case
from routing.narrative import describe

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
count_apart(bp.name)  # its limits are the API's own (per address, per key): Flask-Limiter skips it
FORMAT = "<any(xml,json):ext>"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-01T00:00:00+08:00"
DEFAULT_WINDOW = timedelta(days=90)  # the specification: default range and largest span, 90 days
RESULT_CAP = 1000  # the specification: at most the 1000 most recent requests
MEDIA_URL = re.compile(r"^https?://[^\s]{1,490}$")
ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
# XML element names of list items, by the name of the list (as in the specification's examples).
ITEM_TAGS = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute", "values": "value"}
BEIJING = "+08:00"
ANONYMOUS_VALUES = (("false", "留下联系方式"), ("true", "匿名（联系方式仅承办单位可见）"))


class Open311Error(Exception):
    """An error the specification lists: HTTP status and a description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def init_app(app: Flask) -> None:
    """Register the Open311 blueprint; its POST takes form-encoded bodies from partner apps, not pages."""
    csrf.exempt(bp)
    app.register_blueprint(bp)


# --- rendering ------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _element(tag: str, value: Any) -> ET.Element:
    node = ET.Element(tag)
    if isinstance(value, dict):
        for key, child in value.items():
            node.append(_element(key, child))
    elif isinstance(value, list):
        for child in value:
            node.append(_element(ITEM_TAGS.get(tag, "item"), child))
    else:
        node.text = _text(value)
    return node


def render(fmt: str, value: Any, root: str, item: str | None = None, status: int = 200) -> Response:
    """``value`` as JSON, or as XML under ``root`` (a list's entries as ``item`` elements), UTF-8."""
    if fmt == "json":
        body = json.dumps(value, ensure_ascii=False)
        return Response(body, status=status, content_type="application/json; charset=utf-8")
    if isinstance(value, list):
        node = ET.Element(root)
        for entry in value:
            node.append(_element(item or "item", entry))
    else:
        node = _element(root, value)
    body = '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(node, encoding="unicode")
    return Response(body.encode(), status=status, content_type="text/xml; charset=utf-8")


def error(fmt: str, status: int, description: str) -> Response:
    """The specification's error list: ``[{"code", "description"}]`` / ``<errors><error>…``."""
    return render(fmt, [{"code": status, "description": description}], "errors", "error", status)


def _fmt() -> str:
    return "xml" if (request.view_args or {}).get("ext") == "xml" else "json"


@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error) -> Response:
    return error(_fmt(), exc.status, exc.description)


@bp.before_request
def _address_limit() -> Response | None:
    """The API's per-address budget (API_LIMIT, shared with /api/v1), answered in the request's format."""
    seconds = over_address_limit()
    if seconds is None:
        return None
    minutes = max(1, math.ceil(seconds / 60))
    response = error(_fmt(), 429, _("尝试过于频繁，请 %(minutes)s 分钟后再试", minutes=minutes))
    response.headers["Retry-After"] = str(seconds)
    return response


@bp.before_request
def _check_jurisdiction() -> None:
    """One city per endpoint: ``jurisdiction_id`` is optional, and must name this city when given."""
    given = request.values.get("jurisdiction_id")
    if given and given != current_app.config["OPEN311_JURISDICTION"]:
        raise Open311Error(
            404, _("jurisdiction_id 不存在：本接口只服务 %(j)s", j=current_app.config["OPEN311_JURISDICTION"])
        )


def _time(moment: datetime | None) -> str | None:
    """A stored UTC time in W3C format with the Beijing offset, e.g. 2026-12-01T16:00:00+08:00."""
    if moment is None:
        return None
    return to_beijing(moment.replace(tzinfo=None)).replace(microsecond=0).isoformat() + BEIJING


def _parse_time(name: str) -> datetime | None:
    """A W3C datetime parameter as naive UTC (a time without an offset is read as UTC)."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Open311Error(
            400, _("%(name)s 不是 W3C 日期时间格式（例如 2026-01-01T00:00:00Z）", name=name)
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _key(scope: str) -> keys.KeyCheck:
    """Check the ``api_key`` parameter for ``scope``; 403 (429 over its rate limit) otherwise."""
    check = keys.authorise(db.session, request.values.get("api_key"), scope)
    if check.error == "rate_limited":
        db.session.commit()
        raise Open311Error(429, _("该 api_key 请求过于频繁，请稍后再试"))
    if check.key is None:
        db.session.commit()  # the refused use stays recorded
        messages = {
            "missing": _("缺少 api_key"),
            "invalid": _("api_key 无效"),
            "revoked": _("api_key 已被吊销"),
            "scope": _("该 api_key 无权进行此操作"),
        }
        raise Open311Error(403, messages.get(check.error or "invalid", _("api_key 无效")))
    return check


# --- discovery and services -----------------------------------------------------------------------------


@bp.get(f"/discovery.{FORMAT}")
def discovery(ext: str) -> Response:
    """Where this endpoint is, which specification it follows and in which formats."""
    endpoint = url_for("open311.services", ext="json", _external=True).rsplit("/", 1)[0] + "/"
    return render(
        ext,
        {
            "changeset": CHANGESET,
            "contact": current_app.config["OPEN311_CONTACT"],
            "key_service": current_app.config["OPEN311_KEY_SERVICE"],
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": endpoint,
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        },
        "discovery",
    )


def _service(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.name,
        "metadata": True,  # every service has its attributes (the community, anonymity)
        "type": "batch",  # a POST answers with a token until the request is routed
        "keywords": category.group,
        "group": category.group,
    }


@bp.get(f"/services.{FORMAT}")
def services(ext: str) -> Response:
    """Every active category as a service."""
    return render(ext, [_service(c) for c in active_categories(db.session)], "services", "service")


def _communities() -> list[Unit]:
    rows = db.session.scalars(
        select(Unit)
        .where(Unit.level == Level.community, Unit.active.is_(True))
        .options(selectinload(Unit.parent))
        .order_by(Unit.path, Unit.code)
    )
    return list(rows)


def _attributes() -> list[dict[str, Any]]:
    """What intake needs beyond the specification's own parameters: the community, and anonymity."""
    return [
        {
            "variable": True,
            "code": "community",
            "datatype": "singlevaluelist",
            "required": True,
            "datatype_description": _("社区编码（也可用 address_id 传入）"),
            "order": 1,
            "description": _("诉求发生地所在的社区"),
            "values": [
                {"key": u.code, "name": f"{u.parent.name if u.parent else ''}{u.name}"}
                for u in _communities()
            ],
        },
        {
            "variable": True,
            "code": "anonymous",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": _("true 或 false"),
            "order": 2,
            "description": _("是否匿名"),
            "values": [{"key": k, "name": _(n)} for k, n in ANONYMOUS_VALUES],
        },
    ]


def _category(code: str) -> Category:
    category = db.session.scalar(select(Category).where(Category.code == code, Category.active.is_(True)))
    if category is None:
        raise Open311Error(404, _("service_code 不存在"))
    return category


@bp.get(f"/services/<service_code>.{FORMAT}")
def service_definition(service_code: str, ext: str) -> Response:
    """A service's attributes."""
    category = _category(service_code)
    return render(ext, {"service_code": category.code, "attributes": _attributes()}, "service_definition")


# --- requests -------------------------------------------------------------------------------------------


def _attributes_given() -> dict[str, list[str]]:
    given: dict[str, list[str]] = {}
    for name in request.form:
        match = ATTRIBUTE.match(name)
        if match:
            given.setdefault(match.group(1), []).extend(request.form.getlist(name))
    return given


def _read_attributes() -> tuple[str, bool]:
    """The community (attribute or address_id) and anonymity, checked against the definition."""
    definition = {a["code"]: a for a in _attributes()}
    given = _attributes_given()
    for code, values in given.items():
        attribute = definition.get(code)
        if attribute is None:
            raise Open311Error(400, _("未知的属性 attribute[%(code)s]", code=code))
        if attribute["datatype"] == "singlevaluelist" and len(values) > 1:
            raise Open311Error(400, _("属性 %(code)s 只能取一个值", code=code))
        allowed = {v["key"] for v in attribute["values"]}
        if any(v not in allowed for v in values):
            raise Open311Error(400, _("属性 %(code)s 的取值无效", code=code))
    community = (given.get("community") or [request.form.get("address_id", "")])[0].strip()
    if not community:
        raise Open311Error(400, _("缺少必填属性 attribute[community]（或 address_id）"))
    if not any(v["key"] == community for v in definition["community"]["values"]):
        raise Open311Error(400, _("address_id 不是有效的社区编码"))
    return community, (given.get("anonymous") or ["false"])[0] == "true"


def _submission() -> tuple[Submission, str | None]:
    form = request.form
    if not form.get("service_code"):
        raise Open311Error(400, _("缺少 service_code"))
    _category(form["service_code"])
    lat, lng = form.get("lat"), form.get("long")
    address = (form.get("address_string") or "").strip()
    if not address and not form.get("address_id") and not (lat and lng):
        raise Open311Error(400, _("需提供位置：lat 与 long，或 address_string，或 address_id"))
    media_url = (form.get("media_url") or "").strip() or None
    if media_url and not MEDIA_URL.match(media_url):
        raise Open311Error(400, _("media_url 必须是 http 或 https 地址"))
    community, anonymous = _read_attributes()
    if not address:
        address = f"{lat}, {lng}" if lat and lng else _("（见社区）")
    name = f"{form.get('last_name', '').strip()}{form.get('first_name', '').strip()}"
    return (
        Submission(
            category=form["service_code"],
            community=community,
            address=address,
            description=form.get("description", ""),
            contact_name=name,
            contact_phone=form.get("phone", ""),
            lat=lat or None,
            lng=lng or None,
            anonymous=anonymous,
        ),
        media_url,
    )


OPEN311_FIELDS = {
    "contact_name": "first_name/last_name",
    "contact_phone": "phone",
    "lat": "lat",
    "lng": "long",
}


@bp.post(f"/requests.{FORMAT}")
def create_request(ext: str) -> Response:
    """File a request through intake; answers with the request id once routed, else a token."""
    check = _key("submit")
    data, media_url = _submission()
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
        field = rejected.errors[0].field
        return error(ext, 400, f"{OPEN311_FIELDS.get(field, field)}: {message_of(rejected.errors[0])}")
    except IdempotencyConflict as conflict:
        db.session.rollback()
        return error(ext, 400, message_of(conflict))
    case = result.case
    if result.created:
        event = case.events[0]
        event.details = {
            **(event.details or {}),
            "api_key_id": check.key.id if check.key else None,
            **({"media_url": media_url} if media_url else {}),
        }
        db.session.add(
            Open311Token(
                token=secrets.token_urlsafe(18), case_id=case.id, api_key_id=event.details["api_key_id"]
            )
        )
    case_id, created, waiting = case.id, result.created, result.needs_routing
    db.session.commit()
    if waiting:
        queue_routing(case_id, created)
    case = db.session.get(Case, case_id) or case
    notice = _("诉求已受理，编号 %(n)s；联系方式不会通过开放接口公开", n=case.tracking_number)
    body: dict[str, Any]
    if case.state == "submitted":
        token = db.session.scalar(select(Open311Token.token).where(Open311Token.case_id == case_id))
        body = {"token": token, "service_notice": notice, "account_id": None}
    else:
        body = {"service_request_id": case.tracking_number, "service_notice": notice, "account_id": None}
    return render(ext, [body], "service_requests", "request", status=201 if result.created else 200)


def request_json(case: Case) -> dict[str, Any]:
    """A case as the specification's request: never a name, phone or e-mail."""
    latest = case.events[-1] if case.events else None
    submit_event = case.events[0] if case.events else None
    media = (submit_event.details or {}).get("media_url") if submit_event else None
    return {
        "service_request_id": case.tracking_number,
        "status": "open" if case.state in OPEN_STATES else "closed",
        "status_notes": scrub(describe(latest)) if latest else None,
        "service_name": case.category.name,
        "service_code": case.category.code,
        "description": scrub(case.description),
        "agency_responsible": case.current_unit.name if case.current_unit else None,
        "service_notice": None,
        "requested_datetime": _time(case.created_at),
        "updated_datetime": _time(latest.created_at if latest else case.updated_at),
        "expected_datetime": _time(case.deadline),
        "address": case.address,
        "address_id": case.community.code,
        "zipcode": None,
        "lat": case.lat,
        "long": case.lng,
        "media_url": media,
    }


def _loaded() -> Any:
    return select(Case).options(
        selectinload(Case.events),
        selectinload(Case.category),
        selectinload(Case.current_unit),
        selectinload(Case.community),
    )


@bp.get(f"/requests.{FORMAT}")
def list_requests(ext: str) -> Response:
    """Requests by id list, or by service code, status and a date window (90 days, 1000 at most)."""
    _key("read")
    ids = [i.strip().upper() for i in (request.args.get("service_request_id") or "").split(",") if i.strip()]
    query = _loaded()
    if ids:  # the specification: a list of ids overrides every other parameter
        query = query.where(Case.tracking_number.in_(ids[:RESULT_CAP]))
    else:
        start, end = _parse_time("start_date"), _parse_time("end_date")
        if start and end and end - start > DEFAULT_WINDOW:
            raise Open311Error(400, _("start_date 与 end_date 的跨度不能超过 90 天"))
        if start and end and end < start:
            raise Open311Error(400, _("end_date 早于 start_date"))
        if start is None:
            end = end or utcnow()
            start = end - DEFAULT_WINDOW
        elif end is None:
            end = start + DEFAULT_WINDOW
        query = query.where(Case.created_at >= start, Case.created_at <= end)
        codes = [c.strip() for c in (request.args.get("service_code") or "").split(",") if c.strip()]
        if codes:
            query = query.join(Case.category).where(Category.code.in_(codes))
        statuses = {s.strip() for s in (request.args.get("status") or "").split(",") if s.strip()}
        if statuses - {"open", "closed"}:
            raise Open311Error(400, _("status 只能是 open 或 closed"))
        if statuses == {"open"}:
            query = query.where(Case.state.in_([str(s) for s in OPEN_STATES]))
        elif statuses == {"closed"}:
            query = query.where(Case.state.not_in([str(s) for s in OPEN_STATES]))
    cases = db.session.scalars(query.order_by(Case.created_at.desc(), Case.id.desc()).limit(RESULT_CAP))
    body = [request_json(c) for c in cases]
    db.session.commit()  # the key's recorded use
    return render(ext, body, "service_requests", "request")


@bp.get(f"/requests/<service_request_id>.{FORMAT}")
def get_request(service_request_id: str, ext: str) -> Response:
    """One request, as a list of one."""
    _key("read")
    case = db.session.scalar(_loaded().where(Case.tracking_number == service_request_id.strip().upper()))
    db.session.commit()
    if case is None:
        raise Open311Error(404, _("service_request_id 不存在"))
    return render(ext, [request_json(case)], "service_requests", "request")


@bp.get(f"/tokens/<token>.{FORMAT}")
def token(token: str, ext: str) -> Response:
    """The request id a token stands for, once the request is routed (until then the token alone)."""
    _key("read")
    row = db.session.scalar(select(Open311Token).where(Open311Token.token == token))
    db.session.commit()
    if row is None:
        raise Open311Error(404, _("token 不存在"))
    case = db.session.get(Case, row.case_id)
    entry: dict[str, Any] = {"token": row.token}
    if case is not None and case.state != "submitted":
        entry = {"service_request_id": case.tracking_number, "token": row.token}
    return render(ext, [entry], "service_requests", "request")
