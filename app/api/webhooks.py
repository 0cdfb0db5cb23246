"""Webhooks: case events fanned out to partner endpoints as signed, logged, retried RQ deliveries.

A committed :class:`~routing.models.CaseEvent` whose action is one partners can subscribe to is handed,
after the commit, to ``fan_out`` (an RQ job), which writes one :class:`WebhookDelivery` per subscribed
active endpoint (once: a unique constraint) and enqueues ``deliver`` for each. Nothing calls out during
the request that made the event, so a slow, failing or disabled endpoint never slows intake.

Each delivery is a JSON POST signed with HMAC-SHA256 over ``"{timestamp}.{body}"`` with the endpoint's
secret; headers carry the event, the delivery's idempotency id, the timestamp and the signature.
A non-2xx answer or a network error is logged on the row and raised, so RQ retries with backoff
(app/queue.py); the last attempt marks the row failed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.api.models import WEBHOOK_EVENTS, Webhook, WebhookDelivery
from core import jobs
from core.db import utcnow
from core.i18n import N_
from routing.models import CaseEvent, events_written

log = logging.getLogger(__name__)
# Which lifecycle actions partners hear about, by the event name they subscribe to.
EVENT_BY_ACTION = {
    "submit": "submitted",
    "dispatch": "routed",
    "pass_down": "routed",
    "accept": "signed_for",
    "resolve": "resolved",
    "callback": "rated",
    "close": "closed",
}
assert set(EVENT_BY_ACTION.values()) == set(WEBHOOK_EVENTS)
SIGNATURE_HEADER = "X-Minhu-Signature"
TIMESTAMP_HEADER = "X-Minhu-Timestamp"
DELIVERY_HEADER = "X-Minhu-Delivery"
EVENT_HEADER = "X-Minhu-Event"
RESPONSE_KEPT = 500  # characters of the last response body kept on the delivery row
_PENDING = "app.webhooks.pending"


class DeliveryFailed(Exception):
    """The endpoint did not answer 2xx (RQ retries the job)."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``sha256=`` and the hex HMAC of ``"{timestamp}.{body}"``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, now: float, tolerance: int = 300
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within ``tolerance`` seconds."""
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    if abs(now - moment) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, moment, body), signature)


SUBSCRIBED_TTL = 30.0  # seconds another process may take to notice a new or changed endpoint
_subscribed: dict[str, Any] = {"until": 0.0, "names": frozenset()}


def subscribed_events() -> frozenset[str]:
    """Event names some active endpoint wants (cached per process; a change here clears it at once)."""
    if _subscribed["until"] > time.monotonic():
        return frozenset(_subscribed["names"])
    with jobs.unit_of_work() as session:
        names = frozenset(
            e
            for hook in session.scalars(select(Webhook).where(Webhook.active.is_(True)))
            for e in hook.events
        )
    _subscribed.update(until=time.monotonic() + SUBSCRIBED_TTL, names=names)
    return names


def forget_subscriptions() -> None:
    """Drop the cached subscriptions (after a change, and between tests)."""
    _subscribed.update(until=0.0, names=frozenset())


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    if any(isinstance(o, Webhook) for o in (*session.new, *session.dirty, *session.deleted)):
        forget_subscriptions()
    found = [
        (o.id, EVENT_BY_ACTION[o.action])
        for o in session.new
        if isinstance(o, CaseEvent) and o.action in EVENT_BY_ACTION
    ]
    if found:
        session.info.setdefault(_PENDING, []).extend(found)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)
    events_written(session)


@event.listens_for(Session, "after_commit")
def _hand_over(session: Session) -> None:
    # after_commit also fires when a SAVEPOINT is released, while the outer transaction still holds
    # its locks (on SQLite a new connection would wait out busy_timeout): only the outermost commit.
    if session.get_nested_transaction() is not None:
        return
    written = [(i, EVENT_BY_ACTION[a]) for i, a in events_written(session) if a in EVENT_BY_ACTION]
    found = session.info.pop(_PENDING, []) + written
    if not found or not has_app_context():
        return
    try:
        wanted = subscribed_events()
        for case_event_id, name in found:
            if name in wanted:
                jobs.enqueue("app.api.webhooks.fan_out", case_event_id)
    except Exception:  # a webhook must never break the request that made the event
        log.exception("webhook fan-out after a commit failed")


def fan_out(case_event_id: int) -> int:
    """Write one delivery per active endpoint subscribed to this event, then enqueue them. How many."""
    created: list[int] = []
    with jobs.unit_of_work() as session:
        case_event = session.get(CaseEvent, case_event_id)
        if case_event is None or case_event.action not in EVENT_BY_ACTION:
            return 0
        name = EVENT_BY_ACTION[case_event.action]
        hooks = [
            h for h in session.scalars(select(Webhook).where(Webhook.active.is_(True))) if name in h.events
        ]
        if not hooks:
            return 0
        from app.api.open311 import request_json

        payload_case = request_json(case_event.case)
        for hook in hooks:
            exists = session.scalar(
                select(WebhookDelivery.id).where(
                    WebhookDelivery.webhook_id == hook.id, WebhookDelivery.case_event_id == case_event_id
                )
            )
            if exists:
                continue
            delivery_id = uuid.uuid4().hex
            delivery = WebhookDelivery(
                webhook_id=hook.id,
                case_event_id=case_event_id,
                event=name,
                delivery_id=delivery_id,
                payload={
                    "id": delivery_id,
                    "event": name,
                    "occurred_at": case_event.created_at.isoformat() + "Z",
                    "request": payload_case,
                },
                created_at=utcnow(),
            )
            session.add(delivery)
            session.flush()
            created.append(delivery.id)
    for delivery_pk in created:
        jobs.enqueue("app.api.webhooks.deliver", delivery_pk)
    return len(created)


def _attempts_allowed() -> int:
    from app.queue import policy_for

    return 1 + len(policy_for("app.api.webhooks.deliver").retry_intervals)


def destination_problem(url: str, allow_private: bool) -> tuple[str, dict[str, str]] | None:
    """Why ``url`` may not receive deliveries (a Chinese message id and its parameters), or None.

    Only http(s); unless ``allow_private``, every address the host resolves to must be a public one
    (not loopback, private, link-local such as 169.254.169.254, or reserved), so an endpoint cannot
    make the worker call the city's internal services. Checked when registering and before each attempt.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return N_("接收地址必须是 http:// 或 https:// 开头的完整地址"), {}
    if allow_private:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return N_("无法解析主机名 %(host)s"), {"host": parts.hostname}
    for *_, address in found:
        ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        if not ip.is_global:
            return N_("接收地址指向内网或本机地址（%(ip)s），不予投递"), {"ip": str(ip)}
    return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the endpoint's answer (logged, retried), never followed to another host."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str]:
    allow_private = bool(current_app.config.get("WEBHOOK_ALLOW_PRIVATE")) if has_app_context() else False
    problem = destination_problem(url, allow_private)
    if problem is not None:
        return None, problem[0] % problem[1]
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=timeout) as answer:
            return answer.status, answer.read(RESPONSE_KEPT).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(RESPONSE_KEPT).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"{exc.__class__.__name__}: {exc}"[:RESPONSE_KEPT]


