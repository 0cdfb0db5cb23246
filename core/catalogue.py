"""Category catalogue (派单目录) import: CSV rows upserted by code, all-or-nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core.csvio import ImportRejected, RowError, read_rows
from core.db import DbSession
from core.i18n import N_
from core.inputs import OutOfRange, bounded_number, column_length, is_blank
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
HANDLING_LEVEL_LABELS = {
    "community": N_("社区"),
    "street": N_("街道"),
    "district": N_("区"),
    "department": N_("市直部门"),
}


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


# Upper bounds of the limits: past them a deadline lies years away (``inf`` imported, then every case
# of the category failed to dispatch with a 500).
MAX_SIGN_FOR_HOURS = 720.0  # 30 days
MAX_RESOLUTION = {
    LimitUnit.working_days: 365.0,
    LimitUnit.working_hours: 365.0 * 8,
    LimitUnit.calendar_hours: 365.0 * 24,
}
LIMIT_UNIT_LABELS = {
    LimitUnit.working_days: N_("个工作日"),
    LimitUnit.working_hours: N_("个工作小时"),
    LimitUnit.calendar_hours: N_("小时"),
}
# CSV column → its stored length, read from the model.
CATEGORY_LENGTHS = {
    "code": column_length(Category.code),
    "name": column_length(Category.name),
    "group": column_length(Category.group),
    "department_code": column_length(Unit.code),
}


def _positive(raw: str, high: float) -> float:
    """A number in (0, high]; OutOfRange past ``high`` (or infinite), ValueError when not a number."""
    value = bounded_number(raw, 0.0, high)
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
        if is_blank(raw["name"]):
            problems.append(RowError(line, "名称不能为空", "name"))
        for column, length in CATEGORY_LENGTHS.items():
            if length and len(raw.get(column, "")) > length:
                problems.append(RowError(line, f"过长（最多 {length} 个字符）", column))
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
        bounds = {"sign_for_hours": MAX_SIGN_FOR_HOURS, "resolution_limit": MAX_RESOLUTION[unit]}
        labels = {"sign_for_hours": "小时", "resolution_limit": LIMIT_UNIT_LABELS[unit]}
        for column, high in bounds.items():
            try:
                numbers[column] = _positive(raw[column], high)
            except OutOfRange:
                problems.append(RowError(line, f"应为大于 0、不超过 {high:g} {labels[column]}的数字", column))
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
