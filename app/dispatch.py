"""Hand-off of new cases to routing: by the database on PostgreSQL, by the web process elsewhere.

On PostgreSQL a trigger on ``cases`` sends each new case's id on a channel when the inserting
transaction commits (routing/models.py). :class:`Dispatcher` — a thread of the ``flask worker``
processes that serve the routing queue — listens and queues the case's first hop. Intake then sends no
job from the web process: the hand-off is atomic with the case's commit (no window between commit and
enqueue in which a dying web process leaves a case waiting for the sweeper), and a web request talks
to Redis only for its rate limit.

One dispatcher works at a time across all workers and machines: it holds a PostgreSQL advisory lock on
its listening connection, so the lock goes when its process or connection dies and a standby takes over
within a second. Notifications sent while nobody listens are not kept by PostgreSQL, so whoever starts
listening first queues every case still waiting in ``submitted`` (paged by id). A failed enqueue
(Redis down) is held and retried by :mod:`app.queue`; a second job for a case is a no-op.

Elsewhere (SQLite, or RQ_ASYNC off) the process that stored the case enqueues after its commit.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import psycopg
from flask import Flask, current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import queue
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
    on_postgresql = str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")
    if mode == "auto":
        return on_postgresql and bool(app.config.get("RQ_ASYNC", True))
    if mode == "database" and not on_postgresql:
        raise ValueError("ROUTING_HANDOFF=database needs PostgreSQL (its LISTEN/NOTIFY)")
    return mode == "database"


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


LEADER_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND d.datname = current_database()"
    " AND l.classid::bigint = :classid AND l.objid::bigint = :objid)"
)


class Dispatcher(threading.Thread):
    """Queues the first routing hop of every case the database announces, while it holds the lead."""

    def __init__(self, app: Flask, retry: float = 1.0, page: int = 1000) -> None:
        super().__init__(name="routing-dispatcher", daemon=True)
        self.app = app
        self.retry = retry  # seconds between attempts at the lead, and between checks of stop()
        self.page = page
        self.conninfo = libpq_url(app.config["SQLALCHEMY_DATABASE_URI"])
        self.key = lock_key(app)
        self.stopping = threading.Event()
        self.leading = threading.Event()  # set while this thread holds the lead and listens
        self.failures = 0
        self.handed = 0  # cases queued (notified or caught up), for tests and logs

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
            self.stopping.wait(min(MAX_BACKOFF, self.retry * 2 ** min(self.failures, 4)))

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def _serve(self) -> None:
        with psycopg.connect(
            self.conninfo, autocommit=True, connect_timeout=5, keepalives=1, keepalives_idle=30
        ) as connection:
            while not self._take_lead(connection):
                if self.stopping.wait(self.retry):
                    return
            connection.execute(f"LISTEN {ROUTING_CHANNEL}")  # before catching up: no case falls between
            self.leading.set()
            if self.failures:
                log.info("routing dispatcher: database is back after %d failed attempts", self.failures)
                self.failures = 0
            caught_up = self.catch_up()
            log.info("routing dispatcher: listening (%d waiting case(s) queued)", caught_up)
            while not self.stopping.is_set():
                for notice in connection.notifies(timeout=self.retry):
                    self._hand_over(int(notice.payload))

    def _take_lead(self, connection: psycopg.Connection[Any]) -> bool:
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def catch_up(self) -> int:
        """Queue every case still waiting in ``submitted``; how many."""
        from routing.services import waiting_case_ids

        factory = self.app.extensions["session_factory"]
        after, count = 0, 0
        while True:
            with factory() as session:
                ids = waiting_case_ids(session, after_id=after, limit=self.page)
            for case_id in ids:
                self._hand_over(case_id)
            count += len(ids)
            if len(ids) < self.page:
                return count
            after = ids[-1]

    def _hand_over(self, case_id: int) -> None:
        queue.enqueue(self.app, ROUTE_CASE, (case_id,))  # held and retried by app.queue if Redis is down
        self.handed += 1
