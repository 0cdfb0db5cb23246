"""Cases (工单), their audit trail, and the stored working calendar (holiday notices per year)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, utcnow
from core.models import Category, Unit, User


class Case(Base):
    """A resident's request and where it stands."""

    __tablename__ = "cases"
    # The duplicate check at every intake: the newest cases of one community and category.
    __table_args__ = (Index("ix_cases_duplicate_lookup", "community_id", "category_id", "created_at"),)

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
    # The resident asked for SMS updates at intake (受理/派单/办结/重办) to contact_phone.
    sms_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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
    # The deadline touches a year whose holiday notice is not yet known (暂定); ``deadline_basis`` says
    # how it was counted ({"start": ISO UTC, "amount": n, "unit": ...}) so it can be recounted when the
    # notice is imported. None: a date chosen by a person (an extension to a given day).
    # Indexed: the periodic deadline scan looks for the (few) provisional cases every period.
    deadline_provisional: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false(), index=True
    )
    deadline_basis: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    returns_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Residents who reported the same problem and chose to follow this case instead (我也遇到了).
    me_too_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    solved: Mapped[bool | None] = mapped_column(Boolean)
    satisfaction: Mapped[str | None] = mapped_column(String(30))
    # Lifecycle bookkeeping (see routing.lifecycle.CaseSnapshot): who sent the case to its unit, who
    # returned it (no ping-pong), pending extension, supervision, callback window.
    sent_by_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    returned_by: Mapped[list[int]] = mapped_column(JSON, default=list)
    extension_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_deadline: Mapped[datetime | None] = mapped_column(DateTime)
    extensions_count: Mapped[int] = mapped_column(Integer, default=0)
    supervised: Mapped[bool] = mapped_column(Boolean, default=False)
    supervise_count: Mapped[int] = mapped_column(Integer, default=0)
    callback_due: Mapped[datetime | None] = mapped_column(DateTime)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Routing: the rule-set version the case was placed with (kept when rules change), the number of
    # automatic hops done, and whether the automatic chain still owns the case (a case returned to a
    # dispatcher is also "dispatching", but waits for a person, not for the sweeper).
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    hop_count: Mapped[int] = mapped_column(Integer, default=0)
    auto_routing: Mapped[bool] = mapped_column(Boolean, default=False, index=True)

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Optimistic lock: two people acting on one case at once cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)

    category: Mapped[Category] = relationship()
    district: Mapped[Unit] = relationship(foreign_keys=[district_id])
    street: Mapped[Unit] = relationship(foreign_keys=[street_id])
    community: Mapped[Unit] = relationship(foreign_keys=[community_id])
    current_unit: Mapped[Unit | None] = relationship(foreign_keys=[current_unit_id])
    sent_by_unit: Mapped[Unit | None] = relationship(foreign_keys=[sent_by_unit_id])
    resident: Mapped[User | None] = relationship(foreign_keys=[resident_id])
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", cascade="all, delete-orphan"
    )
    summons: Mapped[list[Summons]] = relationship(
        back_populates="case", order_by="Summons.id", cascade="all, delete-orphan"
    )
    photos: Mapped[list[CasePhoto]] = relationship(
        back_populates="case", order_by="CasePhoto.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


# On PostgreSQL the database hands every new case to routing: a trigger sends its id on this channel
# when the INSERT commits (nothing if it rolls back), and the routing workers' dispatcher, listening,
# queues its first hop (app/dispatch.py). One source for the models (create_all) and the migration.
ROUTING_CHANNEL = "minhu_case_submitted"
HANDOFF_DDL = (
    "CREATE OR REPLACE FUNCTION minhu_notify_case_submitted() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN PERFORM pg_notify('{ROUTING_CHANNEL}', CAST(NEW.id AS text)); RETURN NULL; END $$",
    "CREATE TRIGGER cases_notify_submitted AFTER INSERT ON cases FOR EACH ROW "
    "WHEN (NEW.state = 'submitted') EXECUTE FUNCTION minhu_notify_case_submitted()",
)
HANDOFF_DROP = (
    "DROP TRIGGER IF EXISTS cases_notify_submitted ON cases",
    "DROP FUNCTION IF EXISTS minhu_notify_case_submitted()",
)
for _statement in HANDOFF_DDL:
    event.listen(Case.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


_WRITTEN = "minhu_case_events_written"  # session.info: events inserted without a flush (intake)


def note_event_written(session: Any, event: CaseEvent) -> None:
    """Record an event a Core INSERT wrote (no flush saw it), for listeners run at commit (webhooks)."""
    session.info.setdefault(_WRITTEN, []).append((event.id, event.action))


def events_written(session: Any) -> list[tuple[int, str]]:
    """Take the (id, action) of the events recorded by :func:`note_event_written` in this session."""
    return list(session.info.pop(_WRITTEN, ()))


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


class Summons(Base):
    """One unit called in by an escalation (吹哨); open until it responds (报到) or the round ends."""

    __tablename__ = "case_summons"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set when the unit responds, or when the escalation round ends without it (resolve, return, merge).
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    response: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="summons")
    unit: Mapped[Unit] = relationship()


class RoutingHop(Base):
    """One automatic routing hop; the unique (case, hop number) makes a job run twice change nothing."""

    __tablename__ = "routing_hops"
    __table_args__ = (UniqueConstraint("case_id", "hop_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    hop_no: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))  # route | dispatch | triage
    from_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    rule_set_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RoutingFailure(Base):
    """A routing job that failed for good (case gone, state that cannot be routed): kept for admins."""

    __tablename__ = "routing_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key: the case may be the thing that is missing.
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    task: Mapped[str] = mapped_column(String(60))
    code: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeadlineFlag(Base):
    """A deadline warning or an overdue 督办 flag, at most once per case, kind and deadline."""

    __tablename__ = "deadline_flags"
    __table_args__ = (UniqueConstraint("case_id", "kind", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))  # sign_for_warning | sign_for_overdue | warning | overdue
    deadline: Mapped[datetime] = mapped_column(DateTime)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Notice(Base):
    """An in-app notice to a unit or a resident about a case (no names or phone numbers in it)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_kind: Mapped[str] = mapped_column(String(20))  # unit | resident
    recipient_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)


class RuleSet(Base):
    """One published version of the dispatch rules; versions are never edited, only superseded."""

    __tablename__ = "rule_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(20), default="admin")  # default | admin | csv
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    rules: Mapped[list[DispatchRule]] = relationship(
        back_populates="rule_set", order_by="DispatchRule.position", cascade="all, delete-orphan"
    )


class DispatchRule(Base):
    """One rule of a rule set: category (code, group or any) + place → level and optional unit."""

    __tablename__ = "dispatch_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_set_id: Mapped[int] = mapped_column(ForeignKey("rule_sets.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    category: Mapped[str] = mapped_column(String(40), default="*")
    group: Mapped[str] = mapped_column(String(60), default="")
    place: Mapped[str] = mapped_column(String(40), default="")
    level: Mapped[str] = mapped_column(String(20))
    unit_code: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer, default=0)

    rule_set: Mapped[RuleSet] = relationship(back_populates="rules")


class CalendarYear(Base):
    """A year whose holiday notice is known: from the ``chinese_calendar`` package or an import."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(20))  # library | import
    note: Mapped[str] = mapped_column(String(200), default="")
    # Bumped on every change, so other processes notice (see routing.calendar_store).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    dates: Mapped[list[CalendarDate]] = relationship(
        back_populates="calendar_year", order_by="CalendarDate.day", cascade="all, delete-orphan"
    )


class CalendarDate(Base):
    """One date of a year's notice: a day off (holiday) or a weekend day worked (workday, 调休上班)."""

    __tablename__ = "calendar_dates"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    year: Mapped[int] = mapped_column(ForeignKey("calendar_years.year"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # holiday | workday
    name: Mapped[str] = mapped_column(String(60), default="")

    calendar_year: Mapped[CalendarYear] = relationship(back_populates="dates")


class CasePhoto(Base):
    """A photo of a case: the resident's at intake, or a handler's evidence when resolving.

    The files live under the upload directory as ``<key>.jpg`` and ``<key>.thumb.jpg``; the key is random,
    so knowing one photo's address tells nothing of another's, and serving checks access to the case.
    """

    __tablename__ = "case_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="intake")  # intake | evidence
    key: Mapped[str] = mapped_column(String(40), unique=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="photos")


class UnitBoundary(Base):
    """A community's boundary as a GeoJSON geometry (WGS 84), imported by ``flask units boundaries``."""

    __tablename__ = "unit_boundaries"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), unique=True)
    geometry: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    unit: Mapped[Unit] = relationship()
