"""Local fake servers for the message channels: an HTTP SMS gateway (http.server) and SMTP (aiosmtpd).

Both listen on 127.0.0.1 on a free loopback port chosen by the OS and record what they got.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    """A loopback port nothing listens on now, chosen by the OS (parallel test workers never collide)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gateway:
    """What the fake SMS gateway received, and the status codes it answers with (then 200)."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)


@contextmanager
def sms_gateway(answers: list[int] | None = None) -> Iterator[Gateway]:
    """Run an HTTP gateway that records each JSON POST; answers the given codes in turn, then 200."""
    gateway = Gateway(answers=list(answers or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            gateway.received.append(json.loads(self.rfile.read(length).decode("utf-8")))
            gateway.headers.append(dict(self.headers.items()))
            code = gateway.answers.pop(0) if gateway.answers else 200
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if code < 300 else b'{"ok": false}')

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/sms"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    """Messages the fake SMTP server accepted."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """Run an aiosmtpd server that keeps every message it accepts."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            parsed = message_from_bytes(envelope.content, policy=policy.default)
            mailbox.messages.append(parsed)  # type: ignore[arg-type]
            return "250 OK"

    mailbox.port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
