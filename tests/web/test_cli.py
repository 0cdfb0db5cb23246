"""Command line: ``flask units import``, ``flask categories import``, ``flask users create``, ``flask demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Category, Unit, User
from routing.models import Case

UNITS = (
    "code,name,level,parent_code,kind,note\n"
    "T-CLI-D,命令行区,district,420100,district,\n"
    "T-CLI-S,命令行街道,street,T-CLI-D,street,\n"
)


def counts(session: Session) -> dict[str, int]:
    """Rows per table the CLI touches."""
    session.expire_all()
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Unit, Category, User, Case)
    }


def run(app: Flask, *args: str) -> Any:
    """Invoke a flask command inside the test's transaction."""
    return app.test_cli_runner().invoke(args=list(args))


def test_units_import_good_file_then_reimport(app: Flask, session: Session, tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    path.write_text(UNITS, encoding="utf-8")
    before = counts(session)["Unit"]
    first = run(app, "units", "import", str(path))
    assert first.exit_code == 0, first.output
    assert "新增 2，更新 0，未变 0" in first.output
    second = run(app, "units", "import", str(path))
    assert second.exit_code == 0 and "新增 0，更新 0，未变 2" in second.output
    assert counts(session)["Unit"] == before + 2


def test_units_import_bad_file_exits_1_with_line_numbers_and_applies_nothing(
    app: Flask, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        UNITS + "T-CLI-C,,community,T-CLI-S,community,\nT-CLI-X,错层,community,420102,community,\n"
    )
    before = counts(session)
    result = run(app, "units", "import", str(path))
    assert result.exit_code == 1
    assert "导入失败，文件未作任何修改" in result.output
    assert "第 4 行（name）" in result.output
    assert counts(session) == before
    assert session.scalar(select(Unit).where(Unit.code == "T-CLI-D")) is None


def test_units_import_missing_file(app: Flask, session: Session, tmp_path: Path) -> None:
    result = run(app, "units", "import", str(tmp_path / "absent.csv"))
    assert result.exit_code == 2


def test_categories_import_bad_file(app: Flask, session: Session, tmp_path: Path) -> None:
    path = tmp_path / "cats.csv"
    path.write_text(
        "code,name,group,department_code,default_level,urgency,sign_for_hours,resolution_limit\n"
        "T-CLI-01,命令行类别,组,D-FGJ,street,normal,2,3\n"
        "T-CLI-02,坏类别,组,D-NOPE,street,normal,2,3\n"
    )
    before = counts(session)
    result = run(app, "categories", "import", str(path))
    assert result.exit_code == 1 and "第 3 行" in result.output and "D-NOPE" in result.output
    assert counts(session) == before
    path.write_text(path.read_text().replace("D-NOPE", "D-FGJ"))
    good = run(app, "categories", "import", str(path))
    assert good.exit_code == 0 and "新增 2" in good.output


def test_users_create(app: Flask, session: Session) -> None:
    result = run(
        app,
        "users",
        "create",
        "t-cli-handler",
        "--role",
        "handler",
        "--unit",
        "420102-S1",
        "--password",
        "harbour-kettle-93",
    )
    assert result.exit_code == 0, result.output
    assert "已创建用户 t-cli-handler" in result.output
    user = session.scalar(select(User).where(User.username == "t-cli-handler"))
    assert user is not None and user.unit is not None and user.unit.code == "420102-S1"
    assert user.password_hash != "harbour-kettle-93"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("t-cli-x", "--role", "handler", "--password", "harbour-kettle-93"), "工作人员必须绑定单位"),
        (
            ("t-cli-x", "--role", "dispatcher", "--unit", "NOPE", "--password", "harbour-kettle-93"),
            "单位 NOPE 不存在",
        ),
        (("t-cli-x", "--role", "resident", "--password", "short"), "密码至少 10 位"),
        (("operator", "--role", "resident", "--password", "harbour-kettle-93"), "该用户名不可用"),
    ],
)
def test_users_create_refusals(app: Flask, session: Session, args: tuple[str, ...], message: str) -> None:
    before = counts(session)["User"]
    result = run(app, "users", "create", *args)
    assert result.exit_code == 1 and message in result.output
    assert counts(session)["User"] == before


def test_users_create_unknown_role(app: Flask, session: Session) -> None:
    result = run(app, "users", "create", "t-cli-y", "--role", "mayor", "--password", "harbour-kettle-93")
    assert result.exit_code == 2


def test_demo_twice_is_idempotent(app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from core import jobs

    monkeypatch.setattr(
        jobs, "enqueue", lambda task, *args: None
    )  # demo samples already exist: nothing queued
    before = counts(session)
    for _ in range(2):
        result = run(app, "demo", "--no-quarter")  # the demo quarter: tests/web/test_demo_quarter.py
        assert result.exit_code == 0, result.output
        assert "demo-pass-2026" in result.output and "dispatcher-street" in result.output
        assert counts(session) == before
