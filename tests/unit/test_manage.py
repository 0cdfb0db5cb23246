"""manage.py: installs only when needed, and refuses a busy port before installing anything."""

from __future__ import annotations

import importlib.util
import socket
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_manage() -> ModuleType:
    """manage.py as a module (it is a script at the top level, not part of a package)."""
    spec = importlib.util.spec_from_file_location("manage_under_test", ROOT / "manage.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def manage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, list[list[str]]]:
    """manage.py with its .venv in a temporary folder and pip calls recorded instead of run."""
    module = load_manage()
    venv_dir = tmp_path / ".venv"
    (venv_dir / "bin").mkdir(parents=True)
    python = venv_dir / "bin" / "python"
    python.write_text("")
    monkeypatch.setattr(module, "VENV", venv_dir)
    monkeypatch.setattr(module, "PYTHON", python)
    calls: list[list[str]] = []

    def fake_run(command: list[str], **_: Any) -> None:
        calls.append(command)

    monkeypatch.setattr(module.subprocess, "run", fake_run)
    return module, calls


def installs(calls: list[list[str]]) -> list[str]:
    """The targets of the ``pip install -e`` calls."""
    return [c[-1] for c in calls if "-e" in c]


def test_run_and_test_alternating_install_once_each_way(manage: tuple[ModuleType, list[list[str]]]) -> None:
    module, calls = manage
    module.ensure_venv("test")
    module.ensure_venv("")
    module.ensure_venv("test")
    module.ensure_venv("")
    assert installs(calls) == [f"{module.ROOT}[test]"]


def test_run_first_then_test_adds_the_extras_once(manage: tuple[ModuleType, list[list[str]]]) -> None:
    module, calls = manage
    module.ensure_venv("")
    module.ensure_venv("test")
    module.ensure_venv("")
    module.ensure_venv("test")
    assert installs(calls) == [str(module.ROOT), f"{module.ROOT}[test]"]


def test_run_refuses_a_busy_port_in_one_line_before_installing(
    manage: tuple[ModuleType, list[list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    module, calls = manage
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert module.run(["--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"端口 {port} 已被占用" in err and f"port {port}" in err
    assert calls == []  # nothing installed, nothing migrated


def test_port_problem_reads_both_spellings_and_passes_a_free_port() -> None:
    module = load_manage()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert module.port_problem([f"--port={port}"])
        assert module.port_problem(["--host", "127.0.0.1", "--port", str(port)])
    assert module.port_problem(["--port", str(port)]) is None  # closed again: free
    assert "--port" in (module.port_problem(["--port", "abc"]) or "")


def test_pyproject_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["license"] == "MIT"
    requires = data["build-system"]["requires"]
    assert any(r.replace(" ", "").startswith("setuptools>=") for r in requires)
    floor = next(r for r in requires if r.startswith("setuptools")).split(">=")[1]
    assert tuple(int(x) for x in floor.split(".")) >= (77,)
