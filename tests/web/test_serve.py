"""``flask serve``: a busy port stops it before anything is migrated; --no-demo; --workers says what it counts."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import User


@pytest.fixture
def quiet_serve(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """serve() with migrations, the web server and the watchdog recorded instead of run."""
    import flask_migrate
    import waitress

    from app import supervise

    calls: dict[str, list[Any]] = {"upgrade": [], "waitress": [], "watchdog": []}
    monkeypatch.setattr(flask_migrate, "upgrade", lambda *a, **k: calls["upgrade"].append(a))
    monkeypatch.setattr(waitress, "serve", lambda *a, **k: calls["waitress"].append(k))

    class RecordingWatchdog(supervise.Watchdog):
        @classmethod
        def start(cls) -> supervise.Watchdog:
            calls["watchdog"].append("start")
            return cls(None)

    monkeypatch.setattr(supervise, "Watchdog", RecordingWatchdog)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:6379/5")  # no embedded Redis here
    return calls


def test_busy_port_is_one_clear_line_and_nothing_is_migrated(
    app: Flask, session: Session, quiet_serve: dict[str, list[Any]]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = app.test_cli_runner().invoke(args=["serve", "--port", str(port), "--workers", "0"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"端口 {port} 已被占用" in lines[0] and f"port {port}" in lines[0]
    assert quiet_serve["upgrade"] == [] and quiet_serve["waitress"] == [] and quiet_serve["watchdog"] == []


def test_no_demo_loads_no_demo_data(
    app: Flask, session: Session, quiet_serve: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.cli as cli

    def no_demo_please(*_: Any, **__: Any) -> None:
        raise AssertionError("demo data loaded despite --no-demo")

    monkeypatch.setattr(cli, "_load_demo", no_demo_please)
    users = session.scalar(select(func.count()).select_from(User))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = app.test_cli_runner().invoke(args=["serve", "--port", str(port), "--workers", "0", "--no-demo"])
    assert result.exit_code == 0, result.output
    assert len(quiet_serve["upgrade"]) == 1 and quiet_serve["waitress"][0]["port"] == port
    assert "示例账号" not in result.output
    assert session.scalar(select(func.count()).select_from(User)) == users


def test_workers_help_says_it_counts_rq_workers(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["serve", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "RQ worker" in text and "不是 Web 进程数" in text and "not web processes" in text
    assert "--no-demo" in text
