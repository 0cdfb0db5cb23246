"""Demo co-governance data (labelled 示例): 小区 below demo communities, verified demo residents, topics in
every step of the five-step method (some promoted from demo cases, with votes, projects and ratings),
and ledger entries for the demo quarters.

Deterministic and idempotent: nothing is added when demo topics already exist. Flush only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.demo import DEMO_PASSWORD
from core.db import utcnow
from core.models import Level, Role, Unit, UnitKind, User
from core.quarter import Quarter
from governance import ledgers, rules
from governance import services as gov
from governance.models import Residency, Topic
from routing.models import Case

COMMUNITIES = 12  # the first demo communities (the demo logins' district comes first)
RESIDENTS_PER_COMPOUND = 3
TOPICS = (
    ("小区加装电动车充电桩", "楼道飞线充电隐患大，居民希望在北门空地集中建设充电棚。"),
    ("老旧小区加装电梯", "5 栋居民多为老人，希望加装电梯，费用分摊需商量。"),
    ("垃圾分类投放点改造", "投放点气味大、位置不合理，建议移位并加装洗手池。"),
    ("夜间停车秩序整治", "消防通道常被占用，建议划线并实行错时停车。"),
    ("楼道照明改造", "楼道灯经常损坏，建议更换声控 LED 灯。"),
    ("小区广场舞噪声协调", "晚间广场舞音量大，希望约定时间和音量。"),
    ("口袋公园建设", "闲置空地杂草丛生，希望建设口袋公园。"),
)
# The step each demo topic is left at: (stage, how far) — every stage appears, some topics closed.
PLAN = ("raise", "discuss", "vote_open", "carry_out", "evaluate_open", "closed_rated", "rejected")


@dataclass
class DemoGovernanceSummary:
    """What the demo added."""

    compounds: int = 0
    residents: int = 0
    topics: int = 0
    ledger_rows: int = 0


def _compound(session: Session, community: Unit, number: int) -> Unit:
    code = f"{community.code}-X{number}"
    unit = session.scalar(select(Unit).where(Unit.code == code))
    if unit is None:
        name = community.name.replace("（示例）", "") + f"第{number}小区（示例）"
        unit = Unit(code=code, name=name, level=Level.compound, kind=UnitKind.compound, parent=community)
        unit.is_demo, unit.note = True, "示例数据"
        session.add(unit)
        session.flush()
        unit.path = f"{community.path}{unit.id}/"
    return unit


def _resident(session: Session, username: str, phone: str, place: Unit, admin: User, pw: str) -> User:
    resident = session.scalar(select(User).where(User.username == username))
    if resident is None:
        resident = User(
            username=username, password_hash=pw, role=Role.resident, display_name="示例居民", phone=phone
        )
        session.add(resident)
        session.flush()
    if resident.phone is None:
        resident.phone = phone
    if session.scalar(select(Residency.id).where(Residency.user_id == resident.id)) is None:
        residency = gov.declare_home(session, resident, place)
        gov.verify_home(session, residency.id, admin)
    return resident


def load_demo_governance(session: Session, today: date | None = None) -> DemoGovernanceSummary:
    """Compounds, verified residents, topics in every step and ledgers for the demo quarters (flush only)."""
    summary = DemoGovernanceSummary()
    admin = session.scalar(
        select(User).where(User.role == Role.admin, User.active.is_(True)).order_by(User.id)
    )
    communities = session.scalars(
        select(Unit)
        .where(Unit.level == Level.community, Unit.is_demo.is_(True))
        .order_by(Unit.code)
        .limit(COMMUNITIES)
    ).all()
    if (
        admin is None
        or not communities
        or session.scalar(select(Topic.id).where(Topic.is_demo.is_(True)).limit(1))
    ):
        return summary
    rng = random.Random(20260)
    pw = generate_password_hash(
        DEMO_PASSWORD
    )  # one hash for every demo resident (hashing is slow on purpose)
    now = utcnow()
    for c_index, community in enumerate(communities):
        compounds = [_compound(session, community, n) for n in (1, 2)]
        summary.compounds += 2
        voters: list[User] = []
        for x_index, place in enumerate(compounds):
            for r in range(RESIDENTS_PER_COMPOUND):
                phone = f"1370{c_index:03d}{x_index}{r:03d}"
                voters.append(
                    _resident(session, f"demo-res-{c_index}-{x_index}-{r}", phone, place, admin, pw)
                )
                summary.residents += 1
        if c_index == 0:  # the demo login "resident" lives in the first demo compound and can vote there
            demo = session.scalar(select(User).where(User.username == "resident"))
            if demo is not None:
                demo.phone = demo.phone or "13800009999"
                _resident(session, "resident", demo.phone, compounds[0], admin, pw)
        cases = session.scalars(
            select(Case.id).where(Case.community_id == community.id).order_by(Case.id).limit(3)
        ).all()
        for t in range(2):
            plan = PLAN[(c_index * 2 + t) % len(PLAN)]
            title, text = TOPICS[(c_index + t * 3) % len(TOPICS)]
            place = compounds[t % 2]
            start = now - timedelta(days=40 + rng.randint(0, 20))
            linked = list(cases) if t == 0 else []
            topic = gov.raise_topic(
                session, admin, place, title, text, "cluster" if linked else "staff", linked
            )
            topic.is_demo = True
            topic.created_at = start
            topic.steps[0].created_at = start
            summary.topics += 1
            _advance(
                session,
                topic,
                plan,
                admin,
                [v for v in voters if _home_path(session, v).startswith(place.path)],
                start,
                now,
                rng,
            )
    summary.ledger_rows = _ledgers(
        session, communities, admin, today or (now + timedelta(hours=8)).date(), rng
    )
    return summary


def _home_path(session: Session, user: User) -> str:
    home = gov.verified_home(session, user)
    return home.path if home is not None else ""


def _advance(
    session: Session,
    topic: Topic,
    plan: str,
    admin: User,
    voters: list[User],
    start: datetime,
    now: datetime,
    rng: random.Random,
) -> None:
    """Move a demo topic to the step of its plan, through the real services (steps, votes, ratings)."""
    if plan == "raise":
        return
    t = start + timedelta(days=2)
    gov.act(session, topic.id, admin, rules.StartDiscussion(), t)
    if voters:
        gov.add_comment(session, topic.id, voters[0], "支持，建议尽快召开居民议事会商量具体方案。")
    if plan == "discuss":
        return
    if plan == "rejected":
        gov.act(
            session,
            topic.id,
            admin,
            rules.RecordDecision("居民议事会讨论后认为条件尚不成熟，暂缓实施。", False),
            t + timedelta(days=3),
        )
        return
    eligible = gov.eligible_voters(session, topic.place)
    if plan == "vote_open":
        gov.act(
            session,
            topic.id,
            admin,
            rules.OpenVote(now + timedelta(days=5), max(1, eligible // 2), 0.5, eligible),
            now - timedelta(days=1),
        )
        for voter in voters[:1]:
            gov.cast_ballot(session, topic.id, voter, "yes", now - timedelta(hours=12))
        return
    opened = t + timedelta(days=3)
    gov.act(
        session,
        topic.id,
        admin,
        rules.OpenVote(opened + timedelta(days=7), max(1, eligible // 2), 0.5, eligible),
        opened,
    )
    for i, voter in enumerate(voters):
        gov.cast_ballot(
            session, topic.id, voter, "no" if i == len(voters) - 1 else "yes", opened + timedelta(hours=i + 1)
        )
    closed = opened + timedelta(days=7)
    gov.close_vote(session, topic.id, None, closed)
    budget = float(rng.choice((8000, 12000, 30000)))
    gov.act(
        session,
        topic.id,
        admin,
        rules.StartProject(
            "社区居委会、业委会",
            budget,
            (("社区惠民资金", budget * 0.6), ("居民自筹", budget * 0.4)),
            ("方案公示", "施工", "验收"),
        ),
        closed + timedelta(days=1),
    )
    progress = 40 if plan == "carry_out" else 100
    gov.act(
        session, topic.id, admin, rules.ReportProgress(progress, "按计划推进"), closed + timedelta(days=8)
    )
    if plan == "carry_out":
        return
    finished = closed + timedelta(days=10)
    closes = now + timedelta(days=7) if plan == "evaluate_open" else finished + timedelta(days=7)
    gov.act(session, topic.id, admin, rules.FinishProject(closes), finished)
    for i, voter in enumerate(voters[: 2 if plan == "evaluate_open" else len(voters)]):
        gov.rate(
            session,
            topic.id,
            voter,
            rng.choice((4, 5, 5, 3)),
            "效果不错" if i == 0 else "",
            finished + timedelta(days=1, hours=i),
        )
    if plan == "closed_rated":
        gov.act(session, topic.id, admin, rules.CloseEvaluation(), closes)


def _ledgers(
    session: Session, communities: Sequence[Unit], admin: User, today: date, rng: random.Random
) -> int:
    """Ledger rows in each of the two quarters before ``today``."""
    added = 0
    current = Quarter.of(today)
    streets: dict[int, Unit] = {}
    for quarter in (current.previous().previous(), current.previous()):
        first = quarter.start

        def day(offset: int, q_first: date = first) -> str:
            return (q_first + timedelta(days=offset)).isoformat()

        for community in communities:
            if community.parent is not None:
                streets[community.parent.id] = community.parent
            base = {
                "attendees": "社区党委、物业公司、业委会、驻区单位代表",
                "issues": "小区环境整治、停车管理",
                "resolutions": "分工落实，月底前完成",
            }
            for n in range(rng.randint(1, 3)):
                ledgers.create(
                    session,
                    admin,
                    "meetings",
                    community,
                    {**base, "held_on": day(10 + 25 * n), "attendee_count": str(rng.randint(6, 15))},
                )
                added += 1
            compound = session.scalar(select(Unit).where(Unit.code == f"{community.code}-X1"))
            if compound is not None:
                ledgers.create(
                    session, admin, "meetings", compound, {**base, "held_on": day(20), "attendee_count": "6"}
                )
                added += 1
            for m in range(2):
                member = ledgers.create(
                    session,
                    admin,
                    "party_members",
                    community,
                    {
                        "name": f"示例党员{m + 1}",
                        "work_unit": rng.choice(("市民政局", "区城管局", "某国企")),
                        "registered_on": day(1),
                    },
                )
                for s in range(rng.randint(1, 3)):
                    ledgers.create(
                        session,
                        admin,
                        "party_services",
                        None,
                        {
                            "member_id": str(member.id),
                            "served_on": day(15 + 20 * s),
                            "service": rng.choice(("环境清扫", "政策宣讲", "关爱老人")),
                            "hours": str(rng.choice((2, 3, 4))),
                        },
                    )
                    added += 1
                added += 1
            org = ledgers.create(
                session,
                admin,
                "social_orgs",
                community,
                {
                    "name": "示例社工服务中心",
                    "contract": f"{quarter}购买服务合同",
                    "contract_amount": "50000",
                    "starts_on": day(0),
                },
            )
            for s in range(rng.randint(1, 4)):
                ledgers.create(
                    session,
                    admin,
                    "service_records",
                    None,
                    {
                        "organisation_id": str(org.id),
                        "served_on": day(5 + 15 * s),
                        "description": "独居老人探访",
                        "beneficiaries": str(rng.randint(5, 40)),
                    },
                )
                added += 1
            if rng.random() < 0.4:
                ledgers.create(
                    session,
                    admin,
                    "innovations",
                    community,
                    {
                        "title": "楼栋议事微治理",
                        "applied_on": day(3),
                        "application": "以楼栋为单位开展议事",
                        "review": "approved",
                        "funding": "20000",
                        "outcome": "已覆盖 12 个楼栋",
                    },
                )
                added += 1
            added += 2
        for street in streets.values():
            ledgers.create(
                session,
                admin,
                "meetings",
                street,
                {
                    "attendees": "街道党工委、社区书记",
                    "issues": "街道共建",
                    "resolutions": "按季度督办",
                    "held_on": day(30),
                    "attendee_count": "12",
                },
            )
            added += 1
    return added
