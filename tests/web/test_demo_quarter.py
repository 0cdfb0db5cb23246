"""The demo quarter: idempotent, and the evaluators' pages show rankings and a review list with it."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.demo_quarter import QUESTIONS, SURVEY_TITLE, demo_quarters, load_demo_quarter
from assessment.models import EvaluatorEntry, ReviewItem, ScoringRun
from core.models import Level, Unit, User
from core.quarter import Quarter
from routing.models import Case, CaseEvent
from surveys.models import Survey, SurveyResponse
from tests.conftest import login

TODAY = date(2026, 11, 20)  # 2026Q4: the demo fills 2026Q2 (published) and 2026Q3 (draft)
KEY = b"test-token-key"


def _counts(session: Session) -> dict[str, int]:
    models: tuple[Any, ...] = (
        Survey,
        SurveyResponse,
        Case,
        CaseEvent,
        EvaluatorEntry,
        ScoringRun,
        ReviewItem,
        User,
    )
    return {m.__name__: int(session.scalar(select(func.count()).select_from(m)) or 0) for m in models}


def test_demo_quarters_are_the_two_before_today() -> None:
    assert demo_quarters(date(2026, 1, 5)) == (Quarter(2025, 3), Quarter(2025, 4))
    assert demo_quarters(TODAY) == (Quarter(2026, 2), Quarter(2026, 3))


def test_demo_quarter_is_idempotent_and_fills_the_evaluator_pages(session: Session, client: Any) -> None:
    before = _counts(session)
    summary = load_demo_quarter(session, KEY, today=TODAY)
    first = _counts(session)
    assert [q.quarter for q in summary.quarters] == ["2026Q2", "2026Q3"]
    assert [q.scored for q in summary.quarters] == ["published", "draft"]
    assert first["Survey"] - before["Survey"] == 2
    assert first["Case"] - before["Case"] == sum(q.cases for q in summary.quarters) > 100
    communities = session.scalar(
        select(func.count()).select_from(Unit).where(Unit.is_demo.is_(True), Unit.level == Level.community)
    )
    assert communities and all(30 * communities <= q.responses <= 60 * communities for q in summary.quarters)
    runs = {r.quarter: r.status for r in session.scalars(select(ScoringRun))}
    assert runs["2026Q2"] == "published" and runs["2026Q3"] == "draft"
    # Cases of the quarter went through their lifecycle inside it (created, signed, resolved, rated).
    q2 = Quarter(2026, 2)
    demo_cases = session.scalars(select(Case).where(Case.idempotency_key.like("demo-2026Q2-%"))).all()
    assert demo_cases and all(q2.start <= c.created_at.date() < q2.end for c in demo_cases)
    assert {"closed", "resolved"} <= {c.state for c in demo_cases}
    assert any(c.returns_count for c in demo_cases) and any(c.reopen_count for c in demo_cases)
    assert session.scalar(select(Survey).where(Survey.title == SURVEY_TITLE, Survey.quarter == "2026Q3"))

    again = load_demo_quarter(session, KEY, today=TODAY)
    assert _counts(session) == first
    assert all(not (q.responses or q.cases or q.entries or q.scored) for q in again.quarters)

    login(client, "evaluator")
    page = client.get("/assessment/?quarter=2026Q2").data.decode()
    assert "示例" in page and "<svg" in page  # district ranking chart and the community tables
    assert "尚未计算" not in page
    review = client.get("/assessment/review").data.decode()
    assert "暂无需要审核的事项" not in review
    assert any(text in review for _name, text, _area in QUESTIONS)
