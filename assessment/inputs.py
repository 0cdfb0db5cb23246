"""Assessment inputs, read from the engines below: case rates (routing's tables, aggregated in SQL), callback
ratings, survey results (surveys' tables), evaluators' entries, and the per-leaf input frame of a run.

Case rates per community (and per category) are counted in the database (GROUP BY): loading a megacity
quarter's million cases into pandas is the cost, not the arithmetic (ARCHITECTURE.md). The rate catalogue
(names, numerators, denominators) is ``assessment.vocabulary.RATES``.

Which cases: created in the quarter (``created_at`` in ``Quarter.bounds_utc()``: Beijing midnights), not
merged into another case.
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

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from assessment import missing, rules
from assessment.models import EvaluatorEntry
from assessment.vocabulary import (
    CASE_RATES,
    COMPOSITE,
    COMPOSITE_PARTS,
    PROPORTION_RATES,
    RATE_BY_KEY,
    RATE_DEFINITIONS,
    SURVEY_ALL,
    AssessmentError,
    as_quarter,
    parse_source,
)
from core.i18n import N_
from core.models import Category, Level, Unit, User
from core.quarter import Quarter
from routing.models import Case, CaseEvent
from surveys.frames import callback_summary
from surveys.models import Question, Survey, SurveySection
from surveys.stats import wilson_interval_array

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


def in_quarter(column: Any, quarter: Quarter) -> Any:
    """SQL condition: a stored UTC time falls in the quarter's Beijing-time bounds (``Quarter.bounds_utc``)."""
    start, end = quarter.bounds_utc()
    return and_(column >= start, column < end)


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
            CaseEvent.created_at >= quarter.bounds_utc()[0],
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
            in_quarter(Case.created_at, quarter),
            Case.state != "merged",
        )
        .group_by(*keys)
    )


