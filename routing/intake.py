"""Intake (受理): validate a request, record it as ``submitted`` and issue its tracking number.

One set of rules serves the resident form, the operator form and the JSON API: each hands plain values
to :func:`submit`, which either stores exactly one case or raises :class:`IntakeRejected` listing every
field that is wrong (and stores nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from base64 import urlsafe_b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, scoped_session
from sqlalchemy.orm.attributes import set_committed_value

from core.db import DbSession, utcnow
from core.i18n import N_, DomainError, fill
from core.inputs import (
    OutOfRange,
    bounded_number,
    column_length,
    forbidden_character,
    has_visible,
    is_blank,
)
from core.models import Category, Level, Unit, User
from core.rows import insert_with_child
from routing import notify
from routing.duplicates import CANDIDATES_QUERY, Duplicate, candidate_params, rank
from routing.models import Case, CaseEvent, note_event_written

CHANNELS = ("web", "phone", "api")
CHANNEL_LABELS = {"web": N_("网上"), "phone": N_("12345 热线"), "api": N_("接口")}
MOBILE = re.compile(r"^1[3-9]\d{9}$")
# A mainland landline with its area code, once dashes are stripped: 027-88886666, 010-12345678,
# 0755-1234567. Accepted only from the hotline (a caller's home phone); online channels need a mobile.
LANDLINE = re.compile(r"^0[1-9]\d{1,2}[2-9]\d{6,7}$")
# Lengths come from the columns they are stored in; the description column is Text (a product limit).
LIMITS = {
    "address": column_length(Case.address) or 200,
    "description": 2000,
    "contact_name": column_length(Case.contact_name) or 40,
}
TEXT_FIELDS = ("category", "community", "street", "district", "address", "description", "contact_name")
MULTILINE_FIELDS = frozenset({"description"})
MIN_DESCRIPTION = 5
# Mainland China's bounding box: a point outside it is a typing error, not a place in the city.
LAT_RANGE, LNG_RANGE = (18.0, 54.0), (73.0, 136.0)
_TRACKING_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read out on the phone
_TRACKING_DIGITS = 5
_TRACKING_SPACE = len(_TRACKING_ALPHABET) ** _TRACKING_DIGITS


@dataclass(frozen=True)
class FieldError:
    """One field that is wrong, with a machine code and a zh-CN message."""

    field: str
    code: str
    message: str  # a message id (N_); ``params`` fill its %(name)s placeholders when it is translated
    params: dict[str, object] = dataclass_field(default_factory=dict)


class IntakeRejected(DomainError):
    """The submission is invalid; ``errors`` lists every problem. Nothing was stored."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("invalid", "；".join(fill(e.message, e.params) for e in errors))
        self.errors = errors


class IdempotencyConflict(DomainError):
    """An idempotency key was reused for a different request."""

    status = 409

    def __init__(self) -> None:
        super().__init__("idempotency_conflict", N_("该幂等键已用于另一条不同的诉求"), "Idempotency-Key")


@dataclass(frozen=True)
class Submission:
    """Plain values of a request as typed by a resident or operator."""

    category: str
    community: str
    address: str
    description: str
    contact_name: str
    contact_phone: str
    street: str | None = None
    district: str | None = None
    lat: float | str | None = None
    lng: float | str | None = None
    anonymous: bool = False
    sms_opt_in: bool = False

    def fingerprint(self) -> str:
        """Stable hash of the content, to tell an idempotent replay from a reused key.

        The fields are flat values, so this is ``asdict(self)`` without its deep copy (the same JSON, so
        the same hash as the fingerprints already stored)."""
        values = {name: getattr(self, name) for name in _SUBMISSION_FIELDS}
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


_SUBMISSION_FIELDS = tuple(f.name for f in fields(Submission))


@dataclass(frozen=True)
class Intake:
    """The stored case, whether this call created it, the resident's private token and, when asked
    for, the open cases it may duplicate."""

    case: Case
    created: bool
    token: str
    duplicates: list[Duplicate] = dataclass_field(default_factory=list)

    @property
    def needs_routing(self) -> bool:
        """Whether the caller queues the case's routing once it has committed: a new case, or a replay
        of one still waiting — the request that stored it may have stopped before queueing its job (a
        repeated routing job is a no-op)."""
        return self.created or self.case.state == "submitted"


