"""The database hands new cases to routing and the dispatcher queues their first hop: on PostgreSQL a
trigger notifies at commit (LISTEN/NOTIFY, an advisory lock for the lead), on SQLite the dispatcher
watches for new ids (a file lock for the lead). Real PostgreSQL and real Redis (the RQ queue)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select, text

from tests.builders import new_case
from tests.integration.conftest import CI, REDIS_URL, postgresql_app, redis_missing

BODY = {
    "category": "HW-01",
    "community": "420102-S1-C1",
    "address": "测试路 8 号",
    "description": "路灯坏了一个星期，晚上很黑",
    "contact_name": "测试",
    "contact_phone": "13800001234",
}


@contextmanager
def sqlite_app(instance: Path, **config: Any) -> Iterator[Any]:
    """An app on a SQLite file of its own, demo reference data loaded."""
    from app import create_app
    from app.demo import load_demo
    from app.extensions import db
    from core import jobs as core_jobs

    saved = (core_jobs._session_factory, core_jobs._enqueuer)
    app = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": f"sqlite:///{instance / 'dispatch.sqlite3'}",
            "SECRET_KEY": "dispatch-secret",
            **config,
        }
    )
    try:
        with app.app_context():
            db.create_all()
            with app.test_request_context():
                from app.web.public import token_key

                load_demo(db.session, token_key())
            db.session.commit()
            db.session.remove()
        yield app
    finally:
        core_jobs.configure(*saved)  # type: ignore[arg-type]
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An app queueing to real Redis (async jobs), so in database hand-off: on a PostgreSQL database of
    its own (LISTEN/NOTIFY) and on a SQLite file (watched)."""
    missing = redis_missing()
    if missing:
        if CI:
            pytest.fail(missing)
        pytest.skip(missing)
    prefix = f"dispatch-{uuid.uuid4().hex[:8]}-"
    config = {"RQ_ASYNC": True, "REDIS_URL": REDIS_URL, "RQ_QUEUE_PREFIX": prefix, "RATELIMIT_ENABLED": False}
    opened = (
        postgresql_app(tmp_path, "minhu_dispatch", **config)
        if request.param == "postgresql"
        else sqlite_app(tmp_path, **config)
    )
    with opened as app:
        redis = Redis.from_url(REDIS_URL)
        dispatchers: list[Any] = []
        try:
            yield {
                "app": app,
                "backend": request.param,
                "queue": Queue(f"{prefix}routing", connection=redis),
                "dispatchers": dispatchers,
            }
        finally:
            for dispatcher in dispatchers:
                dispatcher.stop()
            for key in redis.scan_iter(f"*{prefix}*"):
                redis.delete(key)
            redis.close()


def start(stack: dict[str, Any]) -> Any:
    from app.dispatch import Dispatcher

    dispatcher = Dispatcher(stack["app"], retry=0.2, poll=0.05)
    stack["dispatchers"].append(dispatcher)
    dispatcher.start()
    return dispatcher


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def queued_cases(queue: Queue) -> set[int]:
    """Case ids of the first-hop routing jobs waiting on ``queue``."""
    return {int(job_id.rsplit("-", 1)[1]) for job_id in queue.job_ids if "route_case-" in job_id}


def waiting_ids(app: Any) -> set[int]:
    from app.extensions import db
    from routing.models import Case

    with app.app_context():
        ids = set(db.session.scalars(select(Case.id).where(Case.state == "submitted")))
        db.session.remove()
    return ids


def post_case(app: Any, key: str | None = None) -> int:
    from app.extensions import db
    from routing.models import Case

    headers = {"Idempotency-Key": key} if key else {}
    response = app.test_client().post("/api/v1/requests", json=BODY, headers=headers)
    assert response.status_code in (200, 201), response.get_json()
    with app.app_context():
        case_id = db.session.scalar(
            select(Case.id).where(Case.tracking_number == response.get_json()["tracking_number"])
        )
        db.session.remove()
    assert case_id is not None
    return case_id


def test_the_web_sends_no_job_and_the_dispatcher_queues_each_new_case(stack: dict[str, Any]) -> None:
    from app.dispatch import database_hands_over

    app, queue = stack["app"], stack["queue"]
    assert database_hands_over(app)
    early = post_case(app)
    assert queue.count == 0  # the web process queued nothing: nobody listened, so nothing was sent
    dispatcher = start(stack)
    # Starting to listen, it catches up on every case still waiting: this one and the demo's samples.
    assert eventually(lambda: queued_cases(queue) >= waiting_ids(app) and early in queued_cases(queue))
    later = post_case(app)  # notified at its commit
    assert eventually(lambda: later in queued_cases(queue))
    assert dispatcher.leading.is_set()
    # A replay of a case still waiting is queued by the web process itself (its first job may be lost).
    dispatcher.stop()
    queue.empty()
    assert post_case(app, key="replayed") not in queued_cases(queue)
    replayed = post_case(app, key="replayed")
    assert replayed in queued_cases(queue)


def test_a_rolled_back_insert_hands_nothing_over(stack: dict[str, Any]) -> None:
    from app.extensions import db

    app, queue = stack["app"], stack["queue"]
    dispatcher = start(stack)
    assert eventually(dispatcher.leading.is_set)
    queue.empty()
    with app.app_context():
        new_case(db.session)  # in the session's transaction, then rolled back: no notification
        db.session.rollback()
        kept = new_case(db.session)
        db.session.commit()
        kept_id = kept.id
        db.session.remove()
    assert eventually(lambda: kept_id in queued_cases(queue))
    assert queued_cases(queue) == {kept_id}


def test_one_dispatcher_leads_and_another_takes_over_when_it_goes(stack: dict[str, Any]) -> None:
    from app.extensions import db

    app, queue = stack["app"], stack["queue"]
    first, second = start(stack), start(stack)
    assert eventually(lambda: first.leading.is_set() or second.leading.is_set())
    time.sleep(0.5)
    assert first.leading.is_set() != second.leading.is_set()  # one leads, the other stands by
    leader, standby = (first, second) if first.leading.is_set() else (second, first)
    leader.stop()
    assert eventually(standby.leading.is_set)
    if stack["backend"] != "postgresql":
        queue.empty()
        later = post_case(app)
        assert eventually(lambda: later in queued_cases(queue))
        return
    # The database ends the new leader's connection (a restart, an operator's pg_terminate_backend):
    # it reconnects, takes the lead again and catches up on what was stored meanwhile.
    queue.empty()
    with app.app_context():
        db.session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        )
        db.session.commit()
        db.session.remove()
    missed = post_case(app)
    assert eventually(lambda: missed in queued_cases(queue), seconds=15)
    assert eventually(standby.leading.is_set)


def test_readiness_warns_while_no_dispatcher_listens(stack: dict[str, Any]) -> None:
    app = stack["app"]

    def warnings() -> list[str]:
        response = app.test_client().get("/readyz")  # 503 here: create_all, not migrations, made the schema
        assert response.get_json()["checks"]["database"]["ok"] is True
        return [w["code"] for w in response.get_json()["warnings"]]

    assert "no_dispatcher" in warnings()
    dispatcher = start(stack)
    assert eventually(dispatcher.leading.is_set)
    assert "no_dispatcher" not in warnings()
    dispatcher.stop()
    assert eventually(lambda: "no_dispatcher" in warnings())
