"""Thin job entry points for surveys: primitive arguments, one service call, safe to run twice."""

from __future__ import annotations

from core.jobs import unit_of_work
from surveys import services


def close_survey(survey_id: int) -> bool:
    """Close a survey's collection (closing an already closed survey changes nothing)."""
    with unit_of_work() as session:
        return services.close_survey(session, services.get_survey(session, survey_id))
