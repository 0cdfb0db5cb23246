"""The co-governance ledgers (电子台帐): one declared spec per ledger, parsing and checks of a form's raw
values, creation (audited, scoped to the staff member's subtree), lists with filters, and the per-quarter
figures the assessment reads.

Ledgers: joint party-building meetings at four levels (区—街道—社区—小区/网格), serving party members
registered with a community and their services (hours), social organisations with purchased-service
contracts and service records, community innovation projects (application, review, funding, outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from core.db import DbSession
from core.i18n import N_
from core.inputs import OutOfRange, bounded_number, is_blank, text_problem
from core.models import LEVEL_LABELS, Level, Unit, User
from core.quarter import Quarter
from governance import rules
from governance.models import (
    InnovationProject,
    JointMeeting,
    PartyMember,
    PartyService,
    ServiceRecord,
    SocialOrganisation,
    Topic,
)
from governance.rules import GovernanceError
from governance.services import actor_of, audit, community_of

MEETING_LEVELS = (Level.district, Level.street, Level.community, Level.compound)
REVIEWS = {"pending": "待评审", "approved": "已立项", "refused": "未通过"}


@dataclass(frozen=True)
class Field:
    """One input of a ledger form: name, label, kind (text, longtext, date, int, number, choice, parent)."""

    name: str
    label: str
    kind: str = "text"
    required: bool = True
    low: float = 0
    high: float = 1_000_000_000
    max_length: int = 200
    choices: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Ledger:
    """A ledger: its model, label, the unit level it hangs on, and its fields."""

    kind: str
    label: str
    model: Any
    unit_field: str | None  # "unit_id" / "community_id"; None when the row hangs on a parent record
    fields: tuple[Field, ...]
    parent: tuple[str, Any] | None = None  # (field name, parent model) for services and service records
    date_field: str = ""


LEDGERS: dict[str, Ledger] = {
    "meetings": Ledger(
        "meetings",
        "联席会议",
        JointMeeting,
        "unit_id",
        (
            Field("held_on", "会议日期", "date"),
            Field("attendees", "参会单位和人员", "longtext", max_length=2000),
            Field("attendee_count", "参会人数", "int", high=10_000),
            Field("issues", "议题", "longtext", max_length=4000),
            Field("resolutions", "议定事项", "longtext", max_length=4000),
            Field("follow_up", "跟踪落实情况", "longtext", required=False, max_length=4000),
        ),
        date_field="held_on",
    ),
    "party_members": Ledger(
        "party_members",
        "在职党员报到",
        PartyMember,
        "community_id",
        (
            Field("name", "姓名", max_length=40),
            Field("work_unit", "工作单位", max_length=120),
            Field("registered_on", "报到日期", "date"),
        ),
        date_field="registered_on",
    ),
    "party_services": Ledger(
        "party_services",
        "党员服务记录",
        PartyService,
        None,
        (
            Field("member_id", "党员", "parent"),
            Field("served_on", "服务日期", "date"),
            Field("service", "服务内容", max_length=200),
            Field("hours", "服务时长（小时）", "number", low=0.5, high=24),
        ),
        parent=("member_id", PartyMember),
        date_field="served_on",
    ),
    "social_orgs": Ledger(
        "social_orgs",
        "社会组织与购买服务",
        SocialOrganisation,
        "community_id",
        (
            Field("name", "社会组织名称", max_length=120),
            Field("contract", "服务合同（名称/编号）", max_length=200),
            Field("contract_amount", "合同金额（元）", "number", high=100_000_000),
            Field("starts_on", "服务开始日期", "date"),
            Field("ends_on", "服务结束日期", "date", required=False),
        ),
        date_field="starts_on",
    ),
    "service_records": Ledger(
        "service_records",
        "社会组织服务记录",
        ServiceRecord,
        None,
        (
            Field("organisation_id", "社会组织", "parent"),
            Field("served_on", "服务日期", "date"),
            Field("description", "服务内容", max_length=400),
            Field("beneficiaries", "服务人次", "int", high=1_000_000),
        ),
        parent=("organisation_id", SocialOrganisation),
        date_field="served_on",
    ),
    "innovations": Ledger(
        "innovations",
        "社区创新项目",
        InnovationProject,
        "community_id",
        (
            Field("title", "项目名称", max_length=120),
            Field("applied_on", "申报日期", "date"),
            Field("application", "申报内容", "longtext", max_length=4000),
            Field("review", "评审结果", "choice", choices=tuple(REVIEWS.items())),
            Field("review_note", "评审意见", "longtext", required=False, max_length=4000),
            Field("funding", "支持资金（元）", "number", required=False, high=100_000_000),
            Field("outcome", "项目成效", "longtext", required=False, max_length=4000),
        ),
        date_field="applied_on",
    ),
}


def ledger(kind: str) -> Ledger:
    """The ledger spec of ``kind`` (KeyError when unknown)."""
    return LEDGERS[kind]


def parse(spec: Ledger, raw: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed values of a form, and per field the Chinese message of what is wrong with it."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in spec.fields:
        text = (raw.get(f.name) or "").strip()
        if is_blank(text):
            if f.required:
                errors[f.name] = N_("请填写") + f.label
            else:
                values[f.name] = None if f.kind in ("date", "int", "number") else ""
            continue
        if f.kind in ("text", "longtext", "choice"):
            problem = text_problem(text, f.max_length, multiline=f.kind == "longtext")
            if problem is not None:
                errors[f.name] = problem.message
            elif f.kind == "choice" and text not in dict(f.choices):
                errors[f.name] = N_("请选择") + f.label
            else:
                values[f.name] = text
        elif f.kind == "date":
            try:
                values[f.name] = date.fromisoformat(text)
            except ValueError:
                errors[f.name] = f"{f.label}格式应为 年-月-日，如 2026-09-01"
        else:
            try:
                number = bounded_number(text, f.low, f.high)
            except OutOfRange:
                errors[f.name] = f"{f.label}应在 {f.low:g} 到 {f.high:g} 之间"
                continue
            except ValueError:
                errors[f.name] = f"{f.label}必须是数字"
                continue
            if f.kind in ("int", "parent") and not number.is_integer():
                errors[f.name] = f"{f.label}必须是整数"
                continue
            values[f.name] = int(number) if f.kind in ("int", "parent") else number
    starts, ends = values.get("starts_on"), values.get("ends_on")
    if starts and ends and ends < starts:
        errors["ends_on"] = N_("结束日期不能早于开始日期")
    return values, errors


class LedgerRejected(GovernanceError):
    """A ledger form with field errors: nothing was stored."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid", "；".join(errors.values()), next(iter(errors), None))
        self.errors = errors