def case_rates(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Counts and rates per community (index: community unit id) for the quarter; see the module table."""
    quarter = as_quarter(quarter)
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


LEVEL_KEYS = {"community": Case.community_id, "street": Case.street_id, "district": Case.district_id}


def three_rates(session: Session, quarter: Quarter | str, level: str = "community") -> pd.DataFrame:
    """Per unit of a level: response, resolution and satisfaction with numerator, denominator, rate (%),
    Wilson 95 % interval and a small-sample flag (denominator under ``missing.MIN_SAMPLE['case']``).

    Columns ``<rate>_num``, ``<rate>_den``, ``<rate>``, ``<rate>_low``, ``<rate>_high``, ``<rate>_small``;
    index the unit id. Streets and districts pool their cases' counts.
    """
    quarter = as_quarter(quarter)
    if level not in LEVEL_KEYS:
        raise AssessmentError("bad_level", N_("未知的层级：{l}"), l=level)
    rows = session.execute(_counts_query(quarter, [LEVEL_KEYS[level].label("unit_id")])).all()
    counts = pd.DataFrame(rows, columns=["unit_id", *COUNT_COLUMNS]).set_index("unit_id")
    out = pd.DataFrame(index=counts.index)
    for rate in COMPOSITE_PARTS:
        spec = RATE_BY_KEY[rate]
        num = counts[spec.numerator].astype("int64")
        den = counts[spec.denominator].astype("int64")
        low, high = wilson_interval_array(num.to_numpy(), den.to_numpy())
        out[f"{rate}_num"], out[f"{rate}_den"] = num, den
        out[rate] = (num / den.where(den > 0)) * 100.0
        out[f"{rate}_low"], out[f"{rate}_high"] = np.asarray(low) * 100.0, np.asarray(high) * 100.0
        out[f"{rate}_small"] = den < missing.MIN_SAMPLE["case"]
    return out


def category_rates(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Counts and rates per community × category (columns community_id, category_id, category_code, …)."""
    quarter = as_quarter(quarter)
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
    quarter = as_quarter(quarter)
    first = (
        select(
            CaseEvent.case_id.label("case_id"),
            CaseEvent.actor_id.label("actor_id"),
            func.min(CaseEvent.created_at).label("resolved_at"),
        )
        .where(
            CaseEvent.action == "resolve",
            CaseEvent.actor_id.is_not(None),
            in_quarter(CaseEvent.created_at, quarter),
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
    quarter = as_quarter(quarter)
    return list(
        session.scalars(
            select(Case)
            .where(
                Case.community_id == community_id,
                in_quarter(Case.created_at, quarter),
                Case.state != "merged",
            )
            .order_by(Case.created_at.desc())
            .limit(limit)
        )
    )


# --- callback ratings (回访) for the survey analysis pages


def callback_ratings(session: Session, quarter: Quarter | None = None) -> pd.DataFrame:
    """Rated cases as community_code, category_code, satisfaction, solved (optionally of one quarter)."""
    community = aliased(Unit)
    query = (
        select(community.code, Category.code, Case.satisfaction, Case.solved)
        .join(community, community.id == Case.community_id)
        .join(Category, Category.id == Case.category_id)
        .where(Case.satisfaction.is_not(None))
    )
    if quarter is not None:
        query = query.where(in_quarter(Case.created_at, quarter))
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=["community_code", "category_code", "satisfaction", "solved"])


def callback_results(session: Session, quarter: Quarter | None = None) -> pd.DataFrame:
    """Callback satisfaction by community and category with Wilson intervals."""
    return callback_summary(callback_ratings(session, quarter))


# --- survey results


def survey_results(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """``surveys.frames.community_results`` for the quarter, or an empty frame while surveys are not there."""
    try:
        frames: Any = importlib.import_module("surveys.frames")
    except ImportError:
        return pd.DataFrame()
    return frames.community_results(session, str(quarter))


def survey_item_labels(session: Session, quarter: Quarter | str) -> dict[str, str]:
    """Review-list labels for the quarter's survey codes: "section · question text" per question name, and
    "满意度指标 <code>" for an indicator code (questions mapped to it) when no question has that name.

    The newest survey version of the quarter wins when several carry the same question name.
    """
    question, section, survey = Question, SurveySection, Survey
    rows = session.execute(
        select(question.name, question.label, section.title, question.indicator_code)
        .join(survey, survey.id == question.survey_id)
        .outerjoin(section, section.id == question.section_id)
        .where(survey.quarter == str(quarter))
        .order_by(survey.version, question.position)
    ).all()
    labels: dict[str, str] = {}
    for *_, indicator in rows:
        if indicator:
            labels.setdefault(str(indicator), f"满意度指标 {indicator}")
    for name, text, title, _ in rows:
        labels[str(name)] = f"{title} · {text}" if title else str(text)
    return {code: label[:200] for code, label in labels.items()}  # ReviewItem.item_label is 200 chars


def survey_review_items(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """Survey questions/indicators per community as review-list candidates (value = index, n = answers)."""
    frame = survey_results(session, quarter)
    normal = survey_by_code(frame, load_places(session).communities["code"].pipe(_ids))
    normal = normal[normal["code"] != SURVEY_ALL]
    labels = survey_item_labels(session, quarter)
    codes = normal["code"].astype(str)
    return pd.DataFrame(
        {
            "unit_id": normal["community_id"],
            "kind": "survey_item",
            "item_code": codes,
            "item_label": codes.map(lambda c: labels.get(c, c)),
            "value": normal["index"],
            "n": normal["n"],
        }
    )


def _ids(codes: pd.Series) -> dict[str, int]:
    return {str(code): int(uid) for uid, code in codes.items()}


# --- entries and the per-leaf inputs of a run


def add_entry(
    session: Session,
    quarter: Quarter | str,
    unit: Unit | str,
    code: str,
    value: float,
    *,
    note: str = "",
    evidence_file: str = "",
    evidence_name: str = "",
    user_id: int | None = None,
) -> EvaluatorEntry:
    """Record an evaluator's value with its evidence; the newest entry per unit and code counts (flush only).

    ``unit`` is a Unit or a unit code (an unknown code is refused).
    """
    quarter = as_quarter(quarter)
    if isinstance(unit, str):
        found = session.scalar(select(Unit).where(Unit.code == unit.strip()))
        if found is None:
            raise AssessmentError("unknown_unit", N_("单位编码不存在"), "unit")
        unit = found
    if not code or len(code) > 60:
        raise AssessmentError("bad_code", N_("请填写录入项编码（最多 60 个字符）"), "code")
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise AssessmentError("bad_value", N_("取值必须是有限的数字"), "value")
    entry = EvaluatorEntry(
        quarter=str(quarter),
        unit_id=unit.id,
        code=code,
        value=float(value),
        note=note,
        evidence_file=evidence_file,
        evidence_name=evidence_name,
        entered_by_id=user_id,
    )
    session.add(entry)
    session.flush()
    return entry


def entries_frame(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """The quarter's newest entry per unit and code: columns unit_id, code, value."""
    rows = session.execute(
        select(EvaluatorEntry.unit_id, EvaluatorEntry.code, EvaluatorEntry.value, EvaluatorEntry.id).where(
            EvaluatorEntry.quarter == str(as_quarter(quarter))
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["unit_id", "code", "value", "id"])
    frame = frame.sort_values("id").drop_duplicates(["unit_id", "code"], keep="last")
    return frame.drop(columns="id").reset_index(drop=True)


@dataclass(frozen=True)
class LeafInputs:
    """Per-community leaf values (columns = leaf codes, after the missing-data policy) and their sample sizes,
    survey CI half-widths, and per unit × leaf the policy's flag, points ceiling and a note of what was used."""

    values: pd.DataFrame
    n: pd.DataFrame
    half_width: pd.DataFrame
    flags: pd.DataFrame | None = None
    ceilings: pd.DataFrame | None = None
    notes: pd.DataFrame | None = None


def survey_by_code(
    survey_frame: pd.DataFrame | None, ids_by_code: Mapping[str, int] | None = None
) -> pd.DataFrame:
    """Normalise the survey contract to columns community_id, code, n, index, low, high.

    ``surveys.frames.community_results`` names communities by ``community_code`` (mapped to ids through
    ``ids_by_code``) and marks the overall index with level ``overall``; that row becomes code ``*``.
    Without it, ``*`` is each code's index weighted by its respondents.
    """
    columns = ["community_id", "code", "n", "index", "low", "high"]
    if survey_frame is None or len(survey_frame) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    frame = survey_frame
    if "community_id" not in frame.columns and "community_code" in frame.columns:
        frame = frame.assign(community_id=frame["community_code"].map(dict(ids_by_code or {})))
        frame = frame[frame["community_id"].notna()]
    if "community_id" not in frame.columns and "unit_id" in frame.columns:
        frame = frame.rename(columns={"unit_id": "community_id"})
    missing = [c for c in ("community_id", "code", "n", "index") if c not in frame.columns]
    if missing:
        raise AssessmentError("bad_survey_frame", N_("问卷结果缺少列：{c}"), c="、".join(missing))
    code = frame["code"].fillna("").astype(str)
    if "level" in frame.columns:
        code = code.where(frame["level"].astype(str) != "overall", SURVEY_ALL)
    frame = frame.assign(
        low=frame["low"] if "low" in frame.columns else np.nan,
        high=frame["high"] if "high" in frame.columns else np.nan,
        code=code,
        community_id=frame["community_id"].astype("int64"),
    )[columns]
    if (frame["code"] == SURVEY_ALL).any():
        return frame
    weighted = frame.assign(w=frame["index"] * frame["n"])
    overall = weighted.groupby("community_id", sort=False).agg(w=("w", "sum"), n=("n", "sum")).reset_index()
    overall = overall.assign(code=SURVEY_ALL, index=overall["w"] / overall["n"].where(overall["n"] > 0))
    overall = overall.assign(low=np.nan, high=np.nan)[columns]
    return pd.concat([frame, overall], ignore_index=True)


def leaf_inputs(
    root: rules.Indicator,
    sources: Mapping[str, str],
    community_ids: Sequence[int],
    case_frame: pd.DataFrame | None,
    survey_frame: pd.DataFrame | None,
    entries: pd.DataFrame | None,
    composite: tuple[float, float, float],
    ids_by_code: Mapping[str, int] | None = None,
    places: pd.DataFrame | None = None,
    co_governance: pd.DataFrame | None = None,
) -> LeafInputs:
    """Gather every leaf's value per community from its declared source (NaN = not applicable).

    ``co_governance`` (index unit_id, columns ``ledger:<measure>`` / ``topic:<measure>``, from
    :func:`co_governance_frame`) feeds the ledger and topic sources.
    With ``places`` (street_id, district_id per community) the missing-data policy of ``assessment.missing``
    applies to case rates and survey indexes; without it own values are used as they are.
    """
    index = pd.Index(list(community_ids), name="unit_id")
    cases = (
        case_frame.reindex(index) if case_frame is not None and len(case_frame) else pd.DataFrame(index=index)
    )
    survey = survey_by_code(survey_frame, ids_by_code)
    entry = (
        entries
        if entries is not None and len(entries)
        else pd.DataFrame(columns=["unit_id", "code", "value"])
    )
    values: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    halves: dict[str, Any] = {}
    flags: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    nan = np.full(len(index), np.nan)
    street = places["street_id"].reindex(index) if places is not None else None
    district = places["district_id"].reindex(index) if places is not None else None
    dispatched = pd.Series(_column(cases, "dispatched"), index=index).fillna(0) > 0

    def policy(kind: str, value: np.ndarray, n: np.ndarray, expected: pd.Series) -> tuple[Any, Any, Any]:
        if street is None or district is None:
            return value, pd.Series(missing.FLAG_OK, index=index), pd.Series(np.nan, index=index)
        return missing.apply(
            kind, pd.Series(value, index=index), pd.Series(n, index=index), expected, street, district
        )

    for node in root.walk():
        if node.children:
            continue
        kind, key = parse_source(sources[node.code])
        n = nan
        half = nan
        flag: Any = pd.Series(missing.FLAG_OK, index=index)
        note: Any = pd.Series("", index=index)
        if kind == "case" and key == COMPOSITE:
            value, n, flag, note = _composite(cases, composite, policy, dispatched)
        elif kind == "case" and key in PROPORTION_RATES:
            own, n = _column(cases, key), _column(cases, CASE_RATES[key][1])
            value, flag, parent = policy("case", own, n, dispatched)
            note = _policy_notes(CASE_RATES[key][0], own, n, value, flag, parent, "case")
        elif kind == "case":
            value = _column(cases, key)
            n = _column(cases, CASE_RATES[key][1])
        elif kind == "survey":
            rows = survey[survey["code"] == key].drop_duplicates("community_id").set_index("community_id")
            rows = rows.reindex(index)
            own = rows["index"].to_numpy(dtype=float, na_value=np.nan)
            n = rows["n"].to_numpy(dtype=float, na_value=np.nan)
            half = ((rows["high"] - rows["low"]) / 2).to_numpy(dtype=float, na_value=np.nan)
            ran = pd.Series(~np.isnan(own) & (np.nan_to_num(n) > 0), index=index)
            # Expected where a survey ran in the unit's district (a community there without answers is a gap).
            expected = district.map(ran.groupby(district).any()) if district is not None else ran
            value, flag, parent = policy("survey", own, n, expected.fillna(False))
            note = _policy_notes(N_("满意度指数"), own, n, value, flag, parent, "survey")
        elif kind in ("ledger", "topic"):
            column = f"{kind}:{key}"
            found = co_governance if co_governance is not None and column in co_governance else None
            value = (
                nan if found is None else found[column].reindex(index).to_numpy(dtype=float, na_value=np.nan)
            )
        else:
            rows = entry[entry["code"] == key].drop_duplicates("unit_id", keep="last").set_index("unit_id")
            value = rows["value"].reindex(index).to_numpy(dtype=float, na_value=np.nan)
        values[node.code], sizes[node.code], halves[node.code] = np.asarray(value, dtype=float), n, half
        flags[node.code], notes[node.code] = np.asarray(flag, dtype=object), np.asarray(note, dtype=object)
    flag_frame = pd.DataFrame(flags, index=index)
    ceilings = pd.DataFrame(
        np.where(flag_frame.to_numpy() == missing.FLAG_IMPUTED, missing.IMPUTED_CEILING, 1.0),
        index=index,
        columns=flag_frame.columns,
    )
    return LeafInputs(
        pd.DataFrame(values, index=index),
        pd.DataFrame(sizes, index=index),
        pd.DataFrame(halves, index=index),
        flag_frame,
        ceilings,
        pd.DataFrame(notes, index=index),
    )


def _f(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.1f}"


def _policy_notes(label: str, own: Any, n: Any, used: Any, flag: Any, parent: Any, kind: str) -> list[str]:
    """Per unit, what the policy did to one input, in words (empty when the own value was used)."""
    out = []
    m, minimum = missing.PRIOR_STRENGTH[kind], missing.MIN_SAMPLE[kind]
    for x, k, u, f, p in zip(
        np.asarray(own, float), np.asarray(n, float), np.asarray(used, float), flag, parent, strict=True
    ):
        if f == missing.FLAG_SMALL:
            out.append(
                N_(
                    "{label}样本不足（n = {n:.0f} < {min}），按 (x·n + m·p)/(n + m)、m = {m:g} 向上级单位的 {p} 收缩：{x} → {u}"
                ).format(label=label, n=k, min=minimum, m=m, p=_f(p), x=_f(x), u=_f(u))
            )
        elif f == missing.FLAG_IMPUTED:
            out.append(
                N_("{label}无样本，按上级单位的 {p} 估计，最多得该项 {c:.0f}% 分值").format(
                    label=label, p=_f(p), c=missing.IMPUTED_CEILING * 100
                )
            )
        else:
            out.append("")
    return out


def _composite(
    cases: pd.DataFrame, weights: Sequence[float], policy: Any, dispatched: pd.Series
) -> tuple[Any, ...]:
    """The 三率 composite after the policy on each part: value, n (rated), worst flag, a note of the parts used."""
    index = cases.index
    parts = []
    for rate in COMPOSITE_PARTS:
        own, n = _column(cases, rate), _column(cases, CASE_RATES[rate][1])
        used, flag, _parent = policy("case", own, n, dispatched)
        parts.append((rate, own, n, np.asarray(used, float), np.asarray(flag, dtype=object)))
    value = np.zeros(len(index))
    for w, (*_, used, _flag) in zip(weights, parts, strict=True):
        value = value + w * used
    flags = np.full(len(index), missing.FLAG_OK, dtype=object)
    for *_, flag in parts:
        flags = np.where(flags == missing.FLAG_IMPUTED, flags, np.where(flag != missing.FLAG_OK, flag, flags))
    notes = []
    for i in range(len(index)):
        if np.isnan(value[i]):
            notes.append("")
            continue
        terms = []
        for w, (rate, own, n, used, flag) in zip(weights, parts, strict=True):
            if flag[i] == missing.FLAG_OK:
                detail = N_("{k:.0f}/{n:.0f}").format(k=round(own[i] * n[i] / 100), n=n[i])
            else:
                detail = str(missing.FLAG_LABELS[flag[i]])
            terms.append(f"{w * 100:.0f}%×{CASE_RATES[rate][0]} {used[i]:.1f}（{detail}）")
        notes.append(N_("三率综合 = {terms}").format(terms=" + ".join(terms)))
    return value, _column(cases, "rated"), flags, notes


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


@dataclass(frozen=True)
class Places:
    """Communities with their street, district and population."""

    communities: pd.DataFrame  # index unit id; columns code, street_id, district_id, population


def load_places(session: Session) -> Places:
    """Active communities with their parents (by the tree), one query."""
    street = select(Unit.id, Unit.parent_id).where(Unit.level == Level.street).subquery()
    rows = session.execute(
        select(Unit.id, Unit.code, Unit.parent_id, street.c.parent_id, Unit.population)
        .join(street, street.c.id == Unit.parent_id)
        .where(Unit.level == Level.community, Unit.active.is_(True))
        .order_by(Unit.id)
    ).all()
    frame = pd.DataFrame(
        rows, columns=["unit_id", "code", "street_id", "district_id", "population"]
    ).set_index("unit_id")
    frame["population"] = frame["population"].fillna(0).astype(float)
    return Places(frame)


def co_governance_frame(session: Session, quarter: Quarter | str) -> pd.DataFrame:
    """The quarter's ledger and topic measures per community (columns ``ledger:<m>``, ``topic:<m>``)."""
    from governance.ledgers import ledger_figures, topic_figures

    q = as_quarter(quarter)
    ledger = ledger_figures(session, q).add_prefix("ledger:")
    topic = topic_figures(session, q).add_prefix("topic:")
    frame = ledger.join(topic, how="outer")
    # A community with no topic has no share of topics decided (NaN, not applicable), but zero topics.
    if "topic:topics" in frame:
        frame["topic:topics"] = frame["topic:topics"].fillna(0.0)
    return frame
