"""Dispatch rules: most specific rule wins; hand-worked placements on a small unit tree."""

from __future__ import annotations

import pytest

from core.csvio import ImportRejected
from routing.rules import (
    CategoryRef,
    Placement,
    PlaceUnit,
    Rule,
    default_rules,
    escalation_departments,
    matching,
    parse_rules_csv,
    resolve,
    rules_to_csv,
    triage_place,
)

PLACE = [
    PlaceUnit("420102", "district"),
    PlaceUnit("420102-S1", "street"),
    PlaceUnit("420102-S1-C1", "community"),
]
GARBAGE = CategoryRef("HW-01", "环境卫生", "community", "D-CGW")
WATER = CategoryRef("SW-01", "供水排水", "department", "D-SWJ")
NO_DEPT = CategoryRef("QT-09", "其他", "department", None)


def test_default_rules_follow_the_catalogue() -> None:
    rules = default_rules([GARBAGE, WATER])
    assert resolve(rules, GARBAGE, PLACE) == Placement("community", "420102-S1-C1")
    assert resolve(rules, WATER, PLACE) == Placement("department", "D-SWJ")


def test_exact_category_beats_group_beats_any() -> None:
    rules = [Rule("district"), Rule("street", group="环境卫生"), Rule("community", category="HW-01")]
    assert resolve(rules, GARBAGE, PLACE) == Placement("community", "420102-S1-C1")
    assert resolve(rules[:2], GARBAGE, PLACE) == Placement("street", "420102-S1")
    assert resolve(rules[:1], GARBAGE, PLACE) == Placement("district", "420102")


def test_deeper_place_beats_shallower_then_priority_then_order() -> None:
    rules = [
        Rule("district", category="HW-01", place="420102"),
        Rule("street", category="HW-01", place="420102-S1"),
        Rule("community", category="HW-01"),
    ]
    assert resolve(rules, GARBAGE, PLACE) == Placement("street", "420102-S1")
    tied = [Rule("district", category="HW-01"), Rule("street", category="HW-01", priority=5)]
    assert resolve(tied, GARBAGE, PLACE) == Placement("street", "420102-S1")
    same = [Rule("district", category="HW-01"), Rule("street", category="HW-01")]
    assert resolve(same, GARBAGE, PLACE) == Placement("district", "420102")


def test_rules_for_other_places_or_categories_do_not_match() -> None:
    rules = [Rule("street", category="HW-01", place="420103"), Rule("street", category="SW-01")]
    assert matching(rules, GARBAGE, PLACE) == []
    assert resolve(rules, GARBAGE, PLACE) is None


def test_explicit_unit_and_unplaceable_department() -> None:
    assert resolve([Rule("department", unit_code="D-FGJ")], GARBAGE, PLACE) == Placement(
        "department", "D-FGJ"
    )
    # The winning rule cannot name a unit: nothing is guessed, the case goes to triage.
    assert resolve([Rule("community"), Rule("department", category="QT-09")], NO_DEPT, PLACE) is None


def test_triage_goes_to_the_lowest_place_with_rules() -> None:
    assert triage_place([Rule("street", category="SW-01")], PLACE) is None
    rules = [
        Rule("street", category="SW-01", place="420102"),
        Rule("street", category="X", place="420102-S1"),
    ]
    assert triage_place(rules, PLACE) == "420102-S1"
    assert triage_place([Rule("street", place="420103")], PLACE) is None


def test_csv_round_trip_and_rejections() -> None:
    rules = [
        Rule("street", category="HW-01", place="420102", priority=2),
        Rule("department", group="供电", unit_code="D-GD"),
    ]
    assert parse_rules_csv(rules_to_csv(rules)) == rules
    with pytest.raises(ImportRejected) as rejected:
        parse_rules_csv("category,group,place,level,unit,priority\nHW-01,,,city,,0\nHW-01,环境,,street,,x\n")
    # every problem of every row, each with its column and value (row 3 has two)
    found = [(e.line, e.column, e.value) for e in rejected.value.errors]
    assert found == [(2, "level", "city"), (3, "group", "环境"), (3, "priority", "x")]
    with pytest.raises(ImportRejected):
        parse_rules_csv("category,level\n")


def test_escalation_departments_are_the_catalogue_one_and_those_applicable_rules_name() -> None:
    rules = [
        Rule("community", "HW-01"),
        Rule("department", "HW-01", place="420102", unit_code="D-SWJ"),  # applies here
        Rule("department", "HW-01", place="420103", unit_code="D-FGJ"),  # another district
        Rule("department", "SW-01", unit_code="D-GD"),  # another category
        Rule("street", group="环境卫生", unit_code="420102-S2"),  # a unit the caller drops (not a dept)
    ]
    assert escalation_departments(rules, GARBAGE, PLACE) == {"D-CGW", "D-SWJ", "420102-S2"}
    assert escalation_departments([Rule("department", "SW-01")], WATER, PLACE) == {"D-SWJ"}
    assert escalation_departments([Rule("department", "QT-09")], NO_DEPT, PLACE) == set()
