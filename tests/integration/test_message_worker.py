"""Outbound messages on real PostgreSQL and Redis with a real RQ worker: a failing SMS gateway and a
failing webhook receiver are retried by RQ until they answer.

Runs when PostgreSQL and Redis answer (always under CI=true, where a missing service fails instead of
skipping). The schema lives in a database created for this test and dropped afterwards, because the
worker needs committed rows, not the per-test transaction.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from core import jobs as core_jobs
from tests.message_fakes import sms_gateway

pytestmark = [pytest.mark.integration]

CI = os.environ.get("CI", "").lower() == "true"
_DB = os.environ.get("DATABASE_URL", "")
DATABASE_URL = _DB if _DB.startswith("postgres") else "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def _services_missing() -> str | None:
    import redis

    engine = create_engine(make_url(DATABASE_URL).set(drivername="postgresql+psycopg"))
    try:
        engine.connect().close()
    except Exception as exc:
        return f"PostgreSQL unreachable: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} unreachable: {exc.__class__.__name__}"
    finally:
        client.close()
    return None


_missing = _services_missing()
if _missing and not CI:
    pytest.skip(f"integration needs real PostgreSQL and Redis: {_missing}", allow_module_level=True)


@pytest.fixture
def stack(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A fresh database with the demo data, an app on it queueing to real Redis, and a failing gateway."""
    from app import create_app, queue, tasks
    from app.demo import load_demo
    from app.extensions import db

    admin_url = make_url(DATABASE_URL).set(drivername="postgresql+psycopg")
    name = f"minhu_msg_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    prefix = f"msg-{uuid.uuid4().hex[:8]}-"
    saved = (core_jobs._session_factory, core_jobs._enqueuer)
    # Same policy shape (three retries) without the production backoff, so one burst worker runs them all.
    monkeypatch.setitem(
        queue.TASKS, "app.messaging.deliver", queue.Policy("default", timeout=60, retry_intervals=(0, 0, 0))
    )
    with sms_gateway(answers=[503, 502]) as gateway:
        app = create_app(
            {
                "INSTANCE_PATH": str(tmp_path_factory.mktemp("msg-instance")),
                "DATABASE_URL": admin_url.set(database=name).render_as_string(hide_password=False),
                "REDIS_URL": REDIS_URL,
                "RQ_QUEUE_PREFIX": prefix,
                "SECRET_KEY": "msg-secret",
                "RQ_ASYNC": True,
                "SMS_GATEWAY_URL": gateway.url,
                "PUBLIC_BASE_URL": "https://12345.example.cn",
                "WEBHOOK_ALLOW_PRIVATE": True,  # the test receiver listens on loopback
            }
        )
        with app.app_context():
            db.create_all()
            with app.test_request_context():
                from app.web.public import token_key

                load_demo(db.session, token_key())
            db.session.commit()
        tasks.set_worker_app(app)
        try:
            yield {"app": app, "gateway": gateway, "prefix": prefix}
        finally:
            tasks._app = None
            core_jobs.configure(*saved)  # type: ignore[arg-type]
            with app.app_context():
                from app.redis_conn import redis_for

                conn = redis_for(app)
                for key in conn.scan_iter(f"*{prefix}*"):
                    conn.delete(key)
                db.session.remove()
                db.engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def test_failing_gateway_is_retried_by_the_worker_until_sent(stack: dict[str, Any]) -> None:
    from rq import Queue, SimpleWorker

    from app.extensions import db
    from app.redis_conn import redis_for
    from routing import messages
    from routing.messages import MessageDelivery
    from tests.builders import new_case

    app, gateway = stack["app"], stack["gateway"]
    with app.app_context():
        case = new_case(db.session(), sms_opt_in=True, phone="13812345678")
        case_id = case.id
        db.session.commit()  # after commit: one job on the real queue, nothing sent yet
        assert gateway.received == []
        connection = redis_for(app)
        worker = SimpleWorker(
            [Queue(f"{stack['prefix']}default", connection=connection)], connection=connection
        )
        worker.work(burst=True)
        row = db.session.scalar(select(MessageDelivery).where(MessageDelivery.case_id == case_id))
        assert row is not None
        assert (row.status, row.attempts, row.last_code) == (messages.SENT, 3, 200)
        assert len(gateway.received) == 3 and all(m["to"] == "13812345678" for m in gateway.received)
        db.session.remove()


def test_failing_webhook_receiver_is_retried_by_the_worker_until_delivered(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rq import Queue, SimpleWorker

    from app import queue
    from app.api import webhooks
    from app.api.models import Webhook, WebhookDelivery
    from app.extensions import db
    from app.redis_conn import redis_for
    from core.db import utcnow
    from tests.builders import new_case
    from tests.web.test_webhooks import SECRET, Receiver

    monkeypatch.setitem(
        queue.TASKS, "app.api.webhooks.deliver", queue.Policy("default", timeout=60, retry_intervals=(0, 0))
    )
    receiver = Receiver()
    receiver.status = 503  # the first attempt fails; every later one is answered 200

    class ThenOk(list[dict[str, Any]]):
        def append(self, entry: dict[str, Any]) -> None:  # called before the handler answers
            receiver.status = 200 if self else 503
            super().append(entry)

    receiver.received = ThenOk()
    app = stack["app"]
    try:
        with app.app_context():
            session = db.session()
            hook = Webhook(
                name="区平台", url=receiver.url, secret=SECRET, events=["submitted"], active=True,
                created_at=utcnow(),
            )  # fmt: skip
            session.add(hook)
            session.commit()
            webhooks.forget_subscriptions()
            new_case(session)
            session.commit()  # after commit: fan_out on the real queue, nothing sent yet
            assert receiver.received == []
            connection = redis_for(app)
            worker = SimpleWorker(
                [Queue(f"{stack['prefix']}default", connection=connection)], connection=connection
            )
            worker.work(burst=True)
            row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
            assert row is not None
            assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 200)
            assert [r["valid"] for r in receiver.received] == [True, True]
            assert len({r["id"] for r in receiver.received}) == 1  # one idempotency id on every attempt
            db.session.remove()
    finally:
        receiver.close()
