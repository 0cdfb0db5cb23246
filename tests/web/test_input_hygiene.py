"""Input hygiene through the pages and the API: control characters, invisible text, bounded numbers,
JSON depth. Each case was a 500 or a stored NUL before; now it is refused, says why and stores nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from assessment.models import EvaluatorEntry
from surveys.models import Survey
from tests.conftest import login
from tests.web.test_api_v1 import VALID, assert_422, case_count, create
from tests.web.test_intake_form import assert_rejected, post_form
from tests.web.test_surveys import C1, make_survey

INVISIBLE = "\u200b\u200d\u3000\u2800\ufeff\u3164 \u00a0\u2060"


@pytest.mark.parametrize("field", ["description", "address", "contact_name"])
@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e"])
def test_form_refuses_control_characters_with_a_field_error(
    client: Any, session: Session, field: str, char: str
) -> None:
    value = {"description": "垃圾桶三天没有清运", "address": "幸福小区", "contact_name": "张三"}[field]
    assert_rejected(client, session, field, "控制字符", **{field: value + char + "了"})


def test_form_keeps_line_breaks_in_the_description(client: Any, session: Session) -> None:
    response = post_form(client, description="垃圾桶三天没有清运，\r\n气味很大。\t请处理")
    assert response.status_code == 302


def test_description_of_only_invisible_characters_is_missing(client: Any, session: Session) -> None:
    assert_rejected(client, session, "description", "请填写诉求内容", description=INVISIBLE)
    # Five visible characters are needed: zero-width padding does not count.
    assert_rejected(client, session, "description", "至少", description="脏\u200b\u200b\u200b\u200b\u200b乱")


@pytest.mark.parametrize("field", ["description", "contact_name", "category", "community", "address"])
def test_api_refuses_nul_in_every_text_field(client: Any, session: Session, field: str) -> None:
    assert_422(client, session, field, "control_characters", **{field: VALID[field] + "\x00"})


def test_api_refuses_a_400_digit_latitude(client: Any, session: Session) -> None:
    # Refused at the schema (pydantic cannot make a float of it) or at the bounds check: 422 on lat, no 500.
    response = client.post("/api/v1/requests", json={**VALID, "lat": int("9" * 400), "lng": 114.3})
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["lat"]
    # As a string through the form it is refused too (a float() of it is inf).
    assert_rejected(client, session, "lat", "不在中国境内", lat="9" * 400, lng="114.3")


def test_api_refuses_deep_json_nesting(client: Any, session: Session) -> None:
    before = case_count(session)
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/v1/requests", data=deep, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "too_deep"
    nested = dict(VALID, description={"a": [[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]})
    response = client.post("/api/v1/requests", data=json.dumps(nested), content_type="application/json")
    assert response.status_code == 400 and case_count(session) == before


def test_api_refuses_a_nul_idempotency_key(client: Any, session: Session) -> None:
    response = client.post("/api/v1/requests", json=VALID, headers={"Idempotency-Key": "k\x00"})
    assert response.status_code in (400, 422)
    errors = response.get_json()["errors"]
    assert errors[0]["field"] == "Idempotency-Key" and errors[0]["code"] == "control_characters"


@pytest.mark.parametrize("token", ["\x00", "é", "令牌"])
def test_private_links_with_odd_tokens_answer_404_not_500(client: Any, session: Session, token: str) -> None:
    case = create(client)
    number = case["tracking_number"]
    assert client.get(f"/status/{number}", query_string={"k": token}).status_code in (400, 404)
    api = client.get(f"/api/v1/requests/{number}", query_string={"token": token})
    # A wrong token answers as an unknown tracking number does (no existence oracle): 404.
    assert api.status_code in (400, 404) and api.get_json()["errors"]
    assert client.get(f"/api/v1/requests/{number}", headers={"X-Case-Token": "x"}).status_code == 404


def test_survey_editor_forms_name_the_field_and_keep_the_input(client: Any, session: Session) -> None:
    login(client, "evaluator")
    before = session.scalar(select(func.count(Survey.id)))
    response = client.post("/surveys", data={"quarter": "2026Q4", "title": "问卷\x00标题"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "不能包含控制字符" in body and 'value="2026Q4"' in body
    assert session.scalar(select(func.count(Survey.id))) == before
    survey = make_survey(session)
    sections = len(survey.sections)
    assert client.post(f"/surveys/{survey.id}/sections", data={"title": "分组\x1b"}).status_code == 422
    session.expire_all()
    assert len(survey.sections) == sections


def test_other_views_refuse_nul_before_it_reaches_the_database(client: Any, session: Session) -> None:
    login(client, "evaluator")
    before = session.scalar(select(func.count(EvaluatorEntry.id)))
    data = {"unit": C1, "code": "check", "value": "1", "quarter": "2026Q3", "note": "备注\x00"}
    response = client.post("/assessment/entries", data=data)
    assert response.status_code == 400 and "控制字符" in response.get_data(as_text=True)
    assert session.scalar(select(func.count(EvaluatorEntry.id))) == before
    # The login form (no field check of its own) cannot send a NUL into a query either.
    client.post("/logout")
    assert client.post("/login", data={"username": "admin\x00", "password": "x"}).status_code == 400


def test_query_strings_with_nul_answer_400(client: Any, session: Session) -> None:
    response = client.get("/api/v1/units", query_string={"parent": "4201\x00"})
    assert response.status_code == 400 and response.get_json()["errors"][0]["code"] == "control_characters"


def _evidence(client: Any, name: str, value: str = "1") -> Any:
    data = {
        "unit": C1,
        "code": "check",
        "value": value,
        "quarter": "2026Q3",
        "evidence": (io.BytesIO(b"\xff\xd8 photo"), name),
    }
    return client.post("/assessment/entries", data=data, content_type="multipart/form-data")


def test_long_evidence_file_names_are_stored_shortened_with_their_suffix(
    app: Any, client: Any, session: Session
) -> None:
    login(client, "evaluator")
    name = "现场照片" * 80 + ".jpg"  # 324 characters; the columns hold 255
    response = _evidence(client, name)
    assert response.status_code == 302, response.get_data(as_text=True)[-1500:]
    entry = session.scalar(select(EvaluatorEntry).order_by(EvaluatorEntry.id.desc()))
    assert entry is not None and entry.evidence_name.endswith(".jpg")
    assert len(entry.evidence_name) <= 255 and len(entry.evidence_file) <= 255
    assert (Path(app.instance_path) / "evidence" / entry.evidence_file).exists()


@pytest.mark.parametrize("value", ["inf", "9" * 400, "nan"])
def test_entry_values_must_be_finite_numbers(client: Any, session: Session, value: str) -> None:
    login(client, "evaluator")
    before = session.scalar(select(func.count(EvaluatorEntry.id)))
    page = _evidence(client, "a.jpg", value).get_data(as_text=True)
    assert "取值必须是数字" in page or "取值必须是有限的数字" in page
    assert session.scalar(select(func.count(EvaluatorEntry.id))) == before
