"""JSON API v1: every intake rule as a structured 422, content-type/size/JSON errors, tokens, idempotency.

Routing jobs are recorded instead of run, so the state stays ``submitted`` whether or not the routing
engine exists yet.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import jobs
from core.models import Unit
from routing.intake import LIMITS
from routing.models import Case
from tests.conftest import login

VALID: dict[str, Any] = {
    "category": "HW-01",
    "community": "420102-S1-C1",
    "address": "幸福小区 3 栋 2 单元",
    "description": "垃圾桶三天没有清运，气味很大。",
    "contact_name": "张三",
    "contact_phone": "13812345678",
}
TRACKING = re.compile(r"^MH\d{8}-[A-Z2-9]{5}$")


@pytest.fixture(autouse=True)
def enqueued(monkeypatch: pytest.MonkeyPatch, session: Session) -> list[tuple[str, tuple[Any, ...]]]:
    """Record routing jobs instead of running them."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: calls.append((task, args)))
    return calls


def case_count(session: Session) -> int:
    """Number of stored cases."""
    return session.scalar(select(func.count(Case.id))) or 0


def post(client: Any, body: Any = None, headers: dict[str, str] | None = None, **changes: Any) -> Any:
    """POST a request body (VALID changed by ``changes``; keys set to None are removed)."""
    if body is None:
        body = {k: v for k, v in {**VALID, **changes}.items() if v is not None}
    return client.post("/api/v1/requests", json=body, headers=headers or {})


def assert_422(client: Any, session: Session, field: str, code: str, **changes: Any) -> list[dict[str, Any]]:
    """The body is refused with 422 and a structured error at ``field``; nothing is stored."""
    before = case_count(session)
    response = post(client, **changes)
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert all(set(e) == {"field", "code", "message"} for e in errors)
    matching = [e for e in errors if e["field"] == field and e["code"] == code]
    assert matching, errors
    assert all(re.search(r"[\u4e00-\u9fff]", e["message"]) for e in matching), "messages are in Chinese"
    assert case_count(session) == before
    return errors


def create(client: Any, **changes: Any) -> dict[str, Any]:
    """Create a case and return the 201 body."""
    response = post(client, **changes)
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


# --- every rule as a 422 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["category", "community", "address", "description", "contact_name", "contact_phone"]
)
def test_missing_required_field(client: Any, session: Session, field: str) -> None:
    assert_422(client, session, field, "required", **{field: None})


@pytest.mark.parametrize(
    "field", ["category", "community", "address", "description", "contact_name", "contact_phone"]
)
def test_empty_required_field(client: Any, session: Session, field: str) -> None:
    assert_422(client, session, field, "required", **{field: "  "})


def test_unknown_category(client: Any, session: Session) -> None:
    assert_422(client, session, "category", "unknown", category="NOPE-99")


@pytest.mark.parametrize("community", ["420102-S1-C99", "420102-S1", "D-FGJ"])
def test_unknown_community(client: Any, session: Session, community: str) -> None:
    assert_422(client, session, "community", "unknown", community=community)


def test_community_not_in_the_chosen_street(client: Any, session: Session) -> None:
    assert_422(client, session, "community", "mismatch", street="420102-S2")


def test_street_not_in_the_chosen_district(client: Any, session: Session) -> None:
    assert_422(client, session, "street", "mismatch", street="420102-S1", district="420103")


def test_matching_street_and_district_are_accepted(client: Any, session: Session) -> None:
    create(client, street="420102-S1", district="420102")


@pytest.mark.parametrize("field", ["address", "description", "contact_name"])
def test_too_long(client: Any, session: Session, field: str) -> None:
    assert_422(client, session, field, "too_long", **{field: "长" * (LIMITS[field] + 1)})


def test_too_short_description(client: Any, session: Session) -> None:
    assert_422(client, session, "description", "too_short", description="很吵")


@pytest.mark.parametrize(
    "phone", ["1381234567", "138123456789", "23812345678", "12812345678", "phone", "027-85551234"]
)
def test_invalid_phone(client: Any, session: Session, phone: str) -> None:
    assert_422(client, session, "contact_phone", "invalid", contact_phone=phone)


