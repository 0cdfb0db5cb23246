"""A demo quarter: surveys, cases and scoring for the two quarters before today (all labelled 示例).

With the plain demo data the evaluators' pages are empty. This fills the previous quarter and the one
before it with what a real city would have by then: a satisfaction survey per quarter with 30–60 online
responses per demo community, demo requests taken through their whole lifecycle (routing, 签收, 退单,
办结, 回访, 重办, a few overdue), evaluator entries, and the quarterly scoring (the older quarter
published, the newer one a draft), so rankings, drill-down, change against last quarter and the
逐项审核 list have content.

Deterministic (seeded per quarter) and idempotent: a quarter that already has the demo survey is left
alone, and a quarter that already has a scoring run is not scored again. Flush only; the caller commits.
Called from ``flask demo`` / ``flask serve`` (not from ``load_demo``, which the test fixture uses).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.demo import DEMO_PASSWORD
from assessment import inputs, services, systems
from assessment.jobs import score_quarter
from core.models import Category, Level, Role, Unit, User
from core.quarter import Quarter
from routing import access
from routing import services as routing
from routing.intake import Submission, submit
from routing.lifecycle import State
from routing.models import Case
from surveys import services as surveys
from surveys.definitions import AGE_BANDS, GENDERS, QuestionSpec, SectionSpec, SurveySpec, likert_choices
from surveys.models import Answer, QuestionKind, Survey, SurveyResponse

SURVEY_TITLE = "示例：社区公共服务满意度调查"
SURVEY_INDICATOR = "GF1"  # 公共服务满意度指数 of assessment.systems.default_system() (source survey:*)
# (name, question, service area); every question feeds GF1, the service area names the team behind it.
QUESTIONS: tuple[tuple[str, str, str], ...] = (
    ("q_sanitation", "您对小区环境卫生和垃圾清运是否满意？", "环卫"),
    ("q_property", "您对小区物业服务是否满意？", "物业"),
    ("q_safety", "您对社区治安和消防安全是否满意？", "平安"),
    ("q_elderly", "您对社区养老助餐服务是否满意？", "养老"),
    ("q_greenery", "您对小区绿化和公共设施维护是否满意？", "绿化"),
    ("q_service", "您对社区办事便利程度是否满意？", "政务"),
    ("q_activity", "您对社区文体活动和活动场地是否满意？", "文体"),
    ("q_response", "您向社区反映问题后，对处理结果是否满意？", "诉求"),
)
SECTIONS = (
    ("env", "居住环境", 0, 3),
    ("service", "社区服务", 3, 8),
)  # (name, title, first, end) of QUESTIONS
RESPONSES_PER_COMMUNITY = (30, 60)
CASES_PER_COMMUNITY = (1, 3)
# Requests a community handles itself (default_level community in the catalogue): routing ends there.
CASE_SAMPLES: tuple[tuple[str, str], ...] = (
    ("HW-01", "楼下垃圾桶满了两天没人清运，气味很大。"),
    ("HW-03", "小区公共楼道堆放杂物，卫生很差。"),
    ("WY-01", "单元门禁坏了很久，物业一直没有修。"),
    ("DL-02", "楼道里有人私拉电线给电动车充电，存在安全隐患。"),
    ("ZS-02", "晚上广场舞音响声音太大，影响休息。"),
    ("ZA-02", "消防通道被私家车长期占用。"),
    ("YL-01", "社区老年食堂的饭菜品种太少，希望改进。"),
    ("MZ-02", "社区活动室经常不开门，想了解开放时间。"),
    ("HW-02", "垃圾分类桶摆放位置不合理，希望调整。"),
    ("QT-01", "小区健身器材损坏，希望尽快修复。"),
)
# Evaluator entries of the default system (code → low, high): checklists in percent, counts as numbers.
ENTRY_RANGES: dict[str, tuple[float, float]] = {
    "party_checklist": (70, 100),
    "volunteer_events": (0, 7),
    "inspection_failings": (0, 4),
    "online_check": (65, 100),
    "autonomy_checklist": (65, 100),
    "council_meetings": (0, 4),
}
COUNT_ENTRIES = frozenset({"volunteer_events", "inspection_failings", "council_meetings"})


@dataclass
class QuarterSummary:
    """What was added for one quarter (all zero when it was there already)."""

    quarter: str
    responses: int = 0
    cases: int = 0
    entries: int = 0
    scored: str = ""  # "published", "draft" or "" when a run was there already


@dataclass
class DemoQuarterSummary:
    """What ``load_demo_quarter`` added."""

    quarters: list[QuarterSummary] = field(default_factory=list)
    handlers: int = 0


@dataclass(frozen=True)
class _Place:
    """A demo community with its persistent character (the same in every quarter)."""

    unit: Unit
    district_code: str
    quality: float  # satisfaction level on the 0–100 index scale
    weak_item: int | None  # a question this community stays poor on (feeds the review list)


def demo_quarters(today: date | None = None) -> tuple[Quarter, Quarter]:
    """The quarter before the previous one and the previous one, relative to ``today``."""
    newer = (Quarter.of(today) if today else Quarter.current()).previous()
    return newer.previous(), newer


def _seed(*parts: str) -> int:
    # crc32, not hash(): str hashes are salted per process, and the demo must be the same every run.
    return zlib.crc32("|".join(parts).encode())


def _places(session: Session) -> list[_Place]:
    communities = session.scalars(
        select(Unit).where(Unit.level == Level.community, Unit.is_demo.is_(True)).order_by(Unit.code)
    ).all()
    district_codes = dict(
        session.execute(select(Unit.id, Unit.code).where(Unit.level == Level.district)).all()
    )
    places = []
    for unit in communities:
        rng = random.Random(_seed("place", unit.code))
        ancestors = unit.ancestor_ids()
        weak = rng.randrange(len(QUESTIONS)) if rng.random() < 0.15 else None
        places.append(
            _Place(
                unit,
                district_codes.get(ancestors[1], "") if len(ancestors) > 1 else "",
                rng.gauss(74, 7),
                weak,
            )
        )
    return places


def _handlers(session: Session, places: Sequence[_Place]) -> tuple[dict[int, User], int]:
    """A handler per demo community: an existing one, or a new ``handler-<code>`` with the demo password."""
    ids = [p.unit.id for p in places]
    found: dict[int, User] = {}
    for user in session.scalars(
        select(User)
        .where(User.role == Role.handler, User.active.is_(True), User.unit_id.in_(ids))
        .order_by(User.id)
    ):
        if user.unit_id is not None:
            found.setdefault(user.unit_id, user)
    missing = [p for p in places if p.unit.id not in found]
    if missing:
        # One hash shared by all: hashing is deliberately slow (~50 ms) and these are demo accounts.
        password_hash = generate_password_hash(DEMO_PASSWORD)
        for place in missing:
            user = User(
                username=f"handler-{place.unit.code}",
                password_hash=password_hash,
                role=Role.handler,
                unit=place.unit,
                display_name=f"示例办理人（{place.unit.name}）"[:80],
            )
            session.add(user)
            found[place.unit.id] = user
        session.flush()
    return found, len(missing)


def load_demo_quarter(session: Session, token_key: bytes, today: date | None = None) -> DemoQuarterSummary:
    """Fill the two quarters before ``today`` with demo surveys, cases, entries and scoring (flush only)."""
    summary = DemoQuarterSummary()
    places = _places(session)
    admin = session.scalar(
        select(User).where(User.role == Role.admin, User.active.is_(True)).order_by(User.id)
    )
    if not places or admin is None:
        return summary  # load_demo first: it creates the demo communities and the admin
    older, newer = demo_quarters(today)
    handlers: dict[int, User] = {}
    for quarter in (older, newer):
        done = QuarterSummary(str(quarter))
        summary.quarters.append(done)
        if session.scalar(
            select(Survey.id).where(Survey.quarter == str(quarter), Survey.title == SURVEY_TITLE)
        ):
            continue
        if not handlers:
            handlers, summary.handlers = _handlers(session, places)
        done.responses = _survey(
            session, quarter, places, close=True
        )  # both demo quarters are past: collection has ended
        done.entries = _entries(session, quarter, places, admin)
        done.cases = _cases(session, quarter, places, handlers, admin, token_key)
    for quarter, publish, done in ((older, True, summary.quarters[0]), (newer, False, summary.quarters[1])):
        if services.computed(systems.run_for(session, quarter)):
            continue
        score_quarter(session, quarter, publish=publish, user_id=admin.id)
        done.scored = "published" if publish else "draft"
    from app.demo_governance import load_demo_governance

    load_demo_governance(session, today)  # co-governance: topics in every step, the quarters' ledgers
    return summary


# --- surveys ------------------------------------------------------------------------------------------


def _survey(session: Session, quarter: Quarter, places: Sequence[_Place], *, close: bool) -> int:
    """The quarter's demo survey, opened, with its responses stored in bulk; returns responses added."""
    survey = surveys.create_survey(session, str(quarter), SURVEY_TITLE)
    spec = SurveySpec(
        SURVEY_TITLE,
        [
            SectionSpec(
                name,
                title,
                [
                    QuestionSpec(
                        q_name,
                        label,
                        QuestionKind.likert5,
                        required=True,
                        choices=likert_choices(),
                        dont_know=True,
                        indicator_code=SURVEY_INDICATOR,
                        service_area=area,
                    )
                    for q_name, label, area in QUESTIONS[first:end]
                ],
            )
            for name, title, first, end in SECTIONS
        ],
    )
    surveys.apply_spec(session, survey, spec)
    surveys.open_survey(session, survey)
    question_ids = [q.id for q in sorted(survey.questions, key=lambda q: q.position)]
    rng = random.Random(_seed("survey", str(quarter)))
    first, end = quarter.bounds_utc()
    start = first + timedelta(hours=9)  # 09:00 Beijing on the first day
    span = (end - start).total_seconds() - 86400
    ages = [code for code, _ in AGE_BANDS]
    genders = [code for code, _ in GENDERS]
    responses: list[dict[str, object]] = []
    answers: list[list[tuple[float | None, bool]]] = []
    for place in places:
        # Most communities drift a little between quarters; a few move enough for a significant change.
        level = place.quality + rng.gauss(0, 2) + (rng.choice((-9, 9)) if rng.random() < 0.12 else 0)
        for i in range(rng.randint(*RESPONSES_PER_COMMUNITY)):
            person = rng.gauss(0, 9)
            responses.append(
                {
                    "survey_id": survey.id,
                    "community_id": place.unit.id,
                    "instance_id": f"demo-{quarter}-{place.unit.code}-{i}",
                    "source": "online",
                    "age_band": rng.choices(ages, weights=(2, 3, 3, 4))[0],
                    "gender": rng.choice(genders),
                    "district_code": place.district_code,
                    "submitted_at": start + timedelta(seconds=rng.uniform(0, span)),
                }
            )
            row: list[tuple[float | None, bool]] = []
            for k in range(len(QUESTIONS)):
                if rng.random() < 0.04:
                    row.append((None, True))  # 不了解/不适用
                    continue
                latent = (
                    level + person + (-32 if k == place.weak_item else (k % 3 - 1) * 4) + rng.gauss(0, 12)
                )
                row.append((float(min(5, max(1, round(latent / 25 + 1)))), False))
            answers.append(row)
    # Bulk rows, not submit_online: ~9,000 responses through the one-by-one path (savepoint, dedupe
    # checks) would take most of a minute on SQLite; these carry no token or contact to check.
    ids = session.scalars(
        insert(SurveyResponse).returning(SurveyResponse.id, sort_by_parameter_order=True), responses
    ).all()
    session.execute(
        insert(Answer),
        [
            {"response_id": rid, "question_id": qid, "value_num": value, "dont_know": dk}
            for rid, row in zip(ids, answers, strict=True)
            for qid, (value, dk) in zip(question_ids, row, strict=True)
        ],
    )
    if close:
        surveys.close_survey(session, survey)
    # The services stamp today; the demo's collection ran during its quarter.
    survey.opened_at = start
    if close:
        survey.closed_at = end
    session.flush()
    return len(ids)


