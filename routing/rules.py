"""Dispatch rules (派单规则) as data: category + place → handling level and unit. Pure: no I/O.

A rule names a category (its code, ``group:<group>`` via the ``group`` field, or ``*`` for any), an
optional place (the code of a district, street or community the case lies in) and a target: a level
(community, street, district, department) and optionally an explicit unit code.

Choosing among matching rules (most specific wins, in this order):
    1. category specificity: exact code > group > any;
    2. place specificity: a community beats a street beats a district beats no place;
    3. ``priority`` (higher wins), then the earlier rule in the set.

The target unit of the winning rule is its explicit ``unit_code``; otherwise the case's own community,
street or district for those levels, or the category's department for ``department``. A winning rule
that cannot name a unit (a departmental rule for a category without a department) places nothing:
the case goes to triage rather than to a guess.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.csvio import ErrorLog, ImportRejected, RowError, read_rows
from core.i18n import N_
from core.inputs import bounded_number, column_length
from routing.models import DispatchRule

LEVELS = ("community", "street", "district", "department")
ANY = "*"
CSV_COLUMNS = ("category", "group", "place", "level", "unit", "priority")
# The citizen hotline centre (12345) holds the city-wide triage queue; its dispatchers act for the city.
HOTLINE_CENTRE_CODE = "D-RXB"


@dataclass(frozen=True)
class Rule:
    """One dispatch rule."""

    level: str
    category: str = ANY
    group: str = ""
    place: str = ""
    unit_code: str | None = None
    priority: int = 0


@dataclass(frozen=True)
class CategoryRef:
    """What the rules need to know of a category."""

    code: str
    group: str = ""
    default_level: str = "community"
    department_code: str | None = None


@dataclass(frozen=True)
class PlaceUnit:
    """One unit of a case's place, from the city down to the community."""

    code: str
    level: str


@dataclass(frozen=True)
class Placement:
    """Where a case goes: the handling level and the unit's code."""

    level: str
    unit_code: str


def _category_rank(rule: Rule, category: CategoryRef) -> int | None:
    """2 for the exact code, 1 for the group, 0 for any; None when the rule is for another category."""
    if rule.category not in ("", ANY):
        return 2 if rule.category == category.code else None
    if rule.group:
        return 1 if rule.group == category.group else None
    return 0


def _place_rank(rule: Rule, place: Sequence[PlaceUnit]) -> int | None:
    """Depth of the rule's place in the case's place (1 = first unit below the city); None if elsewhere."""
    if not rule.place:
        return 0
    for depth, unit in enumerate(place):
        if unit.code == rule.place:
            return depth + 1
    return None


def matching(rules: Iterable[Rule], category: CategoryRef, place: Sequence[PlaceUnit]) -> list[Rule]:
    """The rules that apply to this category and place, most specific first."""
    ranked = []
    for position, rule in enumerate(rules):
        cat, where = _category_rank(rule, category), _place_rank(rule, place)
        if cat is None or where is None:
            continue
        ranked.append(((-cat, -where, -rule.priority, position), rule))
    ranked.sort(key=lambda item: item[0])
    return [rule for _key, rule in ranked]


def target_code(rule: Rule, category: CategoryRef, place: Sequence[PlaceUnit]) -> str | None:
    """The unit code a rule sends this case to, or None when it cannot name one."""
    if rule.unit_code:
        return rule.unit_code
    if rule.level == "department":
        return category.department_code or None
    for unit in place:
        if unit.level == rule.level:
            return unit.code
    return None


def resolve(
    rules: Iterable[Rule], category: CategoryRef, community_path_units: Sequence[PlaceUnit]
) -> Placement | None:
    """The placement chosen by the most specific matching rule, or None (the case goes to triage)."""
    candidates = matching(rules, category, community_path_units)
    if not candidates:
        return None
    best = candidates[0]
    code = target_code(best, category, community_path_units)
    return Placement(best.level, code) if code else None


def escalation_departments(
    rules: Iterable[Rule], category: CategoryRef, community_path_units: Sequence[PlaceUnit]
) -> set[str]:
    """Codes a case of this category and place may summon besides the levels above it (吹哨): the
    category's department in the catalogue and the target of every applicable rule that sends cases to
    a department or names its unit (the caller keeps only the codes of departments)."""
    codes = {category.department_code} if category.department_code else set()
    for rule in matching(rules, category, community_path_units):
        if rule.level == "department" or rule.unit_code:
            code = target_code(rule, category, community_path_units)
            if code:
                codes.add(code)
    return codes


