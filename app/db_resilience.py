"""Dropped database connections never reach a user as a 500.

Two layers, neither costing a round trip per request (``pool_pre_ping`` costs one ``SELECT 1``):

1. On checkout from the pool, a zero-timeout ``select()`` on the idle connection's socket: an idle
   PostgreSQL connection has nothing to read unless the server ended it (``pg_terminate_backend``, a
   restart, a failover sends a FATAL notice and closes the socket). Such a connection is discarded with
   ``DisconnectionError`` and SQLAlchemy checks out a fresh one — the documented custom pessimistic check.
2. A connection that dies *during* a request (the server ended it mid-query) fails that request's
   statement with a disconnect error; SQLAlchemy then invalidates the pool. If the request has committed
   nothing yet, the whole request is run once more on a new connection: its transaction was rolled back
   by the server, so nothing is done twice. A disconnect after a commit is not retried. SQLite's
   "database is locked" on a read transaction's first write is retried the same way.
"""

from __future__ import annotations

import select
from typing import Any

from flask import Flask, Response, g, has_request_context
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session

from app.extensions import db

_RETRY = "minhu_db_retry"
_RETRIED = "minhu_db_retried"
_COMMITTED = "minhu_db_committed"


def socket_closed_by_server(dbapi_connection: Any) -> bool:
    """True when an idle connection's socket is readable: the server sent a notice or closed it."""
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return False  # SQLite and drivers without a socket
    try:
        readable, _, _ = select.select([fileno()], [], [], 0)
    except (OSError, ValueError):
        return True  # the descriptor is already gone
    return bool(readable)


def configure_engine(engine: Engine) -> None:
    """Discard connections the server has ended before handing them out."""
    if engine.dialect.name != "postgresql" or getattr(engine, "_minhu_checkout_check", False):
        return
    engine._minhu_checkout_check = True  # type: ignore[attr-defined]

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if socket_closed_by_server(dbapi_connection):
            raise DisconnectionError("connection closed by the server while idle in the pool")


@event.listens_for(Session, "after_commit")
def _remember_commit(_session: Session) -> None:
    if has_request_context():
        setattr(g, _COMMITTED, True)


def retriable(error: DBAPIError) -> bool:
    """A lost connection, or SQLite refusing a read transaction's upgrade to a write (another writer
    committed since it read: SQLITE_BUSY_SNAPSHOT, reported at once as "database is locked")."""
    if error.connection_invalidated:
        return True
    return type(error.orig).__module__.startswith("sqlite3") and "database is locked" in str(error.orig)


def init_app(app: Flask) -> None:
    """Install the checkout check and the once-only retry of a request whose connection died."""
    with app.app_context():
        configure_engine(db.engine)

    def on_disconnect(error: DBAPIError) -> Any:
        if retriable(error) and not g.get(_COMMITTED) and not g.get(_RETRIED):
            setattr(g, _RETRY, True)
            return Response(status=503)  # replaced by the retried request's response
        raise error

    app.register_error_handler(DBAPIError, on_disconnect)
    inner = app.full_dispatch_request

    def full_dispatch_request() -> Response:
        response = inner()
        if g.pop(_RETRY, False):
            setattr(g, _RETRIED, True)
            db.session.rollback()
            app.logger.warning(
                "transient database error before any commit (lost connection or SQLite lock); request retried once"
            )
            response = inner()
        return response

    app.full_dispatch_request = full_dispatch_request  # type: ignore[method-assign]
