"""Open311 GeoReport v2 against the specification's text: every call in XML and JSON, its errors, the
round trip (POST, then GET by id and in the list), tokens, api_key missing/wrong/revoked, no contacts.

The georeport client library (PyPI) reads services, definitions and requests in both formats, its
``requests.get`` routed to the Flask test client.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api import keys
from app.api.models import ApiKey
from core import jobs
from core.db import utcnow
from routing.models import Case
from tests.builders import COMMUNITY, api_key, routed

BASE = "/open311/v2"
FORM: dict[str, str] = {
    "service_code": "HW-01",
    "attribute[community]": COMMUNITY,
    "address_string": "幸福小区 3 栋 2 单元",
    "description": "垃圾桶三天没有清运，气味很大。",
    "first_name": "三",
    "last_name": "张",
    "phone": "13812345678",
    "email": "zhang@example.org",
}
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
}  # fmt: skip


@pytest.fixture
def key(session: Session) -> str:
    """A key with both scopes."""
    return api_key(session)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Routing jobs recorded instead of run, so a new request stays not yet routed."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: calls.append((task, args)))
    return calls


def xml(response: Any) -> ET.Element:
    """The XML body, after checking its content type and encoding."""
    assert response.content_type == "text/xml; charset=utf-8"
    assert response.data.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.data)


def post(client: Any, key: str | None, fmt: str = "json", **changes: str | None) -> Any:
    """POST the request form (FORM changed by ``changes``; None removes a field)."""
    form = {k: v for k, v in {**FORM, **changes}.items() if v is not None}
    if key is not None:
        form["api_key"] = key
    return client.post(f"{BASE}/requests.{fmt}", data=form)


def errors_of(response: Any, fmt: str) -> list[dict[str, Any]]:
    """The specification's error list in either format."""
    if fmt == "json":
        assert response.content_type == "application/json; charset=utf-8"
        return list(response.get_json())
    root = xml(response)
    assert root.tag == "errors"
    return [{"code": int(e.findtext("code") or 0), "description": e.findtext("description")} for e in root]


