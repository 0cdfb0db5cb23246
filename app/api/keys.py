"""Partner API keys: issue, revoke, check (hashed at rest, scoped, rate limited, every use recorded)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError
from sqlalchemy import select

from app.api.models import SCOPES, ApiKey
from core import audit
from core.db import DbSession, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "mh"


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of checking a presented key: the row when it passed, else an error code."""

    key: ApiKey | None
    error: str | None  # missing, invalid, revoked, scope, rate_limited


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def issue(
    session: DbSession, name: str, scopes: list[str], rate_limit: str, created_by_id: int | None
) -> str:
    """Store a new key and return its full text (shown once; only its hash is kept). Flush only."""
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise ValueError(f"unknown scopes {bad}")
    parse(rate_limit)  # raises ValueError on a malformed limit
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    session.add(
        ApiKey(
            name=name,
            prefix=prefix,
            key_hash=_digest(secret),
            scopes=list(scopes),
            rate_limit=rate_limit,
            created_by_id=created_by_id,
            created_at=utcnow(),
        )
    )
    session.flush()
    return f"{KEY_PREFIX}_{prefix}_{secret}"


def revoke(session: DbSession, key_id: int) -> ApiKey | None:
    """Mark a key revoked (flush only); None when there is no such key."""
    key = session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def find(session: DbSession, presented: str | None) -> KeyCheck:
    """The key a presented text names, if its secret matches (constant time) and it is not revoked."""
    if not presented:
        return KeyCheck(None, "missing")
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return KeyCheck(None, "invalid")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    given = _digest(parts[2]).encode()
    if key is None or not hmac.compare_digest(key.key_hash.encode(), given):
        return KeyCheck(None, "invalid")
    if key.revoked_at is not None:
        return KeyCheck(None, "revoked")
    return KeyCheck(key, None)


def _limiters() -> tuple[FixedWindowRateLimiter, FixedWindowRateLimiter]:
    """The per-key limiter (the app's Redis unless API_KEY_LIMIT_STORAGE_URI names another storage,
    so every web process counts the same window) and an in-memory one used while that storage fails."""
    state = current_app.extensions.get("api_key_limiter")
    if state is None:
        import app.ratelimit  # noqa: F401 - registers the minhu-app-redis:// storage scheme

        uri = current_app.config.get("API_KEY_LIMIT_STORAGE_URI") or "minhu-app-redis://"
        prefix = f"{current_app.config.get('RQ_QUEUE_PREFIX', '')}minhu-api-keys"
        options = {"key_prefix": prefix} if uri.startswith(("minhu-app-redis", "redis")) else {}
        storages = (storage_from_string(uri, **options), storage_from_string("memory://"))
        _storages.extend(storages)
        state = current_app.extensions["api_key_limiter"] = (
            FixedWindowRateLimiter(storages[0]),
            FixedWindowRateLimiter(storages[1]),
        )
    return state


_storages: list[Any] = []  # every storage the per-key limiters were built on (reset_counters clears them)


def reset_counters() -> None:
    """Forget every per-key count (tests; the storage of a Redis that went away is skipped)."""
    for storage in _storages:
        try:
            storage.reset()
        except (RedisError, OSError):
            continue


def _hit(limit: str, key_id: int) -> bool:
    """Count one use against the key's limit; False when the window is used up."""
    shared, fallback = _limiters()
    item = parse(limit)
    try:
        return shared.hit(item, "api-key", str(key_id))
    except (RedisError, OSError) as exc:  # Redis down must not take the partner API down with it
        log.warning(
            "api_key limit storage unavailable (%s); counting in this process", exc.__class__.__name__
        )
        return fallback.hit(item, "api-key", str(key_id))


def authorise(session: DbSession, presented: str | None, scope: str) -> KeyCheck:
    """Check a key for ``scope`` and its rate limit, and record the use (flush only; the view commits)."""
    check = find(session, presented)
    if check.key is None:
        return check
    key = check.key
    if scope not in (key.scopes or []):
        record_use(session, key, scope, "scope")
        return KeyCheck(None, "scope")
    if not _hit(key.rate_limit or "60/minute", key.id):
        record_use(session, key, scope, "rate_limited")
        return KeyCheck(None, "rate_limited")
    key.last_used_at = utcnow()
    record_use(session, key, scope, "ok")
    return check


def record_use(session: DbSession, key: ApiKey, scope: str, outcome: str) -> None:
    """Attribute one use of a key in the audit trail (route, scope, outcome; never the request's content)."""
    audit.record(
        session,
        "api_key.use",
        object_type="api_key",
        object_id=key.id,
        details={"scope": scope, "outcome": outcome, "path": request.path, "method": request.method},
    )
