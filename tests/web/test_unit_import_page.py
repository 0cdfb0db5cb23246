"""Admins upload the unit tree; a job imports it (inline here: RQ_ASYNC is off) and its page follows it."""

from __future__ import annotations

import io
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Unit
from core.unit_imports import UnitImport, queue_unit_import
from core.unit_jobs import import_unit_file
from tests.conftest import login
from tests.unit.test_units_import import TREE


def post(client: Any, data: bytes, name: str = "units.csv") -> Any:
    return client.post(
        "/admin/units/import", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def units(session: Session) -> int:
    return session.scalar(select(func.count(Unit.id))) or 0


def test_only_admins_may_import_units(client: Any, session: Session) -> None:
    login(client, "evaluator")
    assert client.get("/admin/units/import").status_code == 403
    assert post(client, TREE.encode()).status_code == 403


def test_an_uploaded_unit_file_is_imported_by_the_job(client: Any, session: Session) -> None:
    login(client, "admin")
    before = units(session)
    response = post(client, TREE.encode())
    assert response.status_code == 302
    found = re.search(r"/admin/units/imports/(\d+)$", response.headers["Location"])
    assert found is not None
    session.expire_all()
    row = session.get(UnitImport, int(found.group(1)))
    assert row is not None and (row.status, row.created, row.payload) == ("done", 3, None)
    assert units(session) == before + 3
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "导入完成" in page and "新增 3 个" in page and "data-refresh" not in page
    assert import_unit_file(row.id) == "done" and units(session) == before + 3  # a second run: nothing


def test_a_refused_unit_file_changes_nothing_and_lists_its_problems(client: Any, session: Session) -> None:
    login(client, "admin")
    before = units(session)
    bad = TREE + "".join(f"T-X{i},,district,420100,nowhere,,\n" for i in range(300))
    response = post(client, bad.encode())
    session.expire_all()
    row = session.scalar(select(UnitImport).order_by(UnitImport.id.desc()))
    assert row is not None and row.status == "failed"
    assert len(row.problems) == 200 and row.problem_total == 600
    assert units(session) == before
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "文件未导入" in page and "仅列出前 200 处问题（共 600 处）" in page


def test_a_queued_import_page_refreshes_itself(client: Any, session: Session) -> None:
    row = queue_unit_import(session, TREE.encode(), "units.csv", None)
    session.commit()
    login(client, "admin")
    page = client.get(f"/admin/units/imports/{row.id}").get_data(as_text=True)
    assert "排队中" in page and 'data-refresh="2"' in page
    assert "units.csv" in client.get("/admin/units/import").get_data(as_text=True)


def test_an_empty_upload_is_refused(client: Any, session: Session) -> None:
    login(client, "admin")
    assert client.post("/admin/units/import", data={}).status_code == 422
