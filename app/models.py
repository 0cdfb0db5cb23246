"""Imports every model module so the metadata knows all tables (used by migrations and tests)."""

import surveys.models  # noqa: F401 - registers the survey tables
from core.models import Category, Unit, User
from routing.models import Case, CaseEvent
from surveys.indicators import CompositeWeights, EvaluatorEntry, IndicatorSystem, ReviewItem, Score, ScoringRun  # noqa: F401

__all__ = ["Case", "CaseEvent", "Category", "Unit", "User"]
