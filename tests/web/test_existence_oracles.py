"""No existence oracles: every route that takes a tracking number answers a number that does not exist
exactly as one the caller may not see (status, headers, body with the number swapped)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from tests.builders import routed
from tests.conftest import login

UNKNOWN = "MH20000101-ZZZZZ"
WRONG_TOKEN = "AAAAAAAAAAAAAAAAAAAAAAAA"
CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*"')  # random per session


def shape(response: Any, number: str) -> tuple[int, dict[str, str], str]:
    """What a caller can observe, with the tracking number replaced by a placeholder."""
    headers = {
        k: v for k, v in response.headers.items() if k not in ("Set-Cookie", "Content-Length", "X-Request-ID")
    }
    cookies = sorted(c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie"))
    headers["cookies"] = ",".join(cookies)
    body = response.get_data(as_text=True).replace(number, "<tn>").replace(number.lower(), "<tn>")
    body = CSRF_VALUE.sub(r'\1"', body)
    return response.status_code, {k: v.replace(number, "<tn>") for k, v in headers.items()}, body


# (signed-in user or None, method, path template, form data)
PROBES = [
    (None, "GET", "/status/{tn}", None),
    (None, "GET", "/status/{tn}?k=" + WRONG_TOKEN, None),
    (None, "GET", "/requests/{tn}/submitted?k=" + WRONG_TOKEN, None),
    (None, "POST", "/status/{tn}/callback?k=" + WRONG_TOKEN, {"solved": "yes", "satisfaction": "satisfied"}),
    (None, "GET", "/api/v1/requests/{tn}", None),
    (None, "GET", "/api/v1/requests/{tn}?token=" + WRONG_TOKEN, None),
    (None, "POST", "/lookup", {"tracking_number": "{tn}", "contact_phone": "13900009999"}),
    ("resident", "GET", "/status/{tn}", None),
    ("handler-fgj", "GET", "/status/{tn}", None),
    ("handler-fgj", "GET", "/workbench/cases/{tn}", None),
    ("handler-fgj", "POST", "/workbench/cases/{tn}/accept", {}),
    ("handler-fgj", "GET", "/api/v1/requests/{tn}", None),
    ("handler-fgj", "GET", "/api/v1/requests/{tn}?token=" + WRONG_TOKEN, None),
    ("dispatcher-district", "POST", "/workbench/cases/{tn}/supervise", {"supervise-reason": "督办"}),
]


@pytest.mark.parametrize(
    ("username", "method", "path", "data"), PROBES, ids=[f"{p[0]} {p[2]}" for p in PROBES]
)
def test_an_unknown_number_and_a_hidden_case_look_the_same(
    app: Flask, session: Session, username: str | None, method: str, path: str, data: dict[str, str] | None
) -> None:
    hidden = routed(session, "HW-01", community="420103-S1-C1")  # another district; not the resident's
    session.commit()
    answers = []
    for number in (hidden.tracking_number, UNKNOWN):
        # A fresh app context each time: requests in the test's context would share ``g`` (and the
        # CSRF token cached there), so only the first would set a session cookie.
        with app.app_context():
            client = app.test_client()
            if username is not None:
                login(client, username)
            url = path.format(tn=number)
            form = {k: v.format(tn=number) for k, v in data.items()} if data is not None else None
            response = client.open(url, method=method, data=form)
            answers.append(shape(response, number))
    assert answers[0] == answers[1]
    assert answers[0][0] in (302, 401, 404), answers[0][:2]
    assert hidden.state == "dispatched" and not hidden.supervised
