"""Shared fixtures: one app and schema per test run, and a rolled-back transaction per test.

The database is SQLite in a temporary folder unless DATABASE_URL points elsewhere (CI runs the suite a
second time against PostgreSQL). Each test runs inside an outer transaction that is rolled back, with
the app's ``db.session`` swapped for a session that turns commits into savepoints (Flask-SQLAlchemy's
own session ignores ``bind=connection``; see ARCHITECTURE.md, known traps).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session, scoped_session

from app import create_app
from app.extensions import db
from core import jobs

CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    """Remember the database in the report header."""
    config.addinivalue_line("markers", "nodb: test needs no database")


def pytest_report_header(config: pytest.Config) -> str:
    """Say which database and Redis the run uses."""
    return f"database: {_database_url() or 'SQLite (temporary)'}; redis: {os.environ.get('REDIS_URL') or 'embedded'}"


def _database_url() -> str | None:
    return os.environ.get("DATABASE_URL") or None


@pytest.fixture(scope="session")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app with a fresh schema and the reference data every test may rely on."""
    instance = tmp_path_factory.mktemp("instance")
    url = _database_url() or f"sqlite:///{instance / 'test.sqlite3'}"
    application = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": url,
            "SECRET_KEY": "test-secret",
            "RQ_ASYNC": False,
            "WTF_CSRF_ENABLED": False,
            "TESTING": True,
            "SERVER_NAME": "localhost",
            "WEBHOOK_ALLOW_PRIVATE": True,  # the test receivers listen on loopback
        }
    )
    with application.app_context():
        _reset_schema()
        from app.demo import load_demo
        from app.web.public import token_key

        with application.test_request_context():
            load_demo(db.session, token_key())
        db.session.commit()
        db.session.remove()
        from routing.jobs import sweep

        sweep(older_than_seconds=0)  # route the demo samples (jobs run inline), as `flask demo` does
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _reset_schema() -> None:
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        db.drop_all()
    db.create_all()


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Each test starts with no rate-limit counters; the limiter itself stays on, on the real storage."""
    from app.ratelimit import reset_all

    reset_all()  # before as well: another app built by a test may have re-pointed the shared limiter
    yield
    reset_all()


@pytest.fixture
def csrf_app(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """A second app on the same database and instance with CSRF on (the shared fixture turns it off)."""
    # create_app rewires the global job ports; put them back afterwards.
    monkeypatch.setattr(jobs, "_session_factory", jobs._session_factory)
    monkeypatch.setattr(jobs, "_enqueuer", jobs._enqueuer)
    protected = create_app(
        {
            "INSTANCE_PATH": app.instance_path,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "SECRET_KEY": "csrf-test-secret",
            "RQ_ASYNC": False,
            "WTF_CSRF_ENABLED": True,
            "TESTING": True,
        }
    )
    yield protected
    with protected.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session inside a transaction rolled back after the test; also serves db.session and jobs."""
    with rolled_back_session(app) as scoped:
        yield scoped


@contextmanager
def rolled_back_session(app: Flask) -> Iterator[Session]:
    """The ``session`` fixture's transaction, for fixtures of a wider scope (e.g. one per module)."""
    from app.ratelimit import reset_all
    from routing.intake import reference_cache
    from routing.messages import staff_recipients

    reference_cache.clear()  # cached look-ups must not outlive the rolled-back rows they came from
    staff_recipients.clear()
    reset_all(app)  # this app's own counters, whichever app the shared limiter was last bound to
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()

        def factory() -> Session:
            return Session(bind=connection, join_transaction_mode="create_savepoint")

        scoped = scoped_session(factory)
        original = db.session
        db.session = scoped  # type: ignore[assignment]
        previous_factory = app.extensions["session_factory"]
        jobs.configure(factory, lambda task, args: _enqueue(app, task, args))
        try:
            yield scoped()
        finally:
            scoped.remove()
            db.session = original  # type: ignore[assignment]
            jobs.configure(previous_factory, lambda task, args: _enqueue(app, task, args))
            outer.rollback()
            connection.close()


@pytest.fixture(autouse=True)
def _fresh_working_calendar() -> Iterator[None]:
    """The per-process calendar cache may hold a test's rolled-back notice: start and end each test clean."""
    from routing.calendar_store import invalidate

    invalidate()
    yield
    invalidate()


@pytest.fixture(autouse=True)
def _fresh_webhook_subscriptions() -> Iterator[None]:
    """The per-process cache of webhook subscriptions may hold a test's rolled-back endpoint."""
    from app.api.webhooks import forget_subscriptions

    forget_subscriptions()
    yield
    forget_subscriptions()


def _enqueue(app: Flask, task: str, args: tuple[Any, ...]) -> None:
    from app.queue import enqueue

    enqueue(app, task, args)


@pytest.fixture
def client(app: Flask, session: Session) -> Any:
    """Flask test client sharing the test's transaction."""
    return app.test_client()


def login(client: Any, username: str, password: str = "demo-pass-2026") -> None:
    """Sign a test client in as one of the demo users."""
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.data.decode()[:500]


STRONG_PASSWORD = "harbour-kettle-93"  # passes the password policy; for accounts tests create


def new_user(session: Session, username: str, role: str, unit_code: str | None = None) -> Any:
    """Create (and flush) an account with STRONG_PASSWORD; staff need a unit code."""
    from app.accounts import create_user

    return create_user(session, username, STRONG_PASSWORD, role, unit_code)


@pytest.fixture
def shared_path() -> Path:
    """The ../shared folder beside the repository (reference data of the work plan)."""
    return Path(__file__).resolve().parent.parent.parent / "shared"
