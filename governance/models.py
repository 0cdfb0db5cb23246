"""Co-governance records: residencies, topics and their steps, votes, projects, ratings, the ledgers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, utcnow
from core.models import Unit, User


class Residency(Base):
    """A resident's home (a 小区/网格 or a community), confirmed by the community's staff: a verified
    resident of that place and of every place above it votes and rates there."""

    __tablename__ = "gov_residencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    unit: Mapped[Unit] = relationship()


class Topic(Base):
    """A deliberation topic (议题) going through the five steps."""

    __tablename__ = "gov_topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)  # compound or the community
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(20), default="raise", index=True)
    origin: Mapped[str] = mapped_column(String(20), default="resident")  # resident | staff | cluster
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(String(20))
    decision_method: Mapped[str | None] = mapped_column(String(20))  # vote | meeting
    decision_text: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    evaluation_closes_at: Mapped[datetime | None] = mapped_column(DateTime)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    community: Mapped[Unit] = relationship(foreign_keys=[community_id])
    place: Mapped[Unit] = relationship(foreign_keys=[place_id])
    steps: Mapped[list[TopicStep]] = relationship(
        back_populates="topic", order_by="TopicStep.id", cascade="all, delete-orphan"
    )
    links: Mapped[list[TopicCase]] = relationship(back_populates="topic", cascade="all, delete-orphan")
    vote: Mapped[Vote | None] = relationship(back_populates="topic", uselist=False)
    project: Mapped[Project | None] = relationship(back_populates="topic", uselist=False)
    ratings: Mapped[list[Rating]] = relationship(back_populates="topic", order_by="Rating.id")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads this class attribute


class TopicStep(Base):
    """One recorded step of a topic: which action, from and to which stage, who, when, why."""

    __tablename__ = "gov_topic_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("gov_topics.id"), index=True)
    action: Mapped[str] = mapped_column(String(30))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    actor_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    topic: Mapped[Topic] = relationship(back_populates="steps")


class TopicCase(Base):
    """A case linked to a topic: its resident follows the topic."""

    __tablename__ = "gov_topic_cases"
    __table_args__ = (UniqueConstraint("topic_id", "case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("gov_topics.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    topic: Mapped[Topic] = relationship(back_populates="links")


class Attachment(Base):
    """An evidence file (minutes, photos, contracts) of a co-governance record, kept under the instance."""

    __tablename__ = "gov_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(30), index=True)  # comment | project | meeting | ...
    owner_id: Mapped[int] = mapped_column(Integer, index=True)
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    filename: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer, default=0)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Comment(Base):
    """A resident's or staff member's comment, or meeting minutes (``kind``), moderated by the community."""

    __tablename__ = "gov_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("gov_topics.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20), default="comment")  # comment | minutes
    body: Mapped[str] = mapped_column(Text)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    hidden_reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    author: Mapped[User | None] = relationship(foreign_keys=[author_id])


class Vote(Base):
    """A topic's vote: declared quorum and majority, deadline; the tally is frozen when it closes."""

    __tablename__ = "gov_votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("gov_topics.id"), unique=True)
    quorum: Mapped[int] = mapped_column(Integer)
    majority: Mapped[float] = mapped_column(Float, default=0.5)
    eligible: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    closes_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    yes: Mapped[int | None] = mapped_column(Integer)  # frozen counts, set when the vote closes
    no: Mapped[int | None] = mapped_column(Integer)
    abstain: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str | None] = mapped_column(String(20))

    topic: Mapped[Topic] = relationship(back_populates="vote")


