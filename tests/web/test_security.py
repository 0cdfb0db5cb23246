"""Security review regressions: formula-safe exports, upload size limits, tokens kept out of logs."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from core.models import Unit
from tests.conftest import login
from tests.web.test_surveys import C1, make_survey, seed_answers

FORMULA = '=HYPERLINK("http://evil.example","点我")'


def test_survey_exports_neutralise_formulas_in_names(client: Any, session: Session) -> None:
    unit = session.scalar(select(Unit).where(Unit.code == C1))
    assert unit is not None
    unit.name = FORMULA
    session.flush()
    survey = make_survey(session)
    seed_answers(session, survey, C1, [(5, 4), (3, 3)])
    login(client, "evaluator")
    text = client.get("/surveys/results.csv?quarter=2026Q3").get_data(as_text=True)
    frame = pd.read_csv(io.StringIO(text.lstrip("\ufeff")))
    names = set(frame.loc[frame["社区代码"] == C1, "社区"])
    assert names == {"'" + FORMULA}
    sheet = load_workbook(io.BytesIO(client.get("/surveys/results.xlsx?quarter=2026Q3").data)).active
    assert sheet is not None
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert not [c for c in cells if c.data_type == "f"]  # no cell is stored as a formula
    assert "'" + FORMULA in {c.value for c in cells}


def _evidence_post(client: Any, payload: bytes, name: str) -> Any:
    # Encoded here, in memory: the test client would spool a big body to a temp file it never closes.
    fields = {
        "unit": "nope",
        "code": "check",
        "value": "1",
        "evidence": FileStorage(io.BytesIO(payload), name),
    }
    boundary, body = encode_multipart(fields)
    return client.post(
        "/assessment/entries", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_staff_uploads_may_exceed_the_page_limit_up_to_upload_max_bytes(
    app: Any, client: Any, session: Session
) -> None:
    three_mb = b"x" * (3 * 1024 * 1024)
    assert len(three_mb) > app.config["MAX_CONTENT_LENGTH"]
    # A resident's form is held to MAX_CONTENT_LENGTH (2 MB) …
    assert client.post("/requests/new", data={"description": three_mb.decode()}).status_code == 413
    login(client, "evaluator")
    # … an evaluator's evidence photo of 3 MB is read (the unit code is wrong, so the page answers 200) …
    response = _evidence_post(client, three_mb, "photo.jpg")
    assert response.status_code == 200 and "单位编码不存在" in response.get_data(as_text=True)
    # … and stops at UPLOAD_MAX_BYTES.
    previous = app.config["UPLOAD_MAX_BYTES"]
    app.config["UPLOAD_MAX_BYTES"] = 1024 * 1024
    try:
        assert _evidence_post(client, three_mb, "photo.jpg").status_code == 413
    finally:
        app.config["UPLOAD_MAX_BYTES"] = previous


def test_evidence_of_an_unknown_type_is_refused_and_nothing_is_stored(
    app: Any, client: Any, session: Session
) -> None:
    from pathlib import Path

    folder = Path(app.instance_path) / "evidence"
    before = set(folder.iterdir()) if folder.exists() else set()
    login(client, "evaluator")
    body = _evidence_post(client, b"<script>alert(1)</script>", "x.html").get_data(as_text=True)
    assert "证据文件类型不支持" in body
    after = set(folder.iterdir()) if folder.exists() else set()
    assert after == before


def test_request_loggers_mask_tokens_and_pages_send_no_referer(app: Any, client: Any) -> None:
    import logging

    from core.privacy import PiiLogFilter

    for name in ("werkzeug", "waitress"):
        assert any(isinstance(f, PiiLogFilter) for f in logging.getLogger(name).filters), name
    response = client.get("/")
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_login_never_redirects_off_site(client: Any, session: Session) -> None:
    for target in ("//evil.example", "/\\evil.example", "/\\/evil.example", "/\t/evil.example", "https://x"):
        response = client.post(
            "/login", query_string={"next": target}, data={"username": "admin", "password": "demo-pass-2026"}
        )
        # An off-site ?next= is ignored: the admin lands on the workbench, as without one.
        assert response.status_code == 302 and response.headers["Location"] == "/workbench", target
        client.post("/logout")
    response = client.post(
        "/login",
        query_string={"next": "/workbench"},
        data={"username": "admin", "password": "demo-pass-2026"},
    )
    assert response.headers["Location"].endswith("/workbench")
