"""Partner API keys: issue, revoke, check (hashed at rest, scoped, rate limited, every use recorded)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import request
from limits import parse
from sqlalchemy import select

from app.api.models import SCOPES, ApiKey
from app.ratelimit import Counter
from core import audit
from core.db import DbSession, utcnow

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


_COUNTER = Counter("api-keys", "API_KEY_LIMIT_STORAGE_URI")


def authorise(session: DbSession, presented: str | None, scope: str) -> KeyCheck:
    """Check a key for ``scope`` and its rate limit, and record the use (flush only; the view commits)."""
    check = find(session, presented)
    if check.key is None:
        return check
    key = check.key
    if scope not in (key.scopes or []):
        record_use(session, key, scope, "scope")
        return KeyCheck(None, "scope")
    if not _COUNTER.hit(key.rate_limit or "60/minute", str(key.id)):
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