def normalise_phone(raw: str) -> str:
    """Strip spaces, dashes and a +86 prefix from a phone number (mobile or landline)."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    return digits


def _coordinate(raw: float | str | None) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    # Wider than any coordinate, so the range check below names the problem; bounds a 400-digit number.
    return bounded_number(raw, -1000.0, 1000.0)


def _bad_characters(data: Submission) -> dict[str, FieldError]:
    """Fields holding NUL, other control characters or bidi overrides (newlines only in the description)."""
    found = {}
    for field in (*TEXT_FIELDS, "contact_phone", "lat", "lng"):
        value = getattr(data, field)
        if isinstance(value, str) and forbidden_character(value, multiline=field in MULTILINE_FIELDS):
            found[field] = FieldError(
                field, "control_characters", N_("不能包含控制字符、换行或不可见的格式字符")
            )
    return found


@dataclass(frozen=True)
class CategoryRef:
    """What intake needs of a catalogue entry (plain values, safe to share between requests)."""

    id: int
    active: bool


@dataclass(frozen=True)
class Place:
    """A community with its street and district (plain values, safe to share between requests)."""

    community_id: int
    community_active: bool
    is_community: bool
    street_id: int | None
    street_code: str | None
    district_id: int | None
    district_code: str | None


T = TypeVar("T")
_MISSING = object()


class ReferenceCache:
    """Per-process cache of category and community look-ups by code, for ``ttl`` seconds.

    Intake reads the same few hundred catalogue entries and communities on every request; caching them
    saves three of its statements. A flush that adds, changes or deletes a Unit or Category in this
    process empties the cache at once (and again at that transaction's commit or rollback); other
    processes see a change within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, session: DbSession, kind: str, code: str, load: Callable[[], T]) -> T:
        """The cached value of ``(kind, code)``, else ``load()`` (cached unless this session holds unit
        or category changes of its own, which other sessions must not see)."""
        now = time.monotonic()
        hit = self._entries.get((kind, code))
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        if not session.info.get(_TOUCHED):
            with self._lock:
                self._entries[(kind, code)] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        """Forget everything (after a change, and between tests)."""
        with self._lock:
            self._entries.clear()


reference_cache = ReferenceCache()
_TOUCHED = "minhu_reference_touched"  # session.info flag: this transaction flushed a Unit/Category


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if any(isinstance(o, Unit | Category) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_TOUCHED] = True
        reference_cache.clear()


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _after_end(session: Session, *_: Any) -> None:
    if session.info.pop(_TOUCHED, False):
        reference_cache.clear()


def _load_category(session: DbSession, code: str) -> CategoryRef | None:
    row = session.execute(select(Category.id, Category.active).where(Category.code == code)).first()
    return CategoryRef(row.id, row.active) if row else None


def _load_place(session: DbSession, code: str) -> Place | None:
    street, district = aliased(Unit), aliased(Unit)
    row = session.execute(
        select(
            Unit.id,
            Unit.active,
            Unit.level,
            street.id.label("street_id"),
            street.code.label("street_code"),
            district.id.label("district_id"),
            district.code.label("district_code"),
        )
        .outerjoin(street, street.id == Unit.parent_id)
        .outerjoin(district, district.id == street.parent_id)
        .where(Unit.code == code)
    ).first()
    if row is None:
        return None
    return Place(
        row.id,
        row.active,
        row.level == Level.community,
        row.street_id,
        row.street_code,
        row.district_id,
        row.district_code,
    )


def category_by_code(session: DbSession, code: str) -> CategoryRef | None:
    """The catalogue entry of ``code`` (active or not), from the per-process cache."""
    code = (code or "").strip()
    return (
        reference_cache.get(session, "category", code, lambda: _load_category(session, code))
        if code
        else None
    )


def place_by_code(session: DbSession, code: str) -> Place | None:
    """The unit of ``code`` with its street and district (any level), from the per-process cache."""
    code = (code or "").strip()
    return reference_cache.get(session, "place", code, lambda: _load_place(session, code)) if code else None


