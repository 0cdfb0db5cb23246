"""Resilience on real services: dropped database connections, a Redis outage under a worker's scheduler,
and ``flask serve`` killed with SIGKILL (its embedded Redis and workers must not live on as orphans).

The database tests need a real PostgreSQL (DATABASE_URL, else the local server); they work in a database
they create and drop. The Redis outage test starts its own ``redis-server`` on a free port, so stopping
it never touches a Redis anyone else uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.integration.conftest import CI, DATABASE_URL, postgresql_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")


def until(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll ``check`` until it holds or ``seconds`` pass (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An app on a fresh PostgreSQL database with the demo reference data, jobs run inline."""
    with postgresql_app(tmp_path_factory.mktemp("res-instance"), "minhu_res") as app:
        _add_test_routes(app)
        yield app


def _add_test_routes(app: Any) -> None:
    """Routes whose database connection the server ends in the middle of their work."""
    from app.extensions import db

    app.extensions["resil_db_name"] = app.extensions["test_db_name"]
    calls: dict[str, int] = {"once": 0, "after_commit": 0}

    @app.get("/_test/killed-once")
    def killed_once() -> Any:
        # The server ends this request's connection in the middle of its work, the first time only.
        calls["once"] += 1
        db.session.execute(text("SELECT 1"))
        if calls["once"] == 1:
            db.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return {"calls": calls["once"]}

    @app.get("/_test/killed-after-commit")
    def killed_after_commit() -> Any:
        calls["after_commit"] += 1
        db.session.execute(text("CREATE TABLE IF NOT EXISTS resil_writes (id serial PRIMARY KEY)"))
        db.session.execute(text("INSERT INTO resil_writes DEFAULT VALUES"))
        db.session.commit()
        db.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        return {"calls": calls["after_commit"]}

    app.extensions["resil_calls"] = calls


def terminate_connections(database: str) -> int:
    """pg_terminate_backend every connection to ``database`` (ours only); how many were ended."""
    admin = create_engine(make_url(DATABASE_URL).set(drivername="postgresql+psycopg"))
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            ).scalar()
    finally:
        admin.dispose()
    return int(ended or 0)


def test_terminated_database_connections_never_reach_a_user_as_500(pg_app: Any) -> None:
    from app.extensions import db

    client = pg_app.test_client()
    body = {
        "category": "HW-01",
        "community": "420102-S1-C1",
        "address": "韧性测试路 1 号",
        "description": "连接被数据库断开后的诉求",
        "contact_name": "测试",
        "contact_phone": "13800001234",
    }
    with pg_app.app_context():
        db.engine.dispose()
    for _ in range(3):  # fill the pool with several live connections
        assert client.get("/api/v1/categories").status_code == 200
    assert terminate_connections(pg_app.extensions["resil_db_name"]) >= 1
    statuses = [client.get("/api/v1/categories").status_code for _ in range(3)]
    assert terminate_connections(pg_app.extensions["resil_db_name"]) >= 1
    created = client.post("/api/v1/requests", data=json.dumps(body), content_type="application/json")
    statuses.append(created.status_code)
    assert statuses == [200, 200, 200, 201], statuses


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    assert REDIS_SERVER
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    from redis import Redis

    client = Redis(port=port, socket_connect_timeout=1)

    def pings() -> bool:
        try:
            return bool(client.ping())
        except Exception:
            return False

    assert until(pings, 15), "redis-server did not start"
    client.close()
    return process


