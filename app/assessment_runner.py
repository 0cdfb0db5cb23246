"""The quarterly scoring entry point shared by the RQ job and ``flask scoring run``.

It gathers the inputs the surveys package may not read itself (case rates come from routing's tables)
and calls ``surveys.assessment.run_scoring`` inside one unit of work: the draft is replaced in a single
transaction, so a crash leaves the previous results in place.
"""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from app import case_rates
from core import jobs
from core.quarter import Quarter
from surveys import assessment


def survey_results(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """``surveys.frames.community_results`` for the quarter, or an empty frame while surveys are not there."""
    try:
        frames: Any = importlib.import_module("surveys.frames")
    except ImportError:
        return pd.DataFrame()
    return frames.community_results(session, str(quarter))


def survey_review_items(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Survey questions/indicators per community as review-list candidates (value = index, n = answers)."""
    frame = survey_results(session, quarter)
    normal = assessment.survey_by_code(frame, assessment.load_places(session).communities["code"].pipe(_ids))
    normal = normal[normal["code"] != assessment.SURVEY_ALL]
    return pd.DataFrame(
        {
            "unit_id": normal["community_id"],
            "kind": "survey_item",
            "item_code": normal["code"],
            "item_label": normal["code"],
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
    """RQ entry point: score the quarter (e.g. "2026Q3") in its own transaction; returns the run id."""
    with jobs.unit_of_work() as session:
        run = score_quarter(session, quarter, publish=publish)
        return int(run.id)
