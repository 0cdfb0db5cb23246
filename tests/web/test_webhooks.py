"""Webhooks against a local HTTP server (loopback only) that verifies each signature; a failing receiver
is retried and every attempt logged; a disabled endpoint gets nothing; intake never calls out itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api import webhooks
from app.api.models import Webhook, WebhookDelivery
from core import jobs
from core.db import utcnow
from tests.web.test_api_v1 import VALID

SECRET = "s3cret-for-tests-0123456789"


class Receiver:
    """A loopback HTTP server that checks the signature of each POST and answers ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                valid = webhooks.verify(
                    SECRET,
                    self.headers[webhooks.TIMESTAMP_HEADER],
                    body,
                    self.headers[webhooks.SIGNATURE_HEADER],
                    now=time.time(),
                )
                receiver.received.append(
                    {"valid": valid, "body": json.loads(body), "id": self.headers[webhooks.DELIVERY_HEADER],
                     "event": self.headers[webhooks.EVENT_HEADER]}
                )  # fmt: skip
                self.send_response(receiver.status if valid else 401)
                self.end_headers()
                self.wfile.write(b"ok" if valid else b"bad signature")

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop the server."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running loopback receiver."""
    server = Receiver()
    yield server
    server.close()


def hook(session: Session, url: str, events: list[str], secret: str = SECRET, active: bool = True) -> Webhook:
    """Register an endpoint."""
    row = Webhook(name="测试端点", url=url, secret=secret, events=events, active=active, created_at=utcnow())
    session.add(row)
    session.commit()
    return row


def deliveries(session: Session, row: Webhook) -> list[WebhookDelivery]:
    """The endpoint's deliveries, oldest first."""
    session.expire_all()
    return list(
        session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.webhook_id == row.id).order_by(WebhookDelivery.id)
        )
    )


def test_signed_delivery_on_submit_verified_by_the_receiver(
    client: Any, session: Session, receiver: Receiver
) -> None:
    row = hook(session, receiver.url, ["submitted", "routed"])
    response = client.post("/api/v1/requests", json=VALID)  # jobs run inline in the web tier's tests
    assert response.status_code == 201
    number = response.get_json()["tracking_number"]
    events = [r["event"] for r in receiver.received]
    assert events[:2] == ["submitted", "routed"]
    assert all(r["valid"] for r in receiver.received)
    first = receiver.received[0]
    assert first["body"]["request"]["service_request_id"] == number
    assert first["body"]["id"] == first["id"]
    text = json.dumps(first["body"], ensure_ascii=False)
    assert VALID["contact_phone"] not in text and VALID["contact_name"] not in text
    logged = deliveries(session, row)
    assert [d.status for d in logged][:2] == ["delivered", "delivered"]
    assert logged[0].last_status_code == 200 and logged[0].attempts == 1


def test_fan_out_twice_delivers_once(
    session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.builders import new_case

    held: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: held.append((task, args)))
    row = hook(session, receiver.url, ["submitted"])
    case = new_case(session)
    session.commit()
    event_id = case.events[0].id
    assert ("app.api.webhooks.fan_out", (event_id,)) in held
    assert webhooks.fan_out(event_id) == 1
    assert webhooks.fan_out(event_id) == 0  # the unique (webhook, event) constraint
    assert len(deliveries(session, row)) == 1


