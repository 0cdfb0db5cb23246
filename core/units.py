"""Unit tree import: CSV rows (code,name,level,parent_code,kind,note[,population]) upserted by code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import String, literal, select, update
from sqlalchemy import func as sql_func

from core.csvio import ErrorLog, ImportRejected, RowError, read_rows
from core.db import DbSession
from core.inputs import OutOfRange, bounded_number, column_length, is_blank
from core.models import LEVEL_ORDER, Level, Unit, UnitKind

COLUMNS = ("code", "name", "level", "parent_code", "kind")
WORK_PLAN_UNITS = Path(__file__).parent / "data" / "units-from-work-plan.csv"
CODE_MAX, NAME_MAX = column_length(Unit.code) or 40, column_length(Unit.name) or 120
MAX_POPULATION = 50_000_000  # more than any city district; a typo beyond it would overflow the column


@dataclass(frozen=True)
class UnitRow:
    """A validated unit row."""

    line: int
    code: str
    name: str
    level: Level
    parent_code: str | None
    kind: UnitKind
    note: str
    population: int | None


@dataclass(frozen=True)
class ImportSummary:
    """What an import did."""

    created: int
    updated: int
    unchanged: int
    moved: tuple[str, ...] = ()  # codes of the units given a new parent (their subtrees moved along)


def parse_units(data: bytes | str) -> list[UnitRow]:
    """Validate every row; raise ImportRejected listing each bad line, or return the rows."""
    rows: list[UnitRow] = []
    errors = ErrorLog()
    seen: dict[str, int] = {}
    for line, raw in read_rows(data, COLUMNS, errors=errors):
        code, name = raw.get("code", ""), raw.get("name", "")
        if not code:
            errors.add(RowError(line, "编码不能为空", "code"))
            continue
        if len(code) > CODE_MAX:
            errors.add(RowError(line, f"编码过长（最多 {CODE_MAX} 个字符）", "code"))
            continue
        if code in seen:
            errors.add(RowError(line, f"编码 {code} 与第 {seen[code]} 行重复", "code"))
            continue
        seen[code] = line
        if is_blank(name):
            errors.add(RowError(line, "名称不能为空", "name"))
        elif len(name) > NAME_MAX:
            errors.add(RowError(line, f"名称过长（最多 {NAME_MAX} 个字符）", "name"))
        try:
            level = Level(raw.get("level", ""))
        except ValueError:
            errors.add(
                RowError(
                    line,
                    f"层级 {raw['level'][:40]!r} 无效，应为 city/district/street/community/compound",
                    "level",
                )
            )
            continue
        try:
            kind = UnitKind(raw.get("kind", ""))
        except ValueError:
            errors.add(RowError(line, f"类型 {raw['kind'][:40]!r} 无效", "kind"))
            continue
        population: int | None = None
        if raw.get("population"):
            try:
                value = bounded_number(raw["population"], 0, MAX_POPULATION)
                if not value.is_integer():
                    raise ValueError(value)
                population = int(value)
            except OutOfRange:
                errors.add(RowError(line, f"人口数应在 0 到 {MAX_POPULATION} 之间", "population"))
            except ValueError:
                errors.add(RowError(line, "人口数必须是非负整数", "population"))
        parent = raw.get("parent_code") or None
        if parent is None and level != Level.city:
            errors.add(RowError(line, "除市级外，每个单位都要有上级编码", "parent_code"))
        elif parent is not None and len(parent) > CODE_MAX:
            errors.add(RowError(line, f"上级编码过长（最多 {CODE_MAX} 个字符）", "parent_code"))
        rows.append(UnitRow(line, code, name, level, parent, kind, raw.get("note", ""), population))
    if errors:
        raise errors.rejected()
    return rows


def _check_parent(row: UnitRow, parent_level: Level | None) -> str | None:
    """Why a row's parent is wrong for its level, or None."""
    if row.parent_code is None:
        return None
    if parent_level is None:
        return f"上级编码 {row.parent_code} 不存在"
    is_department = row.kind in (UnitKind.department, UnitKind.utility)
    if is_department:
        return None if parent_level == Level.city else "市直部门的上级必须是市"
    if LEVEL_ORDER[parent_level] != LEVEL_ORDER[row.level] - 1:
        return f"{row.level.value} 的上级必须是上一级单位，而 {row.parent_code} 是 {parent_level.value}"
    return None


