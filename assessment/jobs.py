"""The quarterly scoring job shared by the RQ worker and ``flask scoring run`` (primitive arguments).

It gathers the inputs (case rates from routing's tables, survey results, entries) and calls
``services.run_scoring`` inside one unit of work: the draft is replaced in a single transaction, so a
crash leaves the previous results in place.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from assessment import inputs, services
from assessment.vocabulary import JOB_FAILED, JOB_FINISHED, JOB_RUNNING, as_quarter
from core import jobs
from core.i18n import DomainError
from core.quarter import Quarter

RUN_QUARTER = "assessment.jobs.run_quarter"
logger = logging.getLogger(__name__)


def score_quarter(
    session: Session, quarter: Quarter | str, *, publish: bool = False, user_id: int | None = None
) -> Any:
    """Gather case rates, survey results and entries, score, detect persistent dissatisfaction (flush only)."""
    quarter = as_quarter(quarter)
    run = services.run_scoring(
        session,
        quarter,
        inputs.case_rates(session, quarter),
        inputs.survey_results(session, quarter),
        inputs.entries_frame(session, quarter),
        user_id=user_id,
        previous_survey_frame=inputs.survey_results(session, quarter.previous()),
    )
    history: dict[str, pd.DataFrame] = {}
    q = quarter
    for _ in range(4):  # a streak is judged over the last year
        history[str(q)] = pd.concat(
            [inputs.survey_review_items(session, q), inputs.review_items(session, q)], ignore_index=True
        )
        q = q.previous()
    services.detect_persistent_dissatisfaction(session, quarter, history)
    if publish:
        services.publish_run(session, quarter, user_id)
    return run


def run_quarter(quarter: str, publish: bool = False) -> int:
    """RQ entry point: score the quarter (e.g. "2026Q3") in its own transaction; returns the run id.

    The job's state is recorded for the dashboard: "running" in a short transaction first, "finished"
    with the results, "failed" with the error in a fresh transaction after the rollback (then re-raised,
    so RQ's retry policy still applies).
    """
    with jobs.unit_of_work() as session:
        services.mark_job(session, quarter, JOB_RUNNING)
    try:
        with jobs.unit_of_work() as session:
            run = score_quarter(session, quarter, publish=publish)
            services.mark_job(session, quarter, JOB_FINISHED)
            return int(run.id)
    except Exception as error:
        message = str(error) if isinstance(error, DomainError) else f"{type(error).__name__}: {error}"
        try:
            with jobs.unit_of_work() as session:
                services.mark_job(session, quarter, JOB_FAILED, message)
        except Exception:  # the database may be what failed; the original error matters more
            logger.exception("could not record the failure of scoring %s", quarter)
        raise
