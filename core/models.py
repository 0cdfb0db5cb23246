"""Shared kernel models: the unit tree, the category catalogue (派单目录) and users."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Enum, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, DbSession, utcnow
from core.i18n import N_


class Level(enum.StrEnum):
    """Administrative level of a unit; departments sit beside the tree at city level."""

    city = "city"
    district = "district"
    street = "street"
    community = "community"
    compound = "compound"  # 小区/网格: an optional level below the community (co-governance places)


LEVEL_ORDER = {Level.city: 0, Level.district: 1, Level.street: 2, Level.community: 3, Level.compound: 4}
LEVEL_LABELS = {
    Level.city: N_("市"),
    Level.district: N_("区"),
    Level.street: N_("街道"),
    Level.community: N_("社区"),
    Level.compound: N_("小区/网格"),
}


class UnitKind(enum.StrEnum):
    """What a unit is, beyond its level."""

    government = "government"
    district = "district"
    functional_zone = "functional_zone"
    department = "department"
    utility = "utility"
    street = "street"
    community = "community"
    compound = "compound"


class Role(enum.StrEnum):
    """Platform roles (see PRODUCT.md, "Who uses it")."""

    resident = "resident"
    operator = "operator"
    dispatcher = "dispatcher"
    handler = "handler"
    evaluator = "evaluator"
    admin = "admin"


ROLE_LABELS = {
    Role.resident: N_("居民"),
    Role.operator: N_("热线坐席"),
    Role.dispatcher: N_("派单员"),
    Role.handler: N_("承办人"),
    Role.evaluator: N_("考评员"),
    Role.admin: N_("管理员"),
}
STAFF_ROLES = frozenset({Role.operator, Role.dispatcher, Role.handler, Role.evaluator, Role.admin})


class Urgency(enum.StrEnum):
    """Urgency class of a category, which drives its default limits."""

    emergency = "emergency"
    urgent = "urgent"
    normal = "normal"
    complex = "complex"


URGENCY_LABELS = {
    Urgency.emergency: N_("紧急"),
    Urgency.urgent: N_("加急"),
    Urgency.normal: N_("一般"),
    Urgency.complex: N_("复杂"),
}


class LimitUnit(enum.StrEnum):
    """How a resolution limit counts time."""

    working_days = "working_days"
    working_hours = "working_hours"
    calendar_hours = "calendar_hours"


class Unit(Base):
    """A node of the unit tree (city, district, street, community) or a city department beside it."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    level: Mapped[Level] = mapped_column(Enum(Level, native_enum=False, length=20))
    kind: Mapped[UnitKind] = mapped_column(Enum(UnitKind, native_enum=False, length=20))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # Materialised path of ids ("/1/4/17/"), so a subtree is one indexed prefix match.
    path: Mapped[str] = mapped_column(String(400), default="/", index=True)
    population: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    parent: Mapped[Unit | None] = relationship(remote_side=[id])

    @property
    def is_department(self) -> bool:
        """True for city departments and utilities, which are reached by category, not by place."""
        return self.kind in (UnitKind.department, UnitKind.utility)

    def ancestor_ids(self) -> list[int]:
        """Ids from the root down to this unit, inclusive."""
        return [int(part) for part in self.path.strip("/").split("/") if part]

    def contains(self, other: Unit) -> bool:
        """Whether ``other`` is this unit or lies in its subtree."""
        return other.path.startswith(self.path)

    def __repr__(self) -> str:
        return f"<Unit {self.code} {self.name}>"


class Category(Base):
    """An entry of the dispatch catalogue (派单目录): what kind of request, who answers it, how fast."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    group: Mapped[str] = mapped_column(String(60), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    default_level: Mapped[str] = mapped_column(String(20), default="community")
    urgency: Mapped[Urgency] = mapped_column(Enum(Urgency, native_enum=False, length=20), default="normal")
    sign_for_hours: Mapped[float] = mapped_column(Float, default=4.0)
    resolution_limit: Mapped[float] = mapped_column(Float, default=7.0)
    resolution_unit: Mapped[LimitUnit] = mapped_column(
        Enum(LimitUnit, native_enum=False, length=20), default="working_days"
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    department: Mapped[Unit | None] = relationship()


def new_session_token() -> str:
    """A fresh random session token for a user."""
    return secrets.token_hex(16)


class User(Base):
    """A person who signs in: a resident with an account, or staff bound to a unit."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(80), default="")
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    # When the resident proved by an SMS code that the phone is theirs (routing.phone_codes); None: not yet.
    phone_verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Staff e-mail for new-case and overdue messages (routing.messages); optional.
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Part of every session cookie: a new value ends all existing sessions (logout, password, role, unit).
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token, server_default="")
    # Optional TOTP second factor (base32 secret) and the last time step accepted (no replay).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)

    unit: Mapped[Unit | None] = relationship()

    @property
    def is_staff(self) -> bool:
        """Staff roles are bound to a unit; residents are not."""
        return self.role in STAFF_ROLES

    def end_sessions(self) -> None:
        """Invalidate every session of this user, wherever its cookie was copied to."""
        self.session_token = new_session_token()


def unit_by_code(session: DbSession, code: str) -> Unit | None:
    """Look a unit up by its code."""
    return session.scalar(select(Unit).where(Unit.code == code))


def city_root(session: DbSession) -> Unit | None:
    """The city unit at the top of the tree."""
    return session.scalar(select(Unit).where(Unit.level == Level.city, Unit.parent_id.is_(None)))
