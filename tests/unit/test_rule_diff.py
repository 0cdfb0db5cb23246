"""The diff a rules upload is previewed with (routing.rulesets.diff_rules)."""

from __future__ import annotations

from routing.rules import Rule
from routing.rulesets import diff_rules


def test_added_removed_and_changed_rules_are_matched_by_what_they_apply_to() -> None:
    old = [
        Rule("community", "HW-01"),
        Rule("street", "WY-01"),
        Rule("department", group="供电", unit_code="D-GD"),
        Rule("community"),
    ]
    new = [
        Rule("street", "HW-01", priority=2),  # changed: level and priority
        Rule("department", group="供电", unit_code="D-GD"),  # unchanged
        Rule("street", "HW-01", place="420102-S1"),  # added (another place: another rule)
        Rule("community"),  # unchanged
    ]
    diff = diff_rules(old, new)
    assert diff.added == [Rule("street", "HW-01", place="420102-S1")]
    assert diff.removed == [Rule("street", "WY-01")]
    assert [(c.old, c.new, c.fields) for c in diff.changed] == [
        (Rule("community", "HW-01"), Rule("street", "HW-01", priority=2), ("level", "priority"))
    ]
    assert diff.unchanged == 2 and not diff.reordered and not diff.empty


def test_repeated_keys_pair_up_and_identical_sets_are_empty_or_reordered() -> None:
    old = [Rule("street", "HW-01", priority=1), Rule("district", "HW-01", priority=9)]
    swapped = list(reversed(old))
    assert diff_rules(old, old).empty
    reordered = diff_rules(old, swapped)
    assert reordered.reordered and not reordered.changed and reordered.unchanged == 2
    fewer = diff_rules(old, [Rule("district", "HW-01", priority=9)])
    assert fewer.removed == [Rule("street", "HW-01", priority=1)] and not fewer.changed
    unit = diff_rules([Rule("department", "HW-01")], [Rule("department", "HW-01", unit_code="D-FGJ")])
    assert [c.fields for c in unit.changed] == [("unit",)]
