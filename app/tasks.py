"""Worker-side entry point: build the app once per process, then run a domain task inside it."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from werkzeug.utils import import_string

_app: Flask | None = None
_pid: int | None = None


def worker_app() -> Flask:
    """The app of this worker process; after a fork the inherited engine pool is discarded first."""
    global _app, _pid
    if _app is None:
        from app import create_app

        _app, _pid = create_app(), os.getpid()
    elif _pid != os.getpid():
        from app.extensions import db

        with _app.app_context():
            db.engine.dispose(close=False)  # never reuse a parent's sockets in a forked child
        _pid = os.getpid()
    return _app


def set_worker_app(app: Flask) -> None:
    """Preload the app (``flask worker`` does, so forked jobs skip the imports and the engine set-up)."""
    global _app, _pid
    _app, _pid = app, os.getpid()


def call_task(task: str, *args: Any) -> Any:
    """Import a dotted task path and call it with its arguments."""
    return import_string(task)(*args)


def run_task(task: str, *args: Any) -> Any:
    """RQ entry point: run ``task`` inside this process's app context."""
    with worker_app().app_context():
        return call_task(task, *args)
