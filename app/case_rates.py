"""Case-derived rates per community (and per category) for a quarter, aggregated in SQL.

surveys must not import routing, so the app layer turns cases into the plain frame that
``surveys.assessment.run_scoring`` takes. Counting happens in the database (GROUP BY): loading a
megacity quarter's million cases into pandas is the cost, not the arithmetic (ARCHITECTURE.md).

Which cases: created in the quarter (``created_at`` in [start, end)), not merged into another case.
Event times are the first ``accept`` / ``resolve`` event of the case.

| rate (column)        | 名称       | numerator                                                     | denominator                           |
|----------------------|------------|---------------------------------------------------------------|---------------------------------------|
| response_rate        | 响应率     | dispatched cases first signed for at or before the sign-for deadline (no deadline = in time) | dispatched cases (≥ 1 ``dispatch`` event) |
| resolution_rate      | 解决率     | rated cases the resident called solved (``solved`` true)      | rated cases (satisfaction recorded)   |
| satisfaction_rate    | 满意率     | rated cases 满意 or 基本满意                                  | rated cases                           |
| on_time_rate         | 按时办结率 | resolved cases first resolved at or before the deadline (no deadline = on time) | resolved cases (≥ 1 ``resolve`` event) |
| return_rate          | 退单率     | dispatched cases returned at least once (``returns_count`` > 0) | dispatched cases                    |
| reopen_rate          | 重办率     | resolved cases reopened at least once (``reopen_count`` > 0)  | resolved cases                        |
| requests_per_1000    | 千人诉求量 | cases                                                         | community population ÷ 1,000          |

Rates are percentages (0–100); a zero denominator gives NaN (not applicable), never 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core.models import Category, Unit, User
from core.quarter import Quarter
from routing.models import Case, CaseEvent

# (column, 名称, numerator, denominator, numerator count column, denominator count column)
RATE_DEFINITIONS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("response_rate", "响应率", "按时签收的派单工单数", "派单工单数", "responded_in_time", "dispatched"),
    ("resolution_rate", "解决率", "评价为“已解决”的工单数", "已评价工单数", "solved", "rated"),
    ("satisfaction_rate", "满意率", "评价为满意或基本满意的工单数", "已评价工单数", "satisfied", "rated"),
    ("on_time_rate", "按时办结率", "在办理时限内办结的工单数", "已办结工单数", "closed_on_time", "resolved"),
    ("return_rate", "退单率", "至少退单一次的派单工单数", "派单工单数", "returned", "dispatched"),
    ("reopen_rate", "重办率", "至少重办一次的已办结工单数", "已办结工单数", "reopened", "resolved"),
)
COUNT_COLUMNS = (
    "requests",
    "dispatched",
    "responded_in_time",
    "rated",
    "solved",
    "satisfied",
    "resolved",
    "closed_on_time",
    "returned",
    "reopened",
)
SATISFIED = ("satisfied", "basically_satisfied")


def rates_from_counts(counts: pd.DataFrame, population: pd.Series | None = None) -> pd.DataFrame:
    """Add the rate columns (percent; NaN where the denominator is 0) and requests per 1,000 residents."""
    out = counts.copy()
    for column, _label, _num, _den, numerator, denominator in RATE_DEFINITIONS:
        den = out[denominator].astype(float)
        out[column] = (out[numerator].astype(float) / den.where(den > 0)) * 100.0
    if population is not None:
        people = population.reindex(out.index).astype(float)
        out["population"] = people
        out["requests_per_1000"] = out["requests"].astype(float) / people.where(people > 0) * 1000.0
    else:
        out["requests_per_1000"] = np.nan
    return out


def _first_events(quarter: Quarter) -> Any:
    """Per case: dispatched at all, first sign-for and first resolve (events start after the quarter does)."""
    return (
        select(
            CaseEvent.case_id.label("case_id"),
            func.max(case((CaseEvent.action == "dispatch", 1), else_=0)).label("dispatched"),
            func.min(case((CaseEvent.action == "accept", CaseEvent.created_at))).label("first_accept"),
            func.min(case((CaseEvent.action == "resolve", CaseEvent.created_at))).label("first_resolve"),
        )
        .where(
            CaseEvent.action.in_(("dispatch", "accept", "resolve")),
            CaseEvent.created_at >= quarter.start,
        )
        .group_by(CaseEvent.case_id)
        .subquery()
    )


def _counts_query(quarter: Quarter, keys: list[Any]) -> Select[Any]:
    ev = _first_events(quarter)
    dispatched = func.coalesce(ev.c.dispatched, 0) == 1
    rated = Case.satisfaction.is_not(None)
    resolved = ev.c.first_resolve.is_not(None)

    def count_if(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    return (
        select(
            *keys,
            func.count().label("requests"),
            count_if(dispatched).label("dispatched"),
            count_if(
                and_(
                    dispatched,
                    ev.c.first_accept.is_not(None),
                    or_(Case.sign_for_deadline.is_(None), ev.c.first_accept <= Case.sign_for_deadline),
                )
            ).label("responded_in_time"),
            count_if(rated).label("rated"),
            count_if(and_(rated, Case.solved.is_(True))).label("solved"),
            count_if(Case.satisfaction.in_(SATISFIED)).label("satisfied"),
            count_if(resolved).label("resolved"),
            count_if(and_(resolved, or_(Case.deadline.is_(None), ev.c.first_resolve <= Case.deadline))).label(
                "closed_on_time"
            ),
            count_if(and_(dispatched, Case.returns_count > 0)).label("returned"),
            count_if(and_(resolved, Case.reopen_count > 0)).label("reopened"),
        )
        .select_from(Case)
        .outerjoin(ev, ev.c.case_id == Case.id)
        .where(
            Case.created_at >= quarter.start,
            Case.created_at < quarter.end,
            Case.state != "merged",
        )
        .group_by(*keys)
    )


def case_rates(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Counts and rates per community (index: community unit id) for the quarter; see the module table."""
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)
    rows = session.execute(_counts_query(quarter, [Case.community_id.label("community_id")])).all()
    counts = pd.DataFrame(rows, columns=["community_id", *COUNT_COLUMNS]).set_index("community_id")
    counts = counts.astype({c: "int64" for c in COUNT_COLUMNS})
    population = pd.Series(
        dict(
            session.execute(select(Unit.id, Unit.population).where(Unit.id.in_(counts.index.tolist()))).all()
        ),
        dtype=float,
    )
    return rates_from_counts(counts, population)


