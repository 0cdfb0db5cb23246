"""Cases routed per second with 1 and 2 workers, against the same run's ceiling for empty RQ jobs.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/bench_routing.py [--cases 300] [--empty 2000]

Works in a database it creates and drops (never the one DATABASE_URL names) and on queues with a
unique prefix. Throughput is measured between the first job's start and the last job's end (from
RQ's own timestamps), so worker start-up is not counted. The empty-job ceiling is measured before and
after the routing runs and the higher one is used. A community case takes three hops (city →
district → street → community), a departmental one a single hop; one job runs the hops that follow each
other automatically (in one transaction), so hops are counted from the routing_hops table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CATEGORIES = ("HW-01", "WY-02", "LJ-01", "SW-01", "ZS-01", "MZ-01")


def span(redis: Redis, queue: str) -> tuple[int, float]:
    """(jobs finished, seconds from the first start to the last end) on ``queue``."""
    ids = FinishedJobRegistry(queue, connection=redis).get_job_ids()
    jobs = [j for j in Job.fetch_many(ids, connection=redis) if j and j.started_at and j.ended_at]
    start = min(j.started_at for j in jobs)  # type: ignore[type-var]
    end = max(j.ended_at for j in jobs)  # type: ignore[type-var]
    return len(jobs), (end - start).total_seconds()  # type: ignore[operator]


def run(args: list[str], env: dict[str, str], workers: int) -> None:
    procs = [subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        proc.wait()


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--empty", type=int, default=2000)
    opts = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    admin_url = make_url(database_url).set(drivername="postgresql+psycopg")
    name = f"minhu_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    prefix = f"bench-{uuid.uuid4().hex[:6]}-"
    redis = Redis.from_url(redis_url)
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench"}
    try:
        from app import create_app
        from app.extensions import db
        from core import jobs
        from routing.intake import Submission, submit

        app = create_app(
            {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench", "RQ_QUEUE_PREFIX": prefix}
        )
        with app.app_context():
            db.create_all()
            from app.demo import load_demo

            load_demo(db.session, b"bench")
            db.session.commit()
        communities = ("420102-S1-C1", "420103-S2-C2", "420106-S1-C3")

        def empty_ceiling(label: str) -> float:
            """Empty jobs on a bare SimpleWorker: the ceiling of RQ + Redis on this machine, now."""
            empty_queue = f"{prefix}empty-{label}"
            queue = Queue(empty_queue, connection=redis)
            for _ in range(opts.empty):
                queue.enqueue("os.getpid", result_ttl=600)
            rq_args = [sys.executable, "-m", "rq.cli", "worker", "--burst", "-w", "rq.worker.SimpleWorker"]
            run([*rq_args, "--url", redis_url, empty_queue], env, 1)
            empty_n, empty_s = span(redis, empty_queue)
            print(
                f"empty RQ jobs, 1 SimpleWorker ({label}): {empty_n / empty_s:8.1f} jobs/s  ({empty_n} jobs)"
            )
            return empty_n / empty_s

        # Measured before and after the routing runs; the higher ceiling is used (the machine is shared,
        # and the higher one gives the lower, safer ratio).
        ceilings = [empty_ceiling("before")]
        results = []
        for workers in (1, 2):
            run_prefix = f"{prefix}w{workers}-"
            app.config["RQ_QUEUE_PREFIX"] = run_prefix
            with app.app_context():
                ids = []
                for i in range(opts.cases):
                    data = Submission(
                        category=CATEGORIES[i % len(CATEGORIES)],
                        community=communities[i % len(communities)],
                        address=f"压测路 {i} 号",
                        description=f"压测诉求第 {i} 件",
                        contact_name="压测",
                        contact_phone="13800001234",
                    )
                    ids.append(submit(db.session, data, channel="api", token_key=b"bench").case.id)
                db.session.commit()
                for case_id in ids:
                    jobs.enqueue("routing.jobs.route_case", case_id)
            worker_env = {**env, "RQ_QUEUE_PREFIX": run_prefix}
            run(
                [sys.executable, "-m", "flask", "--app", "app", "worker", "--burst", "--queues", "routing"],
                worker_env,
                workers,
            )
            job_count, seconds = span(redis, f"{run_prefix}routing")
            with app.app_context():
                from routing.models import Case, RoutingHop

                routed = db.session.scalar(
                    select(func.count()).where(Case.id.in_(ids), Case.state.in_(("dispatched", "triage")))
                )
                hops = db.session.scalar(select(func.count()).where(RoutingHop.case_id.in_(ids))) or 0
                db.session.remove()
            results.append((workers, routed or 0, len(ids), hops, job_count, seconds))
        ceilings.append(empty_ceiling("after"))
        ceiling = max(ceilings)
        for workers, routed, cases, hops, job_count, seconds in results:
            rate = routed / seconds
            print(
                f"routing, {workers} worker(s): {rate:8.1f} cases/s  ({routed}/{cases} cases, "
                f"{hops} hops in {job_count} jobs, {hops / seconds:.1f} hops/s; ratio to the empty-job ceiling "
                f"{ceiling:.1f}/s: {rate / ceiling:.3f} cases, {hops / seconds / ceiling:.3f} per hop)"
            )
    finally:
        for key in redis.scan_iter(f"*{prefix}*"):
            redis.delete(key)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        time.sleep(0)


if __name__ == "__main__":
    main()
