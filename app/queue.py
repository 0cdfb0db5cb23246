"""The RQ adapter: every queueing policy (queue, job id, retry, timeout, TTL) lives here and only here.

Jobs are enqueued as ``app.tasks.run_task(task, *args)`` so that a plain ``rq worker`` process can run
them: ``run_task`` builds the app once per process. A failure to reach Redis never loses a case: its
state is in the database and the sweeper re-enqueues what is stuck.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, Retry

from app.redis_conn import redis_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    """How one kind of job is queued."""

    queue: str
    timeout: int = 120
    retry_intervals: tuple[int, ...] = (2, 10, 60)
    result_ttl: int = 3600
    failure_ttl: int = 30 * 24 * 3600
    unique_by_args: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# By the task's package; a task listed in TASKS overrides its package's policy.
PACKAGES = {
    # A hop takes milliseconds; the timeout also sets when RQ deems a killed worker's job abandoned
    # (timeout + 60 s on a SimpleWorker), so it is kept short.
    "routing": Policy("routing", timeout=30),
    "surveys": Policy("scoring", timeout=1800, retry_intervals=(30, 120)),
    "assessment": Policy("scoring", timeout=1800, retry_intervals=(30, 120)),
}
TASKS: dict[str, Policy] = {
    "core.unit_jobs.import_unit_file": Policy("default", timeout=1800, retry_intervals=(30,)),
    # One SMS/e-mail: backoff 30 s, 2 min, 10 min (routing.messages.MAX_ATTEMPTS - 1 retries).
    "app.messaging.deliver": Policy("default", timeout=60, retry_intervals=(30, 120, 600)),
    # Webhooks: the fan-out writes the delivery rows; each delivery retries with backoff over ~3 hours.
    "app.api.webhooks.fan_out": Policy("default", timeout=60),
    "app.api.webhooks.deliver": Policy("default", timeout=60, retry_intervals=(10, 60, 300, 1800, 7200)),
}
DEFAULT = Policy("default")
QUEUES = ("routing", "scoring", "default")


def policy_for(task: str) -> Policy:
    """The policy of a dotted task path."""
    return TASKS.get(task) or PACKAGES.get(task.split(".", 1)[0], DEFAULT)


def queue_name(app: Flask, name: str) -> str:
    """Queue name with the configured prefix (tests use a prefix to share one Redis safely)."""
    return f"{app.config.get('RQ_QUEUE_PREFIX') or ''}{name}"


def job_id(app: Flask, task: str, args: tuple[Any, ...]) -> str:
    """Deterministic id: re-enqueueing the same work names the same job (rq 2+/3 allows only [A-Za-z0-9_-]).

    The queue prefix is part of it, so runs that share one Redis under different prefixes never collide.
    """
    prefix = app.config.get("RQ_QUEUE_PREFIX") or ""
    return prefix + "-".join([task.rsplit(".", 1)[-1], *(str(a) for a in args)])


def enqueue(app: Flask, task: str, args: tuple[Any, ...]) -> bool:
    """Queue ``task(*args)`` per its policy; run inline when RQ_ASYNC is off. False if Redis is down
    (then this process keeps trying in the background)."""
    if not app.config.get("RQ_ASYNC", True):
        from app.tasks import call_task

        call_task(task, *args)
        return True
    if _enqueue_now(app, task, args):
        return True
    redelivery_for(app).hold(task, args)
    return False


def _enqueue_now(app: Flask, task: str, args: tuple[Any, ...]) -> bool:
    """One attempt to put ``task(*args)`` on its queue; False (logged) when Redis cannot be reached."""
    policy = policy_for(task)
    try:
        connection = redis_for(app)
        queue = Queue(queue_name(app, policy.queue), connection=connection)
        # One round trip: RQ writes the queue registration, the job hash and the push on the pipeline
        # (without one it sends two MULTI/EXEC blocks).
        with connection.pipeline() as pipe:
            queue.enqueue(
                "app.tasks.run_task",
                task,
                *args,
                job_id=job_id(app, task, args) if policy.unique_by_args else None,
                job_timeout=policy.timeout,
                result_ttl=policy.result_ttl,
                failure_ttl=policy.failure_ttl,
                retry=Retry(max=len(policy.retry_intervals), interval=list(policy.retry_intervals))
                if policy.retry_intervals
                else None,
                pipeline=pipe,
                **policy.extra,
            )
            pipe.execute()
    except (RedisError, OSError) as exc:
        # The case is committed. enqueue() holds the job and retries it in the background as soon as
        # Redis answers (routing need not wait for the sweeper); the sweeper covers a process that dies.
        log.warning("could not enqueue %s%r: %s", task, args, exc.__class__.__name__)
        return False
    return True


class Redelivery:
    """Enqueues that failed while Redis was down, retried by one daemon thread per process until they land.

    Bounded (``limit`` entries, oldest dropped first: the sweeper finds those cases in the database).
    """

    def __init__(self, app: Flask, limit: int = 10_000, interval: float = 1.0) -> None:
        self.app = app
        self.limit = limit
        self.interval = interval
        self.pending: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=limit)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def hold(self, task: str, args: tuple[Any, ...]) -> None:
        """Keep ``task(*args)`` for a later attempt and make sure the retry thread runs."""
        with self.lock:
            self.pending.append((task, args))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="rq-redelivery", daemon=True)
                self.thread.start()

    def flush(self) -> int:
        """Try every held enqueue once, in order; stop at the first failure. How many landed."""
        landed = 0
        while True:
            with self.lock:
                if not self.pending:
                    return landed
                task, args = self.pending[0]
            if not _enqueue_now(self.app, task, args):
                return landed
            with self.lock:
                if self.pending and self.pending[0] == (task, args):
                    self.pending.popleft()
            landed += 1

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            landed = self.flush()
            if landed:
                log.info("enqueued %d held job(s) after Redis came back", landed)
            with self.lock:
                if not self.pending:
                    self.thread = None
                    return


def redelivery_for(app: Flask) -> Redelivery:
    """This process's held enqueues for ``app`` (created on first use)."""
    held = app.extensions.get("rq_redelivery")
    if held is None:
        held = app.extensions["rq_redelivery"] = Redelivery(app)
    return held
