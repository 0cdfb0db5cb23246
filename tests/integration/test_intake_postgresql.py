"""Intake on a real PostgreSQL engine (not the tests' rolled-back connection): a JSON request is stored
by one autocommitted statement — its duplicate look-up inside it, no BEGIN and no COMMIT — and anything
that needs more than the case keeps an ordinary transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.integration.conftest import postgresql_app

pytestmark = pytest.mark.integration

BODY = {
    "category": "HW-01",
    "community": "420102-S1-C1",
    "address": "一条语句路 1 号",
    "description": "小区门口的路灯坏了三天，晚上看不清路",
    "contact_name": "测试",
    "contact_phone": "13800001234",
}


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with postgresql_app(tmp_path_factory.mktemp("intake-instance"), "minhu_intake") as app:
        yield app


@pytest.fixture(autouse=True)
def no_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Intake only: the routing job is not run inline after the commit."""
    from core import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)


@pytest.fixture
def sent(pg_app: Any) -> Iterator[list[tuple[str, str]]]:
    """(first word, the connection's transaction status just after it) of every statement sent."""
    from app.extensions import db

    seen: list[tuple[str, str]] = []

    def record(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement.split()[0].upper(), cursor.connection.info.transaction_status.name))

    with pg_app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", record)
    yield seen
    event.remove(engine, "after_cursor_execute", record)


def _stored(pg_app: Any, number: str) -> Any:
    from app.extensions import db
    from routing.models import Case

    with pg_app.app_context():
        case = db.session.scalar(select(Case).where(Case.tracking_number == number))
        assert case is not None
        found = (case.address, case.state, case.version, [(e.action, e.details) for e in case.events])
        db.session.remove()
        return found


def test_a_json_request_is_one_autocommitted_statement(pg_app: Any, sent: list[tuple[str, str]]) -> None:
    client = pg_app.test_client()
    first = client.post("/api/v1/requests", json=BODY)  # also fills the per-process look-up caches
    assert first.status_code == 201, first.get_json()
    sent.clear()
    again = client.post("/api/v1/requests", json={**BODY, "address": "一条语句路 2 号"})
    assert again.status_code == 201, again.get_json()
    # One statement, and the connection was never inside a transaction: psycopg sent no BEGIN, so the
    # statement committed by itself and the request's commit sent nothing.
    assert sent == [("WITH", "IDLE")]
    body = again.get_json()
    # The duplicate look-up ran inside that statement: it found the first case, never the new one.
    assert body["possible_duplicates"] == [first.get_json()["tracking_number"]]
    assert _stored(pg_app, body["tracking_number"]) == (
        "一条语句路 2 号",
        "submitted",
        1,
        [("submit", {"channel": "api"})],
    )


def test_a_resident_who_wants_the_sms_gets_a_transaction(pg_app: Any, sent: list[tuple[str, str]]) -> None:
    from app.extensions import db
    from routing.messages import MessageDelivery

    client = pg_app.test_client()
    sent.clear()
    response = client.post("/api/v1/requests", json={**BODY, "sms_opt_in": True})
    assert response.status_code == 201, response.get_json()
    # The case and the planned SMS row in one transaction: both or neither (after the commit, the
    # webhook hand-over reads the subscriptions).
    assert sent[:2] == [("WITH", "INTRANS"), ("INSERT", "INTRANS")]
    number = response.get_json()["tracking_number"]
    with pg_app.app_context():
        from routing.models import Case

        case = db.session.scalar(select(Case).where(Case.tracking_number == number))
        assert case is not None
        assert db.session.scalars(
            select(MessageDelivery.event).where(MessageDelivery.case_id == case.id)
        ).all() == ["accepted"]
        db.session.remove()


def test_a_standalone_intake_is_committed_apart_from_the_session(pg_app: Any) -> None:
    from sqlalchemy import inspect

    from app.extensions import db
    from core.models import Unit
    from routing.intake import Submission, submit

    with pg_app.test_request_context():
        body = {**BODY, "address": "一条语句路 3 号"}
        result = submit(db.session, Submission(**body), channel="api", token_key=b"k", standalone=True)
        assert result.created
        # Stored by its own autocommitted statement: the objects are detached, their columns loaded.
        assert inspect(result.case).detached and inspect(result.case.events[0]).detached
        assert result.case.address == "一条语句路 3 号" and result.case.events[0].action == "submit"
        assert result.case not in db.session and result.case.events[0] not in db.session
        # The session's own work is another transaction: rolling it back leaves the case stored.
        unit = db.session.scalar(select(Unit).where(Unit.code == BODY["community"]))
        assert unit is not None
        unit.name = "改名社区"
        db.session.flush()
        db.session.rollback()
        assert db.session.scalar(select(Unit.name).where(Unit.code == BODY["community"])) != "改名社区"
        number = result.case.tracking_number
        db.session.remove()
    assert _stored(pg_app, number) == ("一条语句路 3 号", "submitted", 1, [("submit", {"channel": "api"})])


def test_look_ups_of_a_cache_miss_end_before_the_case_is_committed(
    pg_app: Any, sent: list[tuple[str, str]]
) -> None:
    """After the autocommitted statement the request has no database work left that could fail (a
    failure there once re-ran a request whose case was already stored, and the replay never queued it)."""
    from app.extensions import db
    from routing.intake import Submission, reference_cache, submit

    reference_cache.clear()
    with pg_app.test_request_context():
        sent.clear()
        body = {**BODY, "address": "一条语句路 4 号"}
        result = submit(db.session, Submission(**body), channel="api", token_key=b"k", standalone=True)
        assert result.created and not db.session().in_transaction()
        db.session.remove()
    *look_ups, last = sent
    assert look_ups and all(status == "INTRANS" for _word, status in look_ups)  # the category, the place
    assert last == ("WITH", "IDLE")
