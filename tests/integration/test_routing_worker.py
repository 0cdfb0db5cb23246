"""Routing on real PostgreSQL and Redis with real worker processes: placement, run-twice, kill -9 + sweep.

Runs when REDIS_URL is set and DATABASE_URL is PostgreSQL (always under CI=true, where a missing
service fails the test instead of skipping it). The schema lives in a database created for this test
and dropped afterwards, because worker processes need committed rows, not the per-test transaction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from core import jobs as core_jobs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CI = os.environ.get("CI", "").lower() == "true"
# The suite's DATABASE_URL/REDIS_URL when they name real services, else this machine's local ones.
_DB = os.environ.get("DATABASE_URL", "")
DATABASE_URL = (
    _DB if _DB.startswith(("postgresql", "postgres")) else "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]
CATEGORIES = ("HW-01", "WY-02", "LJ-01", "SW-01", "DL-04", "ZS-01", "MZ-01", "QT-01")
COMMUNITIES = ("420102-S1-C1", "420102-S1-C2", "420102-S2-C3", "420103-S1-C1", "420106-S2-C2")


def _services_missing() -> str | None:
    """Why the real PostgreSQL and Redis cannot be used, or None."""
    import redis

    engine = create_engine(make_url(DATABASE_URL).set(drivername="postgresql+psycopg"))
    try:
        engine.connect().close()
    except Exception as exc:
        return (
            f"PostgreSQL at {make_url(DATABASE_URL).render_as_string()} unreachable: {exc.__class__.__name__}"
        )
    finally:
        engine.dispose()
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} unreachable: {exc.__class__.__name__}"
    finally:
        client.close()
    return None


_missing = _services_missing()
if _missing and not CI:
    pytest.skip(f"integration needs real PostgreSQL and Redis: {_missing}", allow_module_level=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh database, an app on it, and a web server on a free port."""
    from waitress import create_server

    from app import create_app
    from app.demo import load_demo
    from app.extensions import db

    admin_url = make_url(DATABASE_URL).set(drivername="postgresql+psycopg")
    name = f"minhu_it_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    prefix = f"it-{uuid.uuid4().hex[:8]}-"
    saved = (core_jobs._session_factory, core_jobs._enqueuer)
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("it-instance")),
            "DATABASE_URL": url,
            "REDIS_URL": REDIS_URL,
            "RQ_QUEUE_PREFIX": prefix,
            "SECRET_KEY": "it-secret",
            "RQ_ASYNC": True,
            # One loopback client files every case: this test is about routing, not abuse limits.
            "API_LIMIT": "100000 per minute",
            "INTAKE_LIMIT": "100000 per minute",
        }
    )
    with app.app_context():
        db.create_all()
        with app.test_request_context():
            from app.web.public import token_key

            load_demo(db.session, token_key())
        db.session.commit()
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "RQ_QUEUE_PREFIX": prefix,
        "SECRET_KEY": "it-secret",
    }
    try:
        yield {"app": app, "base": f"http://127.0.0.1:{server.effective_port}", "env": env, "prefix": prefix}
    finally:
        server.close()
        core_jobs.configure(*saved)  # type: ignore[arg-type]
        with app.app_context():
            from app.redis_conn import redis_for

            conn = redis_for(app)
            for key in conn.scan_iter(f"*{prefix}*"):
                conn.delete(key)
            db.session.remove()
            db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def submit_over_http(base: str, count: int, start: int = 0) -> list[str]:
    numbers = []
    for i in range(start, start + count):
        body = {
            "category": CATEGORIES[i % len(CATEGORIES)],
            "community": COMMUNITIES[i % len(COMMUNITIES)],
            "address": f"集成测试路 {i} 号",
            "description": f"集成测试诉求第 {i} 件，请处理",
            "contact_name": "测试",
            "contact_phone": "13800001234",
        }
        request = urllib.request.Request(
            f"{base}/api/v1/requests",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": f"it-{i}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            numbers.append(json.loads(response.read())["tracking_number"])
    return numbers


def run_workers(env: dict[str, str], count: int, burst: bool = True) -> list[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "flask", "--app", "app", "worker", "--queues", "routing"]
    return [
        subprocess.Popen(
            [*args, "--burst"] if burst else args,
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: kill -9 takes RQ's scheduler child too
        )
        for _ in range(count)
    ]


def wait(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-2000:]


def placements(app: Any) -> dict[int, tuple[str, str | None, int, int, int]]:
    """case id → (state, unit code, version, hop count, events) for every case."""
    from app.extensions import db
    from routing.models import Case

    with app.app_context():
        rows = db.session.scalars(select(Case)).all()
        result = {
            c.id: (
                c.state,
                c.current_unit.code if c.current_unit else None,
                c.version,
                c.hop_count,
                len(c.events),
            )
            for c in rows
        }
        db.session.remove()
        return result


def expected_units(app: Any) -> dict[int, str | None]:
    """case id → the unit the current rules place it at, computed independently of the workers."""
    from app.extensions import db
    from routing import rules, services
    from routing.models import Case

    with app.app_context():
        view = services.current_rules(db.session())
        out = {}
        for case in db.session.scalars(select(Case)):
            placement = rules.resolve(
                view.rules, services.category_ref(case.category), services.place_units(case)
            )
            out[case.id] = placement.unit_code if placement else None
        db.session.commit()
        db.session.remove()
        return out


def test_real_workers_route_every_case_once_and_survive_a_kill(stack: dict[str, Any]) -> None:
    app, env = stack["app"], stack["env"]
    t0 = time.monotonic()
    submit_over_http(stack["base"], 300)
    with app.app_context():  # the demo's sample cases were stored without a job: the sweeper finds them
        from routing import jobs as routing_jobs

        assert routing_jobs.sweep(older_than_seconds=0) >= 5
    t1 = time.monotonic()
    wait(run_workers(env, 2))
    print(f"submit {t1 - t0:.1f}s, route {time.monotonic() - t1:.1f}s")
    placed = placements(app)
    expected = expected_units(app)
    assert len(placed) >= 300
    for case_id, (state, unit, *_rest) in placed.items():
        assert state == "dispatched", (case_id, state)
        assert unit == expected[case_id], case_id

    # Every job enqueued twice more (the first hop and each later hop number): nothing changes.
    with app.app_context():
        for case_id, (_s, _u, _v, hops, _e) in placed.items():
            for _ in range(2):
                core_jobs.enqueue("routing.jobs.route_case", case_id)
                for hop in range(1, hops + 1):
                    core_jobs.enqueue("routing.jobs.route_case", case_id, hop)
    wait(run_workers(env, 2))
    assert placements(app) == placed

    # A worker killed mid-run loses nothing: the sweeper re-enqueues whatever was left behind.
    submit_over_http(stack["base"], 200, start=1000)
    [victim] = run_workers(env, 1, burst=False)
    from app.extensions import db
    from routing.models import Case

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with app.app_context():
            done = db.session.scalar(select(func.count()).where(Case.state == "dispatched")) or 0
            db.session.remove()
        if done > len(placed) + 20:
            break
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)  # reaps it and closes its stderr pipe
    # Lose the queue too, as if Redis had been flushed: only the database knows what is left.
    with app.app_context():
        from app.redis_conn import redis_for

        redis_for(app).delete(f"rq:queue:{stack['prefix']}routing")
        from routing import jobs as routing_jobs

        assert routing_jobs.sweep(older_than_seconds=0) >= 0
    wait(run_workers(env, 2))
    final, expected = placements(app), expected_units(app)
    assert len(final) >= 500
    for case_id, (state, unit, _v, hops, _e) in final.items():
        assert state == "dispatched" and unit == expected[case_id], (case_id, state, unit)
        assert hops >= 1
    with app.app_context():
        from routing.models import RoutingHop

        hop_rows = db.session.scalar(select(func.count()).select_from(RoutingHop))
        assert hop_rows == sum(v[3] for v in final.values())
        db.session.remove()