def category_rates(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Counts and rates per community × category (columns community_id, category_id, category_code, …)."""
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)
    keys = [Case.community_id.label("community_id"), Case.category_id.label("category_id")]
    rows = session.execute(_counts_query(quarter, keys)).all()
    counts = pd.DataFrame(rows, columns=["community_id", "category_id", *COUNT_COLUMNS])
    counts = counts.astype({c: "int64" for c in COUNT_COLUMNS})
    frame = rates_from_counts(counts)
    names = dict(session.execute(select(Category.id, Category.name)).all())
    codes = dict(session.execute(select(Category.id, Category.code)).all())
    frame["category_code"] = frame["category_id"].map(codes)
    frame["category_name"] = frame["category_id"].map(names)
    return frame


def review_items(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Case categories per community as review-list candidates: value = satisfaction rate, n = rated."""
    frame = category_rates(session, quarter)
    return pd.DataFrame(
        {
            "unit_id": frame["community_id"],
            "kind": "case_category",
            "item_code": frame["category_code"].astype(str),
            "item_label": frame["category_name"].astype(str),
            "value": frame["satisfaction_rate"],
            "n": frame["rated"],
        }
    )


def worker_figures(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Per handler who resolved cases in the quarter: cases handled, on time, rated, satisfied, satisfaction rate."""
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)
    first = (
        select(
            CaseEvent.case_id.label("case_id"),
            CaseEvent.actor_id.label("actor_id"),
            func.min(CaseEvent.created_at).label("resolved_at"),
        )
        .where(
            CaseEvent.action == "resolve",
            CaseEvent.actor_id.is_not(None),
            CaseEvent.created_at >= quarter.start,
            CaseEvent.created_at < quarter.end,
        )
        .group_by(CaseEvent.case_id, CaseEvent.actor_id)
        .subquery()
    )

    def count_if(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(
            User.id,
            User.username,
            User.display_name,
            Unit.code,
            Unit.name,
            func.count().label("handled"),
            count_if(or_(Case.deadline.is_(None), first.c.resolved_at <= Case.deadline)).label("on_time"),
            count_if(Case.satisfaction.is_not(None)).label("rated"),
            count_if(Case.satisfaction.in_(SATISFIED)).label("satisfied"),
        )
        .select_from(first)
        .join(Case, Case.id == first.c.case_id)
        .join(User, User.id == first.c.actor_id)
        .outerjoin(Unit, Unit.id == User.unit_id)
        .group_by(User.id, User.username, User.display_name, Unit.code, Unit.name)
        .order_by(Unit.code, User.username)
    ).all()
    frame = pd.DataFrame(
        rows,
        columns=[
            "user_id",
            "username",
            "display_name",
            "unit_code",
            "unit_name",
            "handled",
            "on_time",
            "rated",
            "satisfied",
        ],
    )
    handled = frame["handled"].astype(float)
    rated = frame["rated"].astype(float)
    frame["on_time_rate"] = frame["on_time"].astype(float) / handled.where(handled > 0) * 100.0
    frame["satisfaction_rate"] = frame["satisfied"].astype(float) / rated.where(rated > 0) * 100.0
    return frame


def cases_behind(session: Session, quarter: Quarter | str, community_id: int, limit: int = 200) -> list[Case]:
    """The community's cases of the quarter that feed its case rates (newest first, at most ``limit``)."""
    quarter = quarter if isinstance(quarter, Quarter) else Quarter.parse(quarter)
    return list(
        session.scalars(
            select(Case)
            .where(
                Case.community_id == community_id,
                Case.created_at >= quarter.start,
                Case.created_at < quarter.end,
                Case.state != "merged",
            )
            .order_by(Case.created_at.desc())
            .limit(limit)
        )
    )