def validate(
    session: DbSession, data: Submission, channel: str = "web"
) -> tuple[CategoryRef, Place, list[FieldError]]:
    """Check every rule; return the category and community found and the list of problems."""
    bad = _bad_characters(data)
    errors: list[FieldError] = list(bad.values())
    if bad:
        # Anything else said about such a submission would quote the bad characters back; fix these first.
        return None, None, errors  # type: ignore[return-value]

    def need(field: str, value: str | None, message: str) -> bool:
        if is_blank(value):
            errors.append(FieldError(field, "required", message))
            return False
        return True

    category = community = None
    if need("category", data.category, N_("请填写诉求类别")):
        category = category_by_code(session, data.category)
        if category is None or not category.active:
            errors.append(FieldError("category", "unknown", N_("所选诉求类别不存在")))
    if need("community", data.community, N_("请填写所在社区")):
        community = place_by_code(session, data.community)
        if community is None or not community.is_community or not community.community_active:
            errors.append(FieldError("community", "unknown", N_("所选社区不存在")))
            community = None
    if community is not None:
        if data.street and (community.street_id is None or community.street_code != data.street):
            errors.append(FieldError("community", "mismatch", N_("所选社区不属于所选街道")))
        elif data.district and (
            community.street_id is None
            or community.district_id is None
            or community.district_code != data.district
        ):
            errors.append(FieldError("street", "mismatch", N_("所选街道不属于所选区")))
    for name, required, too_long in (
        ("address", N_("请填写详细地址"), N_("详细地址不能超过 %(max)s 个字")),
        ("description", N_("请填写诉求内容"), N_("诉求内容不能超过 %(max)s 个字")),
        ("contact_name", N_("请填写联系人姓名"), N_("联系人姓名不能超过 %(max)s 个字")),
    ):
        value = getattr(data, name) or ""
        if need(name, value, required) and len(value.strip()) > LIMITS[name]:
            errors.append(FieldError(name, "too_long", too_long, {"max": LIMITS[name]}))
    if not is_blank(data.description) and not has_visible(data.description, MIN_DESCRIPTION):
        errors.append(
            FieldError(
                "description",
                "too_short",
                N_("诉求内容至少 %(min)s 个字，请说明具体情况"),
                {"min": MIN_DESCRIPTION},
            )
        )
    phone = normalise_phone(data.contact_phone)
    if channel == "phone":
        if need("contact_phone", data.contact_phone, N_("请填写联系电话")) and not (
            MOBILE.match(phone) or LANDLINE.match(phone)
        ):
            errors.append(
                FieldError(
                    "contact_phone",
                    "invalid",
                    N_("联系电话格式不正确，应为 11 位手机号或带区号的固话（如 027-88886666）"),
                )
            )
    elif need("contact_phone", data.contact_phone, N_("请填写手机号码")) and not MOBILE.match(phone):
        errors.append(FieldError("contact_phone", "invalid", N_("手机号码格式不正确，应为 11 位大陆手机号")))
    try:
        lat, lng = _coordinate(data.lat), _coordinate(data.lng)
    except OutOfRange:
        errors.append(FieldError("lat", "out_of_range", N_("地图坐标不在中国境内")))
    except (TypeError, ValueError):
        errors.append(FieldError("lat", "invalid", N_("地图坐标必须是数字")))
    else:
        if (lat is None) != (lng is None):
            errors.append(
                FieldError("lat" if lat is None else "lng", "required", N_("地图坐标需同时提供纬度和经度"))
            )
        elif (
            lat is not None
            and lng is not None
            and not (LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LNG_RANGE[0] <= lng <= LNG_RANGE[1])
        ):
            errors.append(FieldError("lat", "out_of_range", N_("地图坐标不在中国境内")))
    return category, community, errors  # type: ignore[return-value]  # None only when errors is non-empty


def case_token(key: bytes, tracking_number: str) -> str:
    """The private token of a case: an HMAC of its tracking number, so nothing secret is stored."""
    digest = hmac.new(key, f"case-token:{tracking_number}".encode(), hashlib.sha256).digest()
    return urlsafe_b64encode(digest[:18]).decode()