@pytest.mark.parametrize("phone", ["+86 138 1234 5678", "0086 13812345678", "138-1234-5678"])
def test_phone_normalised(client: Any, session: Session, phone: str) -> None:
    body = create(client, contact_phone=phone)
    case = session.scalar(select(Case).where(Case.tracking_number == body["tracking_number"]))
    assert case is not None and case.contact_phone == "13812345678"


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"lat": 30.59}, "lng", "required"),
        ({"lng": 114.3}, "lat", "required"),
        ({"lat": 0, "lng": 0}, "lat", "out_of_range"),
        ({"lat": 91.0, "lng": 114.3}, "lat", "out_of_range"),
        ({"lat": "thirty", "lng": 114.3}, "lat", "invalid"),
        ({"lat": 30.59, "lng": "114.3"}, "lng", "invalid"),
        ({"lat": True, "lng": 114.3}, "lat", "invalid"),
    ],
)
def test_coordinates(client: Any, session: Session, changes: dict[str, Any], field: str, code: str) -> None:
    assert_422(client, session, field, code, **changes)


def test_coordinates_in_range_are_stored(client: Any, session: Session) -> None:
    body = create(client, lat=30.5928, lng=114.3055, anonymous=True)
    case = session.scalar(select(Case).where(Case.tracking_number == body["tracking_number"]))
    assert case is not None and (case.lat, case.lng, case.anonymous) == (30.5928, 114.3055, True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"category": 7}, "category"),
        ({"contact_phone": 13812345678}, "contact_phone"),
        ({"address": ["a"]}, "address"),
        ({"anonymous": "yes"}, "anonymous"),
        ({"state": "closed"}, "state"),
    ],
)
def test_wrong_types_and_unknown_fields(
    client: Any, session: Session, changes: dict[str, Any], field: str
) -> None:
    code = "unknown_field" if field == "state" else "invalid"
    assert_422(client, session, field, code, **changes)


@pytest.mark.parametrize("body", [[1, 2], "text", 42])
def test_body_that_is_not_an_object(client: Any, session: Session, body: Any) -> None:
    response = post(client, body=body)
    assert response.status_code == 422 and response.get_json()["errors"][0]["code"] == "invalid"


# --- transport errors ----------------------------------------------------------------------------------


def test_415_on_a_non_json_content_type(client: Any, session: Session) -> None:
    before = case_count(session)
    response = client.post("/api/v1/requests", data=VALID)
    assert response.status_code == 415
    assert response.get_json()["errors"][0]["code"] == "unsupported_media_type"
    response = client.post("/api/v1/requests", data="{}", content_type="text/plain")
    assert response.status_code == 415
    assert case_count(session) == before