@pytest.mark.skipif(REDIS_SERVER is None and not CI, reason="needs the redis-server program")
def test_worker_scheduler_survives_a_redis_outage(tmp_path: Path) -> None:
    """A retry scheduled after Redis came back is moved to its queue by the same worker's scheduler."""
    from redis import Redis
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    prefix = f"res-{uuid.uuid4().hex[:6]}-"
    server = _start_redis(port, tmp_path)
    instance = tmp_path / "instance"
    env = {
        **os.environ,
        "REDIS_URL": url,
        "RQ_QUEUE_PREFIX": prefix,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "SECRET_KEY": "res-secret",
    }
    app_spec = f"app:create_app({{'INSTANCE_PATH': {str(instance)!r}}})"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            app_spec,
            "worker",
            "--queues",
            "routing",
            "--beat-interval",
            "0",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    redis = Redis.from_url(url)
    lock = f"rq:scheduler-lock:{prefix}routing"
    try:
        assert until(lambda: bool(redis.exists(lock)), 60), "the worker's scheduler never took its lock"
        server.send_signal(signal.SIGTERM)  # Redis stops (and comes back empty: no persistence)
        server.wait(timeout=15)
        time.sleep(3)
        server = _start_redis(port, tmp_path)
        queue = Queue(f"{prefix}routing", connection=redis)
        job = queue.enqueue_in(__import__("datetime").timedelta(seconds=1), "os.getpid", result_ttl=600)
        registry = FinishedJobRegistry(queue.name, connection=redis)
        assert until(lambda: job.id in registry.get_job_ids(), 45), "scheduled job never ran after the outage"
        assert worker.poll() is None
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        redis.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def test_sigkill_of_flask_serve_leaves_no_embedded_redis_or_worker_behind(tmp_path: Path) -> None:
    import psutil

    instance = tmp_path / "instance"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "RQ_QUEUE_PREFIX"}}
    env["SECRET_KEY"] = "res-secret"
    app_spec = f"app:create_app({{'INSTANCE_PATH': {str(instance)!r}}})"
    serve = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", app_spec, "serve", "--port", str(port), "--no-demo"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settings = instance / "redis.db.settings"
    redis_pid = worker_pids = None
    try:

        def started() -> bool:
            nonlocal redis_pid, worker_pids
            if not settings.exists():
                return False
            pidfile = Path(json.loads(settings.read_text())["pidfile"])
            workers = [
                p.pid for p in psutil.Process(serve.pid).children() if "worker" in " ".join(p.cmdline())
            ]
            if not pidfile.exists() or not workers:
                return False
            redis_pid, worker_pids = int(pidfile.read_text()), workers
            return True

        assert until(started, 120), "flask serve did not start its embedded Redis and worker"
        assert redis_pid and alive(redis_pid)
        serve.send_signal(signal.SIGKILL)
        serve.wait(timeout=10)
        assert until(lambda: not alive(redis_pid) and not any(alive(p) for p in worker_pids or []), 45), (
            "embedded Redis or a worker outlived flask serve"
        )
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        for pid in [redis_pid, *(worker_pids or [])]:
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_connection_ended_mid_request_is_retried_once_on_a_new_one(pg_app: Any) -> None:
    response = pg_app.test_client().get("/_test/killed-once")
    assert response.status_code == 200, response.data[:300]
    assert response.get_json() == {"calls": 2}


def test_a_request_that_committed_is_never_run_twice(pg_app: Any) -> None:
    from app.extensions import db

    response = pg_app.test_client().get("/_test/killed-after-commit")
    assert response.status_code == 500
    assert pg_app.extensions["resil_calls"]["after_commit"] == 1
    with pg_app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM resil_writes")).scalar() == 1
        db.session.remove()


@pytest.mark.skipif(REDIS_SERVER is None and not CI, reason="needs the redis-server program")
def test_an_enqueue_refused_while_redis_is_down_lands_once_it_is_back(tmp_path: Path) -> None:
    """The web process holds the job and delivers it itself: routing does not wait for the sweeper."""
    from redis import Redis
    from rq import Queue

    from app import create_app
    from app.queue import enqueue
    from core import jobs as core_jobs

    saved = (core_jobs._session_factory, core_jobs._enqueuer)
    port = free_port()
    prefix = f"res-{uuid.uuid4().hex[:6]}-"
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'q.sqlite3'}",
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "RQ_QUEUE_PREFIX": prefix,
            "SECRET_KEY": "res-secret",
        }
    )
    core_jobs.configure(*saved)  # type: ignore[arg-type]
    assert enqueue(app, "routing.jobs.route_case", (4242,)) is False  # nothing listens on the port yet
    server = _start_redis(port, tmp_path)
    redis = Redis(port=port)
    try:
        queue = Queue(f"{prefix}routing", connection=redis)
        assert until(lambda: queue.count == 1, 30), "the held job never reached its queue"
        assert queue.jobs[0].args == ("routing.jobs.route_case", 4242)
    finally:
        redis.close()
        app.extensions["redis"].close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
