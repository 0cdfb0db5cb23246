"""Client addresses behind reverse proxies: believed only from as many proxies as TRUSTED_PROXIES says."""

from __future__ import annotations

from pathlib import Path

from flask import request

from app import create_app


def _remote_addr(tmp_path: Path, trusted: int) -> str:
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "test-secret",
            "TESTING": True,
            "TRUSTED_PROXIES": trusted,
        }
    )
    app.add_url_rule("/whoami", "whoami", lambda: request.remote_addr or "")
    headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    response = app.test_client().get("/whoami", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    return response.get_data(as_text=True)


def test_forwarded_for_is_ignored_without_trusted_proxies(tmp_path: Path) -> None:
    assert _remote_addr(tmp_path, 0) == "10.0.0.2"  # a client cannot choose its own address


def test_one_trusted_proxy_gives_the_address_it_saw(tmp_path: Path) -> None:
    assert _remote_addr(tmp_path, 1) == "198.51.100.7"  # the nearest proxy's entry, not the client's claim
