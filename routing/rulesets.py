"""Dispatch rule sets (派单规则版本): the published versions, validation against the reference data,
publishing (admins; all-or-nothing) and the diff an upload is previewed with before it is published.

Moved out of :mod:`routing.services` (which re-exports every public name here, so existing imports keep
working). The rules themselves, and the CSV format, are pure data in :mod:`routing.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.csvio import ImportRejected, RowError
from core.db import utcnow
from core.i18n import N_, DomainError
from core.models import Category, Role, Unit, User
from routing.models import DispatchRule, RuleSet
from routing.rules import CategoryRef, KnownCodes, Rule, default_rules, parse_rules_csv


class RoutingFailed(DomainError):
    """A routing hop that can never succeed (the case is gone); recorded, not retried."""


class RulesForbidden(DomainError):
    """Only administrators publish dispatch rules."""

    status = 403

    def __init__(self) -> None:
        super().__init__("role_forbidden", N_("只有管理员可以发布派单规则"))


class StaleRuleSet(DomainError):
    """The rule set a preview was computed against is no longer the active one."""

    status = 409

    def __init__(self, based_on: int, current: int) -> None:
        super().__init__(
            "stale_rule_set",
            N_("预览基于第 %(old)s 版规则，但当前已是第 %(new)s 版：请重新上传并核对差异后再发布")
            % {"old": based_on, "new": current},
        )
        self.based_on, self.current = based_on, current


# Published versions never change, so their rules are cached per process; the key includes the row's
# id and creation time so a version number reused after a rollback (tests) never hits a stale entry.
_RULES_CACHE: dict[tuple[int, int, datetime], tuple[Rule, ...]] = {}


@dataclass(frozen=True)
class RuleSetView:
    """A published rule set: its version and rules."""

    version: int
    rules: tuple[Rule, ...]


def _category_refs(session: Session) -> list[CategoryRef]:
    rows = session.scalars(select(Category).where(Category.active.is_(True)).order_by(Category.code))
    return [category_ref(c) for c in rows]


def category_ref(category: Category) -> CategoryRef:
    """What the rules need to know of a category."""
    dept = category.department
    return CategoryRef(
        category.code, category.group or "", category.default_level, dept.code if dept else None
    )


def _store(session: Session, rules: Iterable[Rule], actor: User | None, note: str, source: str) -> RuleSet:
    latest = session.scalar(select(func.max(RuleSet.version))) or 0
    rule_set = RuleSet(
        version=latest + 1,
        note=note,
        source=source,
        created_by_id=actor.id if actor is not None else None,
        created_at=utcnow(),
    )
    for position, rule in enumerate(rules):
        rule_set.rules.append(
            DispatchRule(
                position=position,
                category=rule.category,
                group=rule.group,
                place=rule.place,
                level=rule.level,
                unit_code=rule.unit_code,
                priority=rule.priority,
            )
        )
    session.add(rule_set)
    session.flush()
    return rule_set


def current_rules(session: Session) -> RuleSetView:
    """The newest rule set, creating version 1 from the catalogue when none was ever published."""
    latest = session.scalar(select(RuleSet).order_by(RuleSet.version.desc()).limit(1))
    if latest is None:
        try:
            with session.begin_nested():
                latest = _store(
                    session, default_rules(_category_refs(session)), None, "由派单目录生成", "default"
                )
        except IntegrityError:  # another worker created it at the same moment
            latest = session.scalar(select(RuleSet).order_by(RuleSet.version.desc()).limit(1))
    assert latest is not None
    return _view(session, latest)


def rules_of_version(session: Session, version: int) -> RuleSetView:
    """The rules of one published version."""
    rule_set = session.scalar(select(RuleSet).where(RuleSet.version == version))
    if rule_set is None:
        raise RoutingFailed("unknown_rule_set", N_("派单规则版本不存在"))
    return _view(session, rule_set)


def _view(session: Session, rule_set: RuleSet) -> RuleSetView:
    return _cached_view(session, rule_set.id, rule_set.version, rule_set.created_at)


def _cached_view(session: Session, rule_set_id: int, version: int, created_at: datetime) -> RuleSetView:
    key = (version, rule_set_id, created_at)
    cached = _RULES_CACHE.get(key)
    if cached is None:
        rows = session.scalars(
            select(DispatchRule)
            .where(DispatchRule.rule_set_id == rule_set_id)
            .order_by(DispatchRule.position)
        )
        cached = tuple(Rule(r.level, r.category, r.group, r.place, r.unit_code, r.priority) for r in rows)
        _RULES_CACHE[key] = cached
    return RuleSetView(version, cached)


def validate_rules(session: Session, rules: Sequence[Rule]) -> list[RowError]:
    """Check that every category, group, place and unit a rule names exists (line = row + 1)."""
    codes = set(session.scalars(select(Category.code)))
    groups = set(session.scalars(select(Category.group)))
    units = set(session.scalars(select(Unit.code)))
    errors = []
    for i, rule in enumerate(rules, start=2):
        if rule.category not in ("*", "") and rule.category not in codes:
            errors.append(RowError(i, f"类别编码 {rule.category} 不存在", "category"))
        if rule.group and rule.group not in groups:
            errors.append(RowError(i, f"类别分组 {rule.group} 不存在", "group"))
        if rule.place and rule.place not in units:
            errors.append(RowError(i, f"地点单位 {rule.place} 不存在", "place"))
        if rule.unit_code and rule.unit_code not in units:
            errors.append(RowError(i, f"承办单位 {rule.unit_code} 不存在", "unit"))
    return errors


def publish_rules(
    session: Session,
    rules: Sequence[Rule],
    actor: User | None,
    *,
    note: str = "",
    source: str = "admin",
    based_on: int | None = None,
) -> RuleSet:
    """Publish a new rule-set version (admins; ``actor=None`` is the command line). Cases already
    routed keep the version they were routed with. ``based_on``: the version a preview was diffed
    against; :class:`StaleRuleSet` when another version was published since (the diff is void)."""
    if actor is not None and actor.role != Role.admin:
        raise RulesForbidden()
    if based_on is not None:
        current = latest_version(session)
        if current != based_on:
            raise StaleRuleSet(based_on, current)
    errors = validate_rules(session, rules)
    if errors:
        raise ImportRejected(errors)
    if not rules:
        raise ImportRejected([RowError(1, "规则集不能为空")])
    return _store(session, rules, actor, note, source)


def import_rules_csv(session: Session, data: bytes | str, actor: User | None, *, note: str = "") -> RuleSet:
    """Publish a new version from CSV (category,group,place,level,unit,priority) at once, without a
    preview (the command line); all-or-nothing, every bad row reported."""
    if actor is not None and actor.role != Role.admin:
        raise RulesForbidden()
    return publish_rules(session, check_rules_csv(session, data), actor, note=note, source="csv")


def rule_set_versions(session: Session) -> list[RuleSet]:
    """Every published version, newest first."""
    return list(session.scalars(select(RuleSet).order_by(RuleSet.version.desc())))


def known_codes(session: Session) -> KnownCodes:
    """Every category code, category group and unit code a rule may name."""
    return KnownCodes(
        categories=frozenset(session.scalars(select(Category.code))),
        groups=frozenset(g for g in session.scalars(select(Category.group)) if g),
        units=frozenset(session.scalars(select(Unit.code))),
    )


def check_rules_csv(session: Session, data: bytes | str) -> list[Rule]:
    """Parse and validate a whole rules CSV without publishing: the rules, or :class:`ImportRejected`
    listing every bad row (format and unknown codes alike, each with line, column, value, reason)."""
    return parse_rules_csv(data, known_codes(session))


def latest_version(session: Session) -> int:
    """The number of the newest published version (0 when none was ever published)."""
    return session.scalar(select(func.max(RuleSet.version))) or 0


# --- the diff an upload is previewed with -----------------------------------------------------


def rule_key(rule: Rule) -> tuple[str, str, str]:
    """What a rule applies to (category, group, place): rules with the same key are the "same" rule,
    and a difference in what they do (level, unit, priority) is a change."""
    return (rule.category or "*", rule.group, rule.place)


@dataclass(frozen=True)
class RuleChange:
    """One rule whose target changed: the old and the new version, and the fields that differ."""

    old: Rule
    new: Rule

    @property
    def fields(self) -> tuple[str, ...]:
        """The changed CSV columns (level, unit, priority)."""
        pairs = (
            ("level", self.old.level, self.new.level),
            ("unit", self.old.unit_code or "", self.new.unit_code or ""),
            ("priority", self.old.priority, self.new.priority),
        )
        return tuple(name for name, a, b in pairs if a != b)


@dataclass(frozen=True)
class RuleDiff:
    """What publishing ``new`` in place of ``old`` changes."""

    added: list[Rule] = field(default_factory=list)
    removed: list[Rule] = field(default_factory=list)
    changed: list[RuleChange] = field(default_factory=list)
    unchanged: int = 0
    reordered: bool = False  # same rules, another order (order breaks ties between equal rules)

    @property
    def empty(self) -> bool:
        """Nothing would change (not even the order)."""
        return not (self.added or self.removed or self.changed or self.reordered)


def diff_rules(old: Sequence[Rule], new: Sequence[Rule]) -> RuleDiff:
    """Rules added, removed and changed from ``old`` to ``new``, matched by :func:`rule_key`; several
    rules with one key (a file may repeat a key with other priorities) pair up in file order."""
    old_by_key: dict[tuple[str, str, str], list[tuple[int, Rule]]] = {}
    for index, rule in enumerate(old):
        old_by_key.setdefault(rule_key(rule), []).append((index, rule))
    added: list[Rule] = []
    changed: list[RuleChange] = []
    unchanged = 0
    for rule in new:
        candidates = old_by_key.get(rule_key(rule))
        if not candidates:
            added.append(rule)
            continue
        same = next((i for i, (_n, r) in enumerate(candidates) if r == rule), 0)
        _index, previous = candidates.pop(same)
        if previous == rule:
            unchanged += 1
        else:
            changed.append(RuleChange(previous, rule))
    left = sorted((pair for pairs in old_by_key.values() for pair in pairs), key=lambda p: p[0])
    removed = [rule for _index, rule in left]
    reordered = not (added or removed or changed) and list(old) != list(new)
    return RuleDiff(added, removed, changed, unchanged, reordered)
