"""gunicorn settings for the web service: ``gunicorn -c gunicorn.conf.py "app:create_app()"``.

Everything comes from the environment (README, "Production deployment"):

- ``GUNICORN_BIND`` (default ``0.0.0.0:8000``), ``GUNICORN_WORKERS`` (default 2 × cores + 1, capped
  at 8), ``GUNICORN_THREADS`` (default 4; more than 1 selects the ``gthread`` worker),
  ``GUNICORN_TIMEOUT`` (default 60 s), ``GUNICORN_FORWARDED_ALLOW_IPS`` (default ``127.0.0.1``: the
  addresses of reverse proxies whose X-Forwarded-* headers are trusted).
- ``PROMETHEUS_MULTIPROC_DIR``: prometheus_client's shared directory, so /metrics sums every worker.
  It is created when missing and emptied when the server starts (stale files of a previous run would
  be counted again); ``child_exit`` marks a dead worker's files so its live gauges disappear.

gunicorn writes no access log of its own: the app logs one JSON line per request with its request id.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Set before any worker imports prometheus_client (workers inherit the master's environment).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="minhu-prometheus-")

wsgi_app = "app:create_app()"
bind = [os.environ.get("GUNICORN_BIND") or "0.0.0.0:8000"]
workers = _int("GUNICORN_WORKERS", min(8, multiprocessing.cpu_count() * 2 + 1))
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS") or "127.0.0.1"
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)  # recycle workers after N requests (0: never)
max_requests_jitter = max_requests // 10
accesslog = None  # the app writes the access line (app/ops.py)
errorlog = "-"
loglevel = (os.environ.get("LOG_LEVEL") or "info").lower()
# gunicorn's own lines (booting, worker exits) in the app's JSON format, scrubbed the same way.
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.logging_setup.JsonFormatter"}},
    "filters": {
        "context": {"()": "app.logging_setup.ContextFilter"},
        "privacy": {"()": "core.privacy.PiiLogFilter"},
    },
    "handlers": {
        "stderr": {
            "class": "app.logging_setup.StderrHandler",
            "formatter": "json",
            "filters": ["context", "privacy"],
        },
    },
    "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}


def on_starting(server: Any) -> None:
    """Start with an empty metrics directory: files of a previous run would be summed again."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    if directory.exists():
        for child in directory.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def post_worker_init(worker: Any) -> None:
    """Freeze what loading the app allocated (~300,000 objects): the cyclic collector never walks them
    again. A full collection otherwise walked them all, ~0.2 s every few thousand requests."""
    gc.freeze()


def child_exit(server: Any, worker: Any) -> None:
    """A worker died or was recycled: drop its live-gauge files from the shared metrics directory."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
