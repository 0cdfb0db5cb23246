"""Unit tree import: upsert by code, all-or-nothing with line numbers, parent levels, the shipped file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.csvio import ImportRejected
from core.models import Level, Unit, UnitKind
from core.units import WORK_PLAN_UNITS, import_units, parse_units

HEADER = "code,name,level,parent_code,kind,note,population\n"
TREE = (
    HEADER
    + "T-D1,测试区,district,420100,district,,\n"
    + "T-D1-S1,测试街道,street,T-D1,street,,\n"
    + "T-D1-S1-C1,测试社区,community,T-D1-S1,community,,5000\n"
)


def _unit_count(session: Session) -> int:
    return session.scalar(select(func.count(Unit.id))) or 0


def _unit(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code))


def _snapshot(session: Session) -> list[tuple[str, str, str, int | None]]:
    session.expire_all()
    return [(u.code, u.name, u.path, u.population) for u in session.scalars(select(Unit).order_by(Unit.code))]


def test_import_creates_the_tree_with_paths(session: Session) -> None:
    before = _unit_count(session)
    summary = import_units(session, TREE)
    assert (summary.created, summary.updated, summary.unchanged) == (3, 0, 0)
    assert _unit_count(session) == before + 3
    city, district = _unit(session, "420100"), _unit(session, "T-D1")
    street, community = _unit(session, "T-D1-S1"), _unit(session, "T-D1-S1-C1")
    assert city and district and street and community
    assert community.parent is street and street.parent is district and district.parent is city
    assert community.path == f"{city.path}{district.id}/{street.id}/{community.id}/"
    assert community.population == 5000


def test_reimport_updates_and_never_duplicates(session: Session) -> None:
    import_units(session, TREE)
    count = _unit_count(session)
    again = import_units(session, TREE)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    renamed = TREE.replace(
        "测试社区,community,T-D1-S1,community,,5000", "改名社区,community,T-D1-S1,community,,6000"
    )
    changed = import_units(session, renamed)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2)
    assert _unit_count(session) == count
    community = _unit(session, "T-D1-S1-C1")
    assert community is not None and community.name == "改名社区" and community.population == 6000


def test_reimport_moves_a_community_to_another_street_and_rewrites_its_path(session: Session) -> None:
    import_units(session, TREE + "T-D1-S2,第二街道,street,T-D1,street,,\n")
    moved = TREE.replace("T-D1-S1-C1,测试社区,community,T-D1-S1", "T-D1-S1-C1,测试社区,community,T-D1-S2")
    import_units(session, moved + "T-D1-S2,第二街道,street,T-D1,street,,\n")
    community, street2 = _unit(session, "T-D1-S1-C1"), _unit(session, "T-D1-S2")
    assert community is not None and street2 is not None
    assert community.parent is street2
    assert community.path == f"{street2.path}{community.id}/"


def test_bad_row_is_reported_with_its_line_number_and_nothing_is_applied(session: Session) -> None:
    before = _snapshot(session)
    bad = (
        TREE
        + "T-D1-S1-C2,,community,T-D1-S1,community,,\n"
        + "T-D1-S1-C3,社区三,village,T-D1-S1,community,,\n"
    )
    with pytest.raises(ImportRejected) as caught:
        import_units(session, bad)
    lines = {(e.line, e.column) for e in caught.value.errors}
    # Header is line 1, so the 4th and 5th data rows are lines 5 and 6.
    assert lines == {(5, "name"), (6, "level")}
    assert "第 5 行" in str(caught.value) and "第 6 行" in str(caught.value)
    assert _snapshot(session) == before


def test_valid_rows_of_a_rejected_file_are_not_written_even_when_they_update(session: Session) -> None:
    import_units(session, TREE)
    before = _snapshot(session)
    renamed_then_bad = TREE.replace("测试区", "改名区") + "T-X,坏行,community,T-NOPE,community,,\n"
    with pytest.raises(ImportRejected) as caught:
        import_units(session, renamed_then_bad)
    assert [(e.line, e.column) for e in caught.value.errors] == [(5, "parent_code")]
    assert _snapshot(session) == before


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("T-C9,错层社区,community,420102,community,,", "parent_code"),  # community directly under a district
        ("T-S9,错层街道,street,420100,street,,", "parent_code"),  # street directly under the city
        ("T-D9,错层区,district,420102-S1,district,,", "parent_code"),  # district under a street
        ("T-DEP,错层部门,city,420102,department,,", "parent_code"),  # a department under a district
    ],
)
def test_parent_of_the_wrong_level_is_refused(session: Session, row: str, column: str) -> None:
    before = _unit_count(session)
    with pytest.raises(ImportRejected) as caught:
        import_units(session, HEADER + row + "\n")
    assert [(e.line, e.column) for e in caught.value.errors] == [(2, column)]
    assert _unit_count(session) == before


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (",无编码,district,420100,district,,", "code"),
        ("T-1,,district,420100,district,,", "name"),
        ("T-1,某区,province,420100,district,,", "level"),
        ("T-1,某区,district,420100,planet,,", "kind"),
        ("T-1,某区,district,420100,district,,-5", "population"),
        ("T-1,某区,district,420100,district,,很多", "population"),
        ("T-1,某区,district,,district,,", "parent_code"),
        ("X" * 41 + ",某区,district,420100,district,,", "code"),
    ],
)
def test_each_row_rule_names_line_and_column(row: str, column: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        parse_units(HEADER + "T-OK,好区,district,420100,district,,\n" + row + "\n")
    assert [(e.line, e.column) for e in caught.value.errors] == [(3, column)]


def test_duplicate_code_in_one_file_points_at_both_lines() -> None:
    with pytest.raises(ImportRejected) as caught:
        parse_units(HEADER + "T-1,甲,district,420100,district,,\nT-1,乙,district,420100,district,,\n")
    (error,) = caught.value.errors
    assert error.line == 3 and "第 2 行" in error.message


def test_missing_column_rejects_the_file() -> None:
    with pytest.raises(ImportRejected) as caught:
        parse_units("code,name,level\nT-1,甲,district\n")
    assert caught.value.errors[0].line == 1 and "parent_code" in caught.value.errors[0].message


def test_gb18030_and_bom_files_are_read() -> None:
    text = HEADER + "T-1,汉字区,district,420100,district,,\n"
    assert parse_units(text.encode("gb18030"))[0].name == "汉字区"
    assert parse_units("\ufeff".encode() + text.encode())[0].code == "T-1"


def test_shipped_work_plan_file_is_the_shared_one_and_imports(session: Session, shared_path: Path) -> None:
    shared = shared_path / "data" / "units-from-work-plan.csv"
    if shared.exists():
        assert shared.read_bytes() == WORK_PLAN_UNITS.read_bytes()
    rows = parse_units(WORK_PLAN_UNITS.read_bytes())
    summary = import_units(session, WORK_PLAN_UNITS.read_bytes())
    # The demo load already imported it once: importing again changes nothing and creates nothing.
    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, len(rows))
    city = _unit(session, "420100")
    assert city is not None and city.parent is None and city.level == Level.city
    districts = [r for r in rows if r.level == Level.district]
    departments = [r for r in rows if r.kind == UnitKind.department]
    assert len(districts) >= 13 and departments
    for row in rows:
        unit = _unit(session, row.code)
        assert unit is not None and unit.name == row.name
        if row.parent_code:
            assert unit.parent is not None and unit.parent.code == row.parent_code
