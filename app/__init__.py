"""民呼我应 web shell: the composition root ``create_app``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from app import config as app_config
from app.extensions import babel, csrf, db, login_manager, migrate
from core.privacy import PiiLogFilter

ROOT = Path(__file__).resolve().parent.parent
SQLITE_BEGIN = "minhu_sqlite_begin"  # execution option: how a SQLite transaction begins


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then environment, then ``config`` overrides."""
    instance = Path((config or {}).get("INSTANCE_PATH") or ROOT / "instance")
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    app.config.update(app_config.load(instance, config))
    _configure_logging(app)

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    db.init_app(app)
    with app.app_context():
        _configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    babel.init_app(app)
    login_manager.init_app(app)

    from app import (
        api,
        audit,
        auth,
        cli,
        errors,
        models,  # noqa: F401 - registers every table on the metadata (migrations, create_all)
        ratelimit,
        web,
    )

    ratelimit.init_app(app)
    audit.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    api.init_app(app)
    cli.init_app(app)
    _configure_jobs(app)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    """No Referer leaves the site (it would carry the status page's private ?k= token); no MIME sniffing."""
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _configure_logging(app: Flask) -> None:
    """Mask phone numbers and private-link tokens in every log record, whatever handler writes it."""
    app.logger.setLevel(app.config["LOG_LEVEL"])
    pii = PiiLogFilter()
    for handler in logging.getLogger().handlers + app.logger.handlers:
        handler.addFilter(pii)
    # A logger's own filters see only records logged on it (not its children's), so the loggers that
    # print request lines (werkzeug's dev server access log, waitress, RQ) get the filter themselves.
    for name in ("", "werkzeug", "waitress", "rq.worker"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, PiiLogFilter) for f in logger.filters):
            logger.addFilter(pii)


def _configure_engine(engine: Engine) -> None:
    """SQLite: real transactions and savepoints, foreign keys, WAL so web and worker processes can share it."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_minhu_configured", False):
        return
    engine._minhu_configured = True  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        # Jobs ask for BEGIN IMMEDIATE (see _configure_jobs); pages keep deferred transactions.
        connection.exec_driver_sql(connection.get_execution_options().get(SQLITE_BEGIN, "BEGIN"))


def _configure_jobs(app: Flask) -> None:
    """Wire the job ports: domain jobs get sessions from this app's engine and enqueue through RQ."""
    from app import queue
    from core import jobs

    factories: list[sessionmaker[Session]] = []

    def session_factory() -> Session:
        # One sessionmaker per app, built on first use (the engine exists only inside an app context).
        if not factories:
            with app.app_context():
                # A job reads then writes; on SQLite a deferred transaction whose snapshot went stale
                # fails at once with "database is locked", while IMMEDIATE waits its turn (busy_timeout).
                engine = db.engine.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
                factories.append(sessionmaker(bind=engine))
        return factories[0]()

    def enqueuer(task: str, args: tuple[Any, ...]) -> None:
        queue.enqueue(app, task, args)

    jobs.configure(session_factory, enqueuer)
    app.extensions["session_factory"] = session_factory
