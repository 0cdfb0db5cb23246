"""Imports every model module so the metadata knows all tables (used by migrations and tests)."""

import app.api.models
import assessment.models
import core.audit
import core.models
import core.unit_imports
import governance.models
import routing.messages
import routing.models
import routing.phone_codes
import surveys.models

__all__ = ["app", "assessment", "core", "governance", "routing", "surveys"]
