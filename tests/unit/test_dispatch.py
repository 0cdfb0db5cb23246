"""Who hands a new case to routing: the database (async jobs) or the web process (jobs run inline)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from app.dispatch import database_hands_over, file_lock, libpq_url, lock_key

PG = "postgresql+psycopg://minhu:s3cret@db.internal:5432/minhu?sslmode=require"
SQLITE = "sqlite:////var/lib/minhu/minhu.sqlite3"


def app_with(**config: Any) -> Flask:
    app = Flask("dispatch-test")
    app.config.update(config)
    return app


@pytest.mark.parametrize(
    ("url", "mode", "rq_async", "expected"),
    [
        (PG, "auto", True, True),
        (PG, "auto", False, False),  # jobs run inline: the request itself routes the case
        (SQLITE, "auto", True, True),  # the dispatcher watches SQLite instead of listening
        (SQLITE, "auto", False, False),
        (PG, "web", True, False),
        (PG, "database", True, True),
        (PG, None, True, True),  # unset means auto
    ],
)
def test_hand_off_by_database_and_mode(url: str, mode: str | None, rq_async: bool, expected: bool) -> None:
    app = app_with(SQLALCHEMY_DATABASE_URI=url, ROUTING_HANDOFF=mode, RQ_ASYNC=rq_async)
    assert database_hands_over(app) is expected


def test_a_wrong_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="ROUTING_HANDOFF must be one of"):
        database_hands_over(app_with(SQLALCHEMY_DATABASE_URI=PG, ROUTING_HANDOFF="redis"))


def test_one_file_lock_per_host_on_sqlite(tmp_path: Any) -> None:
    path = tmp_path / "routing-dispatcher.lock"
    with file_lock(path) as first:
        assert first
        with file_lock(path) as second:  # another open file: as another process would see it
            assert not second
    with file_lock(path) as again:  # released on leaving
        assert again


def test_the_listening_connection_uses_libpq_form_of_the_url() -> None:
    assert libpq_url(PG) == "postgresql://minhu:s3cret@db.internal:5432/minhu?sslmode=require"


def test_one_lock_per_queue_prefix() -> None:
    plain, other = lock_key(app_with()), lock_key(app_with(RQ_QUEUE_PREFIX="it-1-"))
    assert plain != other
    assert plain == lock_key(app_with(RQ_QUEUE_PREFIX=""))
    assert -(2**63) <= plain < 2**63  # a PostgreSQL bigint