def _entries(session: Session, quarter: Quarter, places: Sequence[_Place], admin: User) -> int:
    """Evaluator entries (party and autonomy checklists, events, inspections) per community."""
    rng = random.Random(_seed("entries", str(quarter)))
    added = 0
    for place in places:
        tilt = (place.quality - 74) / 30  # better-run communities tend to score better everywhere
        for code, (low, high) in ENTRY_RANGES.items():
            share = min(
                1.0, max(0.0, rng.random() * 0.8 + 0.1 + tilt * (-1 if code == "inspection_failings" else 1))
            )
            value = low + share * (high - low)
            value = float(round(value)) if code in COUNT_ENTRIES else round(value, 1)
            inputs.add_entry(session, quarter, place.unit, code, value, note="示例数据", user_id=admin.id)
            added += 1
    return added


# --- cases --------------------------------------------------------------------------------------------


def _working_moment(rng: random.Random, first: date, days: int) -> datetime:
    """A weekday office-hours moment (Beijing time) in [first, first + days)."""
    while True:
        day = first + timedelta(days=rng.randrange(days))
        if day.weekday() < 5:
            return datetime.combine(day, time(8, 30)) + timedelta(minutes=rng.randrange(8 * 60))


def _cases(
    session: Session,
    quarter: Quarter,
    places: Sequence[_Place],
    handlers: dict[int, User],
    admin: User,
    token_key: bytes,
) -> int:
    """Demo requests created in the quarter and taken through their lifecycle with explicit times."""
    rng = random.Random(_seed("cases", str(quarter)))
    categories = {c.code: c for c in session.scalars(select(Category))}
    dispatcher = next((u for u in _city_dispatchers(session) if access.acts_for_city(u)), None)
    # Created early enough that every step (at most ~25 days later) still falls inside the quarter.
    days = (quarter.end - quarter.start).days - 30
    added = 0
    for place in places:
        for i in range(rng.randint(*CASES_PER_COMMUNITY)):
            code, text = rng.choice(CASE_SAMPLES)
            if code not in categories:
                continue
            created = routing.to_utc(_working_moment(rng, quarter.start, days))
            intake = submit(
                session,
                Submission(
                    category=code,
                    community=place.unit.code,
                    address=f"{place.unit.name.removesuffix('（示例）')}{rng.randint(1, 30)} 栋",
                    description=text,
                    contact_name="示例居民",
                    contact_phone=f"139{rng.randrange(10**8):08d}",
                ),
                channel=rng.choice(("web", "phone", "web", "api")),
                token_key=token_key,
                idempotency_key=f"demo-{quarter}-{place.unit.code}-{i}",
                now=created,
            )
            handler = handlers[place.unit.id]
            _lifecycle(session, intake.case, place, handler, admin, dispatcher, created, rng)
            added += 1
    return added


