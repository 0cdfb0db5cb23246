"""Operations: request ids and access lines, ``/healthz``, ``/readyz`` and ``/metrics``.

Per request the hooks cost one ContextVar set, two ``perf_counter`` calls, one counter increment, one
histogram observation and one log line; everything that needs the database or Redis runs only when
``/readyz`` or ``/metrics`` is asked for.

Who may read ``/metrics``: a client presenting ``Authorization: Bearer <METRICS_TOKEN>`` when that
token is configured, or a client on the loopback address whose request carries no forwarding header
(so a reverse proxy on the same host cannot hand it to the internet). Everyone else gets 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_babel import gettext as _
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import csrf, db
from app.logging_setup import REQUEST_ID

log = logging.getLogger(__name__)
access_log = logging.getLogger("minhu.access")
bp = Blueprint("ops", __name__)

ROOT = Path(__file__).resolve().parent.parent
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUARTER = re.compile(r"^\d{4}Q[1-4]$")
OPS_ENDPOINTS = frozenset({"ops.healthz", "ops.readyz", "ops.metrics"})
UNROUTED_STATES = ("submitted", "dispatching")  # not yet with a handling unit
CALENDAR_HORIZON_DAYS = 90

REQUESTS = Counter(
    "minhu_http_requests",
    "HTTP requests answered, by endpoint, method and status",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "minhu_http_request_duration_seconds",
    "Time to answer an HTTP request, by endpoint",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# --- request id and access line -------------------------------------------------------------------


def _start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_id = request_id
    g.request_started = time.perf_counter()
    REQUEST_ID.set(request_id)


def _finish_request(response: Response) -> Response:
    started = g.get("request_started")
    request_id = g.get("request_id")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    if started is None:
        return response
    duration = time.perf_counter() - started
    endpoint = request.endpoint or "none"  # the rule, never the raw path: bounded label values
    status = response.status_code
    REQUESTS.labels(endpoint, request.method, str(status)).inc()
    LATENCY.labels(endpoint).observe(duration)
    # The path only: the query string may hold a private-link token or search terms.
    access_log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        status,
        duration * 1000,
        extra={
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "endpoint": endpoint,
        },
    )
    return response


def _end_context(_exc: BaseException | None) -> None:
    REQUEST_ID.set(None)


# --- liveness and readiness -----------------------------------------------------------------------


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness: the process answers; no database or Redis I/O."""
    return jsonify({"status": "ok"})


@cache
def migration_heads() -> tuple[str, ...]:
    """Head revisions of the migration scripts shipped with this code (read once per process)."""
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory(str(ROOT / "migrations")).get_heads()))


def _check_database() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True}


def _check_migrations() -> dict[str, Any]:
    heads = list(migration_heads())
    try:
        with db.session.begin_nested():
            current = sorted(db.session.scalars(text("SELECT version_num FROM alembic_version")).all())
    except SQLAlchemyError as exc:
        return {"ok": False, "error": exc.__class__.__name__, "head": heads, "current": []}
    result: dict[str, Any] = {"ok": current == heads, "head": heads, "current": current}
    if current != heads:
        result["error"] = "not_at_head"
    return result


def readiness_redis(app: Flask) -> Any:
    """A Redis client for probes, with short timeouts so a hung Redis fails the probe instead of it."""
    client = app.extensions.get("ops_redis")
    if client is None:
        url = app.config.get("REDIS_URL")
        if url:
            from redis import Redis

            client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        else:
            from app.redis_conn import redis_for

            client = redis_for(app)  # the embedded server of the one-command run
        app.extensions["ops_redis"] = client
    return client


def _check_redis(app: Flask) -> dict[str, Any]:
    try:
        readiness_redis(app).ping()
    except Exception as exc:  # redis raises RedisError or OSError subclasses; a probe reports, never raises
        return {"ok": False, "error": exc.__class__.__name__}
    return {"ok": True}


def calendar_warnings(today: Any = None) -> list[dict[str, str]]:
    """Years within the next 90 days that the stored holiday notices do not cover (deadlines there are
    provisional until the year's notice is imported)."""
    from app.extensions import db
    from core.db import utcnow
    from routing.calendar_store import uncovered_dates

    start = today or (utcnow() + timedelta(hours=8)).date()  # Beijing date
    missing = sorted({day.year for day in uncovered_dates(db.session(), start, CALENDAR_HORIZON_DAYS)})
    if not missing:
        return []
    listed = "、".join(str(y) for y in missing)
    return [
        {
            "check": "calendar",
            "code": "calendar_not_covered",
            "message": _(
                "未来 %(days)s 天内的 %(years)s 年节假日与调休数据缺失，期间的时限为暂定（按周一至周五与法定节日计算），导入当年通知后重算",
                days=CALENDAR_HORIZON_DAYS,
                years=listed,
            ),
        }
    ]


def dispatcher_warnings(app: Flask) -> list[dict[str, str]]:
    """A warning when the database hands new cases over but no routing worker holds the dispatcher's
    lead (they would then wait for the beat's sweeper)."""
    from app.dispatch import database_hands_over, dispatcher_running

    if not database_hands_over(app) or dispatcher_running(app, db.session):
        return []
    return [
        {
            "check": "dispatcher",
            "code": "no_dispatcher",
            "message": _(
                "没有派单分发进程：新工单要等补派扫描（每分钟）才会派出，请运行处理 routing 队列的 flask worker"
            ),
        }
    ]


