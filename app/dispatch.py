"""Hand-off of new cases to routing: the database tells the routing workers, not the web process.

:class:`Dispatcher` — a thread of the ``flask worker`` processes that serve the routing queue — queues
the first hop of every case stored in ``submitted``. Intake then sends no job from the web process: the
hand-off follows from the case's commit (no window between commit and enqueue in which a dying web
process leaves a case waiting for the sweeper), and a web request talks to Redis only for its rate
limit.

- PostgreSQL: a trigger on ``cases`` sends each new case's id on a channel when the inserting
  transaction commits (routing/models.py); the dispatcher listens. One dispatcher works at a time
  across all workers and machines: it holds an advisory lock on its listening connection, so the lock
  goes when its process or connection dies and a standby takes over within a second.
- SQLite (one host): the dispatcher reads the cases stored since the last it saw, every
  ``poll`` seconds. SQLite has one writer at a time, so ids are committed in increasing order and
  none is passed over. One dispatcher per host holds a file lock in the instance folder.

Notifications sent while nobody listens are not kept, so whoever takes the lead first queues every case
still waiting in ``submitted`` (paged by id). A failed enqueue (Redis down) is held and retried by
:mod:`app.queue`; a second job for a case is a no-op. With RQ jobs run inline (RQ_ASYNC off, the web
tier's tests) the process that stored the case runs its routing after the commit.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, current_app
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import queue
from app.extensions import db
from core import jobs
from routing.models import ROUTING_CHANNEL

log = logging.getLogger(__name__)
ROUTE_CASE = "routing.jobs.route_case"
HANDOFFS = ("auto", "database", "web")
MAX_BACKOFF = 5.0  # seconds between attempts while the database cannot be reached


def database_hands_over(app: Flask) -> bool:
    """Whether the database, not the web process, hands this app's new cases to routing."""
    mode = app.config.get("ROUTING_HANDOFF") or "auto"
    if mode not in HANDOFFS:
        raise ValueError(f"ROUTING_HANDOFF must be one of {', '.join(HANDOFFS)}, not {mode!r}")
    if mode == "auto":
        return bool(app.config.get("RQ_ASYNC", True))
    return mode == "database"


def on_postgresql(app: Flask) -> bool:
    return str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")


def queue_routing(case_id: int, created: bool) -> None:
    """After the commit that stored (``created``) or found a case waiting in ``submitted``: queue its
    first routing hop — unless it is new and the database handed it over at that commit."""
    if created and database_hands_over(current_app):
        return
    jobs.enqueue(ROUTE_CASE, case_id)


