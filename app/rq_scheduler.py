"""The RQ scheduler of ``flask worker``: a thread that outlives Redis outages.

RQ's ``work(with_scheduler=True)`` forks a scheduler process that exits on the first Redis
ConnectionError, and the worker restarts it only in its maintenance step (every 10 minutes, and only
between jobs): after a 10 s Redis stop, retries (``Retry(interval=…)``) waited for the sweeper. This
thread drives the same :class:`rq.scheduler.RQScheduler` — one lock per queue, so one scheduler per
queue works across all workers and machines — and on a Redis error waits and tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler

log = logging.getLogger(__name__)
MAX_BACKOFF = 5.0  # seconds between attempts while Redis is down
# Seconds between attempts at a queue lock another worker holds: a lock outlives its dead owner by
# at most interval + 60 s, so a survivor takes the queue over soon after (RQ's own fallback is 120 s).
LOCK_RETRY = 10.0
CLEANUP_EVERY = 15.0  # seconds between looks for jobs abandoned by a dead worker


class SchedulerThread(threading.Thread):
    """Moves due scheduled jobs (retries, ``enqueue_in``) onto their queues every ``interval`` seconds."""

    def __init__(self, queue_names: Iterable[str], connection: Redis, interval: int = 1) -> None:
        super().__init__(name="rq-scheduler", daemon=True)
        self.queue_names = set(queue_names)
        # Whole seconds: RQ's lock script takes interval + 60 as an integer TTL.
        self.scheduler = RQScheduler(list(self.queue_names), connection=connection, interval=int(interval))
        self.interval = interval
        self.stopping = threading.Event()
        self.failures = 0
        self.next_cleanup = 0.0

    def run(self) -> None:
        """Loop until :meth:`stop`; a Redis error is logged once per outage and retried with backoff."""
        registered = False
        wait = 0.0
        while not self.stopping.wait(wait):
            try:
                if not registered:
                    self.scheduler.register_birth()
                    registered = True
                self.tick()
            except RedisError as exc:
                if not self.failures:
                    log.warning("RQ scheduler: Redis error (%s: %s); retrying", exc.__class__.__name__, exc)
                self.failures += 1
                wait = min(MAX_BACKOFF, self.interval * 2**self.failures)
                continue
            if self.failures:
                log.info("RQ scheduler: Redis is back after %d failed attempts", self.failures)
                self.failures = 0
            wait = self.interval
        self._release()

    def tick(self) -> None:
        """One pass: take (or keep) the queue locks, refresh them, enqueue what is due."""
        taken = self.scheduler.lock_acquisition_time
        if self.scheduler.acquired_locks != self.queue_names and (
            taken is None or (datetime.now() - taken).total_seconds() >= LOCK_RETRY
        ):
            self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            self.scheduler.heartbeat()  # re-acquires a lock that vanished (e.g. Redis restarted empty)
            self.scheduler.enqueue_scheduled_jobs()
            if time.monotonic() >= self.next_cleanup:
                # A job whose worker was killed (SIGKILL, OOM) is retried once its heartbeat expires;
                # RQ's workers look only between jobs, so an idle queue would keep it waiting.
                self.next_cleanup = time.monotonic() + CLEANUP_EVERY
                for name in self.scheduler.acquired_locks:
                    StartedJobRegistry(name, connection=self.scheduler.connection).cleanup()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the loop to end and wait for it (it releases its locks on the way out)."""
        self.stopping.set()
        self.join(timeout)

    def _release(self) -> None:
        try:
            self.scheduler.release_locks()
            self.scheduler.register_death()
        except RedisError:
            pass  # the locks expire on their own (interval + 60 s)
