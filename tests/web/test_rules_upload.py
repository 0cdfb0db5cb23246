"""Rule uploads: every bad row reported, a diff against the active rule set before publishing, publish
only on confirmation of that very preview (not forgeable, refused when stale), cancel, admins only."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit import AuditEvent
from routing import services
from routing.models import RuleSet
from routing.rules import Rule, parse_rules_csv, rules_to_csv
from tests.conftest import login, new_user

HEADER = "category,group,place,level,unit,priority\n"


def latest_version(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.max(RuleSet.version))) or 0


def upload(client: Any, text: str, note: str = "测试") -> Any:
    data = {"file": (io.BytesIO(text.encode("utf-8")), "rules.csv"), "note": note}
    return client.post("/admin/rules/upload", data=data, content_type="multipart/form-data")


def current(client: Any) -> list[Rule]:
    return parse_rules_csv(client.get("/admin/rules/current.csv").data)


def staged(client: Any, rules: list[Rule], note: str = "测试") -> str:
    """Upload ``rules``; the preview's path."""
    response = upload(client, rules_to_csv(rules), note)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    location = response.headers["Location"]
    assert re.search(r"/admin/rules/preview/[A-Za-z0-9_-]{43}$", location)
    return location


def test_every_bad_row_is_reported_with_column_value_and_reason(client: Any, session: Session) -> None:
    login(client, "admin")
    before = latest_version(session)
    body = HEADER + (
        "HW-01,,,community,,0\n"  # 2: fine
        "HW-01,,,planet,,0\n"  # 3: level
        "NOPE-9,,,community,,0\n"  # 4: unknown category
        "HW-01,,NOWHERE,street,,0\n"  # 5: unknown place
        "*,,,department,NO-UNIT,abc\n"  # 6: unknown unit and bad priority (both)
        "HW-01,环境,,street,,0\n"  # 7: category and group
        "*,不存在的分组,,community,,0\n"  # 8: unknown group
        f"{'X' * 300},,,community,,0\n"  # 9: too long
        "WY-01,,,community,,1.5\n"  # 10: priority not an integer
    )
    response = upload(client, body)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    found = re.findall(r'data-line="(\d+)" data-column="(\w*)"', html)
    assert found == [
        ("3", "level"),
        ("4", "category"),
        ("5", "place"),
        ("6", "unit"),
        ("6", "priority"),
        ("7", "group"),
        ("8", "group"),
        ("9", "category"),
        ("10", "priority"),
    ]
    for text in ("planet", "NOPE-9", "NOWHERE", "NO-UNIT", "abc", "不存在的分组", "1.5"):
        assert f"<code>{text}</code>" in html
    for reason in (
        "处理层级应为",
        "类别编码不存在",
        "地点单位不存在",
        "承办单位不存在",
        "优先级必须是",
        "只能填一个",
    ):
        assert reason in html
    assert "文件有 9 处问题，未发布任何规则" in html and "过长（最多" in html
    assert latest_version(session) == before


def test_a_valid_file_is_previewed_as_a_diff_and_published_on_confirmation(
    client: Any, session: Session
) -> None:
    login(client, "admin")
    old = current(client)
    before = latest_version(session)
    hw = next(r for r in old if r.category == "HW-01" and not r.place)
    dropped = next(r for r in old if r.category not in ("HW-01", "*") and not r.place)
    new_level = "street" if hw.level != "street" else "district"
    changed = Rule(new_level, hw.category, hw.group, hw.place, "D-FGJ", hw.priority + 3)
    added = Rule("street", "HW-01", place="420102-S1", priority=5)
    rules = [changed if r == hw else r for r in old if r != dropped] + [added]
    preview = staged(client, rules, note="HW 改为街道")
    assert latest_version(session) == before  # nothing published yet

    page = client.get(preview)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"与第 {before} 版的差异" in html
    assert "新增 1 条" in html and "删除 1 条" in html and "修改 1 条" in html
    added_table = html.split('id="diff-added"')[1].split("</table>")[0]
    assert "420102-S1" in added_table and "HW-01" in added_table
    removed_table = html.split('id="diff-removed"')[1].split("</table>")[0]
    assert f"<td>{dropped.category}</td>" in removed_table
    changed_table = html.split('id="diff-changed"')[1].split("</table>")[0]
    assert f"<del>{hw.level}</del> → <ins>{new_level}</ins>" in changed_table
    assert f"<del>{hw.priority}</del> → <ins>{hw.priority + 3}</ins>" in changed_table
    assert "<ins>D-FGJ</ins>" in changed_table
    assert f"确认发布为第 {before + 1} 版" in html

    response = client.post(preview + "/publish")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/rules")
    assert latest_version(session) == before + 1
    assert current(client) == rules
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "rules.publish").order_by(AuditEvent.id.desc())
    ).first()
    assert event is not None and event.object_id == str(before + 1)
    assert event.details == {"source": "csv", "based_on": before, "added": 1, "removed": 1, "changed": 1}
    assert "已发布派单规则" in client.get("/admin/rules").get_data(as_text=True)
    # the preview is spent: neither shown nor publishable again
    assert client.get(preview).status_code == 404
    assert client.post(preview + "/publish").status_code == 404
    assert latest_version(session) == before + 1


