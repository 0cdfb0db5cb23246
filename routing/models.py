"""Cases (工单) and their audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, utcnow
from core.models import Category, Unit, User


class Case(Base):
    """A resident's request and where it stands."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(20), default="web")
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    district_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    street_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    address: Mapped[str] = mapped_column(String(200))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text)
    contact_name: Mapped[str] = mapped_column(String(40))
    contact_phone: Mapped[str] = mapped_column(String(20))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A double submit with the same key stores one case; the fingerprint tells a replay from a misuse.
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))

    state: Mapped[str] = mapped_column(String(20), default="submitted", index=True)
    current_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    handling_level: Mapped[str | None] = mapped_column(String(20))
    sign_for_deadline: Mapped[datetime | None] = mapped_column(DateTime)
    deadline: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    returns_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    solved: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[str | None] = mapped_column(String(30))

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Optimistic lock: two people acting on one case at once cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)

    category: Mapped[Category] = relationship()
    district: Mapped[Unit] = relationship(foreign_keys=[district_id])
    street: Mapped[Unit] = relationship(foreign_keys=[street_id])
    community: Mapped[Unit] = relationship(foreign_keys=[community_id])
    current_unit: Mapped[Unit | None] = relationship(foreign_keys=[current_unit_id])
    resident: Mapped[User | None] = relationship(foreign_keys=[resident_id])
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}


class CaseEvent(Base):
    """One audited step of a case: who, which unit, from, to, why, when."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    action: Mapped[str] = mapped_column(String(30))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    from_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    actor_role: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="events")
    from_unit: Mapped[Unit | None] = relationship(foreign_keys=[from_unit_id])
    to_unit: Mapped[Unit | None] = relationship(foreign_keys=[to_unit_id])
    actor_unit: Mapped[Unit | None] = relationship(foreign_keys=[actor_unit_id])
