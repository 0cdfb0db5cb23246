"""民呼我应 web shell: the composition root ``create_app``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.orm import sessionmaker

from app import config as app_config
from app.extensions import babel, csrf, db, login_manager, migrate
from core.privacy import PiiLogFilter

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then environment, then ``config`` overrides."""
    instance = Path((config or {}).get("INSTANCE_PATH") or ROOT / "instance")
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    app.config.update(app_config.load(instance, config))
    _configure_logging(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    babel.init_app(app)
    login_manager.init_app(app)

    from app import models  # noqa: F401 - registers every table on the metadata (migrations, create_all)
    from app import api, auth, cli, errors, web

    auth.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    api.init_app(app)
    cli.init_app(app)
    _configure_jobs(app)
    return app


def _configure_logging(app: Flask) -> None:
    """Mask phone numbers in every log record, whatever handler writes it."""
    app.logger.setLevel(app.config["LOG_LEVEL"])
    pii = PiiLogFilter()
    for handler in logging.getLogger().handlers + app.logger.handlers:
        handler.addFilter(pii)
    if not any(isinstance(f, PiiLogFilter) for f in logging.getLogger().filters):
        logging.getLogger().addFilter(pii)


def _configure_jobs(app: Flask) -> None:
    """Wire the job ports: domain jobs get sessions from this app's engine and enqueue through RQ."""
    from app import queue
    from core import jobs

    def session_factory() -> Any:
        with app.app_context():
            return sessionmaker(bind=db.engine)()

    jobs.configure(session_factory, lambda task, args: queue.enqueue(app, task, args) and None)
    app.extensions["session_factory"] = session_factory