def _city_dispatchers(session: Session) -> Sequence[User]:
    return session.scalars(
        select(User).where(User.role == Role.dispatcher, User.active.is_(True)).order_by(User.id)
    ).all()


def _lifecycle(
    session: Session,
    case: Case,
    place: _Place,
    handler: User,
    admin: User,
    dispatcher: User | None,
    now: datetime,
    rng: random.Random,
) -> None:
    """Route, sign for, maybe return, resolve, call back, maybe reopen — with realistic delays.

    A rated case is archived (归档); an unrated one stays ``resolved`` until the worker's deadline scan
    closes it once its callback window has passed, as it does for real ones.
    """
    good = min(0.95, max(0.3, (place.quality - 45) / 40))  # 74 → ~0.72; a weak community does worse
    if dispatcher is not None and rng.random() < 0.8:
        # The hotline dispatches most requests straight to the community (派单): one step instead of
        # the rules' three hops, which also keeps the demo load fast.
        now += timedelta(minutes=rng.randint(5, 40))
        routing.dispatch_manually(session, case.id, dispatcher, unit_code=place.unit.code, now=now)
    else:
        hop = routing.route_step(session, case.id, now=now)
        while hop.next_hop is not None:
            now += timedelta(minutes=rng.randint(5, 40))
            hop = routing.route_step(session, case.id, hop_no=hop.next_hop, now=now)
    if case.state != State.dispatched.value or case.current_unit_id != place.unit.id:
        return  # the rules placed it elsewhere (a deployment's own rule set): leave it where it is
    if rng.random() < 0.08:  # 退单, then the street insists and dispatches it back
        now += timedelta(hours=rng.uniform(0.5, 2))
        routing.return_case(
            session, case.id, handler, reason="not_our_jurisdiction", note="示例：认为不属本社区职责", now=now
        )
        now += timedelta(hours=rng.uniform(1, 4))
        routing.dispatch_manually(
            session, case.id, admin, unit_code=place.unit.code, force=True, note="经核实属本社区职责", now=now
        )
    late_sign = rng.random() > good + 0.15
    now += timedelta(hours=rng.uniform(26, 60) if late_sign else rng.uniform(0.2, 1.5))
    routing.accept(session, case.id, handler, now=now)
    if rng.random() < 0.03:
        return  # left in hand past its deadline: an overdue case for the workbench
    for attempt in range(3):
        late = rng.random() > good + 0.1
        days = rng.uniform(8, 12) if late else rng.uniform(0.2, 2.5)
        now += timedelta(days=days)
        routing.resolve(
            session, case.id, handler, result="已处理", reply="示例：已安排人员处理，请查看。", now=now
        )
        if rng.random() < 0.12:
            return  # never rated: the deadline scan closes it
        now += timedelta(hours=rng.uniform(4, 30))
        happy = rng.random() < good + 0.12 or attempt == 2
        satisfaction = (
            rng.choice(("satisfied", "satisfied", "basically_satisfied")) if happy else "dissatisfied"
        )
        routing.callback(session, case.id, None, solved=happy, satisfaction=satisfaction, now=now)
        if case.state != State.dispatched.value:
            break
        # 不满意 sent it back to the unit (重办): sign for it again and try once more.
        now += timedelta(hours=rng.uniform(0.5, 3))
        routing.accept(session, case.id, handler, now=now)
    if case.state == State.resolved.value:
        routing.close(session, case.id, admin, note="示例：回访完成，归档", now=now + timedelta(hours=1))
