"""Issue 13 item 5: the workbench and resident dead ends, one test (or a few) per dead end."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from routing.models import Case
from tests.conftest import login
from tests.web.test_workbench import fingerprint, returned


def page_of(client: Any, case: Case) -> str:
    """The workbench page of ``case`` as text."""
    response = client.get(f"/workbench/cases/{case.tracking_number}")
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


# --- forced dispatch -----------------------------------------------------------------------------


def test_dispatcher_can_force_a_returned_case_back_with_an_audited_reason(client: Any, session: Session) -> None:
    case = returned(client, session)  # handler-community returned it; it is with the street's dispatcher
    login(client, "dispatcher-street")
    page = page_of(client, case)
    assert 'name="dispatch-force"' in page and "曾退回，需强制指派" in page
    url = f"/workbench/cases/{case.tracking_number}/dispatch"
    before = fingerprint(session, case)
    plain = client.post(url, data={"dispatch-unit_code": "420102-S1-C1"})
    assert "除非派单员强制指派" in client.get(plain.headers.get("Location", url)).get_data(as_text=True) or (
        "除非派单员强制指派" in plain.get_data(as_text=True)
    )
    no_reason = client.post(url, data={"dispatch-unit_code": "420102-S1-C1", "dispatch-force": "y"})
    assert "强制指派须填写理由" in client.get(no_reason.headers.get("Location", url)).get_data(as_text=True) or (
        "强制指派须填写理由" in no_reason.get_data(as_text=True)
    )
    assert fingerprint(session, case) == before
    forced = client.post(
        url, data={"dispatch-unit_code": "420102-S1-C1", "dispatch-force": "y", "dispatch-note": "核实属本社区"}
    )
    assert forced.status_code == 302
    session.expire_all()
    fresh = session.get(Case, case.id)
    assert fresh is not None and fresh.state == "dispatched" and fresh.current_unit is not None
    assert fresh.current_unit.code == "420102-S1-C1"
    event = fresh.events[-1]
    assert event.action == "dispatch" and event.reason == "核实属本社区" and event.details["forced"] is True
