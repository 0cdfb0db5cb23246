"""Residents may create an account; every bad input is refused in Chinese and nothing is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.models import Role, User

GOOD = {
    "username": "zhang_san",
    "display_name": "张三",
    "phone": "138 1234 5678",
    "password": "harbour-kettle-93",
    "confirm": "harbour-kettle-93",
}


def users(session) -> int:
    return session.scalar(select(func.count()).select_from(User))


def test_register_creates_a_resident_and_signs_in(client, session):
    response = client.post("/register", data=GOOD)
    assert response.status_code == 302 and response.headers["Location"].endswith("/my/requests")
    user = session.scalar(select(User).where(User.username == "zhang_san"))
    assert user.role == Role.resident and user.unit_id is None and user.phone == "13812345678"
    assert user.password_hash != GOOD["password"]
    assert client.get("/my/requests").status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"phone": "12345"}, "手机号码格式不正确"),
        ({"username": "a b"}, "用户名只能包含"),
        ({"username": "ab"}, "用户名长度应为 3–40 个字符"),
        ({"username": "admin"}, "该用户名不可用"),
        ({"password": "short", "confirm": "short"}, "密码至少 10 位"),
        ({"password": "12345678910", "confirm": "12345678910"}, "密码太容易被猜到"),
        ({"password": "zhang_san_2026", "confirm": "zhang_san_2026"}, "密码不能包含用户名"),
        ({"confirm": "something-else"}, "两次输入的密码不一致"),
        ({"password": ""}, "请输入密码"),
    ],
)
def test_register_refuses_bad_input(client, session, change, message):
    before = users(session)
    response = client.post("/register", data={**GOOD, **change})
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert users(session) == before
    assert 'value="张三"' in response.get_data(as_text=True)  # valid input is kept
