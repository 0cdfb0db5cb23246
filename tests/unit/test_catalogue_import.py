"""Category catalogue import: upsert by code, all-or-nothing with line numbers, the shipped catalogue."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.catalogue import DEFAULT_CATALOGUE, import_categories, import_default_catalogue, parse_categories
from core.csvio import ImportRejected
from core.models import Category, LimitUnit, Urgency

HEADER = (
    "code,name,group,department_code,default_level,urgency,sign_for_hours,resolution_limit,resolution_unit\n"
)
GOOD = HEADER + "T-01,测试类别,测试组,D-FGJ,street,urgent,2,3,working_days\n"


def _count(session: Session) -> int:
    return session.scalar(select(func.count(Category.id))) or 0


def _snapshot(session: Session) -> list[tuple[str, str, float, str]]:
    session.expire_all()
    return [
        (c.code, c.name, c.resolution_limit, c.default_level)
        for c in session.scalars(select(Category).order_by(Category.code))
    ]


def test_import_creates_a_category_with_its_department(session: Session) -> None:
    before = _count(session)
    summary = import_categories(session, GOOD)
    assert (summary.created, summary.updated, summary.unchanged) == (1, 0, 0)
    assert _count(session) == before + 1
    category = session.scalar(select(Category).where(Category.code == "T-01"))
    assert category is not None
    assert category.department is not None and category.department.code == "D-FGJ"
    assert (category.urgency, category.sign_for_hours, category.resolution_limit) == (Urgency.urgent, 2, 3)
    assert category.resolution_unit == LimitUnit.working_days and category.default_level == "street"


def test_reimport_updates_and_never_duplicates(session: Session) -> None:
    import_categories(session, GOOD)
    count = _count(session)
    assert import_categories(session, GOOD).unchanged == 1
    changed = import_categories(session, GOOD.replace("street,urgent,2,3", "district,urgent,2,10"))
    assert (changed.created, changed.updated) == (0, 1)
    assert _count(session) == count
    category = session.scalar(select(Category).where(Category.code == "T-01"))
    assert category is not None and category.resolution_limit == 10 and category.default_level == "district"


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (",无编码,组,D-FGJ,street,normal,2,3,working_days", "code"),
        ("T-02,,组,D-FGJ,street,normal,2,3,working_days", "name"),
        ("T-02,类别,组,D-FGJ,province,normal,2,3,working_days", "default_level"),
        ("T-02,类别,组,D-FGJ,street,whenever,2,3,working_days", "urgency"),
        ("T-02,类别,组,D-FGJ,street,normal,0,3,working_days", "sign_for_hours"),
        ("T-02,类别,组,D-FGJ,street,normal,2,-1,working_days", "resolution_limit"),
        ("T-02,类别,组,D-FGJ,street,normal,2,三,working_days", "resolution_limit"),
        ("T-02,类别,组,D-FGJ,street,normal,2,3,fortnights", "resolution_unit"),
        ("T-01,重复,组,D-FGJ,street,normal,2,3,working_days", "code"),
    ],
)
def test_each_row_rule_names_line_and_column(row: str, column: str) -> None:
    with pytest.raises(ImportRejected) as caught:
        parse_categories(GOOD + row + "\n")
    assert [(e.line, e.column) for e in caught.value.errors] == [(3, column)]


def test_unknown_department_rejects_the_file_and_nothing_is_applied(session: Session) -> None:
    import_categories(session, GOOD)
    before = _snapshot(session)
    bad = GOOD.replace("测试类别", "改名类别") + "T-03,类别,组,D-NOPE,street,normal,2,3,working_days\n"
    with pytest.raises(ImportRejected) as caught:
        import_categories(session, bad)
    assert [(e.line, e.column) for e in caught.value.errors] == [(3, "department_code")]
    assert "D-NOPE" in str(caught.value)
    assert _snapshot(session) == before


def test_bad_row_in_the_middle_leaves_the_database_unchanged(session: Session) -> None:
    before = _snapshot(session)
    bad = (
        GOOD
        + "T-02,类别,组,D-FGJ,street,normal,abc,3,working_days\n"
        + "T-03,第三,组,D-FGJ,street,normal,1,1,\n"
    )
    with pytest.raises(ImportRejected) as caught:
        import_categories(session, bad)
    assert "第 3 行" in str(caught.value)
    assert _snapshot(session) == before


def test_shipped_catalogue_imports_and_covers_the_work_plan_topics(session: Session) -> None:
    rows = parse_categories(DEFAULT_CATALOGUE.read_bytes())
    summary = import_default_catalogue(session)
    # Already loaded with the demo data: nothing new, nothing changed.
    assert (summary.created, summary.updated, summary.unchanged) == (0, 0, len(rows))
    assert all(r.department_code.startswith("D-") for r in rows if r.department_code)
    groups = {r.group for r in rows}
    for topic in ("物业管理", "老旧小区改造"):
        assert topic in groups
    assert len(rows) >= 20