def test_released_savepoint_waits_for_the_outer_commit(
    session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Releasing a SAVEPOINT fires after_commit while the outer transaction still holds its locks (on
    SQLite a fan-out there waited out busy_timeout): the hand-over happens at the outermost commit."""
    from tests.builders import new_case

    held: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: held.append((task, args)))
    hook(session, receiver.url, ["submitted"])
    with session.begin_nested():
        case = new_case(session)
    assert held == []
    session.commit()
    assert held == [("app.api.webhooks.fan_out", (case.events[0].id,))]


def test_failing_receiver_is_retried_and_logged(
    session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.builders import new_case

    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    row = hook(session, receiver.url, ["submitted"])
    case = new_case(session)
    session.commit()
    webhooks.fan_out(case.events[0].id)
    [delivery] = deliveries(session, row)
    receiver.status = 503
    with pytest.raises(webhooks.DeliveryFailed):
        webhooks.deliver(delivery.id)
    [delivery] = deliveries(session, row)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("retrying", 1, 503)
    receiver.status = 200
    assert webhooks.deliver(delivery.id) == "delivered"  # RQ's retry runs the same job again
    [delivery] = deliveries(session, row)
    assert (delivery.status, delivery.attempts, delivery.last_response) == ("delivered", 2, "ok")
    assert len({r["id"] for r in receiver.received}) == 1  # the same idempotency id on every attempt
    assert webhooks.deliver(delivery.id) == "done"  # a delivered row is never sent again


def test_last_attempt_marks_failed_and_wrong_secret_is_refused(
    session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.queue import policy_for
    from tests.builders import new_case

    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    assert policy_for("app.api.webhooks.deliver").retry_intervals == (10, 60, 300, 1800, 7200)  # backoff
    row = hook(session, receiver.url, ["submitted"], secret="another-secret-0123456789")
    case = new_case(session)
    session.commit()
    webhooks.fan_out(case.events[0].id)
    [delivery] = deliveries(session, row)
    for _ in range(6):
        with pytest.raises(webhooks.DeliveryFailed):
            webhooks.deliver(delivery.id)
    [delivery] = deliveries(session, row)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 6, 401)
    assert not any(r["valid"] for r in receiver.received)


def test_disabled_endpoint_gets_nothing_and_unreachable_is_logged(
    client: Any, session: Session, receiver: Receiver
) -> None:
    off = hook(session, receiver.url, ["submitted"], active=False)
    dead = hook(session, "http://127.0.0.1:9/hook", ["submitted"])  # discard port: connection refused
    response = client.post("/api/v1/requests", json=VALID)
    assert response.status_code == 201  # a failing endpoint never fails intake
    assert receiver.received == [] and deliveries(session, off) == []
    [logged] = deliveries(session, dead)
    assert logged.status == "retrying" and logged.last_status_code is None and logged.last_response


def test_intake_only_enqueues(
    client: Any, session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: held.append((task, args)))
    hook(session, receiver.url, ["submitted"])
    assert client.post("/api/v1/requests", json=VALID).status_code == 201
    assert receiver.received == []  # nothing called out during the request
    assert [t for t, _ in held] == ["app.api.webhooks.fan_out", "routing.jobs.route_case"]


def test_verify_rejects_old_timestamps() -> None:
    body = b'{"a":1}'
    now = time.time()
    good = webhooks.sign(SECRET, int(now), body)
    assert webhooks.verify(SECRET, str(int(now)), body, good, now=now)
    assert not webhooks.verify(SECRET, str(int(now)), body + b" ", good, now=now)
    assert not webhooks.verify(
        SECRET, str(int(now) - 3600), body, webhooks.sign(SECRET, int(now) - 3600, body), now=now
    )


def test_private_destinations_are_refused_unless_allowed(
    app: Any, client: Any, session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint may not point the worker at loopback, private or link-local addresses (cloud
    metadata at 169.254.169.254 included): refused when registering and before every attempt."""
    from tests.builders import new_case
    from tests.conftest import login

    for url in ("http://127.0.0.1/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/"):
        problem = webhooks.destination_problem(url, allow_private=False)
        assert problem is not None and "内网或本机" in problem[0], url
    assert webhooks.destination_problem("ftp://example.cn/x", allow_private=True) is not None
    assert webhooks.destination_problem("http://127.0.0.1/x", allow_private=True) is None

    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE", False)
    login(client, "admin")
    page = client.post(
        "/admin/partners/webhooks",
        data={"name": "内网", "url": "http://127.0.0.1:8080/", "events": ["submitted"]},
    )
    assert page.status_code == 422 and "内网或本机地址（127.0.0.1）" in page.get_data(as_text=True)

    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    row = hook(session, receiver.url, ["submitted"])  # registered earlier, while it was allowed
    case = new_case(session)
    session.commit()
    webhooks.fan_out(case.events[0].id)
    [delivery] = deliveries(session, row)
    with pytest.raises(webhooks.DeliveryFailed):
        webhooks.deliver(delivery.id)
    [delivery] = deliveries(session, row)
    assert receiver.received == [] and "不予投递" in (delivery.last_response or "")


def test_a_redirect_is_an_answer_not_followed(
    session: Session, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.builders import new_case

    class Redirector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", receiver.url)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
        row = hook(session, f"http://127.0.0.1:{server.server_address[1]}/hook", ["submitted"])
        case = new_case(session)
        session.commit()
        webhooks.fan_out(case.events[0].id)
        [delivery] = deliveries(session, row)
        with pytest.raises(webhooks.DeliveryFailed):
            webhooks.deliver(delivery.id)
        [delivery] = deliveries(session, row)
        assert delivery.last_status_code == 307 and receiver.received == []
    finally:
        server.shutdown()
        server.server_close()