def _unit_of_parent(session: DbSession, spec: Ledger, parent_id: int) -> Unit:
    assert spec.parent is not None
    record = session.get(spec.parent[1], parent_id)
    if record is None:
        raise LedgerRejected({spec.parent[0]: N_("所选记录不存在")})
    unit = session.get(Unit, record.community_id)
    assert unit is not None
    return unit


def create(session: DbSession, user: User, kind: str, unit: Unit | None, raw: Mapping[str, str]) -> Any:
    """Check and store one ledger row for ``unit`` (or its parent record's community); audited, flush only."""
    spec = ledger(kind)
    values, errors = parse(spec, raw)
    if errors:
        raise LedgerRejected(errors)
    if spec.parent is not None:
        unit = _unit_of_parent(session, spec, values[spec.parent[0]])
    if unit is None:
        raise LedgerRejected({"unit": N_("请选择单位")})
    if kind == "meetings":
        if unit.level not in MEETING_LEVELS:
            raise LedgerRejected({"unit": N_("联席会议在区、街道、社区或小区/网格召开")})
        values["level"] = unit.level.value
    elif spec.unit_field == "community_id":
        unit = community_of(unit)
    rules.check_staff(actor_of(session, user), unit.path)
    if spec.unit_field is not None:
        values[spec.unit_field] = unit.id
    row = spec.model(**{k: v for k, v in values.items()}, created_by_id=user.id)
    session.add(row)
    session.flush()
    audit(session, kind, row.id, "create", user, **{k: v for k, v in values.items() if k != "name"})
    return row