def check_token(key: bytes, tracking_number: str, token: str | None) -> bool:
    """Constant-time check of a resident's private token."""
    # Bytes: compare_digest raises TypeError on a str with non-ASCII characters (a pasted "é" was a 500).
    given = (token or "").encode("utf-8", "surrogatepass")
    return bool(token) and hmac.compare_digest(case_token(key, tracking_number).encode(), given)


def new_tracking_number(now: datetime) -> str:
    """Readable tracking number with the date, e.g. MH20261126-7K3QX."""
    # One draw of 32^5 values, written in the alphabet's five digits: as uniform as five secrets.choice
    # calls, with one read of the system's random source instead of five.
    number = secrets.randbelow(_TRACKING_SPACE)
    digits = []
    for _ in range(_TRACKING_DIGITS):
        number, digit = divmod(number, len(_TRACKING_ALPHABET))
        digits.append(_TRACKING_ALPHABET[digit])
    return f"MH{now:%Y%m%d}-{''.join(digits)}"


def submit(
    session: DbSession,
    data: Submission,
    *,
    channel: str,
    token_key: bytes,
    resident: User | None = None,
    operator: User | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
    duplicates_within_days: int | None = None,
    standalone: bool = False,
) -> Intake:
    """Store one case in state ``submitted`` with its intake event (the caller commits); ``details`` are
    added to the event's (the partner key that filed it).

    ``duplicates_within_days``: also find the open cases of the same community and category created
    within that many days that read alike (``Intake.duplicates``; on PostgreSQL in the insert statement).

    ``standalone``: nothing else need be atomic with the case. The case and its event are then stored on
    a connection of their own — on PostgreSQL by one autocommitted statement, no BEGIN and COMMIT round
    trips; elsewhere in a short transaction of their own — and the session is not used for the write:
    the case is committed when this returns, and ``Intake.case`` and its event are detached objects
    (their columns loaded, their relations not). The caller still commits the session: that hands the
    intake event over to the webhooks. A resident who asked for the 受理 SMS gets the caller's
    transaction (the SMS is planned as a row beside the case).

    A failed insert (a duplicate tracking number or a racing idempotency key) is retried: inside a
    savepoint when the session already holds the caller's work, else by rolling back what this call began.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel}")
    fingerprint = data.fingerprint()
    # When this call begins the transaction (the API's case), a failed insert can roll the whole of it
    # back and retry: no savepoint needed, two round trips fewer. Otherwise the caller's work in the
    # same transaction is kept by a savepoint around the insert.
    plain = session() if isinstance(session, scoped_session) else session
    owns_transaction = not plain.in_transaction() and not (plain.new or plain.dirty or plain.deleted)
    apart = standalone and not data.sms_opt_in and _may_store_apart(plain)
    key = (idempotency_key or "").strip()[: column_length(Case.idempotency_key)] or None
    if key and forbidden_character(key, multiline=False):
        raise IntakeRejected(
            [
                FieldError(
                    "idempotency_key", "control_characters", N_("幂等键不能包含控制字符或不可见的格式字符")
                )
            ]
        )
    if key:
        replay = _replay(session, key, fingerprint, token_key)
        if replay:
            return replay
    now = now or utcnow()
    for _attempt in range(5):
        category, community, errors = validate(session, data, channel)
        if errors:
            raise IntakeRejected(errors)
        # A community always sits under a street, and a street under a district.
        assert community.street_id is not None and community.district_id is not None
        actor = operator or resident
        case_values = {
            "tracking_number": new_tracking_number(now),
            "channel": channel,
            "category_id": category.id,
            "community_id": community.community_id,
            "street_id": community.street_id,
            "district_id": community.district_id,
            "address": data.address.strip(),
            "lat": _coordinate(data.lat),
            "lng": _coordinate(data.lng),
            "description": data.description.strip(),
            "contact_name": data.contact_name.strip(),
            "contact_phone": normalise_phone(data.contact_phone),
            "anonymous": bool(data.anonymous),
            "sms_opt_in": bool(data.sms_opt_in),
            "resident_id": resident.id if resident else None,
            "operator_id": operator.id if operator else None,
            "idempotency_key": key,
            "request_fingerprint": fingerprint,
            "state": "submitted",
            "created_at": now,
            "updated_at": now,
        }
        event_values = {
            "action": "submit",
            "to_state": "submitted",
            "actor_id": actor.id if actor else None,
            "actor_unit_id": operator.unit_id if operator else None,
            "actor_role": actor.role.value if actor else "resident",
            "details": {"channel": channel, **(details or {})},
            "created_at": now,
        }
        lookup = (
            candidate_params(category.id, community.community_id, now, duplicates_within_days)
            if duplicates_within_days is not None
            else None
        )
        if apart and owns_transaction and plain.in_transaction():
            # Look-ups of this call (a cache miss) began a read transaction: end it now, so that once the
            # case is committed the request has no database work left that could fail.
            plain.rollback()
        try:
            if apart:
                with _connection_apart(plain) as connection:
                    case, candidates = _insert_case(connection, case_values, event_values, lookup)
            elif owns_transaction:
                case, candidates = _insert_case(plain, case_values, event_values, lookup)
            else:
                with session.begin_nested():
                    case, candidates = _insert_case(plain, case_values, event_values, lookup)
        except IntegrityError:
            # Either the same idempotency key won a race, or the random suffix collided: look, then retry.
            if owns_transaction and not apart:
                session.rollback()
            reference_cache.clear()  # or a cached unit/category vanished (foreign key): look it up again
            if key:
                replay = _replay(session, key, fingerprint, token_key)
                if replay:
                    return replay
            continue
        note_event_written(plain, case.events[0])  # for the webhooks, when the session commits
        notify.announce(plain, case, "accepted")  # the 受理 SMS, when the resident opted in
        duplicates = rank(candidates, case.description) if lookup is not None else []
        return Intake(case, True, case_token(token_key, case.tracking_number), duplicates)
    raise RuntimeError("could not allocate a tracking number")


def _insert_case(
    target: Session | Connection,
    case_values: dict[str, Any],
    event_values: dict[str, Any],
    lookup: dict[str, Any] | None,
) -> tuple[Case, list[Any]]:
    """The case and its intake event, inserted without a unit-of-work flush (one statement on PostgreSQL),
    and the duplicate candidates of ``lookup`` (read in that statement, so without the new case).

    Every intake pays for this, so it skips the flush (see :mod:`core.rows`); the values were checked by
    :func:`validate`, and the flush guard's own check runs on both rows all the same.
    """
    case, event, candidates = insert_with_child(
        target,
        Case,
        case_values,
        CaseEvent,
        event_values,
        "case_id",
        parent_empty=("photos",),
        also=CANDIDATES_QUERY if lookup is not None else None,
        also_params=lookup,
    )
    set_committed_value(case, "events", [event])
    set_committed_value(event, "case", case)
    return case, candidates


def _may_store_apart(session: Session) -> bool:
    """Whether a standalone case may be stored on a connection of its own: the session is bound to an
    engine (not to a connection whose transaction a caller holds, as tests do)."""
    return isinstance(session.get_bind(), Engine)


@contextmanager
def _connection_apart(session: Session) -> Iterator[Connection]:
    """A connection of the session's engine pool that commits what runs on it: on PostgreSQL in
    AUTOCOMMIT mode (the one statement commits itself; the mode is reset when it goes back), elsewhere in
    a short transaction of its own, committed on leaving."""
    engine = cast(Engine, session.get_bind())
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
    else:
        with engine.begin() as connection:
            yield connection


def _replay(session: DbSession, key: str, fingerprint: str, token_key: bytes) -> Intake | None:
    existing = session.scalar(select(Case).where(Case.idempotency_key == key))
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict()
    return Intake(existing, False, case_token(token_key, existing.tracking_number))


def find_case(session: DbSession, tracking_number: str) -> Case | None:
    """A case by its tracking number (case-insensitive)."""
    return session.scalar(select(Case).where(Case.tracking_number == (tracking_number or "").strip().upper()))
