"""The quarterly scoring entry point shared by the RQ job and ``flask scoring run``.

It gathers the inputs the surveys package may not read itself (case rates come from routing's tables)
and calls ``surveys.assessment.run_scoring`` inside one unit of work: the draft is replaced in a single
transaction, so a crash leaves the previous results in place.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import case_rates
from core import jobs
from core.i18n import DomainError
from core.quarter import Quarter
from surveys import assessment
from surveys.models import Question, Survey, SurveySection

logger = logging.getLogger(__name__)


def survey_results(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """``surveys.frames.community_results`` for the quarter, or an empty frame while surveys are not there."""
    try:
        frames: Any = importlib.import_module("surveys.frames")
    except ImportError:
        return pd.DataFrame()
    return frames.community_results(session, str(quarter))


def survey_item_labels(session: Session, quarter: Quarter | str) -> dict[str, str]:
    """Review-list labels for the quarter's survey codes: "section · question text" per question name, and
    "满意度指标 <code>" for an indicator code (questions mapped to it) when no question has that name.

    The newest survey version of the quarter wins when several carry the same question name.
    """
    question, section, survey = Question, SurveySection, Survey
    rows = session.execute(
        select(question.name, question.label, section.title, question.indicator_code)
        .join(survey, survey.id == question.survey_id)
        .outerjoin(section, section.id == question.section_id)
        .where(survey.quarter == str(quarter))
        .order_by(survey.version, question.position)
    ).all()
    labels: dict[str, str] = {}
    for *_, indicator in rows:
        if indicator:
            labels.setdefault(str(indicator), f"满意度指标 {indicator}")
    for name, text, title, _ in rows:
        labels[str(name)] = f"{title} · {text}" if title else str(text)
    return {code: label[:200] for code, label in labels.items()}  # ReviewItem.item_label is 200 chars


def survey_review_items(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Survey questions/indicators per community as review-list candidates (value = index, n = answers)."""
    frame = survey_results(session, quarter)
    normal = assessment.survey_by_code(frame, assessment.load_places(session).communities["code"].pipe(_ids))
    normal = normal[normal["code"] != assessment.SURVEY_ALL]
    labels = survey_item_labels(session, quarter)
    codes = normal["code"].astype(str)
    return pd.DataFrame(
        {
            "unit_id": normal["community_id"],
            "kind": "survey_item",
            "item_code": codes,
            "item_label": codes.map(lambda c: labels.get(c, c)),
            "value": normal["index"],
            "n": normal["n"],
        }
    )


def _ids(codes: pd.Series) -> dict[str, int]:
    return {str(code): int(uid) for uid, code in codes.items()}


def score_quarter(
    session: Session, quarter: Quarter | str, *, publish: bool = False, user_id: int | None = None
) -> Any:
    """Gather case rates, survey results and entries, score, detect persistent dissatisfaction (flush only)."""
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)
    run = assessment.run_scoring(
        session,
        quarter,
        case_rates.case_rates(session, quarter),
        survey_results(session, quarter),
        assessment.entries_frame(session, quarter),
        user_id=user_id,
        previous_survey_frame=survey_results(session, quarter.previous()),
    )
    history: dict[str, pd.DataFrame] = {}
    q = quarter
    for _ in range(4):  # a streak is judged over the last year
        history[str(q)] = pd.concat(
            [survey_review_items(session, q), case_rates.review_items(session, q)], ignore_index=True
        )
        q = q.previous()
    assessment.detect_persistent_dissatisfaction(session, quarter, history)
    if publish:
        assessment.publish_run(session, quarter, user_id)
    return run


def run_quarter(quarter: str, publish: bool = False) -> int:
    """RQ entry point: score the quarter (e.g. "2026Q3") in its own transaction; returns the run id.

    The job's state is recorded for the dashboard: "running" in a short transaction first, "finished"
    with the results, "failed" with the error in a fresh transaction after the rollback (then re-raised,
    so RQ's retry policy still applies).
    """
    with jobs.unit_of_work() as session:
        assessment.mark_job(session, quarter, assessment.JOB_RUNNING)
    try:
        with jobs.unit_of_work() as session:
            run = score_quarter(session, quarter, publish=publish)
            assessment.mark_job(session, quarter, assessment.JOB_FINISHED)
            return int(run.id)
    except Exception as error:
        message = error.message if isinstance(error, DomainError) else f"{type(error).__name__}: {error}"
        try:
            with jobs.unit_of_work() as session:
                assessment.mark_job(session, quarter, assessment.JOB_FAILED, message)
        except Exception:  # the database may be what failed; the original error matters more
            logger.exception("could not record the failure of scoring %s", quarter)
        raise
