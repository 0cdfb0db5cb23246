"""Resident and operator intake through the HTML form: every validation rule, idempotency, status, lookup.

Routing jobs are recorded instead of run (``enqueued``), so these tests hold whether or not the routing
engine exists yet: they check what intake promises — one case in state ``submitted`` with its ``submit``
event, committed before its routing job is asked for.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import jobs
from core.models import Unit, User
from routing.intake import LIMITS, case_token
from routing.models import Case
from tests.conftest import login

VALID: dict[str, str] = {
    "category": "HW-01",
    "district": "420102",
    "street": "420102-S1",
    "community": "420102-S1-C1",
    "address": "幸福小区 3 栋 2 单元",
    "description": "垃圾桶三天没有清运，气味很大。",
    "contact_name": "张三",
    "contact_phone": "13812345678",
    "lat": "",
    "lng": "",
    "duplicates_seen": "1",  # the demo has a similar open case: the hint is tested in test_intake_photos.py
}
TRACKING = re.compile(r"^MH\d{8}-[A-Z2-9]{5}$")


class FormPage(HTMLParser):
    """What a rendered form shows: field values (inputs, textareas, selected options) and errors by field."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.errors: dict[str, list[str]] = {}
        self._select: str | None = None
        self._textarea: str | None = None
        self._error: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect values and open error paragraphs."""
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") != "checkbox":
            self.values[a["name"] or ""] = a.get("value") or ""
        elif tag == "input" and a.get("type") == "checkbox" and "checked" in a:
            self.values[a.get("name") or ""] = "checked"
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.values[self._textarea or ""] = ""
        elif tag == "p" and "data-field" in a:
            self._error = a["data-field"]

    def handle_endtag(self, tag: str) -> None:
        """Close selects, textareas and error paragraphs."""
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "p":
            self._error = None

    def handle_data(self, data: str) -> None:
        """Text of textareas and error messages."""
        if self._textarea:
            self.values[self._textarea] += data
        if self._error:
            self.errors.setdefault(self._error, []).append(data.strip())


@pytest.fixture(autouse=True)
def enqueued(
    monkeypatch: pytest.MonkeyPatch, session: Session
) -> list[tuple[str, tuple[Any, ...], str | None]]:
    """Record routing jobs (task, args, the case's state in the database when asked) instead of running them."""
    calls: list[tuple[str, tuple[Any, ...], str | None]] = []

    def record(task: str, *args: Any) -> None:
        with jobs.unit_of_work() as fresh:
            state = fresh.scalar(select(Case.state).where(Case.id == args[0])) if args else None
        calls.append((task, args, state))

    monkeypatch.setattr(jobs, "enqueue", record)
    return calls


def case_count(session: Session) -> int:
    """Number of stored cases."""
    return session.scalar(select(func.count(Case.id))) or 0


def post_form(client: Any, path: str = "/requests/new", **changes: str) -> Any:
    """POST the intake form with VALID values changed by ``changes``."""
    data = {**VALID, "idempotency_key": changes.pop("idempotency_key", "")}
    data.update(changes)
    return client.post(path, data={k: v for k, v in data.items() if v is not None})


# A changed district (street) re-fills the dependent selects below it, which may then lose their value.
DEPENDENT_SELECTS = {"district": ("street", "community"), "street": ("community",)}


def assert_rejected(client: Any, session: Session, field: str, expected: str, **changes: str) -> FormPage:
    """Submit a bad value: the page re-renders in Chinese with the error at ``field`` and keeps the good values."""
    unchecked = {dependent for name in changes for dependent in DEPENDENT_SELECTS.get(name, ())}
    before = case_count(session)
    response = post_form(client, **changes)
    assert response.status_code == 200
    html = response.data.decode()
    page = FormPage(html)
    assert field in page.errors, (field, page.errors)
    assert any(expected in message for message in page.errors[field]), page.errors
    assert "提交未成功" in html
    for name, value in VALID.items():
        if name not in changes and name not in page.errors and name not in unchecked and value:
            assert page.values.get(name, "").strip() == value, (name, page.values.get(name))
    assert case_count(session) == before, "an invalid submission must store nothing"
    return page


# --- every rule, through the form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("category", "请填写诉求类别"),
        ("community", "请填写所在社区"),
        ("address", "请填写详细地址"),
        ("description", "请填写诉求内容"),
        ("contact_name", "请填写联系人姓名"),
        ("contact_phone", "请填写手机号码"),
    ],
)
def test_each_required_field(client: Any, session: Session, field: str, label: str) -> None:
    assert_rejected(client, session, field, label, **{field: ""})


