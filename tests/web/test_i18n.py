"""Languages: Chinese by default, English from the ``lang`` cookie or Accept-Language, the switch.

The catalogues themselves (complete, compiled, in step with the code) are checked in
tests/unit/test_catalogues.py; here the app is seen picking and applying them.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.web.test_intake_form import VALID, FormPage


def english(client: Any) -> Any:
    client.set_cookie("lang", "en")
    return client


def test_default_is_chinese(client: Any) -> None:
    html = client.get("/").data.decode()
    assert '<html lang="zh-CN">' in html
    assert "查询办理进度" in html
    assert "Check progress" not in html


def test_home_in_english_from_the_cookie(client: Any) -> None:
    html = english(client).get("/").data.decode()
    assert '<html lang="en">' in html
    assert "Check progress" in html
    assert "Report a problem" in html
    assert "查询办理进度" not in html


def test_accept_language_picks_english(client: Any) -> None:
    html = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).data.decode()
    assert "Check progress" in html


def test_accept_language_prefers_chinese_when_asked(client: Any) -> None:
    html = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).data.decode()
    assert "查询办理进度" in html


def test_cookie_wins_over_accept_language(client: Any) -> None:
    client.set_cookie("lang", "zh_CN")
    html = client.get("/", headers={"Accept-Language": "en"}).data.decode()
    assert "查询办理进度" in html


def test_unknown_cookie_value_is_ignored(client: Any) -> None:
    client.set_cookie("lang", "fr")
    assert "查询办理进度" in client.get("/").data.decode()


def test_intake_form_in_english(client: Any) -> None:
    html = english(client).get("/requests/new").data.decode()
    for text in ("Request category", "Street address", "Request details", "Submit request"):
        assert text in html, text
    assert "诉求类别" not in html


def test_validation_errors_in_english_keep_the_input(client: Any, session: Session) -> None:
    data = {**VALID, "address": "", "description": "太短", "idempotency_key": ""}
    html = english(client).post("/requests/new", data=data).data.decode()
    page = FormPage(html)
    assert "Please enter the street address" in page.errors["address"]
    assert any("at least" in e and "characters" in e for e in page.errors["description"]), page.errors
    assert "Your submission was not accepted" in html
    assert page.values["contact_name"] == VALID["contact_name"]


def test_validation_errors_in_chinese_by_default(client: Any, session: Session) -> None:
    data = {**VALID, "address": "", "idempotency_key": ""}
    page = FormPage(client.post("/requests/new", data=data).data.decode())
    assert "请填写详细地址" in page.errors["address"]


def test_switch_sets_the_cookie_and_goes_back(client: Any) -> None:
    response = client.post("/language", data={"lang": "en", "next": "/requests/new?x=1"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/requests/new?x=1"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=en") and "HttpOnly" in cookie
    assert "Check progress" in client.get("/").data.decode()
    client.post("/language", data={"lang": "zh_CN", "next": "/"})
    assert "查询办理进度" in client.get("/").data.decode()


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)", "evil", ""],
)
def test_switch_refuses_an_off_site_next(client: Any, target: str) -> None:
    response = client.post("/language", data={"lang": "en", "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_switch_needs_the_csrf_token(csrf_app: Any) -> None:
    response = csrf_app.test_client().post("/language", data={"lang": "en", "next": "/"})
    assert response.status_code == 400
    assert "Set-Cookie" not in response.headers or "lang=" not in response.headers["Set-Cookie"]


def test_switch_ignores_an_unknown_language(client: Any) -> None:
    response = client.post("/language", data={"lang": "xx", "next": "/"})
    assert response.status_code == 302
    assert "Set-Cookie" not in response.headers


def test_footer_offers_both_languages(client: Any) -> None:
    html = client.get("/requests/new").data.decode()
    assert 'id="language-switch"' in html
    assert 'action="/language"' in html and 'name="next" value="/requests/new"' in html
    assert 'name="lang" value="en"' in html and 'name="lang" value="zh_CN"' in html


def test_domain_error_parameters_are_translated(app: Any) -> None:
    from app.i18n import message_of
    from routing.lifecycle import ACTION_LABELS, Action, TransitionError

    error = TransitionError(
        "out_of_scope", "只能对本单位的工单%(action)s", action=ACTION_LABELS[Action.accept]
    )
    assert str(error) == error.message == "只能对本单位的工单签收"  # as before parameters existed
    assert error.message_id == "只能对本单位的工单%(action)s" and error.params == {"action": "签收"}
    with app.test_request_context("/", headers={"Cookie": "lang=en"}):
        assert message_of(error) == "This action is only possible on your own unit's cases: Accept"
    with app.test_request_context("/"):
        assert message_of(error) == "只能对本单位的工单签收"


def test_messages_to_residents_stay_chinese_in_an_english_request(app: Any) -> None:
    from app.messaging import sms_text
    from routing.models import Case

    case = Case(tracking_number="MH20261201-ABCDE")
    with app.test_request_context("/", headers={"Cookie": "lang=en"}):
        assert "【民呼我应】" in sms_text(case, "accepted")


def test_locale_outside_a_request_is_chinese(app: Any) -> None:
    from flask_babel import gettext

    with app.app_context():
        assert gettext("查询办理进度") == "查询办理进度"


def test_brace_style_domain_errors_are_translated(app: Any) -> None:
    from app.i18n import message_of
    from assessment.weights import WeightError

    error = WeightError("unknown_indicator", "正向指标中有不存在的指标：{names}", names="x、y")
    assert str(error) == "正向指标中有不存在的指标：x、y"
    with app.test_request_context("/", headers={"Cookie": "lang=en"}):
        assert message_of(error) == "The positive indicators name indicators that do not exist: x、y"