def _scoped(spec: Ledger, stmt: Any, root: Unit | None) -> Any:
    if root is None:
        return stmt
    if spec.parent is not None:
        parent_model = spec.parent[1]
        stmt = stmt.join(parent_model, getattr(spec.model, spec.parent[0]) == parent_model.id)
        unit_column = parent_model.community_id
    else:
        unit_column = getattr(spec.model, spec.unit_field or "community_id")
    return stmt.join(Unit, Unit.id == unit_column).where(Unit.path.startswith(root.path, autoescape=True))


def in_subtree(session: DbSession, kind: str, row_id: int, root: Unit | None) -> bool:
    """Whether the ledger row ``row_id`` of ``kind`` belongs to ``root``'s subtree (None: the city)."""
    spec = ledger(kind)
    stmt = _scoped(spec, select(spec.model.id), root).where(spec.model.id == row_id)
    return session.scalar(stmt) is not None


def rows(
    session: DbSession,
    kind: str,
    root: Unit | None,
    start: date | None = None,
    end: date | None = None,
    limit: int = 5000,
) -> list[Any]:
    """A ledger's rows in ``root``'s subtree, with ``start <= date < end``, newest first."""
    spec = ledger(kind)
    stmt = _scoped(spec, select(spec.model), root)
    column = getattr(spec.model, spec.date_field)
    if start is not None:
        stmt = stmt.where(column >= start)
    if end is not None:
        stmt = stmt.where(column < end)
    return list(session.scalars(stmt.order_by(column.desc(), spec.model.id.desc()).limit(limit)))


def headers(kind: str) -> list[str]:
    """Column headings of a ledger's table and export."""
    spec = ledger(kind)
    place = [] if spec.parent is not None else ["单位"]
    return ["编号", *place, *(f.label for f in spec.fields)]


def cells(kind: str, row: Any) -> list[Any]:
    """One row as table/export cells (parents by name, units by name, choices by label)."""
    spec = ledger(kind)
    out: list[Any] = [row.id]
    if spec.parent is None:
        unit = row.unit if kind == "meetings" else row.community
        out.append(unit.name + (f"（{LEVEL_LABELS[Level(row.level)]}）" if kind == "meetings" else ""))
    for f in spec.fields:
        value = getattr(row, f.name)
        if f.kind == "parent":
            value = (row.member.name if kind == "party_services" else row.organisation.name) if value else ""
        elif f.kind == "choice":
            value = dict(f.choices).get(value, value)
        elif isinstance(value, date):
            value = value.isoformat()
        out.append("" if value is None else value)
    return out


def frame(
    session: DbSession, kind: str, root: Unit | None = None, quarter: Quarter | None = None
) -> pd.DataFrame:
    """A ledger as a DataFrame with Chinese headings (exports, the assessment's XLSX sheets)."""
    start, end = (quarter.start, quarter.end) if quarter is not None else (None, None)
    found = rows(session, kind, root, start, end)
    return pd.DataFrame([cells(kind, r) for r in found], columns=headers(kind))


# --- figures the assessment reads -----------------------------------------------------------------


LEDGER_MEASURES = {
    "meetings_community": "社区联席会议次数",
    "meetings_compound": "小区/网格联席会议次数",
    "meetings_street": "所在街道联席会议次数",
    "party_members": "报到在职党员人数",
    "party_hours": "在职党员服务时长（小时）",
    "org_services": "社会组织服务次数",
    "innovations": "创新项目立项数",
}
TOPIC_MEASURES = {
    "decided_share": "议题决定率（%）",
    "carried_out_share": "议题实施率（%）",
    "rating": "居民评价均分（1–5）",
    "topics": "议题数",
}


