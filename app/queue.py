"""The RQ adapter: every queueing policy (queue, job id, retry, timeout, TTL) lives here and only here.

Jobs are enqueued as ``app.tasks.run_task(task, *args)`` so that a plain ``rq worker`` process can run
them: ``run_task`` builds the app once per process. A failure to reach Redis never loses a case: its
state is in the database and the sweeper re-enqueues what is stuck.
"""

from __future__ import annotations

import logging
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
    "routing": Policy("routing", timeout=60),
    "surveys": Policy("scoring", timeout=1800, retry_intervals=(30, 120)),
}
TASKS: dict[str, Policy] = {
    "app.assessment_runner.run_quarter": Policy("scoring", timeout=1800, retry_intervals=(30, 120)),
    "core.unit_jobs.import_unit_file": Policy("default", timeout=1800, retry_intervals=(30,)),
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
    """Queue ``task(*args)`` per its policy; run inline when RQ_ASYNC is off. False if Redis is down."""
    if not app.config.get("RQ_ASYNC", True):
        from app.tasks import call_task

        call_task(task, *args)
        return True
    policy = policy_for(task)
    try:
        queue = Queue(queue_name(app, policy.queue), connection=redis_for(app))
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
            **policy.extra,
        )
    except (RedisError, OSError) as exc:
        # The case is committed; the sweeper will enqueue it again once Redis is back.
        log.warning("could not enqueue %s%r: %s", task, args, exc)
        return False
    return True
