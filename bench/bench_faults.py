"""Faults under a bounded HTTP intake load: what clients saw, what was stored, what got routed, how fast.

    .venv/bin/python bench/bench_faults.py [--redis-port 5159] [--web-port 5152] [--clients 4]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--only redis,worker,database,web]

Loopback only. It starts its own ``redis-server`` (append-only file, as in production) on
``--redis-port``, a PostgreSQL database it creates and drops, gunicorn (2 sync workers) and two
``flask worker`` processes with the periodic sweeper switched OFF (``--beat-interval 0``): every case
must be routed by the queue alone. For each fault, ``--clients`` clients post intakes (each with its own
Idempotency-Key, retried with the same key after a refused connection, as a well-behaved API client
does) for 3 s, the fault is applied, and the load goes on for 5 s after it is healed:

1. redis    — redis-server stops (SIGTERM) for 10 s and restarts;
2. worker   — one worker is killed with SIGKILL while jobs are flowing; a new one is started 1 s later;
3. database — every connection to the database is ended with pg_terminate_backend;
4. web      — gunicorn is stopped (SIGTERM) and started again.

Per fault it prints: accepted (tracking numbers handed to clients), stored (those cases in the database),
routed (of those, no longer waiting in submitted/dispatching), lost (accepted but not stored), doubled
(an idempotency key stored twice, or a case with more routing events than hops), client-visible 5xx,
refused connections, and the seconds from the healing until every accepted case was routed (or "—"
when some were still waiting after ``--settle`` seconds).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_intake import body, prepare, wait_for_port  # noqa: E402 - after the path set-up

FAULTS = ("redis", "worker", "database", "web")


class Stack:
    """The processes under test and how to break and heal each."""

    def __init__(self, opts: argparse.Namespace, url: str, workdir: Path) -> None:
        self.opts, self.url, self.workdir = opts, url, workdir
        self.prefix = f"faults-{uuid.uuid4().hex[:6]}-"
        self.redis_url = f"redis://127.0.0.1:{opts.redis_port}/0"
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": self.redis_url,
            "RQ_QUEUE_PREFIX": self.prefix,
            "SECRET_KEY": "bench",
            "LOG_LEVEL": "ERROR",
            # Every client is 127.0.0.1: the per-address API limit stays on, above the load's rate.
            "API_LIMIT": "1000000 per minute",
        }
        self.redis: subprocess.Popen[bytes] | None = None
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_redis(self) -> None:
        """redis-server with an append-only file in the work folder (it survives a restart)."""
        server = shutil.which("redis-server") or "redis-server"
        self.redis = subprocess.Popen(
            [server, "--port", str(self.opts.redis_port), "--bind", "127.0.0.1", "--appendonly", "yes"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
        )
        until(lambda: port_open(self.opts.redis_port), 15)

    def stop_redis(self) -> None:
        if self.redis:
            self.redis.send_signal(signal.SIGTERM)
            self.redis.wait(timeout=30)

    def start_web(self) -> None:
        # --threads 1: gunicorn.conf.py (read from the working directory) sets 4, which selects gthread
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--threads",
            "1",
        ]
        command += ["--bind", f"127.0.0.1:{self.opts.web_port}", "--log-level", "error", "app:create_app()"]
        self.web = subprocess.Popen(command, env=self.env, cwd=ROOT, stderr=subprocess.DEVNULL)
        wait_for_port(self.opts.web_port, self.web)

    def stop_web(self) -> None:
        if self.web:
            self.web.send_signal(signal.SIGTERM)
            self.web.wait(timeout=60)

    def start_worker(self) -> None:
        command = [sys.executable, "-m", "flask", "--app", "app", "worker", "--queues", "routing"]
        self.workers.append(
            subprocess.Popen(
                [*command, "--beat-interval", "0"],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def kill_worker(self) -> None:
        victim = self.workers.pop(0)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

    def stop_all(self) -> None:
        for worker in self.workers:
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                worker.kill()
        self.stop_web()
        self.stop_redis()


class Load:
    """``clients`` threads posting intakes until stopped; a refused connection is retried with the same key."""

    def __init__(self, port: int, clients: int, tag: str) -> None:
        self.port, self.clients, self.tag = port, clients, tag
        self.accepted: dict[str, str] = {}
        self.server_errors = 0
        self.refused = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(n,)) for n in range(clients)]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def _post(self, i: int, key: str) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json", "Idempotency-Key": key}
            conn.request("POST", "/api/v1/requests", body(i), headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data.startswith(b"{") else {}
        finally:
            conn.close()

    def _client(self, slot: int) -> None:
        i = slot
        while not self.stopping.is_set():
            key = f"{self.tag}-{i}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    status, data = self._post(i, key)
                except OSError:
                    with self.lock:
                        self.refused += 1
                    time.sleep(0.2)
                    continue
                with self.lock:
                    if status >= 500:
                        self.server_errors += 1
                    elif status in (200, 201):
                        self.accepted[key] = data["tracking_number"]
                break
            i += self.clients
            time.sleep(0.05)  # bounded: about 20 requests/s per client at most


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return check()


def tally(engine: Engine, tag: str) -> dict[str, int]:
    """Stored, routed and doubled cases of one scenario (by its idempotency keys)."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) AS stored, count(DISTINCT idempotency_key) AS keys, "
                "count(*) FILTER (WHERE state NOT IN ('submitted', 'dispatching')) AS routed "
                "FROM cases WHERE idempotency_key LIKE :tag"
            ),
            {"tag": f"{tag}-%"},
        ).one()
        over = conn.execute(
            text(
                "SELECT count(*) FROM cases c WHERE c.idempotency_key LIKE :tag AND "
                "(SELECT count(*) FROM case_events e WHERE e.case_id = c.id AND e.actor_id IS NULL "
                " AND e.action IN (SELECT DISTINCT action FROM routing_hops)) > "
                "(SELECT count(*) FROM routing_hops h WHERE h.case_id = c.id)"
            ),
            {"tag": f"{tag}-%"},
        ).scalar()
    return {"stored": row.stored, "routed": row.routed, "doubled": (row.stored - row.keys) + int(over or 0)}