class Ballot(Base):
    """One verified resident's ballot; the unique (vote, voter) makes a second ballot impossible."""

    __tablename__ = "gov_ballots"
    __table_args__ = (UniqueConstraint("vote_id", "voter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("gov_votes.id"), index=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    choice: Mapped[str] = mapped_column(String(10))
    cast_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    """What carries out an adopted topic (民事民办): owner, budget, funding shares, progress 0–100."""

    __tablename__ = "gov_projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("gov_topics.id"), unique=True)
    owner: Mapped[str] = mapped_column(String(120))
    budget: Mapped[float] = mapped_column(Float, default=0.0)
    funding: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[source, amount], ...]
    progress: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    topic: Mapped[Topic] = relationship(back_populates="project")
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="project", order_by="Milestone.position", cascade="all, delete-orphan"
    )


class Milestone(Base):
    """A milestone of a project."""

    __tablename__ = "gov_milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("gov_projects.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(200))
    done_at: Mapped[datetime | None] = mapped_column(DateTime)

    project: Mapped[Project] = relationship(back_populates="milestones")


class Rating(Base):
    """A resident's rating (1–5) of a carried-out topic, with a comment (民事民评)."""

    __tablename__ = "gov_ratings"
    __table_args__ = (UniqueConstraint("topic_id", "resident_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("gov_topics.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    topic: Mapped[Topic] = relationship(back_populates="ratings")


# --- ledgers (电子台帐) ---------------------------------------------------------------------------


class JointMeeting(Base):
    """A joint party-building meeting (联席会议) at one of the four levels (区—街道—社区—小区/网格)."""

    __tablename__ = "gov_meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    level: Mapped[str] = mapped_column(String(20), index=True)
    held_on: Mapped[date] = mapped_column(Date, index=True)
    attendees: Mapped[str] = mapped_column(Text, default="")
    attendee_count: Mapped[int] = mapped_column(Integer, default=0)
    issues: Mapped[str] = mapped_column(Text, default="")
    resolutions: Mapped[str] = mapped_column(Text, default="")
    follow_up: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    unit: Mapped[Unit] = relationship()


class PartyMember(Base):
    """A serving party member registered with a community (在职党员下沉社区)."""

    __tablename__ = "gov_party_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    work_unit: Mapped[str] = mapped_column(String(120))
    registered_on: Mapped[date] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    community: Mapped[Unit] = relationship()
    services: Mapped[list[PartyService]] = relationship(
        back_populates="member", order_by="PartyService.served_on"
    )


class PartyService(Base):
    """A service a registered party member gave, with the hours."""

    __tablename__ = "gov_party_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("gov_party_members.id"), index=True)
    served_on: Mapped[date] = mapped_column(Date, index=True)
    service: Mapped[str] = mapped_column(String(200))
    hours: Mapped[float] = mapped_column(Float)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    member: Mapped[PartyMember] = relationship(back_populates="services")


class SocialOrganisation(Base):
    """A social organisation brought into community services, and its purchased-service contract."""

    __tablename__ = "gov_social_orgs"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    contract: Mapped[str] = mapped_column(String(200), default="")
    contract_amount: Mapped[float] = mapped_column(Float, default=0.0)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    community: Mapped[Unit] = relationship()
    records: Mapped[list[ServiceRecord]] = relationship(
        back_populates="organisation", order_by="ServiceRecord.served_on"
    )


class ServiceRecord(Base):
    """One service a social organisation delivered."""

    __tablename__ = "gov_service_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("gov_social_orgs.id"), index=True)
    served_on: Mapped[date] = mapped_column(Date, index=True)
    description: Mapped[str] = mapped_column(String(400))
    beneficiaries: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    organisation: Mapped[SocialOrganisation] = relationship(back_populates="records")


class InnovationProject(Base):
    """A community innovation project (创新项目): application, review, funding, outcome."""

    __tablename__ = "gov_innovations"

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    applied_on: Mapped[date] = mapped_column(Date, index=True)
    application: Mapped[str] = mapped_column(Text, default="")
    review: Mapped[str] = mapped_column(String(20), default="pending")  # pending | approved | refused
    review_note: Mapped[str] = mapped_column(Text, default="")
    funding: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    community: Mapped[Unit] = relationship()
