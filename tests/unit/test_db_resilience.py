"""Which database errors make a request run once more (only those where the server did nothing)."""

from __future__ import annotations

import socket
import sqlite3

from sqlalchemy.exc import OperationalError

from app.db_resilience import retriable, socket_closed_by_server


def test_sqlite_lock_upgrade_failure_is_retriable() -> None:
    error = OperationalError("INSERT …", {}, sqlite3.OperationalError("database is locked"))
    assert retriable(error)


def test_other_errors_are_not() -> None:
    assert not retriable(OperationalError("INSERT …", {}, sqlite3.OperationalError("no such table: x")))
    assert not retriable(OperationalError("INSERT …", {}, ValueError("database is locked")))


def test_lost_connection_is_retriable() -> None:
    assert retriable(OperationalError("SELECT 1", {}, ValueError("gone"), connection_invalidated=True))


class FakeConnection:
    """What the checkout check needs of a DBAPI connection: its socket's descriptor."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()


def test_idle_socket_is_alive_until_the_server_closes_it() -> None:
    client, server = socket.socketpair()
    try:
        assert not socket_closed_by_server(FakeConnection(client))
        server.close()
        assert socket_closed_by_server(FakeConnection(client))
        assert not socket_closed_by_server(object())  # SQLite: no socket, nothing to check
    finally:
        client.close()
