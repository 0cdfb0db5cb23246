"""Intake's per-request database work: cached catalogue and unit look-ups that never serve stale data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core import jobs
from core.models import Category, Level, Unit, UnitKind
from routing.intake import reference_cache
from routing.models import Case
from tests.web.test_api_v1 import VALID


@pytest.fixture(autouse=True)
def no_routing(monkeypatch: pytest.MonkeyPatch, session: Session) -> None:
    """Intake only: routing jobs are not run here."""
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)
    reference_cache.clear()


@pytest.fixture
def statements(session: Session) -> Iterator[list[str]]:
    """Every SQL statement sent on the test's connection."""
    seen: list[str] = []
    connection = session.connection()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(connection, "before_cursor_execute", record)
    yield seen
    event.remove(connection, "before_cursor_execute", record)


def test_an_intake_costs_one_statement_on_postgresql_with_its_duplicate_lookup(
    client: Any, statements: list[str], session: Session
) -> None:
    assert client.post("/api/v1/requests", json=VALID).status_code == 201  # warms the cache
    statements.clear()
    response = client.post("/api/v1/requests", json={**VALID, "address": "另一处 8 号"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["category"] == VALID["category"] and body["community"] == VALID["community"]
    assert body["state"] == "submitted" and body["current_unit"] is None
    # Savepoints aside (the test session turns commits into savepoints too): the case, its event and the
    # query for the answer's possible_duplicates (open cases like it) — on PostgreSQL one statement (the
    # case's INSERT in a CTE feeding the event's, the look-up in another), elsewhere two INSERTs and the
    # look-up (after them: a read first would pin SQLite to a snapshot another writer can make stale);
    # no catalogue or unit look-up.
    postgresql = session.get_bind().dialect.name == "postgresql"
    expected = ["WITH"] if postgresql else ["INSERT", "INSERT", "SELECT"]
    assert [s for s in statements if s not in {"SAVEPOINT", "RELEASE"}] == expected
    session.expire_all()  # read back what the database holds, not the objects intake placed in the session
    case = session.scalar(select(Case).where(Case.tracking_number == body["tracking_number"]))
    assert case is not None and case.address == "另一处 8 号" and case.version == 1
    assert [(e.action, e.to_state, e.details) for e in case.events] == [
        ("submit", "submitted", {"channel": "api"})
    ]


def test_stored_case_has_the_places_of_its_community(client: Any, session: Session) -> None:
    for _ in range(2):  # the second one from the cache
        number = client.post("/api/v1/requests", json=VALID).get_json()["tracking_number"]
        case = session.scalar(select(Case).where(Case.tracking_number == number))
        assert case is not None
        assert case.community.code == VALID["community"]
        assert case.street_id == case.community.parent_id
        assert case.district_id == case.street.parent_id
        assert case.category.code == VALID["category"]


def test_a_category_deactivated_in_this_process_is_refused_at_once(client: Any, session: Session) -> None:
    assert client.post("/api/v1/requests", json=VALID).status_code == 201
    category = session.scalar(select(Category).where(Category.code == VALID["category"]))
    assert category is not None
    category.active = False
    session.commit()
    response = client.post("/api/v1/requests", json=VALID)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "category"


def test_a_community_moved_in_this_process_is_placed_under_its_new_street(
    client: Any, session: Session
) -> None:
    assert client.post("/api/v1/requests", json=VALID).status_code == 201
    community = session.scalar(select(Unit).where(Unit.code == VALID["community"]))
    other = session.scalar(
        select(Unit).where(
            Unit.level == Level.street, Unit.id != community.parent_id, Unit.kind == UnitKind.street
        )
    )
    assert community is not None and other is not None
    community.parent_id = other.id
    session.commit()
    number = client.post("/api/v1/requests", json=VALID).get_json()["tracking_number"]
    case = session.scalar(select(Case).where(Case.tracking_number == number))
    assert case is not None and case.street_id == other.id


def test_an_uncommitted_new_community_is_never_cached(app: Flask, session: Session) -> None:
    from routing.intake import Submission, submit

    street = session.scalar(select(Unit).where(Unit.level == Level.street))
    assert street is not None
    session.add(
        Unit(
            code="T-CACHE-C",
            name="缓存社区",
            level=Level.community,
            kind=UnitKind.community,
            parent=street,
        )
    )
    session.flush()
    data = Submission(**{**VALID, "community": "T-CACHE-C"})
    submit(session, data, channel="api", token_key=b"k")
    assert not any(key[1] == "T-CACHE-C" for key in reference_cache._entries)


def _colliding_numbers(monkeypatch: pytest.MonkeyPatch, session: Session) -> tuple[str, list[str]]:
    """The first tracking number drawn is one already stored; the next is fresh."""
    import routing.intake as intake

    taken = session.scalars(select(Case.tracking_number).limit(1)).one()
    drawn = [taken, "MH20991231-ZZZZ9"]
    monkeypatch.setattr(intake, "new_tracking_number", lambda now: drawn.pop(0))
    return taken, drawn


def test_duplicate_tracking_number_on_a_fresh_session_retries_with_a_new_one(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    from routing.intake import Submission, submit

    _colliding_numbers(monkeypatch, session)
    session.commit()
    assert not session.in_transaction()  # the API's case: this call begins the transaction
    result = submit(session, Submission(**VALID), channel="api", token_key=b"k")
    session.commit()
    assert result.created and result.case.tracking_number == "MH20991231-ZZZZ9"
    assert session.scalar(select(Case).where(Case.tracking_number == "MH20991231-ZZZZ9")) is not None


def test_duplicate_tracking_number_keeps_the_callers_pending_work(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    from routing.intake import Submission, submit

    _colliding_numbers(monkeypatch, session)
    session.commit()
    street = session.scalar(select(Unit).where(Unit.level == Level.street))
    assert street is not None
    session.add(
        Unit(code="T-KEEP-C", name="保留社区", level=Level.community, kind=UnitKind.community, parent=street)
    )
    result = submit(session, Submission(**VALID), channel="api", token_key=b"k")
    session.commit()
    assert result.case.tracking_number == "MH20991231-ZZZZ9"
    assert session.scalar(select(Unit).where(Unit.code == "T-KEEP-C")) is not None