def triage_place(rules: Iterable[Rule], community_path_units: Sequence[PlaceUnit]) -> str | None:
    """The lowest unit of the case's place that has rules of its own, whose dispatcher sorts what no
    rule placed; None means the city (the hotline centre)."""
    deepest: tuple[int, str] | None = None
    for rule in rules:
        where = _place_rank(rule, community_path_units)
        if rule.place and where is not None and (deepest is None or where > deepest[0]):
            deepest = (where, rule.place)
    return deepest[1] if deepest else None


def default_rules(categories: Iterable[CategoryRef]) -> list[Rule]:
    """The rule set implied by the catalogue: each category to its default level (or its department)."""
    rules = []
    for category in categories:
        level = category.default_level if category.default_level in LEVELS else "community"
        rules.append(Rule(level=level, category=category.code))
    return rules


# CSV column → its stored length (from the model, not a second literal).
RULE_LENGTHS = {
    "category": column_length(DispatchRule.category),
    "group": column_length(DispatchRule.group),
    "place": column_length(DispatchRule.place),
    "unit": column_length(DispatchRule.unit_code),
}
MAX_PRIORITY = 1_000_000


@dataclass(frozen=True)
class KnownCodes:
    """The codes a rule may name: categories, category groups and units (from the database)."""

    categories: frozenset[str]
    groups: frozenset[str]
    units: frozenset[str]


SHOWN_VALUE_CHARS = 60  # a rejected value is quoted up to this length


def _shown(value: str) -> str:
    return value if len(value) <= SHOWN_VALUE_CHARS else value[:SHOWN_VALUE_CHARS] + "…"


def _row_problems(line: int, row: dict[str, str], known: KnownCodes | None) -> list[RowError]:
    """Every problem of one row (not only the first), each with its column and value."""
    problems: list[RowError] = []

    def bad(column: str, message: str) -> None:
        problems.append(RowError(line, message, column, _shown(row.get(column, ""))))

    long = {c for c, n in RULE_LENGTHS.items() if n and len(row.get(c, "")) > n}
    for column in sorted(long, key=CSV_COLUMNS.index):
        bad(column, N_("过长（最多 %(n)s 个字符）") % {"n": RULE_LENGTHS[column]})
    if row.get("level", "") not in LEVELS:
        bad("level", N_("处理层级应为 %(levels)s 之一") % {"levels": "/".join(LEVELS)})
    if _priority(row.get("priority", "")) is None:
        bad("priority", N_("优先级必须是 ±%(n)s 以内的整数") % {"n": MAX_PRIORITY})
    category, group = row.get("category", "") or ANY, row.get("group", "")
    if category != ANY and group:
        bad("group", N_("类别编码与类别分组只能填一个"))
    if known is not None:
        if "category" not in long and category != ANY and category not in known.categories:
            bad("category", N_("类别编码不存在"))
        conflict = category != ANY and group
        if "group" not in long and group and not conflict and group not in known.groups:
            bad("group", N_("类别分组不存在"))
        for column in ("place", "unit"):
            value = row.get(column, "")
            if column not in long and value and value not in known.units:
                bad(column, N_("地点单位不存在") if column == "place" else N_("承办单位不存在"))
    return sorted(problems, key=lambda p: CSV_COLUMNS.index(p.column or "category"))  # column order


def _priority(raw: str) -> int | None:
    try:
        value = bounded_number(raw or "0", -MAX_PRIORITY, MAX_PRIORITY)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def parse_rules_csv(data: bytes | str, known: KnownCodes | None = None) -> list[Rule]:
    """Parse rules from CSV (category,group,place,level,unit,priority); all-or-nothing. Every bad row
    is reported, each with all its problems (line, column, value, reason); with ``known`` the codes a
    row names are checked too. A file-level problem (encoding, missing column, size) rejects at once."""
    rules: list[Rule] = []
    errors = ErrorLog()
    for line, row in read_rows(data, ("category", "level"), errors=errors):
        problems = _row_problems(line, row, known)
        if problems:
            errors.extend(problems)
            continue
        rules.append(
            Rule(
                level=row["level"],
                category=row.get("category", "") or ANY,
                group=row.get("group", ""),
                place=row.get("place", ""),
                unit_code=row.get("unit", "") or None,
                priority=_priority(row.get("priority", "")) or 0,
            )
        )
    if errors:
        ordered = sorted(errors.errors, key=lambda e: e.line)  # cell problems are logged as read
        raise ImportRejected(ordered, total=errors.total)
    if not rules:
        raise ImportRejected([RowError(1, N_("文件中没有任何规则"))])
    return rules


def rules_to_csv(rules: Iterable[Rule]) -> str:
    """The rules as CSV, in the format :func:`parse_rules_csv` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rule in rules:
        writer.writerow(
            [rule.category, rule.group, rule.place, rule.level, rule.unit_code or "", rule.priority]
        )
    return out.getvalue()