def test_whitespace_only_counts_as_missing(client: Any, session: Session) -> None:
    assert_rejected(client, session, "address", "请填写详细地址", address="   ")


def test_unknown_category(client: Any, session: Session) -> None:
    assert_rejected(client, session, "category", "所选诉求类别不存在", category="NOPE-99")


@pytest.mark.parametrize("community", ["420102-S1-C99", "420102-S1", "420102"])
def test_unknown_community_or_not_a_community(client: Any, session: Session, community: str) -> None:
    assert_rejected(client, session, "community", "所选社区不存在", community=community)


def test_community_not_in_the_chosen_street(client: Any, session: Session) -> None:
    assert_rejected(client, session, "community", "所选社区不属于所选街道", community="420102-S2-C1")


def test_street_not_in_the_chosen_district(client: Any, session: Session) -> None:
    # The street and community selects only offer places of the chosen district, so those two may reset.
    page = assert_rejected(client, session, "street", "所选街道不属于所选区", district="420103")
    assert page.values["district"] == "420103"


@pytest.mark.parametrize(
    ("field", "label"), [("address", "详细地址"), ("description", "诉求内容"), ("contact_name", "联系人姓名")]
)
def test_too_long(client: Any, session: Session, field: str, label: str) -> None:
    assert_rejected(
        client, session, field, f"{label}不能超过 {LIMITS[field]} 个字", **{field: "长" * (LIMITS[field] + 1)}
    )


def test_longest_allowed_values_are_accepted(client: Any, session: Session) -> None:
    response = post_form(client, **{field: "长" * limit for field, limit in LIMITS.items()})
    assert response.status_code == 302


def test_too_short_description(client: Any, session: Session) -> None:
    assert_rejected(client, session, "description", "诉求内容至少 5 个字", description="很吵")


@pytest.mark.parametrize(
    "phone",
    [
        "1381234567",
        "138123456789",
        "23812345678",
        "12812345678",
        "abcdefghijk",
        "027-85551234",
        "+1 4155550100",
    ],
)
def test_invalid_phone(client: Any, session: Session, phone: str) -> None:
    assert_rejected(client, session, "contact_phone", "手机号码格式不正确", contact_phone=phone)


@pytest.mark.parametrize(
    "phone", ["+86 138 1234 5678", "0086-138-1234-5678", "138 1234 5678", "(138)12345678"]
)
def test_phone_with_prefix_and_spaces_is_normalised(client: Any, session: Session, phone: str) -> None:
    response = post_form(client, contact_phone=phone)
    assert response.status_code == 302
    case = session.scalar(select(Case).order_by(Case.id.desc()))
    assert case is not None and case.contact_phone == "13812345678"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"lat": "30.59", "lng": ""}, "lng", "同时提供纬度和经度"),
        ({"lat": "", "lng": "114.30"}, "lat", "同时提供纬度和经度"),
        ({"lat": "0", "lng": "0"}, "lat", "不在中国境内"),
        ({"lat": "30.59", "lng": "200"}, "lat", "不在中国境内"),
        ({"lat": "北纬三十度", "lng": "114.30"}, "lat", "必须是数字"),
        ({"lat": "30.59", "lng": "east"}, "lat", "必须是数字"),
    ],
)
def test_coordinates(
    client: Any, session: Session, changes: dict[str, str], field: str, message: str
) -> None:
    assert_rejected(client, session, field, message, **changes)


