"""Demo data: generated streets and communities (labelled 示例), users of every role, sample requests.

Deterministic and idempotent: running it twice changes nothing. Real deployments import their own
streets and communities with ``flask units import``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import create_user
from core.catalogue import import_default_catalogue
from core.db import DbSession
from core.models import Level, Role, Unit, UnitKind, User
from core.units import import_work_plan_units
from routing.calendar_store import seed_from_library
from routing.intake import Submission, submit
from routing.models import Case

STREETS_PER_DISTRICT = 2
COMMUNITIES_PER_STREET = 3
DEMO_PASSWORD = "demo-pass-2026"
_STREET_NAMES = ("示例中心街道", "示例新城街道", "示例滨江街道")
_COMMUNITY_NAMES = ("幸福社区", "和平社区", "民主社区", "友谊社区")


@dataclass(frozen=True)
class DemoLogin:
    """A demo account to print for the person running the platform."""

    username: str
    role: Role
    unit: str


def _ensure_unit(
    session: DbSession, code: str, name: str, level: Level, kind: UnitKind, parent: Unit, population: int
) -> Unit:
    unit = session.scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        unit = Unit(
            code=code,
            name=name,
            level=level,
            kind=kind,
            parent=parent,
            is_demo=True,
            population=population,
            note="示例数据",
        )
        session.add(unit)
        session.flush()
        unit.path = f"{parent.path}{unit.id}/"
    return unit


def ensure_demo_places(session: DbSession) -> list[Unit]:
    """Generate a few streets per district and communities per street; returns the communities."""
    rng = random.Random(12345)  # deterministic populations
    districts = session.scalars(select(Unit).where(Unit.level == Level.district).order_by(Unit.code)).all()
    communities = []
    for district in districts:
        for s in range(STREETS_PER_DISTRICT):
            street = _ensure_unit(
                session,
                f"{district.code}-S{s + 1}",
                f"{district.name}{_STREET_NAMES[s]}",
                Level.street,
                UnitKind.street,
                district,
                0,
            )
            for c in range(COMMUNITIES_PER_STREET):
                community = _ensure_unit(
                    session,
                    f"{street.code}-C{c + 1}",
                    # Unique across the city, so rankings and lists read unambiguously.
                    f"{district.name.removesuffix('区')}{_STREET_NAMES[s][2:4]}{_COMMUNITY_NAMES[c]}（示例）",
                    Level.community,
                    UnitKind.community,
                    street,
                    rng.randint(3000, 12000),
                )
                communities.append(community)
    return communities


def demo_logins(session: DbSession) -> list[DemoLogin]:
    """The demo accounts to create: one per role, staff at meaningful units."""
    first_district = session.scalar(select(Unit).where(Unit.code == "420102"))
    street = session.scalar(select(Unit).where(Unit.code == "420102-S1"))
    community = session.scalar(select(Unit).where(Unit.code == "420102-S1-C1"))
    assert first_district and street and community
    return [
        DemoLogin("admin", Role.admin, "420100"),
        DemoLogin("operator", Role.operator, "D-RXB"),
        DemoLogin("dispatcher-city", Role.dispatcher, "D-RXB"),
        DemoLogin("dispatcher-district", Role.dispatcher, first_district.code),
        DemoLogin("dispatcher-street", Role.dispatcher, street.code),
        DemoLogin("handler-community", Role.handler, community.code),
        DemoLogin("handler-street", Role.handler, street.code),
        DemoLogin("handler-fgj", Role.handler, "D-FGJ"),
        DemoLogin("evaluator", Role.evaluator, "D-MZJ"),
        DemoLogin("resident", Role.resident, ""),
    ]


SAMPLES = (
    ("HW-01", "垃圾桶已经三天没有清运，夏天气味很大，影响居民生活。", "幸福小区 2 栋旁"),
    ("WY-01", "小区电梯间照明坏了一个月，物业一直没有修。", "和平花园 5 栋"),
    ("ZS-01", "晚上十一点后工地还在施工，噪声很大，老人孩子无法休息。", "滨江路与建设大道交叉口"),
    ("LJ-02", "我们单元想加装电梯，想了解申请流程和补贴政策。", "民主里 12 号"),
    ("DLU-02", "小区门口路灯不亮已经一周，晚上出行不安全。", "友谊路 88 号"),
)


def load_demo(session: DbSession, token_key: bytes) -> list[DemoLogin]:
    """Idempotently load everything a demo needs (flush only; the caller commits)."""
    import_work_plan_units(session)
    import_default_catalogue(session)
    # Databases built by create_all (demo, tests) skip the migration that seeds the holiday notices.
    seed_from_library(cast(Session, session))
    communities = ensure_demo_places(session)
    logins = demo_logins(session)
    for login in logins:
        if session.scalar(select(User).where(User.username == login.username)) is None:
            create_user(
                session,
                login.username,
                DEMO_PASSWORD,
                login.role,
                login.unit or None,
                f"示例{login.username}",
            )
    if session.scalar(select(Case.id).limit(1)) is None:
        for i, (category, text, address) in enumerate(SAMPLES):
            submit(
                session,
                Submission(
                    category=category,
                    community=communities[i % len(communities)].code,
                    address=address,
                    description=text,
                    contact_name="示例居民",
                    contact_phone=f"1380000{i:04d}",
                ),
                channel="web",
                token_key=token_key,
                idempotency_key=f"demo-sample-{i}",
            )
    return logins
