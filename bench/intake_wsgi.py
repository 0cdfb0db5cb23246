"""WSGI entry for bench/bench_intake.py: the real app, and beside it (``/bare``) a bare Flask-SQLAlchemy
app that inserts one row per POST into the same database — the ceiling of the stack on this machine.

gunicorn loads ``bench.intake_wsgi:build()``; the configuration comes from the environment
(DATABASE_URL, REDIS_URL, RQ_QUEUE_PREFIX, SECRET_KEY) exactly as in production.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Column, Integer, MetaData, String, Table
from werkzeug.middleware.dispatcher import DispatcherMiddleware

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from app.config import normalise_database_url

bare_metadata = MetaData()
BARE = Table(
    "bench_bare",
    bare_metadata,
    Column("id", Integer, primary_key=True),
    Column("description", String(2000), nullable=False),
)


def bare_app() -> Flask:
    """One route: insert the posted description as one row and commit (nothing else)."""
    bare = Flask("bare")
    bare.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
    if bare.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        bare.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    bare_db = SQLAlchemy(metadata=bare_metadata)
    bare_db.init_app(bare)

    @bare.post("/")
    def insert_one() -> Any:
        body = request.get_json()
        bare_db.session.execute(BARE.insert().values(description=body["description"]))
        bare_db.session.commit()
        return jsonify({"ok": True}), 201

    return bare


def build() -> DispatcherMiddleware:
    """The app at ``/`` and the bare app at ``/bare`` (gunicorn: ``bench.intake_wsgi:build()``)."""
    return DispatcherMiddleware(create_app(), {"/bare": bare_app()})