def test_several_problems_are_all_reported(client: Any, session: Session) -> None:
    page = assert_rejected(
        client, session, "contact_phone", "手机号码格式不正确", contact_phone="1", address=""
    )
    assert "address" in page.errors


# --- success, idempotency, private status --------------------------------------------------------------


def _follow_to_submitted(response: Any) -> tuple[str, str]:
    assert response.status_code == 302
    url = urlsplit(response.headers["Location"])
    match = re.fullmatch(r"/requests/(MH\d{8}-[A-Z2-9]{5})/submitted", url.path)
    assert match, url.path
    return match.group(1), parse_qs(url.query)["k"][0]


def test_success_shows_tracking_number_and_private_link(
    client: Any, app: Flask, session: Session, enqueued: list[Any]
) -> None:
    before = case_count(session)
    tracking, token = _follow_to_submitted(post_form(client, idempotency_key="form-ok-1", anonymous="y"))
    assert TRACKING.match(tracking)
    assert case_count(session) == before + 1
    case = session.scalar(select(Case).where(Case.tracking_number == tracking))
    assert case is not None
    assert (case.channel, case.community.code, case.street.code, case.district.code) == (
        "web",
        "420102-S1-C1",
        "420102-S1",
        "420102",
    )
    assert case.anonymous is True and case.resident_id is None and case.operator_id is None
    assert case.events[0].action == "submit"
    # The routing job is asked for once, after the case is committed as submitted.
    assert enqueued == [("routing.jobs.route_case", (case.id,), "submitted")]
    with app.test_request_context():
        from app.web.public import token_key

        assert token == case_token(token_key(), tracking)
    page = client.get(f"/requests/{tracking}/submitted?k={token}")
    html = page.data.decode()
    assert page.status_code == 200 and tracking in html and "诉求已受理" in html
    status_link = re.search(r'id="status-link"[^>]*href="([^"]+)"', html)
    assert status_link is not None
    status = client.get(status_link.group(1).replace("&amp;", "&"))
    body = status.data.decode()
    assert status.status_code == 200
    assert tracking in body and 'id="timeline"' in body and "<li>" in body
    assert "13812345678" not in body and "138****5678" in body  # the token holder is not staff


def test_submitted_page_with_wrong_token_is_404(client: Any, session: Session) -> None:
    tracking, _token = _follow_to_submitted(post_form(client))
    assert client.get(f"/requests/{tracking}/submitted?k=wrong").status_code == 404


def test_status_page_with_wrong_or_missing_token_is_404(client: Any, session: Session) -> None:
    tracking, token = _follow_to_submitted(post_form(client))
    assert client.get(f"/status/{tracking}?k={token}").status_code == 200
    assert client.get(f"/status/{tracking}?k={token[:-2]}xx").status_code == 404
    assert client.get(f"/status/{tracking}").status_code == 404
    assert client.get("/status/MH20000101-ZZZZZ?k=x").status_code == 404


def test_double_submit_with_the_same_key_stores_one_case(
    client: Any, session: Session, enqueued: list[Any]
) -> None:
    before = case_count(session)
    first = _follow_to_submitted(post_form(client, idempotency_key="double-1"))
    second = _follow_to_submitted(post_form(client, idempotency_key="double-1"))
    assert first == second
    assert case_count(session) == before + 1
    # The case still waits for routing (the recorded job never ran): the second post queues it again.
    assert len(enqueued) == 2 and enqueued[0][:2] == enqueued[1][:2]


def test_same_key_with_other_content_stores_nothing_and_says_so(client: Any, session: Session) -> None:
    _follow_to_submitted(post_form(client, idempotency_key="double-2"))
    before = case_count(session)
    response = post_form(client, idempotency_key="double-2", address="另一个地址 8 号")
    assert response.status_code == 200
    assert "该表单已提交过" in response.data.decode()
    assert case_count(session) == before