def test_cancel_publishes_nothing_and_spends_the_preview(client: Any, session: Session) -> None:
    login(client, "admin")
    before = latest_version(session)
    preview = staged(client, [Rule("community")])
    response = client.post(preview + "/cancel")
    assert response.status_code == 302
    assert "已取消，本次上传的规则未发布" in client.get("/admin/rules").get_data(as_text=True)
    refused = client.post(preview + "/publish")
    assert refused.status_code == 404 and "未发布任何规则" in refused.get_data(as_text=True)
    assert latest_version(session) == before


def test_a_stale_preview_is_refused(client: Any, session: Session) -> None:
    login(client, "admin")
    before = latest_version(session)
    first = staged(client, [Rule("community")], note="甲")
    second = staged(client, [Rule("street")], note="乙")
    assert client.post(second + "/publish").status_code == 302
    assert latest_version(session) == before + 1
    page = client.get(first)  # the preview says so and offers no confirmation
    assert page.status_code == 409
    html = page.get_data(as_text=True)
    assert f"预览基于第 {before} 版规则，但当前已是第 {before + 1} 版" in html
    assert 'id="confirm-publish"' not in html
    refused = client.post(first + "/publish")
    assert refused.status_code == 409
    assert "请重新上传并核对差异后再发布" in refused.get_data(as_text=True)
    assert latest_version(session) == before + 1
    assert [r.level for r in current(client)] == ["street"]
    assert client.post(first + "/publish").status_code == 404  # discarded


def test_previews_are_not_forgeable_and_only_their_admin_confirms(
    app: Flask, client: Any, session: Session
) -> None:
    login(client, "admin")
    before = latest_version(session)
    preview = staged(client, [Rule("community")])
    token = preview.rsplit("/", 1)[1]
    for fake in ("x" * 43, "..%2F..%2Fsecret_key", token[:-1] + ("A" if token[-1] != "A" else "B")):
        assert client.post(f"/admin/rules/preview/{fake}/publish").status_code == 404
    # a staged file replaced by another rule set without the app's signature is no preview
    path = Path(app.instance_path) / "staged-rules" / f"{token}.json"
    original = path.read_text(encoding="utf-8")
    payload = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="staged-dispatch-rules").loads(
        json.loads(original)
    )
    assert payload["rules"] == [["community", "*", "", "", None, 0]]
    forged = dict(payload, rules=[["department", "*", "", "", "D-FGJ", 0]])
    path.write_text(json.dumps(URLSafeTimedSerializer("guess", salt="x").dumps(forged)), encoding="utf-8")
    assert client.post(preview + "/publish").status_code == 404
    path.write_text(original, encoding="utf-8")
    # another admin cannot confirm what this one previewed; non-admins are refused outright
    new_user(session, "second-admin", "admin", "D-RXB")
    session.commit()
    other = app.test_client()
    login(other, "second-admin", "harbour-kettle-93")
    assert other.post(preview + "/publish").status_code == 404
    dispatcher = app.test_client()
    login(dispatcher, "dispatcher-city")
    assert dispatcher.get(preview).status_code == 403
    assert dispatcher.post(preview + "/publish").status_code == 403
    assert dispatcher.post(preview + "/cancel").status_code == 403
    assert latest_version(session) == before
    assert client.post(preview + "/publish").status_code == 302  # still the uploader's to confirm
    assert latest_version(session) == before + 1


def test_the_command_line_import_still_publishes_directly(session: Session) -> None:
    version = services.import_rules_csv(session, HEADER + "*,,,community,,0\n", None, note="cli").version
    assert version == latest_version(session)