@bp.get("/readyz")
def readyz() -> Any:
    """Readiness: database, Redis and migrations at head; 503 naming what failed; calendar as a warning."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    checks = {
        "database": _check_database(),
        "redis": _check_redis(app),
    }
    checks["migrations"] = (
        _check_migrations() if checks["database"]["ok"] else {"ok": False, "error": "database_unavailable"}
    )
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {
        "status": "fail" if failed else "ok",
        "failed": failed,
        "checks": checks,
        "warnings": [*calendar_warnings(), *dispatcher_warnings(app)] if checks["database"]["ok"] else [],
    }
    db.session.rollback()
    response = jsonify(body)
    response.status_code = 503 if failed else 200
    response.headers["Cache-Control"] = "no-store"
    return response


# --- metrics --------------------------------------------------------------------------------------


def metrics_allowed(app: Flask) -> bool:
    """Bearer METRICS_TOKEN when configured, else loopback without forwarding headers."""
    token = app.config.get("METRICS_TOKEN") or ""
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].encode(), token.encode())
    if any(h in request.headers for h in ("X-Forwarded-For", "Forwarded", "X-Real-IP")):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


class StateCollector(Collector):
    """Gauges read at scrape time from the database and Redis, so every process reports the same."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Cases by state, oldest unrouted case, queue depth and failures, scoring-run durations."""
        errors = GaugeMetricFamily(
            "minhu_metrics_source_up", "1 when the source could be read for this scrape", labels=["source"]
        )
        try:
            yield from self._database()
            errors.add_metric(["database"], 1)
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("metrics: database unavailable")
            errors.add_metric(["database"], 0)
        try:
            yield from self._redis()
            errors.add_metric(["redis"], 1)
        except Exception as exc:  # any Redis/connection failure: report it as a gauge, never a 500
            log.warning("metrics: Redis unavailable (%s)", exc.__class__.__name__)
            errors.add_metric(["redis"], 0)
        yield errors

    def _database(self) -> Iterator[Metric]:
        from core.db import utcnow
        from routing.models import Case

        states = GaugeMetricFamily("minhu_cases", "Cases by state", labels=["state"])
        for state, count in db.session.execute(select(Case.state, func.count()).group_by(Case.state)):
            states.add_metric([state], count)
        oldest = db.session.scalar(select(func.min(Case.created_at)).where(Case.state.in_(UNROUTED_STATES)))
        age = GaugeMetricFamily(
            "minhu_oldest_unrouted_case_age_seconds",
            "Age of the oldest case not yet with a handling unit (submitted or dispatching); 0 when none",
        )
        age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        db.session.rollback()
        yield states
        yield age

    def _redis(self) -> Iterator[Metric]:
        from rq import Queue
        from rq.job import Job
        from rq.registry import FailedJobRegistry, FinishedJobRegistry

        from app.queue import QUEUES, queue_name

        conn = readiness_redis(self.app)
        depth = GaugeMetricFamily("minhu_queue_jobs", "Jobs waiting in each RQ queue", labels=["queue"])
        failed = GaugeMetricFamily(
            "minhu_queue_failed_jobs", "Failed jobs kept for each queue", labels=["queue"]
        )
        for name in QUEUES:
            full = queue_name(self.app, name)
            queue = Queue(full, connection=conn)
            depth.add_metric([name], queue.count)
            failed.add_metric([name], conn.zcard(FailedJobRegistry(queue=queue).key))
        scoring = GaugeMetricFamily(
            "minhu_scoring_run_duration_seconds",
            "Duration of the latest finished scoring job per quarter (kept while RQ keeps the result)",
            labels=["quarter"],
        )
        registry = FinishedJobRegistry(queue=Queue(queue_name(self.app, "scoring"), connection=conn))
        ids = [i.decode() if isinstance(i, bytes) else i for i in conn.zrange(registry.key, -20, -1)]
        latest: dict[str, tuple[Any, float]] = {}
        for job in Job.fetch_many(ids, connection=conn):
            if job is None or not job.started_at or not job.ended_at:
                continue
            quarter = next((a for a in job.args if isinstance(a, str) and _QUARTER.match(a)), job.id)
            if quarter not in latest or job.ended_at > latest[quarter][0]:
                latest[quarter] = (job.ended_at, (job.ended_at - job.started_at).total_seconds())
        for quarter, (_ended, seconds) in sorted(latest.items()):
            scoring.add_metric([quarter], seconds)
        yield depth
        yield failed
        yield scoring


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus exposition: request counters and latency (all gunicorn workers), then state gauges."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not metrics_allowed(app):
        return jsonify(
            {"errors": [{"field": None, "code": "not_found", "message": _("页面或记录不存在")}]}
        ), 404
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        process_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(process_registry)
    else:
        process_registry = REGISTRY
    state_registry = CollectorRegistry(auto_describe=False)
    state_registry.register(StateCollector(app))
    payload = generate_latest(process_registry) + generate_latest(state_registry)
    return Response(payload, mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Register the ops endpoints and the per-request hooks (first, so they time every other hook)."""
    app.config.setdefault("METRICS_TOKEN", "")
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_context)
    csrf.exempt(bp)
    app.register_blueprint(bp)