def waiting(stack: Stack, engine: Engine, tag: str) -> str:
    """The cases still unrouted and where their routing job is in RQ (to tell a lost job from a slow one)."""
    from redis import Redis
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, state, hop_count FROM cases WHERE idempotency_key LIKE :tag "
                "AND state IN ('submitted', 'dispatching') ORDER BY id LIMIT 10"
            ),
            {"tag": f"{tag}-%"},
        ).all()
    redis = Redis.from_url(stack.redis_url)
    found = []
    for case_id, state, hops in rows:
        try:
            job = Job.fetch(f"{stack.prefix}route_case-{case_id}", connection=redis)
            where = f"job {job.get_status()} (exc: {(job.exc_info or '').strip().splitlines()[-1:]})"
        except NoSuchJobError:
            where = "no job in Redis"
        found.append(f"case {case_id} {state} after {hops or 0} hops: {where}")
    redis.close()
    return "  still waiting: " + "; ".join(found)


def run_fault(stack: Stack, engine: Engine, admin: Engine, name: str, database: str, settle: float) -> str:
    """Load, break, heal, load on, then wait for routing; one printed line."""
    tag = f"{name}-{uuid.uuid4().hex[:4]}"
    load = Load(stack.opts.web_port, stack.opts.clients, tag).start()
    time.sleep(3)
    if name == "redis":
        stack.stop_redis()
        time.sleep(10)
        stack.start_redis()
    elif name == "worker":
        stack.kill_worker()
        time.sleep(1)
        stack.start_worker()
    elif name == "database":
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
    elif name == "web":
        stack.stop_web()
        stack.start_web()
    healed = time.monotonic()
    time.sleep(5)
    load.stop()
    accepted = set(load.accepted)
    done = until(lambda: tally(engine, tag)["routed"] >= len(accepted), settle)
    recover = f"{time.monotonic() - healed:5.1f} s" if done else "    —  "
    counts = tally(engine, tag)
    with engine.connect() as conn:
        stored_keys = {
            k
            for (k,) in conn.execute(
                text("SELECT idempotency_key FROM cases WHERE idempotency_key LIKE :tag"), {"tag": f"{tag}-%"}
            )
        }
    lost = len(accepted - stored_keys)
    if not done:
        print(waiting(stack, engine, tag), flush=True)
    return (
        f"{name:<9} accepted {len(accepted):4d}  stored {counts['stored']:4d}  routed {counts['routed']:4d}  "
        f"lost {lost}  doubled {counts['doubled']}  5xx {load.server_errors}  refused {load.refused:3d}  "
        f"all routed {recover} after healing"
    )


def main() -> None:
    """Start the stack, run each fault, print the table, clean up."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, default=5159)
    parser.add_argument("--web-port", type=int, default=5152)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--settle",
        type=float,
        default=180,
        help="seconds to wait for routing after a fault (a job in flight on a killed worker: ~90-110 s)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--only", default=",".join(FAULTS))
    opts = parser.parse_args()
    admin_url = make_url(opts.database_url).set(drivername="postgresql+psycopg")
    name = f"minhu_faults_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url, pool_pre_ping=True)  # its own connections are ended in fault 3 too
    with tempfile.TemporaryDirectory() as folder:
        stack = Stack(opts, url, Path(folder))
        try:
            prepare(url)
            stack.start_redis()
            stack.start_web()
            for _ in range(2):
                stack.start_worker()
            warm = Load(opts.web_port, 1, "warm").start()  # until every web worker has imported the app
            until(lambda: len(warm.accepted) >= 10, 120)
            warm.stop()
            print(
                f"{opts.clients} clients, gunicorn 2 sync workers, 2 SimpleWorkers, sweeper off", flush=True
            )
            for fault in [f for f in opts.only.split(",") if f in FAULTS]:
                print(run_fault(stack, engine, admin, fault, name, opts.settle), flush=True)
        finally:
            stack.stop_all()
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
