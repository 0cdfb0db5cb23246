"""Pages for people: residents, operators and (in later blueprints) staff."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_login import current_user

from app.photos import request_limit
from app.web import (
    account,
    admin,
    assessment,
    calendar_admin,
    contact,
    governance,
    imports,
    ledgers,
    messages_admin,
    partners,
    password_reset,
    photos,
    present,
    public,
    surveys,
    workbench,
)
from app.web import assessment_casemix as _assessment_casemix  # noqa: F401 - adds its routes to assessment.bp
from app.web import assessment_exports as _assessment_exports  # noqa: F401 - adds its routes to assessment.bp
from core.models import Role

# Views that take files from evaluators and admins (XLSForms, paper questionnaires, population margins,
# evidence photos, dispatch rules): their bodies may reach UPLOAD_MAX_BYTES; every other request, and
# anyone else posting to these, stays at MAX_CONTENT_LENGTH.
UPLOAD_ENDPOINTS = frozenset(
    {
        "surveys.index",
        "surveys.import_xlsform",
        "surveys.margins",
        "surveys.paper",
        "assessment.entries",
        "admin.upload_rules",
        "imports.units",
    }
)
UPLOAD_ROLES = frozenset({Role.evaluator, Role.admin})
# Views that take photos (residents', operators' and handlers' resolve): anyone may send up to
# PHOTO_MAX_COUNT photos of PHOTO_MAX_BYTES each; the photos' own checks refuse more.
PHOTO_ENDPOINTS = frozenset(
    {"web.new_request", "web.hotline_request", "api_v1.create_request", "workbench.act"}
)


def upload_limit() -> None:
    """Raise this request's body limit to UPLOAD_MAX_BYTES for staff uploads (before CSRF reads the form)."""
    # The endpoint first: most requests need not load the signed-in user here.
    if (
        request.endpoint in UPLOAD_ENDPOINTS
        and current_user.is_authenticated
        and current_user.role in UPLOAD_ROLES
    ):
        request.max_content_length = int(current_app.config["UPLOAD_MAX_BYTES"])
    elif request.endpoint in PHOTO_ENDPOINTS and request.mimetype == "multipart/form-data":
        # Only file parts may be large: Werkzeug holds each text part to MAX_FORM_MEMORY_SIZE (500 KB).
        request.max_content_length = request_limit()


def init_app(app: Flask) -> None:
    """Register the page blueprints and template helpers."""
    for module in (
        public,
        photos,
        surveys,
        assessment,
        workbench,
        admin,
        calendar_admin,
        imports,
        account,
        contact,
        governance,
        ledgers,
        partners,
        password_reset,
    ):
        app.register_blueprint(module.bp)
    app.register_blueprint(messages_admin.bp)
    present.init_app(app)
    # First of the app's hooks: Flask-WTF's CSRF check (registered earlier) already parses the form.
    app.before_request_funcs.setdefault(None, []).insert(0, upload_limit)
