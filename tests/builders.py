"""Test-data builders shared by the web tests: demo users, staff at any unit, cases at each step.

Cases are stored through the intake service and routed by the routing service (no web request), so a
builder leaves the case where the demo's dispatch rules put it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Category, Role, User, unit_by_code
from routing import services
from routing.intake import Submission, submit
from routing.models import Case, CaseEvent

COMMUNITY = "420102-S1-C1"  # handler-community's unit, in dispatcher-street's street (420102-S1)
OTHER_DISTRICT_COMMUNITY = "420103-S1-C1"  # outside every demo unit's subtree but the city's
TOKEN_KEY = b"builders"


def user(session: Session, username: str) -> User:
    """A demo user by name."""
    found = session.scalar(select(User).where(User.username == username))
    assert found is not None, username
    return found


def make_user(session: Session, username: str, role: Role, unit_code: str | None) -> User:
    """A staff user (or resident, ``unit_code=None``) who cannot sign in (no password)."""
    unit = unit_by_code(session, unit_code) if unit_code else None
    created = User(username=username, password_hash="x", role=role, unit=unit)
    session.add(created)
    session.flush()
    return created


def new_case(
    session: Session,
    category: str = "HW-01",
    community: str = COMMUNITY,
    resident: User | None = None,
    phone: str = "13800001234",
) -> Case:
    """A submitted (not yet routed) case."""
    data = Submission(
        category=category,
        community=community,
        address="测试路 1 号",
        description="垃圾桶三天没有清运，气味很大",
        contact_name="测试",
        contact_phone=phone,
    )
    return submit(session, data, channel="web", token_key=TOKEN_KEY, resident=resident).case


def routed(session: Session, category: str = "HW-01", **kwargs: Any) -> Case:
    """A case routed by the rules to its handling unit (dispatched, awaiting sign-for)."""
    case = new_case(session, category, **kwargs)
    while services.route_step(session, case.id).next_hop is not None:
        pass
    return case


def accepted(session: Session, category: str = "HW-01", community: str = COMMUNITY, **kwargs: Any) -> Case:
    """A case signed for by the first demo handler of the unit the rules sent it to."""
    case = routed(session, category, community=community, **kwargs)
    assert case.current_unit is not None
    handler = session.scalar(
        select(User).where(User.role == Role.handler, User.unit_id == case.current_unit_id).order_by(User.id)
    )
    if handler is None:
        handler = make_user(
            session, f"handler-{case.current_unit.code}", Role.handler, case.current_unit.code
        )
    services.accept(session, case.id, handler)
    return case


def rated_case(
    session: Session,
    community_code: str,
    category_code: str,
    number: str,
    created_at: Any,
    satisfaction: str | None,
    solved: bool | None = None,
) -> Case:
    """A closed case stored directly (no routing), dispatched and signed for in time, with a rating."""
    community = unit_by_code(session, community_code)
    category = session.scalar(select(Category).where(Category.code == category_code))
    assert community is not None and community.parent is not None and community.parent.parent is not None
    assert category is not None, category_code
    case = Case(
        tracking_number=number, category_id=category.id, district_id=community.parent.parent.id,
        street_id=community.parent.id, community_id=community.id, address="测试路 1 号", description="测试",
        contact_name="测试", contact_phone="13800001234", state="closed", created_at=created_at,
        satisfaction=satisfaction, solved=solved if solved is not None else satisfaction == "satisfied",
        sign_for_deadline=created_at + timedelta(hours=4), deadline=created_at + timedelta(days=7),
    )  # fmt: skip
    session.add(case)
    session.flush()
    for action, delta in (
        ("dispatch", timedelta(0)),
        ("accept", timedelta(hours=1)),
        ("resolve", timedelta(days=1)),
    ):
        session.add(CaseEvent(case_id=case.id, action=action, created_at=created_at + delta))
    session.flush()
    return case


def compound(session: Session, code: str = "420102-S1-C1-X1", community: str = COMMUNITY) -> Any:
    """A 小区/网格 below a demo community (created once per test transaction)."""
    from core.models import Level, Unit, UnitKind

    found = unit_by_code(session, code)
    if found is not None:
        return found
    parent = unit_by_code(session, community)
    assert parent is not None
    created = Unit(
        code=code, name=f"测试小区{code[-2:]}", level=Level.compound, kind=UnitKind.compound, parent=parent
    )
    session.add(created)
    session.flush()
    created.path = f"{parent.path}{created.id}/"
    session.flush()
    return created


def verified_resident(session: Session, username: str, place: Any, phone: str = "13900001111") -> User:
    """A resident with a phone whose home ``place`` was confirmed by the community's staff."""
    from governance import services as gov

    resident = make_user(session, username, Role.resident, None)
    resident.phone = phone
    residency = gov.declare_home(session, resident, place)
    gov.verify_home(session, residency.id, user(session, "admin"))
    return resident


def api_key(
    session: Session, scopes: tuple[str, ...] = ("read", "submit"), rate_limit: str = "1000/minute"
) -> str:
    """Issue a partner API key and return its full text."""
    from app.api import keys

    return keys.issue(session, "测试伙伴", list(scopes), rate_limit, None)
