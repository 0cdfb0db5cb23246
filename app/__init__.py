"""民呼我应 web shell: the composition root ``create_app``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from app import config as app_config
from app import db_resilience, i18n, logging_setup, ops
from app.application import App
from app.extensions import babel, csrf, db, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent
SQLITE_BEGIN = "minhu_sqlite_begin"  # execution option: how a SQLite transaction begins


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then environment, then ``config`` overrides."""
    # INSTANCE_PATH (mapping or environment): uploads, evidence and the generated secret; a shared volume
    # when several hosts serve one city.
    instance = Path(
        (config or {}).get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH") or ROOT / "instance"
    )
    app = App(__name__, instance_path=str(instance), instance_relative_config=True)
    app.config.update(app_config.load(instance, config))
    _configure_logging(app)

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    # SQL parameters (a resident's name, phone, description) never go into error messages or logs.
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {}).setdefault("hide_parameters", True)
    db.init_app(app)
    with app.app_context():
        _configure_engine(db.engine)
    db_resilience.init_app(app)  # connections the server ended never surface as a 500
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    i18n.init_app(app, babel)  # locale per request (lang cookie, Accept-Language) and the switch
    login_manager.init_app(app)
    ops.init_app(app)  # request id, access line and metrics hooks first; /healthz, /readyz, /metrics

    from app import (
        api,
        audit,
        auth,
        cli,
        dispatch,
        errors,
        models,  # noqa: F401 - registers every table on the metadata (migrations, create_all)
        ratelimit,
        security,
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
    dispatch.database_hands_over(app)  # a bad ROUTING_HANDOFF fails at start-up, not at the first intake
    _trust_proxies(app)
    security.init_app(app)
    return app


def _configure_logging(app: Flask) -> None:
    """JSON lines (or text on a terminal) with request/job ids; phones, tokens and row values scrubbed."""
    app.logger.setLevel(app.config["LOG_LEVEL"])
    logging_setup.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])


def _trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` reverse proxies, the client's address and scheme come from their
    X-Forwarded-For/-Proto (Werkzeug's ProxyFix), so per-address limits see residents, not the proxy.
    Without it those headers are ignored: a client could otherwise pick any address it likes."""
    hops = int(app.config.get("TRUSTED_PROXIES") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]


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
