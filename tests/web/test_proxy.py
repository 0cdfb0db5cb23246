"""Client addresses behind reverse proxies: believed only from as many proxies as TRUSTED_PROXIES says."""

from __future__ import annotations

from flask import Flask, request

from app import _trust_proxies


def _remote_addr(trusted: int) -> str:
    # A bare Flask app with the same wiring: building another full app would re-bind shared extensions
    # (the rate limiter) away from the suite's app.
    app = Flask(__name__)
    app.config["TRUSTED_PROXIES"] = trusted
    _trust_proxies(app)
    app.add_url_rule("/whoami", "whoami", lambda: request.remote_addr or "")
    headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
    response = app.test_client().get("/whoami", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    return response.get_data(as_text=True)


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    assert _remote_addr(0) == "10.0.0.2"  # a client cannot choose its own address


def test_one_trusted_proxy_gives_the_address_it_saw() -> None:
    assert _remote_addr(1) == "198.51.100.7"  # the nearest proxy's entry, not the client's claim
