"""Imports every model module so the metadata knows all tables (used by migrations and tests)."""

import core.audit
import core.models
import routing.models
import surveys.indicators
import surveys.models

__all__ = ["core", "routing", "surveys"]
