"""Unit tree integrity: re-parenting a street moves its whole subtree (paths), and access follows."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.csvio import ImportRejected
from core.models import Role, Unit
from core.units import import_units, move_unit
from routing import services
from tests.builders import accepted, make_user, user

HEADER = "code,name,level,parent_code,kind,note\n"
MOVE_STREET = HEADER + "420102-S1,示例中心街道,street,420103,street,\n"


def unit(session: Session, code: str) -> Unit:
    """A unit by code."""
    found = session.scalar(select(Unit).where(Unit.code == code))
    assert found is not None
    return found


def paths_are_consistent(session: Session) -> list[str]:
    """Codes of units whose path is not their parent's path plus their own id."""
    wrong = []
    for u in session.scalars(select(Unit)):
        expected = (u.parent.path if u.parent is not None else "/") + f"{u.id}/"
        if u.path != expected:
            wrong.append(u.code)
    return wrong


def test_reimport_with_a_new_parent_moves_every_descendant_and_access_follows(session: Session) -> None:
    case = accepted(session)  # at 420102-S1-C1
    old_district = user(session, "dispatcher-district")  # 420102
    new_district = make_user(session, "dispatcher-420103", Role.dispatcher, "420103")
    assert services.can_view(session, old_district, case)
    assert not services.can_view(session, new_district, case)

    summary = import_units(session, MOVE_STREET)
    services.follow_unit_moves(session, summary.moved)

    assert summary.moved == ("420102-S1",)
    assert paths_are_consistent(session) == []
    target = unit(session, "420103")
    for code in ("420102-S1", "420102-S1-C1", "420102-S1-C2", "420102-S1-C3"):
        assert unit(session, code).path.startswith(target.path)
    assert not services.can_view(session, old_district, case)
    assert services.can_view(session, new_district, case)
    assert case.district_id == target.id and case.street_id == unit(session, "420102-S1").id
    # The lifecycle reads the new ancestors too: the new district's dispatcher may supervise it.
    services.supervise(session, case.id, new_district, reason="新辖区督办")
    assert case.supervised
    with pytest.raises(services.CaseNotFound):
        services.supervise(session, case.id, old_district, reason="旧辖区")
    assert case.id not in {c.id for c in services.triage_queue(session, old_district)}


def test_a_refused_import_moves_nothing(session: Session) -> None:
    before = {u.code: u.path for u in session.scalars(select(Unit))}
    bad = MOVE_STREET + "420102-S2,示例新城街道,street,NOPE,street,\n"
    with pytest.raises(ImportRejected):
        import_units(session, bad)
    session.expire_all()
    assert {u.code: u.path for u in session.scalars(select(Unit))} == before


def test_move_unit_rewrites_the_subtree_in_one_statement_and_refuses_a_cycle(session: Session) -> None:
    street = unit(session, "420102-S2")
    assert move_unit(session, street, unit(session, "420104")) == 4  # the street and its 3 communities
    assert move_unit(session, street, unit(session, "420104")) == 0
    assert paths_are_consistent(session) == []
    with pytest.raises(ValueError):
        move_unit(session, street, unit(session, "420102-S2-C1"))


def test_cli_import_moves_the_subtree_and_its_cases(app: Flask, session: Session, tmp_path: Path) -> None:
    case = accepted(session)
    session.commit()
    path = tmp_path / "move.csv"
    path.write_text(MOVE_STREET, encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["units", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "调整上级 1 个" in result.output
    session.expire_all()
    assert paths_are_consistent(session) == []
    assert case.district_id == unit(session, "420103").id
