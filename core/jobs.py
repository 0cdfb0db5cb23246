"""Job ports: how domain jobs get a database session and enqueue follow-up work without importing RQ.

The web shell (app) configures both at start-up: a session factory bound to its engine, and an enqueuer
that applies the RQ policy. Domain job functions stay plain functions of primitive arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

SessionFactory = Callable[[], Session]
Enqueuer = Callable[[str, tuple[Any, ...]], None]

_session_factory: SessionFactory | None = None
_enqueuer: Enqueuer | None = None


def configure(session_factory: SessionFactory, enqueuer: Enqueuer) -> None:
    """Install the session factory and the enqueuer (called by the composition root)."""
    global _session_factory, _enqueuer
    _session_factory, _enqueuer = session_factory, enqueuer


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    if _session_factory is None:
        raise RuntimeError("core.jobs.configure() was not called: no session factory")
    session = _session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def enqueue(task: str, *args: Any) -> None:
    """Ask for ``task`` (a dotted path such as "routing.jobs.route_case") to run with ``args``."""
    if _enqueuer is None:
        raise RuntimeError("core.jobs.configure() was not called: no enqueuer")
    _enqueuer(task, args)