def import_units(session: DbSession, data: bytes | str) -> ImportSummary:
    """Upsert units by code; the whole file is checked before anything is written (flush only)."""
    rows = parse_units(data)
    existing = {u.code: u for u in session.scalars(select(Unit))}
    levels = {code: unit.level for code, unit in existing.items()}
    levels.update({row.code: row.level for row in rows})
    errors = [
        RowError(row.line, message, "parent_code")
        for row in rows
        if (message := _check_parent(row, levels.get(row.parent_code) if row.parent_code else None))
    ]
    if errors:
        raise ImportRejected(errors)
    created = updated = unchanged = 0
    moved: list[str] = []
    # Parents first, so each child can take its parent's path.
    for row in sorted(
        rows, key=lambda r: LEVEL_ORDER[r.level] + (0.5 if r.kind == UnitKind.department else 0)
    ):
        unit = existing.get(row.code)
        parent = existing.get(row.parent_code) if row.parent_code else None
        values: dict[str, Any] = {
            "name": row.name,
            "level": row.level,
            "kind": row.kind,
            "note": row.note,
            "parent": parent,
        }
        if row.population is not None:
            values["population"] = row.population
        if unit is None:
            unit = Unit(code=row.code, **values)
            session.add(unit)
            existing[row.code] = unit
            created += 1
            session.flush()
            unit.path = (parent.path if parent else "/") + f"{unit.id}/"
        else:
            changed = any(getattr(unit, k) != v for k, v in values.items())
            if unit.parent is not parent:
                moved.append(unit.code)
            for key, value in values.items():
                if key != "parent":
                    setattr(unit, key, value)
            # Also repairs a subtree whose paths an earlier version of this import left stale.
            move_unit(session, unit, parent)
            updated += changed
            unchanged += not changed
    session.flush()
    return ImportSummary(created, updated, unchanged, tuple(moved))


def move_unit(session: DbSession, unit: Unit, parent: Unit | None) -> int:
    """Put ``unit`` under ``parent`` and rewrite the path of the unit and of every unit below it in one
    statement, so access by subtree follows at once (flush only: the caller's one transaction commits
    it or nothing); the number of paths rewritten (0 when the parent and path were already right)."""
    if parent is not None and parent.path.startswith(unit.path):
        raise ValueError(f"unit {unit.code} cannot move below itself")
    unit.parent = parent
    session.flush()
    old = unit.path
    new = (parent.path if parent is not None else "/") + f"{unit.id}/"
    if old == new:
        return 0
    rest = sql_func.substr(Unit.path, len(old) + 1, type_=String)
    result = session.execute(
        update(Unit)
        .where(Unit.path.startswith(old, autoescape=True))
        .values(path=literal(new, String) + rest)
        .execution_options(synchronize_session=False)
    )
    for held in list(session.identity_map.values()):  # loaded units must not keep their old paths
        if isinstance(held, Unit):
            session.expire(held, ["path"])
    return int(getattr(result, "rowcount", 0) or 0)  # a CursorResult for an UPDATE


def import_work_plan_units(session: DbSession) -> ImportSummary:
    """Load the districts, zones and departments named in the work plan (shipped with the project)."""
    return import_units(session, WORK_PLAN_UNITS.read_bytes())


def children_of(session: DbSession, parent: Unit | None) -> list[Unit]:
    """Active places (not departments) directly below a unit, by code; the districts when parent is None."""
    query = select(Unit).where(Unit.active.is_(True)).order_by(Unit.code)
    if parent is None:
        query = query.where(Unit.level == Level.district)
    else:
        query = query.where(
            Unit.parent_id == parent.id, Unit.kind.not_in([UnitKind.department, UnitKind.utility])
        )
    return list(session.scalars(query))


def departments(session: DbSession) -> list[Unit]:
    """City departments and utilities."""
    query = select(Unit).where(Unit.kind.in_([UnitKind.department, UnitKind.utility])).order_by(Unit.code)
    return list(session.scalars(query))