def ledger_figures(session: DbSession, quarter: Quarter) -> pd.DataFrame:
    """Per community (index ``unit_id``) the quarter's ledger measures (columns = LEDGER_MEASURES keys)."""
    start, end = quarter.start, quarter.end
    communities = dict(
        session.execute(
            select(Unit.id, Unit.parent_id).where(Unit.level == Level.community, Unit.active.is_(True))
        ).all()
    )
    out = pd.DataFrame(
        0.0, index=pd.Index(sorted(communities), name="unit_id"), columns=list(LEDGER_MEASURES)
    )
    if out.empty:
        return out
    meeting_rows = session.execute(
        select(JointMeeting.unit_id, JointMeeting.level, Unit.parent_id, func.count(JointMeeting.id))
        .join(Unit, Unit.id == JointMeeting.unit_id)
        .where(JointMeeting.held_on >= start, JointMeeting.held_on < end)
        .group_by(JointMeeting.unit_id, JointMeeting.level, Unit.parent_id)
    ).all()
    street_meetings: dict[int, int] = {}
    for unit_id, level, parent_id, count in meeting_rows:
        if level == Level.community.value and unit_id in out.index:
            out.loc[unit_id, "meetings_community"] += count
        elif level == Level.compound.value and parent_id in out.index:
            out.loc[parent_id, "meetings_compound"] += count
        elif level == Level.street.value:
            street_meetings[unit_id] = street_meetings.get(unit_id, 0) + count
    out["meetings_street"] = [float(street_meetings.get(communities[c] or -1, 0)) for c in out.index]
    members = session.execute(
        select(PartyMember.community_id, func.count(PartyMember.id))
        .where(PartyMember.registered_on < end)
        .group_by(PartyMember.community_id)
    ).all()
    hours = session.execute(
        select(PartyMember.community_id, func.sum(PartyService.hours))
        .join(PartyMember, PartyMember.id == PartyService.member_id)
        .where(PartyService.served_on >= start, PartyService.served_on < end)
        .group_by(PartyMember.community_id)
    ).all()
    services = session.execute(
        select(SocialOrganisation.community_id, func.count(ServiceRecord.id))
        .join(SocialOrganisation, SocialOrganisation.id == ServiceRecord.organisation_id)
        .where(ServiceRecord.served_on >= start, ServiceRecord.served_on < end)
        .group_by(SocialOrganisation.community_id)
    ).all()
    innovations = session.execute(
        select(InnovationProject.community_id, func.count(InnovationProject.id))
        .where(
            InnovationProject.review == "approved",
            InnovationProject.applied_on >= start,
            InnovationProject.applied_on < end,
        )
        .group_by(InnovationProject.community_id)
    ).all()
    for column, pairs in (
        ("party_members", members),
        ("party_hours", hours),
        ("org_services", services),
        ("innovations", innovations),
    ):
        for unit_id, value in pairs:
            if unit_id in out.index:
                out.loc[unit_id, column] = float(value or 0)
    return out


def topic_figures(session: DbSession, quarter: Quarter) -> pd.DataFrame:
    """Per community the topics raised before the quarter's end: share decided (adopted or rejected),
    share carried out (project started) among those adopted, mean rating of the quarter's closed topics."""
    from governance.models import Rating

    _start, end_utc = quarter.bounds_utc()
    start_utc = _start
    topics = session.execute(
        select(Topic.id, Topic.community_id, Topic.outcome, Topic.stage, Topic.closed_at).where(
            Topic.created_at < end_utc
        )
    ).all()
    frame_ = pd.DataFrame(topics, columns=["id", "unit_id", "outcome", "stage", "closed_at"])
    if frame_.empty:
        return pd.DataFrame(columns=list(TOPIC_MEASURES), index=pd.Index([], name="unit_id"), dtype=float)
    frame_["decided"] = frame_["outcome"].isin(["adopted", "rejected"])
    frame_["adopted"] = frame_["outcome"] == "adopted"
    frame_["carried"] = frame_["adopted"] & frame_["stage"].isin(["carry_out", "evaluate"])
    grouped = frame_.groupby("unit_id")
    out = pd.DataFrame(
        {
            "topics": grouped["id"].count().astype(float),
            "decided_share": grouped["decided"].mean() * 100,
            "carried_out_share": (
                grouped["carried"].sum() / grouped["adopted"].sum().where(grouped["adopted"].sum() > 0)
            )
            * 100,
        }
    )
    ratings = session.execute(
        select(Topic.community_id, func.avg(Rating.score))
        .join(Rating, Rating.topic_id == Topic.id)
        .where(Topic.closed_at >= start_utc, Topic.closed_at < end_utc)
        .group_by(Topic.community_id)
    ).all()
    out["rating"] = pd.Series({k: float(v) for k, v in ratings}, dtype=float)
    return out[list(TOPIC_MEASURES)]