# --- discovery, services, definitions ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_discovery_names_the_specification_and_both_formats(client: Any, fmt: str) -> None:
    response = client.get(f"{BASE}/discovery.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        body = response.get_json()
        endpoint = body["endpoints"][0]
        assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
        assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
        assert endpoint["formats"] == ["text/xml", "application/json"]
        assert endpoint["url"].endswith("/open311/v2/")
    else:
        root = xml(response)
        assert root.tag == "discovery"
        formats = [f.text for f in root.iter("format")]
        assert formats == ["text/xml", "application/json"]
        assert root.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_services_list_every_active_category(client: Any, fmt: str) -> None:
    response = client.get(f"{BASE}/services.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        services = response.get_json()
        assert isinstance(services, list)  # a bare array, as in the specification
        hw = next(s for s in services if s["service_code"] == "HW-01")
        assert set(hw) == {
            "service_code",
            "service_name",
            "description",
            "metadata",
            "type",
            "keywords",
            "group",
        }
        assert hw["metadata"] is True and hw["type"] in {"realtime", "batch", "blackbox"}
    else:
        root = xml(response)
        assert root.tag == "services" and all(s.tag == "service" for s in root)
        hw = next(s for s in root if s.findtext("service_code") == "HW-01")
        assert hw.findtext("metadata") == "true"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_service_definition_lists_attributes_with_values(client: Any, fmt: str) -> None:
    response = client.get(f"{BASE}/services/HW-01.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        body = response.get_json()
        assert body["service_code"] == "HW-01"
        community = next(a for a in body["attributes"] if a["code"] == "community")
        assert community["datatype"] == "singlevaluelist" and community["required"] is True
        assert COMMUNITY in [v["key"] for v in community["values"]]
    else:
        root = xml(response)
        assert root.tag == "service_definition"
        attribute = root.find("attributes/attribute")
        assert attribute is not None and attribute.findtext("code") == "community"
        assert COMMUNITY in [v.findtext("key") for v in attribute.iter("value")]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_is_404_in_the_error_format(client: Any, fmt: str) -> None:
    response = client.get(f"{BASE}/services/NOPE-99.{fmt}")
    assert response.status_code == 404
    assert errors_of(response, fmt)[0]["code"] == 404


def test_jurisdiction_id_must_name_this_city(client: Any, app: Any) -> None:
    ours = app.config["OPEN311_JURISDICTION"]
    assert client.get(f"{BASE}/services.json?jurisdiction_id={ours}").status_code == 200
    response = client.get(f"{BASE}/services.xml?jurisdiction_id=elsewhere.gov")
    assert response.status_code == 404 and errors_of(response, "xml")[0]["code"] == 404


# --- POST and the round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_round_trip_post_then_get_by_id_and_in_the_list(client: Any, key: str, fmt: str) -> None:
    response = post(client, key, fmt, lat="30.58", long="114.27", media_url="https://example.org/a.jpg")
    assert response.status_code == 201, response.data
    if fmt == "json":
        created = response.get_json()[0]
    else:
        root = xml(response)
        assert root.tag == "service_requests" and root[0].tag == "request"
        created = {c.tag: c.text for c in root[0]}
    # Routing runs inline in the web tier's tests: the request is routed, so the id comes at once.
    number = created["service_request_id"]
    assert number and not created.get("token")
    one = client.get(f"{BASE}/requests/{number}.{fmt}?api_key={key}")
    listed = client.get(f"{BASE}/requests.{fmt}?api_key={key}&service_code=HW-01&status=open")
    assert one.status_code == 200 and listed.status_code == 200
    if fmt == "json":
        [entry] = one.get_json()
        ids = [r["service_request_id"] for r in listed.get_json()]
    else:
        entry = {c.tag: c.text for c in xml(one)[0]}
        ids = [r.findtext("service_request_id") for r in xml(listed)]
    assert number in ids
    assert set(entry) == REQUEST_FIELDS
    assert entry["status"] == "open" and entry["service_code"] == "HW-01"
    assert entry["address_id"] == COMMUNITY and entry["media_url"] == "https://example.org/a.jpg"
    assert str(entry["requested_datetime"]).endswith("+08:00")
    assert entry["agency_responsible"]  # routed inline: the unit now responsible
    raw = one.data.decode()
    for secret in ("13812345678", "张三", "zhang@example.org"):
        assert secret not in raw and secret not in listed.data.decode()


def test_token_flow_while_not_yet_routed(client: Any, key: str, session: Session, held: list[Any]) -> None:
    response = post(client, key, "json")
    assert response.status_code == 201
    [created] = response.get_json()
    assert "service_request_id" not in created and created["token"]
    assert held and held[0][0] == "routing.jobs.route_case"
    pending = client.get(f"{BASE}/tokens/{created['token']}.json?api_key={key}")
    assert pending.status_code == 200 and pending.get_json() == [{"token": created["token"]}]
    case = session.get(Case, held[0][1][0])
    assert case is not None
    case.state = "dispatched"  # as the routing job would leave it
    session.commit()
    answer = client.get(f"{BASE}/tokens/{created['token']}.xml?api_key={key}")
    request_node = xml(answer)[0]
    assert request_node.findtext("service_request_id") == case.tracking_number
    assert request_node.findtext("token") == created["token"]
    assert client.get(f"{BASE}/tokens/unknown.json?api_key={key}").status_code == 404


def test_address_id_names_the_community(client: Any, key: str) -> None:
    response = post(client, key, "json", **{"attribute[community]": None, "address_id": COMMUNITY})
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"service_code": None}, "service_code"),
        ({"service_code": "NOPE-99"}, "service_code"),
        ({"address_string": None}, "lat"),
        ({"attribute[community]": None}, "community"),
        ({"attribute[community]": "nowhere"}, "community"),
        ({"attribute[colour]": "red"}, "colour"),
        ({"phone": "12"}, "phone"),
        ({"description": "短"}, "description"),
        ({"media_url": "javascript:alert(1)"}, "media_url"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_post_is_400_and_stores_nothing(
    client: Any, key: str, session: Session, changes: dict[str, str | None], needle: str, fmt: str
) -> None:
    before = session.scalar(select(Case.id).order_by(Case.id.desc()).limit(1))
    response = post(client, key, fmt, **changes)
    code = 404 if changes.get("service_code") == "NOPE-99" else 400
    assert response.status_code == code, response.data
    [error] = errors_of(response, fmt)
    assert error["code"] == code and needle in error["description"]
    assert session.scalar(select(Case.id).order_by(Case.id.desc()).limit(1)) == before


def test_multivalue_syntax_is_refused_for_a_single_value_list(client: Any, key: str) -> None:
    response = client.post(
        f"{BASE}/requests.json",
        data={**FORM, "api_key": key, "attribute[anonymous][]": ["true", "false"]},
    )
    assert response.status_code == 400 and "anonymous" in response.get_json()[0]["description"]


# --- api_key ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_api_key_missing_wrong_and_revoked_are_403(client: Any, key: str, session: Session, fmt: str) -> None:
    assert post(client, None, fmt).status_code == 403
    assert post(client, "mh_deadbeef_wrong", fmt).status_code == 403
    assert post(client, key[:-2] + "xx", fmt).status_code == 403
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
    assert row is not None
    keys.revoke(session, row.id)
    session.commit()
    response = post(client, key, fmt)
    assert response.status_code == 403 and errors_of(response, fmt)[0]["code"] == 403
    assert client.get(f"{BASE}/requests.{fmt}?api_key={key}").status_code == 403


def test_scopes_and_rate_limit(client: Any, session: Session) -> None:
    reader = api_key(session, ("read",))
    assert post(client, reader, "json").status_code == 403
    assert client.get(f"{BASE}/requests.json?api_key={reader}").status_code == 200
    tight = api_key(session, ("read",), rate_limit="2/hour")
    statuses = [client.get(f"{BASE}/requests.json?api_key={tight}").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # Counted in the app's Redis, so every web process shares the key's window.
    from flask import current_app

    from app.redis_conn import redis_for

    assert any(redis_for(current_app).scan_iter(match="*minhu-api-keys*"))


def test_key_is_stored_hashed(session: Session) -> None:
    text = api_key(session)
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == text.split("_")[1]))
    assert row is not None and text.split("_", 2)[2] not in row.key_hash and len(row.key_hash) == 64


# --- GET requests parameters ------------------------------------------------------------------------------


def test_window_defaults_to_90_days_and_may_not_span_more(client: Any, key: str, session: Session) -> None:
    old = routed(session)
    old.created_at = utcnow() - timedelta(days=120)
    session.commit()
    recent = [r["service_request_id"] for r in client.get(f"{BASE}/requests.json?api_key={key}").get_json()]
    assert old.tracking_number not in recent
    start = (utcnow() - timedelta(days=121)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (utcnow() - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    window = client.get(
        f"{BASE}/requests.json", query_string={"api_key": key, "start_date": start, "end_date": end}
    )
    assert [r["service_request_id"] for r in window.get_json()] == [old.tracking_number]
    too_wide = client.get(
        f"{BASE}/requests.json",
        query_string={
            "api_key": key,
            "start_date": "2026-01-01T00:00:00Z",
            "end_date": "2026-06-01T00:00:00Z",
        },
    )
    assert too_wide.status_code == 400
    assert client.get(f"{BASE}/requests.json?api_key={key}&start_date=yesterday").status_code == 400
    assert client.get(f"{BASE}/requests.json?api_key={key}&status=pending").status_code == 400


def test_id_list_overrides_other_parameters(client: Any, key: str, session: Session) -> None:
    a, b = routed(session), routed(session, category="WY-01")
    session.commit()
    response = client.get(
        f"{BASE}/requests.json",
        query_string={"api_key": key, "service_request_id": f"{a.tracking_number},{b.tracking_number}",
                      "service_code": "NONE", "status": "closed"},
    )  # fmt: skip
    assert sorted(r["service_request_id"] for r in response.get_json()) == sorted(
        [a.tracking_number, b.tracking_number]
    )
    closed = client.get(f"{BASE}/requests.json?api_key={key}&status=closed").get_json()
    assert a.tracking_number not in [r["service_request_id"] for r in closed]


def test_unknown_request_id_is_404(client: Any, key: str) -> None:
    response = client.get(f"{BASE}/requests/MH20990101-ZZZZZ.xml?api_key={key}")
    assert response.status_code == 404 and errors_of(response, "xml")[0]["code"] == 404


# --- a client library -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_client_reads_services_definitions_and_requests(
    client: Any, key: str, session: Session, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    georeport = pytest.importorskip("georeport.georeport")

    def get(url: str, params: dict[str, str] | None = None, **_: Any) -> requests.Response:
        answer = client.get(
            url.replace("http://localhost", ""), query_string={**(params or {}), "api_key": key}
        )
        response = requests.Response()
        response.status_code, response._content = answer.status_code, answer.data
        response.headers.update(dict(answer.headers))
        return response

    monkeypatch.setattr(georeport.requests, "get", get)
    case = routed(session)
    session.commit()
    api = georeport.GeoReport("http://localhost/open311/v2", output_format=fmt)
    services = api.get_service_list()
    assert "HW-01" in [s["service_code"] for s in services]
    definition = api.get_service_definition("HW-01")
    assert definition["service_code"] == "HW-01"
    listed = api.get_service_requests(service_request_id=case.tracking_number)
    entry = listed if isinstance(listed, dict) else listed[0]  # xmltodict gives one entry as a dict
    assert entry["service_request_id"] == case.tracking_number
    assert api.get_service_request(case.tracking_number)["service_request_id"] == case.tracking_number


def test_the_apis_per_address_budget_covers_open311_too(
    app: Any, client: Any, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API_LIMIT is one budget per address for /api/v1 and Open311 together; over it, Open311 answers
    429 in its own error format, with Retry-After."""
    monkeypatch.setitem(app.config, "API_LIMIT", "3 per minute")
    here = {"REMOTE_ADDR": "198.51.100.79"}
    assert client.get("/api/v1/categories", environ_base=here).status_code == 200
    assert client.get(f"{BASE}/services.json", environ_base=here).status_code == 200
    assert client.get(f"{BASE}/services.xml", environ_base=here).status_code == 200
    refused = client.get(f"{BASE}/services.json", environ_base=here)
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 61
    assert refused.get_json()[0]["code"] == 429 and "分钟后再试" in refused.get_json()[0]["description"]
    as_xml = client.get(f"{BASE}/services.xml", environ_base=here)
    assert as_xml.status_code == 429 and b"<errors><error><code>429</code>" in as_xml.data
    assert client.get("/api/v1/units", environ_base=here).status_code == 429  # the same budget
    assert client.get(f"{BASE}/services.json").status_code == 200  # another address is not affected
