#!/usr/bin/env python3
"""The two set-up commands of 民呼我应 (standard library only, so it runs on a bare Python 3.11+).

    python3 manage.py run    # create .venv, install, migrate, load demo data, start web + worker
    python3 manage.py test   # create .venv, install with test extras, run every test tier

Each creates its own virtual environment in .venv and installs from pyproject.toml when that file
changed since the last install (or when `test` needs extras that `run` did not install); a
busy --port is reported before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv(extras: str = "") -> None:
    """Create .venv and install the project when pyproject.toml changed or ``extras`` are missing.

    The stamp names pyproject.toml's digest and records the extras installed with it, so ``run`` after
    ``test`` (whose install is a superset) installs nothing, and ``test`` after ``run`` adds its extras once.
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - manage.py runs on whatever python3 the user has
        sys.exit("需要 Python 3.11 或更高版本 / Python 3.11+ is required")
    if not PYTHON.exists():
        print("创建虚拟环境 .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    wanted = {e for e in extras.split(",") if e}
    installed = set(stamp.read_text().split()) if stamp.exists() else set()
    if stamp.exists() and wanted <= installed:
        return
    print("安装依赖 …", flush=True)
    extras_now = sorted(wanted | installed)
    target = f"{ROOT}[{','.join(extras_now)}]" if extras_now else str(ROOT)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-e", target], check=True)
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.write_text(" ".join(extras_now))


def port_problem(args: list[str]) -> str | None:
    """One line (Chinese + English) when the ``--host``/``--port`` that ``run`` would serve on is taken."""
    host, port = "127.0.0.1", 5000
    for i, arg in enumerate(args):
        for name in ("--host", "--port"):
            value = None
            if arg == name and i + 1 < len(args):
                value = args[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
            if value is not None and name == "--host":
                host = value
            elif value is not None:
                if not value.isdigit():
                    return f"端口必须是数字：{value} / --port must be a number: {value}"
                port = int(value)
    return bind_problem(host, port)


def bind_problem(host: str, port: int) -> str | None:
    """Try to bind ``host:port`` as the web server will (SO_REUSEADDR on POSIX); a message if it cannot."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        if os.name == "posix":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"端口 {port} 已被占用或不可用（{host}），请用 --port 换一个端口 / "
                f"port {port} on {host} is busy or unavailable ({exc.strerror}); choose another with --port"
            )
    return None


def has_cjk_font() -> bool:
    """Whether fontconfig knows a font with Chinese glyphs (else screenshots show empty boxes)."""
    if not shutil.which("fc-list"):
        return False
    found = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


def ensure_chromium() -> None:
    """End-to-end tests drive Debian's chromium with a CJK font (readable screenshots); install them
    with apt when we may (root), else say why not."""
    wanted = []
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        wanted.append("chromium")
    if not has_cjk_font():
        wanted.append("fonts-wqy-microhei")
    if not wanted:
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"安装 {' '.join(wanted)}（端到端测试用）…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *wanted], check=False, env=env, stdout=subprocess.DEVNULL
        )
    if not shutil.which("chromium"):
        print(
            "提示：未找到 chromium，端到端浏览器测试将被跳过（apt-get install chromium 可启用）", flush=True
        )


def run(args: list[str]) -> int:
    """Start the platform on the embedded defaults (or DATABASE_URL / REDIS_URL when set)."""
    problem = port_problem(args)  # before installing or migrating anything
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return 1
    ensure_venv()
    command = [str(PYTHON), "-m", "flask", "--app", "app", "serve", *args]
    os.chdir(ROOT)
    if os.name == "posix":
        os.execv(command[0], command)  # the server gets signals (Ctrl-C, SIGTERM) directly
    return subprocess.call(command)


def test(args: list[str]) -> int:
    """Run every test tier (pytest arguments pass through)."""
    ensure_venv("test")
    ensure_chromium()
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)


def main() -> int:
    """Dispatch ``run`` or ``test``."""
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        print(__doc__)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    return run(rest) if command == "run" else test(rest)


if __name__ == "__main__":
    sys.exit(main())
