"""Shared builders of the integration tier: an app on a PostgreSQL database of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

CI = os.environ.get("CI", "").lower() == "true"
_DB = os.environ.get("DATABASE_URL", "")
DATABASE_URL = (
    _DB if _DB.startswith(("postgresql", "postgres")) else "postgresql://postgres@127.0.0.1:5432/test"
)


REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_missing() -> str | None:
    """Why the real Redis cannot be used here (None when it can)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} unreachable: {exc.__class__.__name__}"
    finally:
        client.close()
    return None


def postgres_missing() -> str | None:
    """Why PostgreSQL cannot be used here (None when it can)."""
    engine = create_engine(make_url(DATABASE_URL).set(drivername="postgresql+psycopg"))
    try:
        engine.connect().close()
    except Exception as exc:
        return f"PostgreSQL unreachable: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    return None


@contextmanager
def postgresql_app(instance: Path, prefix: str, **config: Any) -> Iterator[Any]:
    """An app on a PostgreSQL database it creates (demo reference data loaded) and drops afterwards;
    jobs run inline. Skips when PostgreSQL is unreachable — except under CI, where it fails."""
    missing = postgres_missing()
    if missing:
        if CI:
            pytest.fail(missing)
        pytest.skip(missing)
    from app import create_app
    from app.demo import load_demo
    from app.extensions import db
    from core import jobs as core_jobs

    admin_url = make_url(DATABASE_URL).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    saved = (core_jobs._session_factory, core_jobs._enqueuer)
    app = create_app(
        {
            "INSTANCE_PATH": str(instance),
            "DATABASE_URL": admin_url.set(database=name).render_as_string(hide_password=False),
            "SECRET_KEY": f"{prefix}-secret",
            "RQ_ASYNC": False,
            **config,
        }
    )
    try:
        with app.app_context():
            db.create_all()
            with app.test_request_context():
                from app.web.public import token_key

                load_demo(db.session, token_key())
            db.session.commit()
            db.session.remove()
        app.extensions["test_db_name"] = name
        yield app
    finally:
        core_jobs.configure(*saved)  # type: ignore[arg-type]
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