def test_form_carries_a_fresh_idempotency_key(client: Any, session: Session) -> None:
    keys = {FormPage(client.get("/requests/new").data.decode()).values["idempotency_key"] for _ in range(2)}
    assert len(keys) == 2 and all(len(k) >= 16 for k in keys)


def test_signed_in_resident_owns_the_case(client: Any, session: Session) -> None:
    login(client, "resident")
    tracking, _token = _follow_to_submitted(post_form(client))
    case = session.scalar(select(Case).where(Case.tracking_number == tracking))
    resident = session.scalar(select(User).where(User.username == "resident"))
    assert case is not None and resident is not None and case.resident_id == resident.id
    assert client.get(f"/status/{tracking}").status_code == 200  # no token needed for the owner
    assert tracking in client.get("/my/requests").data.decode()


# --- lookup ---------------------------------------------------------------------------------------------


def test_lookup_by_tracking_number_and_phone_redirects_to_the_private_link(
    client: Any, session: Session
) -> None:
    tracking, token = _follow_to_submitted(post_form(client))
    response = client.post(
        "/lookup", data={"tracking_number": tracking.lower(), "contact_phone": "+86 138 1234 5678"}
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == f"/status/{tracking}" and parse_qs(location.query)["k"] == [token]


def test_lookup_with_the_wrong_phone_reveals_nothing(client: Any, session: Session) -> None:
    tracking, token = _follow_to_submitted(post_form(client))
    response = client.post("/lookup", data={"tracking_number": tracking, "contact_phone": "13900000000"})
    assert response.status_code == 302 and token not in response.headers["Location"]
    home = client.get(response.headers["Location"]).data.decode()
    assert "未找到与该受理编号和手机号码匹配的诉求" in home


# --- operator intake ------------------------------------------------------------------------------------


def test_operator_intake_records_channel_phone(client: Any, session: Session) -> None:
    login(client, "operator")
    assert client.get("/hotline/new").status_code == 200
    tracking, _token = _follow_to_submitted(post_form(client, "/hotline/new", idempotency_key="hotline-1"))
    case = session.scalar(select(Case).where(Case.tracking_number == tracking))
    operator = session.scalar(select(User).where(User.username == "operator"))
    assert case is not None and operator is not None
    assert case.channel == "phone" and case.operator_id == operator.id and case.resident_id is None
    assert case.events[0].action == "submit" and case.events[0].actor_id == operator.id


def test_operator_form_shows_the_same_rules(client: Any, session: Session) -> None:
    login(client, "operator")
    before = case_count(session)
    response = post_form(client, "/hotline/new", contact_phone="110")
    # The same rules, except that a caller may give a landline (so the message names both).
    assert response.status_code == 200 and "联系电话格式不正确" in response.data.decode()
    assert case_count(session) == before


def test_residents_cannot_open_the_hotline_form(client: Any, session: Session) -> None:
    login(client, "resident")
    assert client.get("/hotline/new").status_code == 403
    before = case_count(session)
    assert post_form(client, "/hotline/new").status_code == 403
    assert case_count(session) == before


def test_anonymous_users_are_sent_to_login_for_the_hotline_form(client: Any, session: Session) -> None:
    response = client.get("/hotline/new")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == ["/hotline/new"]


def test_dependent_selects_offer_only_the_chosen_streets_communities(client: Any, session: Session) -> None:
    response = post_form(client, contact_phone="1")
    html = response.data.decode()
    street_ids = {u.code for u in session.scalars(select(Unit).where(Unit.code.like("420102-S1-C%")))}
    for code in street_ids:
        assert f'value="{code}"' in html
    assert 'value="420103-S1-C1"' not in html and 'value="420102-S2-C1"' not in html
