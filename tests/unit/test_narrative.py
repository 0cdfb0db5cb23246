"""The status page tells each step in plain Chinese with the responsible unit."""

from __future__ import annotations

from core.models import Level, Unit, UnitKind
from routing.models import CaseEvent
from routing.narrative import describe


def unit(name: str) -> Unit:
    return Unit(code=name, name=name, level=Level.district, kind=UnitKind.district)


def test_route_names_the_next_level() -> None:
    event = CaseEvent(action="route", to_unit=unit("江岸区"), details={})
    assert describe(event) == "已转交 江岸区 继续分派"


def test_dispatch_names_the_unit_and_waits_for_sign_for() -> None:
    event = CaseEvent(action="dispatch", to_unit=unit("幸福社区"), details={})
    assert describe(event) == "已派单至 幸福社区，等待签收"


def test_return_reason_is_shown_to_staff_only() -> None:
    event = CaseEvent(action="return_case", from_unit=unit("某街道"), reason="非本单位职责", details={})
    assert "非本单位职责" not in describe(event, for_resident=True)
    assert "非本单位职责" in describe(event, for_resident=False)
