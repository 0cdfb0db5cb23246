"""Pages for people: residents, operators and (in later blueprints) staff."""

from __future__ import annotations

from flask import Flask

from app.web import present, public, surveys


def init_app(app: Flask) -> None:
    """Register the page blueprints and template helpers."""
    app.register_blueprint(public.bp)
    app.register_blueprint(surveys.bp)
    app.register_blueprint(__import__("app.web.assessment", fromlist=["bp"]).bp)
    app.register_blueprint(__import__("app.web.workbench", fromlist=["bp"]).bp)
    app.register_blueprint(__import__("app.web.admin", fromlist=["bp"]).bp)
    present.init_app(app)
