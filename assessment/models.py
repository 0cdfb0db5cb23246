"""Assessment (考评) models: indicator system versions, 三率 weights, evaluator entries, runs, scores, review list.

The tree of an ``IndicatorSystem`` is stored as the JSON of ``assessment.rules.Indicator.to_config``; what
feeds each leaf (``case:<rate>``, ``survey:<code>``, ``entry:<code>``) and how each group's weights were
set (direct, AHP with its pairwise matrix, entropy) sit beside it, so one row is one reproducible version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from assessment.vocabulary import REVIEW_KINDS, ROLLUP_MODES, RUN_DRAFT, RUN_PUBLISHED
from core.db import Base, utcnow
from core.models import Unit, User

__all__ = [
    "REVIEW_KINDS",
    "ROLLUP_MODES",
    "RUN_DRAFT",
    "RUN_PUBLISHED",
    "CompositeWeights",
    "EvaluatorEntry",
    "IndicatorSystem",
    "ReviewItem",
    "Score",
    "ScoringRun",
]


class IndicatorSystem(Base):
    """One version of the indicator tree for a quarter; a new edit is a new version, never an update."""

    __tablename__ = "indicator_systems"
    __table_args__ = (UniqueConstraint("quarter", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(8), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(120), default="")
    # assessment.rules.Indicator.to_config() of the root.
    tree: Mapped[dict[str, Any]] = mapped_column(JSON)
    # leaf code → "case:<rate>" | "survey:<code>" | "entry:<code>"
    sources: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # group code → {"method": "direct"|"ahp"|"entropy", "matrix": [[...]], "cr": float, "children": [...]}
    weight_methods: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rollup: Mapped[str] = mapped_column(String(20), default="population")
    tie_rule: Mapped[str] = mapped_column(String(10), default="min")
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CompositeWeights(Base):
    """A version of the 三率 composite weights (response, resolution, satisfaction); the newest applies."""

    __tablename__ = "composite_weights"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    response: Mapped[float] = mapped_column(Float)
    resolution: Mapped[float] = mapped_column(Float)
    satisfaction: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EvaluatorEntry(Base):
    """An evaluator's value for an ``entry:<code>`` leaf (明察暗访, online checks, checklists) with evidence."""

    __tablename__ = "evaluator_entries"
    __table_args__ = (Index("ix_evaluator_entries_quarter_unit_code", "quarter", "unit_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(8))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    code: Mapped[str] = mapped_column(String(60))
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    # Relative to instance/evidence/; empty when no file was uploaded.
    evidence_file: Mapped[str] = mapped_column(String(255), default="")
    evidence_name: Mapped[str] = mapped_column(String(255), default="")
    entered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    entered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    unit: Mapped[Unit] = relationship()
    entered_by: Mapped[User | None] = relationship()


class ScoringRun(Base):
    """The quarter's scoring: a draft replaced by each re-run, then published and frozen."""

    __tablename__ = "scoring_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(8), unique=True)
    status: Mapped[str] = mapped_column(String(12), default=RUN_DRAFT)
    system_id: Mapped[int | None] = mapped_column(ForeignKey("indicator_systems.id"))
    composite_id: Mapped[int | None] = mapped_column(ForeignKey("composite_weights.id"))
    # What the run used and found: rollup mode, tie rule, weights derived at run time, counts.
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    computed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    system: Mapped[IndicatorSystem | None] = relationship()
    composite: Mapped[CompositeWeights | None] = relationship()


class Score(Base):
    """One unit's points on one indicator node (the root code is the total) in a run, with why."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("run_id", "unit_id", "node_code"),
        Index("ix_scores_run_level_node", "run_id", "level", "node_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("scoring_runs.id", ondelete="CASCADE"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    level: Mapped[str] = mapped_column(String(20))
    node_code: Mapped[str] = mapped_column(String(60))
    score: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int | None] = mapped_column(Integer)
    # The leaf's input value and its sample size (rated cases, survey respondents), when it has one.
    value: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(Integer)
    change: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    significant: Mapped[bool | None] = mapped_column(Boolean)
    explanation: Mapped[str] = mapped_column(Text, default="")

    unit: Mapped[Unit] = relationship()


class ReviewItem(Base):
    """逐项审核: a survey item or case category residents stayed dissatisfied with, and the decision on it."""

    __tablename__ = "review_items"
    __table_args__ = (UniqueConstraint("unit_id", "kind", "item_code", "quarter_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    item_code: Mapped[str] = mapped_column(String(60))
    item_label: Mapped[str] = mapped_column(String(200), default="")
    quarter_from: Mapped[str] = mapped_column(String(8))
    quarter_to: Mapped[str] = mapped_column(String(8))
    threshold: Mapped[float] = mapped_column(Float)
    # [{"quarter": "2026Q2", "value": 0.52, "n": 40}, ...]
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    decision: Mapped[str] = mapped_column(Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    unit: Mapped[Unit] = relationship()
    decided_by: Mapped[User | None] = relationship()
