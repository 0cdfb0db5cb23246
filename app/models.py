"""Imports every model module so the metadata knows all tables (used by migrations and tests)."""

import core.models
import core.unit_imports
import routing.models
import surveys.indicators
import surveys.models

__all__ = ["core", "routing", "surveys"]