def deliver(delivery_pk: int) -> str:
    """One signed attempt; the outcome is logged on the row. Raises :class:`DeliveryFailed` to retry."""
    timeout = float(current_app.config.get("WEBHOOK_TIMEOUT_SECONDS", 5.0)) if has_app_context() else 5.0
    with jobs.unit_of_work() as session:
        delivery = session.get(WebhookDelivery, delivery_pk)
        if delivery is None or delivery.status == "delivered":
            return "done"
        hook = delivery.webhook
        if not hook.active:
            delivery.status = "disabled"
            return "disabled"
        body = json.dumps(delivery.payload, ensure_ascii=False, sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "minhu-webhooks/1",
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
        }
        status, text = _post(hook.url, body, headers, timeout)
        delivery.attempts += 1
        delivery.last_status_code = status
        delivery.last_response = text
        delivery.last_attempt_at = utcnow()
        ok = status is not None and 200 <= status < 300
        if ok:
            delivery.status, delivery.delivered_at = "delivered", utcnow()
        else:
            delivery.status = "failed" if delivery.attempts >= _attempts_allowed() else "retrying"
        outcome, attempts = delivery.status, delivery.attempts
    if not ok:
        log.warning("webhook delivery %s: attempt %s answered %s", delivery_pk, attempts, status)
        raise DeliveryFailed(f"delivery {delivery_pk}: {status}")
    return outcome