def lock_key(app: Flask) -> int:
    """The advisory lock of this app's dispatcher: one per queue prefix (runs sharing a database)."""
    digest = hashlib.sha256(f"minhu-dispatcher:{app.config.get('RQ_QUEUE_PREFIX') or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def libpq_url(sqlalchemy_url: str) -> str:
    """The libpq form of a ``postgresql+psycopg://`` URL (password kept: it opens a connection)."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def lock_parts(key: int) -> tuple[int, int]:
    """How ``pg_locks`` shows a bigint advisory lock: (classid, objid), the high and low 32 bits."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def lock_file(app: Flask) -> Path:
    """The file whose lock makes one dispatcher per host on SQLite (per queue prefix)."""
    return Path(app.instance_path) / f"routing-dispatcher{app.config.get('RQ_QUEUE_PREFIX') or ''}.lock"


@contextmanager
def file_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` while inside, if no other process holds it (yields whether
    taken); the system drops it when the process dies."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # releases the lock


def dispatcher_running(app: Flask, session: Any) -> bool:
    """Whether some process holds this app's dispatcher lead (for /readyz)."""
    if on_postgresql(app):
        classid, objid = lock_parts(lock_key(app))
        return bool(session.scalar(text(LEADER_QUERY), {"classid": classid, "objid": objid}))
    with file_lock(lock_file(app)) as taken:
        return not taken


LEADER_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND d.datname = current_database()"
    " AND l.classid::bigint = :classid AND l.objid::bigint = :objid)"
)


class Dispatcher(threading.Thread):
    """Queues the first routing hop of every case the database announces, while it holds the lead."""

    def __init__(self, app: Flask, retry: float = 1.0, page: int = 1000, poll: float = 0.2) -> None:
        super().__init__(name="routing-dispatcher", daemon=True)
        self.app = app
        self.retry = retry  # seconds between attempts at the lead, and between checks of stop()
        self.page = page
        self.poll = poll  # SQLite: seconds between looks for new cases
        self.postgresql = on_postgresql(app)
        self._bound: Engine | None = None
        self.stopping = threading.Event()
        # Set while this thread holds the lead, once it has caught up on the cases already waiting.
        self.leading = threading.Event()
        self.failures = 0

    def run(self) -> None:
        """Lead (or stand by) until :meth:`stop`; a lost connection is logged once and retried."""
        while not self.stopping.is_set():
            try:
                self._serve()
            except (psycopg.Error, SQLAlchemyError, OSError) as exc:
                if not self.failures:
                    log.warning("routing dispatcher: database error (%s); retrying", exc.__class__.__name__)
                self.failures += 1
            except Exception:  # never die quietly: the sweeper would be the only hand-off left
                log.exception("routing dispatcher: unexpected error; restarting")
                self.failures += 1
            finally:
                self.leading.clear()
            # One `retry` after the first failure (a terminated connection), then doubling up to MAX_BACKOFF.
            self.stopping.wait(min(MAX_BACKOFF, self.retry * 2 ** max(self.failures - 1, 0)))

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def _serve(self) -> None:
        if self.postgresql:
            self._listen()
        else:
            self._watch()

    def _listen(self) -> None:
        """PostgreSQL: take the advisory lock, LISTEN, catch up, then queue each case announced."""
        conninfo = libpq_url(self.app.config["SQLALCHEMY_DATABASE_URI"])
        with psycopg.connect(
            conninfo, autocommit=True, connect_timeout=5, keepalives=1, keepalives_idle=30
        ) as connection:
            while not self._take_lead(connection):
                if self.stopping.wait(self.retry):
                    return
            connection.execute(f"LISTEN {ROUTING_CHANNEL}")  # before catching up: no case falls between
            if self.failures:
                log.info("routing dispatcher: database is back after %d failed attempts", self.failures)
                self.failures = 0
            caught_up = self.catch_up()
            self.leading.set()
            log.info("routing dispatcher: listening (%d waiting case(s) queued)", caught_up)
            while not self.stopping.is_set():
                for notice in connection.notifies(timeout=self.retry):
                    self._hand_over(int(notice.payload))

    def _take_lead(self, connection: psycopg.Connection[Any]) -> bool:
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(self.app),)).fetchone()
        return bool(row and row[0])

    def _watch(self) -> None:
        """SQLite: take the host's file lock, catch up, then queue what was stored since, every ``poll``."""
        with file_lock(lock_file(self.app)) as taken:
            if not taken:
                self.stopping.wait(self.retry)
                return
            if self.failures:
                log.info("routing dispatcher: database is back after %d failed attempts", self.failures)
                self.failures = 0
            count, last = self._queue_waiting(0)
            self.leading.set()
            log.info("routing dispatcher: watching (%d waiting case(s) queued)", count)
            while not self.stopping.wait(self.poll):
                _count, last = self._queue_waiting(last)

    def catch_up(self) -> int:
        """Queue every case still waiting in ``submitted``; how many."""
        return self._queue_waiting(0)[0]

    def _queue_waiting(self, after: int) -> tuple[int, int]:
        """Queue the cases waiting in ``submitted`` with ids above ``after``: how many, and the last id."""
        from routing.services import waiting_case_ids

        count = 0
        while True:
            # A plain session: the jobs' sessions begin IMMEDIATE on SQLite, which would take the write
            # lock at every look.
            with Session(self._engine()) as session:
                ids = waiting_case_ids(session, after_id=after, limit=self.page)
            for case_id in ids:
                self._hand_over(case_id)
            count += len(ids)
            if ids:
                after = ids[-1]
            if len(ids) < self.page:
                return count, after

    def _engine(self) -> Engine:
        if self._bound is None:
            with self.app.app_context():
                self._bound = db.engine
        return self._bound

    def _hand_over(self, case_id: int) -> None:
        queue.enqueue(self.app, ROUTE_CASE, (case_id,))  # held and retried by app.queue if Redis is down
