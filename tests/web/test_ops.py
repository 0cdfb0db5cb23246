"""Operations endpoints and logs: /healthz, /readyz, /metrics, request ids, access lines, no personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import logging_setup, ops
from core import jobs

NAME = "欧阳测试"
PHONE = "13987654321"
DESCRIPTION = "小区东门路灯坏了三盏，夜里很黑"
BODY = {
    "category": "HW-01",
    "community": "420102-S1-C1",
    "address": "幸福小区 3 栋 2 单元",
    "description": DESCRIPTION,
    "contact_name": NAME,
    "contact_phone": PHONE,
}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the project's JSON handler writes while the test runs."""
    stream = io.StringIO()
    handler = logging_setup.make_handler("json", stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


@pytest.fixture(autouse=True)
def no_jobs(monkeypatch: pytest.MonkeyPatch, session: Session) -> None:
    """Intake enqueues nothing here (routing is not under test)."""
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _force_insert_failure(session: Session) -> None:
    """Make every insert into cases fail (not as a constraint, which intake retries) in the test transaction."""
    if session.get_bind().dialect.name == "postgresql":
        # The shape PostgreSQL gives its own errors: the failing row (name, phone, …) in the DETAIL.
        session.execute(
            text(
                "CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'forced failure' USING ERRCODE = 'data_exception', "
                "DETAIL = 'Failing row contains (' || NEW.contact_name || ', ' || NEW.contact_phone || ').'; "
                "END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER forced_failure BEFORE INSERT ON cases FOR EACH ROW EXECUTE FUNCTION forced_failure()"
            )
        )
    else:
        # SQLite resolves a trigger's tables when it fires: the insert fails with OperationalError.
        session.execute(
            text(
                "CREATE TRIGGER forced_failure BEFORE INSERT ON cases BEGIN INSERT INTO no_such_table VALUES (1); END"
            )
        )


def test_failed_insert_logs_no_name_phone_or_description(
    app: Flask, client: Any, session: Session, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _force_insert_failure(session)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # log it as production does
    response = client.post("/api/v1/requests", json=BODY)
    assert response.status_code == 500
    output = log_lines.getvalue()
    assert "Traceback" in output and "cases" in output  # the error itself is still there to debug
    for secret in (NAME, PHONE, DESCRIPTION, PHONE[-4:] + "'", json.dumps(NAME)[1:-1]):
        assert secret not in output, secret
    [error] = [r for r in _records(log_lines) if r["level"] == "ERROR"]
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_scrub_exception_removes_row_values() -> None:
    text_ = (
        'psycopg.errors.CheckViolation: new row for relation "cases" violates check constraint "ck"\n'
        "DETAIL:  Failing row contains (7, 张三丰, 13812345678, 路灯坏了).\n"
        "[SQL: INSERT INTO cases (contact_name) VALUES (%(contact_name)s)]\n"
        "[parameters: {'contact_name': '张三丰', 'contact_phone': '13812345678'}]\n"
        "DETAIL:  Key (idempotency_key)=(张三丰-13812345678) already exists.\n"
        'CONTEXT:  COPY cases, line 1: "张三丰"\n'
    )
    cleaned = logging_setup.scrub_exception(text_)
    assert "张三丰" not in cleaned and "13812345678" not in cleaned and "路灯" not in cleaned
    assert "Key (idempotency_key)=(…) already exists" in cleaned
    assert "[parameters: hidden]" in cleaned and "CheckViolation" in cleaned


def test_request_id_is_honoured_or_created_and_one_access_line(client: Any, log_lines: io.StringIO) -> None:
    response = client.get("/status/MH1?k=secret-token", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    created = client.get("/healthz", headers={"X-Request-ID": "bad id <x>"})
    assert created.headers["X-Request-ID"] not in ("", "bad id <x>")
    assert len(created.headers["X-Request-ID"]) == 32
    access = [r for r in _records(log_lines) if r["logger"] == "minhu.access"]
    assert [a["path"] for a in access] == ["/status/MH1", "/healthz"]
    first = access[0]
    assert first["request_id"] == "abc-123" and first["method"] == "GET"
    assert first["status"] == response.status_code and first["duration_ms"] >= 0
    assert "secret-token" not in log_lines.getvalue()


def test_text_format_is_scrubbed_too() -> None:
    stream = io.StringIO()
    handler = logging_setup.make_handler("text", stream)
    logger = logging.getLogger("minhu.test.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logging_setup.REQUEST_ID.set("rid-1")
        logger.info("call %s", "13812345678")
    finally:
        logging_setup.REQUEST_ID.set(None)
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert "rid-1" in line and "138****5678" in line and "13812345678" not in line


def test_healthz_answers_without_io(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_names_what_failed(app: Flask, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    monkeypatch.setitem(app.extensions, "ops_redis", None)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "fail"
    assert set(body["failed"]) == {"redis", "migrations"}  # the test schema is built without Alembic
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["migrations"]["head"] == list(ops.migration_heads())


def test_readyz_ok_when_everything_is_up(app: Flask, client: Any, session: Session) -> None:
    session.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
    for head in ops.migration_heads():
        session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})
    response = client.get("/readyz")  # Redis: the embedded one of the test instance
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["failed"] == []


def test_readyz_reports_old_migration_revision(client: Any, session: Session) -> None:
    session.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
    session.execute(text("INSERT INTO alembic_version VALUES ('0000older')"))
    body = client.get("/readyz").get_json()
    assert "migrations" in body["failed"]
    assert body["checks"]["migrations"]["error"] == "not_at_head"
    assert body["checks"]["migrations"]["current"] == ["0000older"]


def test_calendar_coverage_is_a_warning(app: Flask, session: Session) -> None:
    # The test database holds the notices the holiday library knows (up to 2026), not 2027's.
    with app.test_request_context():
        assert ops.calendar_warnings(date(2026, 6, 1)) == []
        [warning] = ops.calendar_warnings(date(2026, 12, 1))
    assert warning["code"] == "calendar_not_covered" and "2027" in warning["message"]


def test_metrics_from_loopback(client: Any) -> None:
    client.get("/healthz")
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert 'minhu_http_requests_total{endpoint="ops.healthz",method="GET",status="200"}' in body
    assert "minhu_http_request_duration_seconds_bucket" in body
    assert 'minhu_cases{state="dispatched"}' in body  # the demo samples, routed inline
    assert "minhu_oldest_unrouted_case_age_seconds" in body
    assert 'minhu_metrics_source_up{source="database"} 1.0' in body


def test_metrics_refused_to_others_unless_token(
    app: Flask, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 404
    proxied = client.get(
        "/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Forwarded-For": "1.2.3.4"}
    )
    assert proxied.status_code == 404
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "s3cret-token")
    assert (
        client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer wrong"}).status_code
        == 404
    )
    ok = client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "text_",
    ["call 13812345678", "call 138-1234-5678", "+86 139 8765 4321", "/status/X?k=abc", "/a?x=1&token=abc"],
)
def test_the_cheap_precheck_never_skips_what_scrub_would_change(text_: str) -> None:
    from core.privacy import scrub

    assert scrub(text_) != text_
    assert logging_setup.scrub_line(text_) == scrub(text_)


def test_a_traceback_logged_as_message_text_is_scrubbed(log_lines: io.StringIO) -> None:
    # RQ's worker logs a failed job as logger.error("%s", traceback text), with no exc_info.
    traceback_text = (
        'Traceback (most recent call last):\n  File "routing/jobs.py", line 1\n'
        'psycopg.errors.NotNullViolation: null value in column "unit_id"\n'
        f"DETAIL:  Failing row contains (9, {NAME}, {PHONE}, {DESCRIPTION}).\n"
    )
    logging.getLogger("rq.worker").error("%s", traceback_text)
    output = log_lines.getvalue()
    assert "NotNullViolation" in output
    for secret in (NAME, PHONE, DESCRIPTION):
        assert secret not in output