def test_400_on_malformed_json(client: Any, session: Session) -> None:
    response = client.post("/api/v1/requests", data='{"category": "HW-01",', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {
        "errors": [{"field": "", "code": "malformed_json", "message": "请求体不是合法的 JSON"}]
    }


def test_413_on_an_oversized_body(client: Any, app: Flask, session: Session) -> None:
    before = case_count(session)
    previous = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1024
    try:
        response = post(client, description="长" * 2000)
    finally:
        app.config["MAX_CONTENT_LENGTH"] = previous
    assert response.status_code == 413
    assert response.get_json()["errors"][0]["code"] == "too_large"
    assert case_count(session) == before


# --- success, reading, idempotency ---------------------------------------------------------------------


def test_201_with_tracking_number_token_and_state(client: Any, session: Session, enqueued: list[Any]) -> None:
    before = case_count(session)
    body = create(client)
    assert TRACKING.match(body["tracking_number"])
    assert body["state"] == "submitted" and len(body["token"]) >= 20
    assert "contact_phone" not in body  # the creation answer echoes no personal data
    assert case_count(session) == before + 1
    case = session.scalar(select(Case).where(Case.tracking_number == body["tracking_number"]))
    assert case is not None and case.channel == "api" and case.events[0].action == "submit"
    assert enqueued == [("routing.jobs.route_case", (case.id,))]


def test_get_with_the_token_shows_state_unit_deadline_and_events(client: Any, session: Session) -> None:
    body = create(client)
    number, token = body["tracking_number"], body["token"]
    for response in (
        client.get(f"/api/v1/requests/{number}?token={token}"),
        client.get(f"/api/v1/requests/{number}", headers={"X-Case-Token": token}),
        client.get(f"/api/v1/requests/{number.lower()}?token={token}"),
    ):
        assert response.status_code == 200
        data = response.get_json()
        assert data["tracking_number"] == number and data["state"] == "submitted"
        assert {"current_unit", "deadline", "events", "state_label"} <= set(data)
        assert data["events"][0]["action"] == "submit" and data["events"][0]["text"]
        assert data["contact_phone"] == "138****5678" and data["contact_name"] == "张*"


def test_401_without_token_whether_the_case_exists_or_not(client: Any, session: Session) -> None:
    number = create(client)["tracking_number"]
    response = client.get(f"/api/v1/requests/{number}")
    assert response.status_code == 401 and response.get_json()["errors"][0]["code"] == "unauthorized"
    unknown = client.get("/api/v1/requests/MH20000101-ZZZZZ")
    assert (unknown.status_code, unknown.get_data()) == (401, response.get_data())


def test_a_wrong_token_answers_exactly_as_an_unknown_number(client: Any, session: Session) -> None:
    number = create(client)["tracking_number"]
    other = create(client, address="另一处地址 9 号")
    wrong = client.get(f"/api/v1/requests/{number}?token={other['token']}")
    unknown = client.get(f"/api/v1/requests/MH20000101-ZZZZZ?token={other['token']}")
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.get_data() == unknown.get_data()
    assert wrong.get_json()["errors"][0]["code"] == "not_found"
    per_request = ("X-Request-ID",)  # a fresh id on every answer, whatever it says
    assert {k: v for k, v in wrong.headers.items() if k not in per_request} == {
        k: v for k, v in unknown.headers.items() if k not in per_request
    }


def test_404_for_an_unknown_tracking_number(client: Any, session: Session) -> None:
    response = client.get("/api/v1/requests/MH20000101-ZZZZZ?token=x")
    assert response.status_code == 404 and response.get_json()["errors"][0]["code"] == "not_found"


def test_same_idempotency_key_and_body_replays_one_case(
    client: Any, session: Session, enqueued: list[Any]
) -> None:
    before = case_count(session)
    first = post(client, headers={"Idempotency-Key": "api-key-1"})
    second = post(client, headers={"Idempotency-Key": "api-key-1"})
    assert (first.status_code, second.status_code) == (201, 200)
    a, b = first.get_json(), second.get_json()
    assert (a["tracking_number"], a["token"]) == (b["tracking_number"], b["token"])
    assert case_count(session) == before + 1
    # Still waiting to be routed (nothing ran the recorded job): the replay queues it again, since the
    # first request may have stopped between storing the case and queueing it (a repeated job is a no-op).
    assert len(enqueued) == 2 and enqueued[0] == enqueued[1]


def test_a_replay_of_a_case_already_routed_queues_nothing(
    client: Any, session: Session, enqueued: list[Any]
) -> None:
    first = post(client, headers={"Idempotency-Key": "api-key-routed"})
    case = session.scalar(select(Case).where(Case.tracking_number == first.get_json()["tracking_number"]))
    assert case is not None
    case.state = "dispatched"
    session.flush()
    assert post(client, headers={"Idempotency-Key": "api-key-routed"}).status_code == 200
    assert len(enqueued) == 1


def test_409_when_an_idempotency_key_is_reused_with_another_body(client: Any, session: Session) -> None:
    assert post(client, headers={"Idempotency-Key": "api-key-2"}).status_code == 201
    before = case_count(session)
    response = post(client, headers={"Idempotency-Key": "api-key-2"}, address="另一个地址 8 号")
    assert response.status_code == 409
    (error,) = response.get_json()["errors"]
    assert (error["field"], error["code"]) == ("Idempotency-Key", "idempotency_conflict")
    assert case_count(session) == before


def test_without_idempotency_key_two_posts_are_two_cases(client: Any, session: Session) -> None:
    before = case_count(session)
    assert create(client)["tracking_number"] != create(client)["tracking_number"]
    assert case_count(session) == before + 2


# --- staff and privacy ---------------------------------------------------------------------------------


def _case(session: Session, number: str) -> Case:
    case = session.scalar(select(Case).where(Case.tracking_number == number))
    assert case is not None
    return case


def test_staff_see_contacts_only_when_allowed(app: Flask, session: Session) -> None:
    number = create(app.test_client())["tracking_number"]
    case = _case(session, number)
    # Put the case at the community so "the handling unit" is well defined without the routing engine.
    case.current_unit = session.scalar(select(Unit).where(Unit.code == "420102-S1-C1"))
    session.commit()

    def seen_by(username: str) -> tuple[int, str | None]:
        client = app.test_client()
        login(client, username)
        response = client.get(f"/api/v1/requests/{number}")
        return response.status_code, (response.get_json() or {}).get("contact_phone")

    assert seen_by("admin") == (200, "13812345678")
    assert seen_by("handler-community") == (200, "13812345678")  # the handling unit
    assert seen_by("dispatcher-street") == (200, "13812345678")  # dispatcher over the case
    assert seen_by("handler-street") == (200, "138****5678")  # sees the case, not the handler: masked
    assert seen_by("evaluator") == (200, "138****5678")
    assert seen_by("handler-fgj")[0] == 401  # another unit, no token: not even the case


def test_staff_of_another_unit_with_the_token_still_see_masked_contacts(app: Flask, session: Session) -> None:
    body = create(app.test_client())
    client = app.test_client()
    login(client, "handler-fgj")
    data = client.get(f"/api/v1/requests/{body['tracking_number']}?token={body['token']}").get_json()
    assert data["contact_phone"] == "138****5678" and data["contact_name"] == "张*"


def test_anonymous_flag_hides_the_name_from_others(client: Any, session: Session) -> None:
    body = create(client, anonymous=True)
    data = client.get(f"/api/v1/requests/{body['tracking_number']}?token={body['token']}").get_json()
    assert data["contact_name"] == "匿名"


# --- read-only lists -----------------------------------------------------------------------------------


def test_categories_list(client: Any, session: Session) -> None:
    data = client.get("/api/v1/categories").get_json()
    hw = next(c for c in data if c["code"] == "HW-01")
    assert {"name", "department", "default_level", "urgency", "sign_for_hours", "resolution_limit"} <= set(hw)


def test_units_list_follows_the_tree(client: Any, session: Session) -> None:
    districts = client.get("/api/v1/units").get_json()
    assert {d["level"] for d in districts} == {"district"} and any(d["code"] == "420102" for d in districts)
    streets = client.get("/api/v1/units?parent=420102").get_json()
    assert {s["code"] for s in streets} >= {"420102-S1", "420102-S2"} and {s["level"] for s in streets} == {
        "street"
    }
    communities = client.get("/api/v1/units?parent=420102-S1").get_json()
    assert {c["code"] for c in communities} == {"420102-S1-C1", "420102-S1-C2", "420102-S1-C3"}
    missing = client.get("/api/v1/units?parent=NOPE")
    assert missing.status_code == 404 and missing.get_json()["errors"][0]["field"] == "parent"


# --- the OpenAPI document -------------------------------------------------------------------------------


def test_openapi_document_is_valid_and_covers_every_route(client: Any, app: Flask) -> None:
    from openapi_spec_validator import validate

    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)  # raises on an invalid OpenAPI 3.1 document
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    assert routes == documented


def test_docs_page_lists_every_operation(client: Any) -> None:
    page = client.get("/api/v1/docs").get_data(as_text=True)
    for operation in ("createRequest", "getRequest", "listCategories", "listUnits", "openapiDocument"):
        assert f'id="{operation}"' in page
    assert 'id="schema-RequestIn"' in page


def test_responses_conform_to_the_document(client: Any) -> None:
    """The 201, 422 and 404 bodies validate against their documented schemas."""
    from jsonschema import Draft202012Validator

    document = client.get("/api/v1/openapi.json").get_json()

    def check(path: str, method: str, response: Any) -> None:
        spec = document["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**spec["content"]["application/json"]["schema"], "components": document["components"]}
        schema = (
            {"$ref": schema["$ref"], "components": document["components"]} if "$ref" in schema else schema
        )
        Draft202012Validator(schema).validate(response.get_json())

    check("/api/v1/requests", "post", post(client))
    check("/api/v1/requests", "post", post(client, category=None, lat="north"))
    check("/api/v1/requests/{tracking_number}", "get", client.get("/api/v1/requests/MH1?token=x"))
