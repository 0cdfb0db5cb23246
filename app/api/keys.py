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
from sqlalchemy import select

from app.api.models import SCOPES, ApiKey
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


def _limiter() -> tuple[FixedWindowRateLimiter, Any]:
    state = current_app.extensions.get("api_key_limiter")
    if state is None:
        uri = current_app.config.get("API_KEY_LIMIT_STORAGE_URI") or "memory://"
        state = current_app.extensions["api_key_limiter"] = (
            FixedWindowRateLimiter(storage_from_string(uri)),
            uri,
        )
    return state


def authorise(session: DbSession, presented: str | None, scope: str) -> KeyCheck:
    """Check a key for ``scope`` and its rate limit, and record the use (flush only; the view commits)."""
    check = find(session, presented)
    if check.key is None:
        return check
    key = check.key
    if scope not in (key.scopes or []):
        record_use(session, key, scope, "scope")
        return KeyCheck(None, "scope")
    limiter, _uri = _limiter()
    if not limiter.hit(parse(key.rate_limit or "60/minute"), "api-key", str(key.id)):
        record_use(session, key, scope, "rate_limited")
        return KeyCheck(None, "rate_limited")
    key.last_used_at = utcnow()
    record_use(session, key, scope, "ok")
    return check


def record_use(session: DbSession, key: ApiKey, scope: str, outcome: str) -> None:
    """Attribute one use of a key (its id and name, the route and outcome; never the request's content)."""
    log.info(
        "api key use",
        extra={
            "api_key_id": key.id,
            "api_key": key.name,
            "scope": scope,
            "outcome": outcome,
            "path": request.path,
        },
    )
