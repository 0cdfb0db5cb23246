"""core.rows: Core INSERTs that hand back loaded ORM objects (intake's write path), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.inputs import UnsafeValue
from core.models import Category, Unit
from core.rows import insert_with_child
from routing.models import Case, CaseEvent
from tests.builders import COMMUNITY


@pytest.fixture
def statements(session: Session) -> Iterator[list[str]]:
    seen: list[str] = []
    connection = session.connection()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(connection, "before_cursor_execute", record)
    yield seen
    event.remove(connection, "before_cursor_execute", record)


def _case_values(session: Session, **extra: Any) -> dict[str, Any]:
    community = session.scalar(select(Unit).where(Unit.code == COMMUNITY))
    category = session.scalar(select(Category).where(Category.code == "HW-01"))
    assert community is not None and category is not None and community.parent is not None
    return {
        "tracking_number": f"MH-ROWS-{session.scalar(select(func.count()).select_from(Case))}",
        "category_id": category.id,
        "community_id": community.id,
        "street_id": community.parent_id,
        "district_id": community.parent.parent_id,
        "address": "行路 1 号",
        "description": "路灯坏了三天",
        "contact_name": "行",
        "contact_phone": "13800001234",
        "created_at": utcnow(),
        **extra,
    }


def test_parent_and_child_come_back_loaded_with_python_defaults(
    session: Session, statements: list[str]
) -> None:
    values = _case_values(session)
    statements.clear()
    case, first, _ = insert_with_child(
        session,
        Case,
        values,
        CaseEvent,
        {"action": "submit", "to_state": "submitted"},
        "case_id",
        parent_empty=("photos",),
    )
    expected = ["WITH"] if session.get_bind().dialect.name == "postgresql" else ["INSERT", "INSERT"]
    assert statements == expected
    # Every column and the emptied relationship read without a query, defaults as a flush applies them.
    assert (case.state, case.channel, case.version, case.returns_count, case.returned_by) == (
        "submitted",
        "web",
        1,
        0,
        [],
    )
    assert case.photos == [] and case.merged_into_id is None and case.id is not None
    assert (first.case_id, first.reason, first.details, first.action) == (case.id, "", {}, "submit")
    assert statements == expected
    assert case in session and first in session and not session.new and not session.dirty


def test_rows_are_stored_and_later_changes_flush_as_usual(session: Session) -> None:
    case, first, _ = insert_with_child(
        session,
        Case,
        _case_values(session, address="原地址"),
        CaseEvent,
        {"action": "note", "reason": "补充"},
        "case_id",
    )
    case.address = "新地址"
    session.flush()  # an UPDATE guarded by the version column, like any loaded case
    session.expire_all()
    stored = session.get(Case, case.id)
    assert stored is not None and (stored.address, stored.version) == ("新地址", 2)
    assert [(e.id, e.action, e.reason) for e in stored.events] == [(first.id, "note", "补充")]


def test_a_bad_string_is_refused_before_anything_is_sent(session: Session, statements: list[str]) -> None:
    values = _case_values(session, contact_name="空\x00字符")
    statements.clear()
    with pytest.raises(UnsafeValue):
        insert_with_child(session, Case, values, CaseEvent, {"action": "submit"}, "case_id")
    with pytest.raises(UnsafeValue):
        insert_with_child(session, Case, _case_values(session, address="长" * 201), CaseEvent, {}, "case_id")
    assert not {"INSERT", "WITH"} & set(statements)  # only _case_values' look-ups were sent


# A read riding along: the cases of one community, as they were before the INSERT.
_SAME_COMMUNITY = (
    select(Case.__table__.c.id, Case.__table__.c.tracking_number)
    .where(Case.__table__.c.community_id == bindparam("community"))
    .order_by(Case.__table__.c.id)
)


def test_a_read_rides_along_and_does_not_see_the_new_rows(session: Session, statements: list[str]) -> None:
    values = _case_values(session)
    before = session.execute(_SAME_COMMUNITY, {"community": values["community_id"]}).all()
    assert before  # the builders' city has cases in this community
    statements.clear()
    case, first, rows = insert_with_child(
        session,
        Case,
        values,
        CaseEvent,
        {"action": "submit"},
        "case_id",
        also=_SAME_COMMUNITY,
        also_params={"community": values["community_id"]},
    )
    postgresql = session.get_bind().dialect.name == "postgresql"
    assert statements == (["WITH"] if postgresql else ["INSERT", "INSERT", "SELECT"])
    assert [(r.id, r.tracking_number) for r in rows] == [(r.id, r.tracking_number) for r in before]
    assert case.id not in {r.id for r in rows} and first.case_id == case.id
    stored = session.execute(_SAME_COMMUNITY, {"community": values["community_id"]}).all()
    assert [r.id for r in stored] == [*(r.id for r in before), case.id]


def test_a_read_that_finds_nothing_still_returns_the_new_keys(session: Session) -> None:
    values = _case_values(session)
    case, first, rows = insert_with_child(
        session,
        Case,
        values,
        CaseEvent,
        {"action": "submit"},
        "case_id",
        also=_SAME_COMMUNITY,
        also_params={"community": -1},
    )
    assert rows == []
    session.expire_all()
    stored = session.get(CaseEvent, first.id)
    assert stored is not None and stored.case_id == case.id == session.get(Case, case.id).id  # type: ignore[union-attr]
