"""Demo co-governance data: topics in every step, some promoted from cases, votes, projects, ratings,
ledgers in both demo quarters; idempotent."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.demo_governance import load_demo_governance
from governance.models import Ballot, JointMeeting, PartyService, Project, Rating, Topic, TopicCase


def test_demo_topics_cover_every_step_and_ledgers_both_quarters(session: Session) -> None:
    summary = load_demo_governance(session, date(2026, 12, 1))
    assert summary.topics > 0 and summary.ledger_rows > 0
    stages = set(session.scalars(select(Topic.stage).where(Topic.is_demo.is_(True))))
    assert stages == {"raise", "discuss", "decide", "carry_out", "evaluate"}
    assert session.scalar(select(func.count(TopicCase.id)))  # promoted from demo cases
    assert session.scalar(select(func.count(Ballot.id))) and session.scalar(select(func.count(Project.id)))
    assert session.scalar(select(func.count(Rating.id)))
    assert session.scalar(select(func.count(Topic.id)).where(Topic.closed_at.is_not(None)))
    days = session.scalars(select(JointMeeting.held_on)).all()
    assert any(date(2026, 4, 1) <= d < date(2026, 7, 1) for d in days)
    assert any(date(2026, 7, 1) <= d < date(2026, 10, 1) for d in days)
    assert session.scalar(select(func.count(PartyService.id)))
    again = load_demo_governance(session, date(2026, 12, 1))
    assert again.topics == 0
