"""Several processes taking JSON intakes on one SQLite file (the embedded default under gunicorn): every
request is stored, none answered 500 — a read before the INSERT once pinned a snapshot that another
writer's commit made stale, and SQLite refused the INSERT at once ("database is locked")."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.integration

PROCESSES, REQUESTS = 3, 60


def _serve(database: str, instance: str, offset: int, statuses: Any) -> None:
    """One web process: its own app on the shared file, posting REQUESTS intakes through the API."""
    from app import create_app

    app = create_app(
        {
            "DATABASE_URL": database,
            "INSTANCE_PATH": instance,
            "SECRET_KEY": "sqlite-writers",
            "RQ_ASYNC": False,
            "API_LIMIT": "100000 per minute",
        }
    )
    from core import jobs

    jobs.enqueue = lambda task, *args: None  # type: ignore[assignment]  # intake only: no routing here
    client = app.test_client()
    seen = []
    for i in range(REQUESTS):
        body = {
            "category": "HW-01",
            "community": "420102-S1-C1",
            "address": f"并发路 {offset + i} 号",
            "description": f"并发写入第 {offset + i} 件，路灯不亮",
            "contact_name": "并发",
            "contact_phone": "13800001234",
        }
        seen.append(
            client.post(
                "/api/v1/requests", data=json.dumps(body), content_type="application/json"
            ).status_code
        )
    statuses.extend(seen)


def test_concurrent_sqlite_writers_store_every_request(tmp_path: Path) -> None:
    from app import create_app
    from app.demo import load_demo
    from app.extensions import db

    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    instance = str(tmp_path / "instance")
    app = create_app({"DATABASE_URL": database, "INSTANCE_PATH": instance, "SECRET_KEY": "sqlite-writers"})
    with app.app_context():
        db.create_all()
        with app.test_request_context():
            from app.web.public import token_key

            load_demo(db.session, token_key())
        db.session.commit()
        before = db.session.scalar(text("SELECT count(*) FROM cases"))
        db.session.remove()
        db.engine.dispose()
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as gunicorn's workers are
    with context.Manager() as manager:
        statuses = manager.list()
        workers = [
            context.Process(target=_serve, args=(database, instance, n * 1000, statuses))
            for n in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        codes = list(statuses)
    assert all(worker.exitcode == 0 for worker in workers)
    assert {c: codes.count(c) for c in set(codes)} == {201: PROCESSES * REQUESTS}
    engine = create_engine(database)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM cases")).scalar_one() - before
    engine.dispose()
    assert stored == PROCESSES * REQUESTS


def test_a_standalone_intake_commits_apart_from_the_session_on_sqlite(tmp_path: Path) -> None:
    """On SQLite the case and its event get a short transaction of their own on another connection: the
    objects come back detached and stay stored when the session's own work is rolled back."""
    from sqlalchemy import func, inspect, select

    from app import create_app
    from app.demo import load_demo
    from app.extensions import db
    from core.models import Unit
    from routing.intake import Submission, submit
    from routing.models import Case

    database = f"sqlite:///{tmp_path / 'apart.sqlite3'}"
    app = create_app({"DATABASE_URL": database, "INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "apart"})
    body = {
        "category": "HW-01",
        "community": "420102-S1-C1",
        "address": "独立事务路 1 号",
        "description": "路灯坏了三天，晚上看不清路",
        "contact_name": "测试",
        "contact_phone": "13800001234",
    }
    with app.app_context():
        db.create_all()
        load_demo(db.session, b"apart")
        db.session.commit()
        with app.test_request_context():
            result = submit(db.session, Submission(**body), channel="api", token_key=b"k", standalone=True)
            assert result.created and inspect(result.case).detached
            assert result.case not in db.session and result.case.events[0].action == "submit"
            unit = db.session.scalar(select(Unit).where(Unit.code == body["community"]))
            assert unit is not None
            unit.name = "改名社区"
            db.session.flush()
            db.session.rollback()
            number = result.case.tracking_number
            db.session.remove()
        stored = db.session.scalar(select(Case).where(Case.tracking_number == number))
        assert stored is not None and [e.action for e in stored.events] == ["submit"]
        assert db.session.scalar(select(Unit.name).where(Unit.code == body["community"])) != "改名社区"
        db.session.remove()
        # The duplicate look-up, on the same short transaction after the INSERTs, finds the earlier case
        # and never the new one.
        with app.test_request_context():
            again = submit(
                db.session,
                Submission(**body),
                channel="api",
                token_key=b"k",
                standalone=True,
                duplicates_within_days=30,
            )
            found = [d.tracking_number for d in again.duplicates]
            assert number in found and again.case.tracking_number not in found
            db.session.remove()
        assert db.session.scalar(select(func.count()).where(Case.description == body["description"])) == 2
        db.session.remove()
        db.engine.dispose()
