"""gunicorn.conf.py: workers and threads from the environment, the prometheus multiprocess folder handled."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """The settings gunicorn would read, under ``env``."""
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_BIND", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.setenv(name, "")  # empty counts as unset; monkeypatch restores the original after
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_workers_and_threads_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = load(
        monkeypatch,
        GUNICORN_WORKERS="5",
        GUNICORN_THREADS="3",
        GUNICORN_BIND="127.0.0.1:5142",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    assert (conf["workers"], conf["threads"], conf["worker_class"]) == (5, 3, "gthread")
    assert conf["bind"] == ["127.0.0.1:5142"] and conf["wsgi_app"] == "app:create_app()"
    single = load(monkeypatch, GUNICORN_THREADS="1", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert single["worker_class"] == "sync" and single["workers"] >= 1


def test_a_multiprocess_folder_is_created_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    load(monkeypatch)
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])  # set for the workers the master forks
    assert folder.is_dir()
    folder.rmdir()


def test_start_empties_the_folder_and_child_exit_marks_the_worker_dead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = load(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    (tmp_path / "counter_999.db").write_bytes(b"stale")
    conf["on_starting"](None)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"live")
    (tmp_path / "counter_4242.db").write_bytes(b"kept")  # counters of dead workers still count
    conf["child_exit"](None, SimpleNamespace(pid=4242))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_4242.db"]


def test_gunicorn_logs_json_through_the_privacy_filters(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io
    import logging
    import logging.config

    conf = load(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(conf["logconfig_dict"])
        assert len(root.handlers) == 1
        stream = io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        logging.getLogger("gunicorn.error").warning("worker for 13812345678 at /s/1/C1?t=secret")
        line = stream.getvalue()
    finally:
        root.handlers[:], root.level = saved
    assert '"logger": "gunicorn.error"' in line
    assert "13812345678" not in line and "secret" not in line and "138****5678" in line
