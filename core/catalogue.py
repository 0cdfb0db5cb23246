"""Category catalogue (派单目录) import: CSV rows upserted by code, all-or-nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core.csvio import ImportRejected, RowError, read_rows
from core.db import DbSession
from core.models import Category, LimitUnit, Unit, Urgency
from core.units import ImportSummary

COLUMNS = (
    "code",
    "name",
    "department_code",
    "default_level",
    "urgency",
    "sign_for_hours",
    "resolution_limit",
)
DEFAULT_CATALOGUE = Path(__file__).parent / "data" / "categories.csv"
HANDLING_LEVELS = ("community", "street", "district", "department")
HANDLING_LEVEL_LABELS = {"community": "社区", "street": "街道", "district": "区", "department": "市直部门"}


@dataclass(frozen=True)
class CategoryRow:
    """A validated catalogue row."""

    line: int
    code: str
    name: str
    group: str
    department_code: str
    default_level: str
    urgency: Urgency
    sign_for_hours: float
    resolution_limit: float
    resolution_unit: LimitUnit


def _positive(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(raw)
    return value


def parse_categories(data: bytes | str) -> list[CategoryRow]:
    """Validate every row; raise ImportRejected listing each bad line, or return the rows."""
    rows: list[CategoryRow] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for line, raw in read_rows(data, COLUMNS):
        code = raw["code"]
        if not code or code in seen:
            errors.append(RowError(line, "编码为空或重复", "code"))
            continue
        seen.add(code)
        problems: list[RowError] = []
        if not raw["name"]:
            problems.append(RowError(line, "名称不能为空", "name"))
        if raw["default_level"] not in HANDLING_LEVELS:
            problems.append(
                RowError(line, "默认承办层级应为 community/street/district/department", "default_level")
            )
        try:
            urgency = Urgency(raw["urgency"] or "normal")
        except ValueError:
            problems.append(RowError(line, "紧急程度应为 emergency/urgent/normal/complex", "urgency"))
            urgency = Urgency.normal
        try:
            unit = LimitUnit(raw.get("resolution_unit") or "working_days")
        except ValueError:
            problems.append(
                RowError(line, "时限单位应为 working_days/working_hours/calendar_hours", "resolution_unit")
            )
            unit = LimitUnit.working_days
        numbers: dict[str, float] = {}
        for column in ("sign_for_hours", "resolution_limit"):
            try:
                numbers[column] = _positive(raw[column])
            except ValueError:
                problems.append(RowError(line, "必须是大于 0 的数字", column))
        if problems:
            errors.extend(problems)
            continue
        rows.append(
            CategoryRow(
                line,
                code,
                raw["name"],
                raw.get("group", ""),
                raw["department_code"],
                raw["default_level"],
                urgency,
                numbers["sign_for_hours"],
                numbers["resolution_limit"],
                unit,
            )
        )
    if errors:
        raise ImportRejected(errors)
    return rows


def import_categories(session: DbSession, data: bytes | str) -> ImportSummary:
    """Upsert categories by code; departments must already exist (flush only)."""
    rows = parse_categories(data)
    units = {
        u.code: u
        for u in session.scalars(select(Unit).where(Unit.code.in_({r.department_code for r in rows})))
    }
    errors = [
        RowError(r.line, f"责任部门 {r.department_code} 不存在", "department_code")
        for r in rows
        if r.department_code and r.department_code not in units
    ]
    if errors:
        raise ImportRejected(errors)
    existing = {c.code: c for c in session.scalars(select(Category))}
    created = updated = unchanged = 0
    for row in rows:
        values = {
            "name": row.name,
            "group": row.group,
            "department": units.get(row.department_code),
            "default_level": row.default_level,
            "urgency": row.urgency,
            "sign_for_hours": row.sign_for_hours,
            "resolution_limit": row.resolution_limit,
            "resolution_unit": row.resolution_unit,
        }
        category = existing.get(row.code)
        if category is None:
            session.add(Category(code=row.code, **values))
            created += 1
        elif any(getattr(category, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(category, key, value)
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return ImportSummary(created, updated, unchanged)


def import_default_catalogue(session: DbSession) -> ImportSummary:
    """Load the catalogue shipped with the project."""
    return import_categories(session, DEFAULT_CATALOGUE.read_bytes())


def active_categories(session: DbSession) -> list[Category]:
    """Categories residents can choose, by group and code."""
    return list(session.scalars(select(Category).where(Category.active.is_(True)).order_by(Category.code)))
