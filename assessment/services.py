"""Assessment services: the quarterly run, publishing, score frames, job status and the review list (逐项审核).

Inputs arrive as DataFrames (``assessment.inputs`` builds them from routing's and surveys' tables):

* ``case_frame``: one row per community unit id (the index) with the rate columns of the rate catalogue
  (percentages, 0–100, NaN when the denominator is 0; ``requests_per_1000`` per 1,000 residents) and the
  count columns named there as denominators (``inputs.case_rates``).
* ``survey_frame``: long, one row per community × question/indicator code with columns ``community_id``,
  ``code``, ``n``, ``index`` (0–100), ``low``, ``high`` (``surveys.frames.community_results``).
* ``entries``: evaluators' values, columns ``unit_id``, ``code``, ``value`` (``inputs.entries_frame``).

A leaf's source is ``case:<rate>`` (or ``case:composite``, the 三率 composite), ``survey:<code>`` (or
``survey:*``, all codes weighted by respondents) or ``entry:<code>``. Services flush; callers commit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from assessment import missing, rankings, rules
from assessment.inputs import LeafInputs, co_governance_frame, leaf_inputs, load_places
from assessment.models import RUN_DRAFT, RUN_PUBLISHED, ReviewItem, Score, ScoringRun
from assessment.rankings import whole_ranks
from assessment.significance import (
    compare_with_previous,
    previous_inputs,
    previous_scores,
    rollup_se,
    total_change_se,
    total_significance,
)
from assessment.systems import apply_entropy, current_composite, ensure_system, run_for, validate_system
from assessment.vocabulary import (
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_STATE_LABELS,
    REVIEW_KINDS,
    AssessmentError,
    as_quarter,
)
from core.db import utcnow
from core.i18n import N_
from core.models import Level, Unit
from core.quarter import Quarter

DEFAULT_REVIEW_THRESHOLDS = {"survey_item": 60.0, "case_category": 60.0}


def _co_governance(session: Session, quarter: Quarter, sources: Mapping[str, str]) -> pd.DataFrame | None:
    """The ledger/topic measures, read only when some leaf uses them."""
    if not any(str(s).startswith(("ledger:", "topic:")) for s in sources.values()):
        return None
    return co_governance_frame(session, quarter)


def run_scoring(
    session: Session,
    quarter: Quarter | str,
    case_frame: pd.DataFrame | None,
    survey_frame: pd.DataFrame | None,
    entries: pd.DataFrame | None,
    *,
    user_id: int | None = None,
    explain: bool = True,
    previous_survey_frame: pd.DataFrame | None = None,
) -> ScoringRun:
    """Score every community, roll up, rank, compare with last quarter; replace this quarter's draft (flush only).

    A published run is frozen: re-running it raises ``AssessmentError('run_published')``. The change of
    each unit's total carries a delta-method p-value where the data allow (``total_change_se``);
    ``previous_survey_frame`` gives last quarter's survey CIs (without it, this quarter's are assumed).
    """
    quarter = as_quarter(quarter)
    run = session.scalar(select(ScoringRun).where(ScoringRun.quarter == str(quarter)).with_for_update())
    if run is not None and run.status == RUN_PUBLISHED:
        raise AssessmentError("run_published", N_("{q}的考评结果已发布，不能重新计算"), q=quarter.label_zh)
    system = ensure_system(session, quarter, user_id)
    composite = current_composite(session)
    root = validate_system(system.tree, system.sources)
    places = load_places(session).communities
    ids = [int(i) for i in places.index]
    inputs = leaf_inputs(
        root,
        system.sources,
        ids,
        case_frame,
        survey_frame,
        entries,
        (composite.response, composite.resolution, composite.satisfaction),
        {str(code): int(uid) for uid, code in places["code"].items()},
        places=places,
        co_governance=_co_governance(session, quarter, system.sources),
    )
    root, derived = apply_entropy(root, system.weight_methods or {}, inputs.values)
    scored = rules.score_units(root, inputs.values, ceilings=inputs.ceilings)
    node_codes = [node.code for node in root.walk()]
    scored = scored.rename(columns={rules.TOTAL_COLUMN: root.code})

    weights_by_unit = (
        places["population"] if system.rollup == "population" else pd.Series(1.0, index=places.index)
    )
    frames: dict[str, pd.DataFrame] = {Level.community.value: scored[node_codes]}
    for level, column in ((Level.street.value, "street_id"), (Level.district.value, "district_id")):
        parent_of = {int(k): int(v) for k, v in places[column].items()}
        unit_weights = {int(k): float(v) for k, v in weights_by_unit.items()}
        # rollup is typed for unit codes but only needs hashable keys; unit ids are used here.
        frames[level] = pd.DataFrame(
            {
                code: rankings.rollup(scored[code], cast(Any, parent_of), cast(Any, unit_weights))
                for code in node_codes
            }
        )

    if run is None:
        run = ScoringRun(quarter=str(quarter), status=RUN_DRAFT)
        session.add(run)
        session.flush()
    previous = previous_scores(session, quarter)
    leaf_codes = {node.code for node in root.walk() if not node.children}
    total_se: dict[str, pd.Series] = {}
    if previous is not None:
        ids_by_code = {str(code): int(uid) for uid, code in places["code"].items()}
        prev_half = (
            leaf_inputs(root, system.sources, ids, None, previous_survey_frame, None, (1, 0, 0), ids_by_code)
            if previous_survey_frame is not None
            else inputs
        ).half_width
        se = total_change_se(root, system.sources, inputs, previous_inputs(previous, inputs, prev_half))
        total_se[Level.community.value] = se
        for level, column in ((Level.street.value, "street_id"), (Level.district.value, "district_id")):
            parent_of = {int(k): int(v) for k, v in places[column].items()}
            total_se[level] = rollup_se(se, scored[root.code], parent_of, weights_by_unit)
    rows: list[dict[str, Any]] = []
    for level, frame in frames.items():
        ranks = (
            rankings.rank(frame[root.code], tie=system.tie_rule) if len(frame) else pd.Series(dtype="Int64")
        )
        long = frame.stack(future_stack=True).rename("score").reset_index()
        long.columns = ["unit_id", "node_code", "score"]
        long["rank"] = np.where(
            long["node_code"] == root.code, long["unit_id"].map(ranks).astype("Float64"), np.nan
        )
        if level == Level.community.value:
            long = _attach_inputs(long, inputs, leaf_codes)
        else:
            long = long.assign(value=np.nan, n=np.nan, sample_flag="", note="")
        long = compare_with_previous(long, previous, inputs, level, leaf_codes, system.sources)
        long = total_significance(long, root.code, total_se.get(level))
        long["level"] = level
        rows.extend(_records(long))
    if explain:
        _explain(rows, root, inputs, weights_label=system.rollup)
    session.execute(delete(Score).where(Score.run_id == run.id))
    if rows:
        # Core insert on the table: one batched executemany (the ORM bulk path splits batches at every NULL).
        session.execute(insert(cast(Table, Score.__table__)), [{**row, "run_id": run.id} for row in rows])
    run.system_id = system.id
    run.composite_id = composite.id
    run.computed_at = utcnow()
    run.params = {
        "system_version": system.version,
        "system_quarter": system.quarter,
        "composite": {
            "version": composite.version,
            "response": composite.response,
            "resolution": composite.resolution,
            "satisfaction": composite.satisfaction,
        },
        "rollup": system.rollup,
        "tie_rule": system.tie_rule,
        "entropy_weights": derived,
        "communities": len(ids),
        "scored": int(scored[root.code].notna().sum()),
        "missing_data_policy": {
            "min_sample": dict(missing.MIN_SAMPLE),
            "prior_strength": dict(missing.PRIOR_STRENGTH),
            "imputed_ceiling": missing.IMPUTED_CEILING,
        },
        "compared_with": str(quarter.previous()) if previous is not None else None,
        "job": (run.params or {}).get("job"),
    }
    session.flush()
    return run


def _attach_inputs(long: pd.DataFrame, inputs: LeafInputs, leaf_codes: set[str]) -> pd.DataFrame:
    """Each leaf row's input value, sample size and missing-data flag and note."""
    values = inputs.values.stack(future_stack=True).rename("value")
    sizes = inputs.n.stack(future_stack=True).rename("n")
    blank = pd.DataFrame("", index=inputs.values.index, columns=inputs.values.columns)
    flags = (
        (inputs.flags if inputs.flags is not None else blank).stack(future_stack=True).rename("sample_flag")
    )
    notes = (inputs.notes if inputs.notes is not None else blank).stack(future_stack=True).rename("note")
    extra = pd.concat([values, sizes, flags, notes], axis=1).reset_index()
    extra.columns = ["unit_id", "node_code", "value", "n", "sample_flag", "note"]
    merged = long.merge(extra, on=["unit_id", "node_code"], how="left")
    return merged.assign(sample_flag=merged["sample_flag"].fillna(""), note=merged["note"].fillna(""))


def _records(long: pd.DataFrame) -> list[dict[str, Any]]:
    """Plain dicts for INSERT, NaN → NULL."""
    out: list[dict[str, Any]] = []
    cols = [
        "unit_id",
        "node_code",
        "score",
        "rank",
        "value",
        "n",
        "change",
        "p_value",
        "significant",
        "level",
        "sample_flag",
        "note",
    ]
    for rec in long[cols].itertuples(index=False, name=None):
        unit_id, code, score, rank, value, n, change, p, sig, level, flag, note = rec
        out.append(
            {
                "unit_id": int(unit_id),
                "node_code": str(code),
                "score": _num(score),
                "rank": None if _num(rank) is None else int(rank),
                "value": _num(value),
                "n": None if _num(n) is None else int(n),
                "change": _num(change),
                "p_value": _num(p),
                "significant": sig if isinstance(sig, bool) else None,
                "level": level,
                "sample_flag": str(flag or ""),
                "explanation": str(note or ""),  # the policy's note; _explain puts the rule's text first
            }
        )
    return out


def _num(x: Any) -> float | None:
    if x is None or x is pd.NA:
        return None
    value = float(x)
    return None if math.isnan(value) else value


def _explain(
    rows: list[dict[str, Any]], root: rules.Indicator, inputs: LeafInputs, weights_label: str
) -> None:
    """Fill explanations: each community's NodeScore texts (then what the missing-data policy used);
    streets and districts say how they were averaged."""
    by_key = {(r["unit_id"], r["node_code"]): r for r in rows}
    leaves = [node.code for node in root.walk() if not node.children]
    records = inputs.values[leaves].to_dict("index")
    caps = inputs.ceilings[leaves].to_dict("index") if inputs.ceilings is not None else {}
    for unit_id, record in records.items():
        clean = {
            k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
            for k, v in record.items()
        }
        ceilings = {k: float(v) for k, v in caps.get(unit_id, {}).items() if v < 1.0}
        for node in rules.score_tree(root, clean, ceilings=ceilings).walk():
            row = by_key.get((int(unit_id), node.code))
            if row is not None:
                note = row["explanation"]
                row["explanation"] = node.explanation + (f"。{note}" if note else "")
    how = N_("按人口加权平均") if weights_label == "population" else N_("等权平均")
    for row in rows:
        if row["level"] != Level.community.value and not row["explanation"]:
            row["explanation"] = N_("所辖社区该项得分{how}（不适用的社区不计入）").format(how=how)


def publish_run(session: Session, quarter: Quarter | str, user_id: int | None = None) -> ScoringRun:
    """Freeze the quarter's draft run (flush only)."""
    quarter = as_quarter(quarter)
    run = session.scalar(select(ScoringRun).where(ScoringRun.quarter == str(quarter)))
    if run is None:
        raise AssessmentError("no_run", N_("{q}尚未计算考评结果"), q=quarter.label_zh)
    if run.status == RUN_PUBLISHED:
        raise AssessmentError("run_published", N_("{q}的考评结果已发布"), q=quarter.label_zh)
    if not computed(run):
        raise AssessmentError("no_run", N_("{q}尚未计算考评结果"), q=quarter.label_zh)
    run.status = RUN_PUBLISHED
    run.published_at = utcnow()
    run.published_by_id = user_id
    session.flush()
    return run


def scores_frame(
    session: Session, run: ScoringRun, level: str | None = None, node_code: str | None = None
) -> pd.DataFrame:
    """A run's Score rows as a frame (optionally one level and/or node), with unit code and name."""
    query = (
        select(
            Score.unit_id,
            Unit.code.label("unit_code"),
            Unit.name.label("unit_name"),
            Unit.parent_id,
            Score.level,
            Score.node_code,
            Score.score,
            Score.rank,
            Score.value,
            Score.n,
            Score.change,
            Score.p_value,
            Score.significant,
            Score.sample_flag,
            Score.explanation,
        )
        .join(Unit, Unit.id == Score.unit_id)
        .where(Score.run_id == run.id)
    )
    if level is not None:
        query = query.where(Score.level == level)
    if node_code is not None:
        query = query.where(Score.node_code == node_code)
    # Unranked rows last on every database (SQLite sorts NULL first, PostgreSQL last).
    rows = session.execute(query.order_by(Score.level, Score.rank.is_(None), Score.rank, Unit.code)).all()
    columns = [
        "unit_id", "unit_code", "unit_name", "parent_id", "level", "node_code", "score", "rank", "value", "n",
        "change", "p_value", "significant", "sample_flag", "explanation",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    frame["rank"] = whole_ranks(frame["rank"])
    return frame


def mark_job(session: Session, quarter: Quarter | str, state: str, error: str = "") -> ScoringRun:
    """Record the state of the quarter's scoring job (flush only); queued/running refuse a published run.

    The run row is created on first use without results (``system_id`` stays NULL until computed).
    """
    quarter = as_quarter(quarter)
    if state not in JOB_STATE_LABELS:
        raise AssessmentError("bad_job_state", N_("未知的任务状态：{s}"), s=state)
    run = run_for(session, quarter)
    if run is not None and run.status == RUN_PUBLISHED and state in (JOB_QUEUED, JOB_RUNNING):
        raise AssessmentError("run_published", N_("{q}的考评结果已发布，不能重新计算"), q=quarter.label_zh)
    if run is None:
        run = ScoringRun(quarter=str(quarter), status=RUN_DRAFT, params={})
        session.add(run)
    # Reassign the JSON column: in-place changes of a plain JSON value are not tracked.
    run.params = {
        **(run.params or {}),
        "job": {"state": state, "at": utcnow().isoformat(timespec="seconds"), "error": error[:2000]},
    }
    session.flush()
    return run


def job_status(run: ScoringRun | None) -> dict[str, str] | None:
    """The last recorded job state of a run: state, label (zh-CN), at (ISO time, UTC), error; or None."""
    job = (run.params or {}).get("job") if run is not None else None
    if not job:
        return None
    state = str(job.get("state", ""))
    return {
        "state": state,
        "label": JOB_STATE_LABELS.get(state, state),
        "at": str(job.get("at", "")),
        "error": str(job.get("error", "")),
    }


def computed(run: ScoringRun | None) -> bool:
    """Whether the run holds results (a row created only to track a queued job does not)."""
    return run is not None and run.system_id is not None


def detect_persistent_dissatisfaction(
    session: Session,
    quarter: Quarter | str,
    items_by_quarter: Mapping[str, pd.DataFrame],
    *,
    thresholds: Mapping[str, float] | None = None,
    min_quarters: int = 2,
    min_n: int = 5,
) -> list[ReviewItem]:
    """Put items below threshold in ≥ ``min_quarters`` consecutive quarters ending now on the review list.

    ``items_by_quarter`` maps "2026Q3" → frame with unit_id, kind (survey_item/case_category), item_code,
    item_label, value (0–100), n. Rows with n < ``min_n`` are too small to judge and break a streak.
    Idempotent: the same streak updates its open item (unique by unit, kind, item, first quarter).
    """
    quarter = as_quarter(quarter)
    limits = {**DEFAULT_REVIEW_THRESHOLDS, **(thresholds or {})}
    frames = []
    for label, frame in items_by_quarter.items():
        if frame is not None and len(frame):
            frames.append(frame.assign(quarter=str(as_quarter(label))))
    if not frames:
        return []
    data = pd.concat(frames, ignore_index=True)
    bad_kinds = sorted(set(data["kind"]) - set(REVIEW_KINDS))
    if bad_kinds:
        raise AssessmentError("bad_kind", N_("未知的审核项类型：{k}"), k="、".join(map(str, bad_kinds)))
    data = data[data["n"].fillna(0) >= min_n]
    data = data.assign(below=data["value"] < data["kind"].map(limits))
    lookup = {(int(r.unit_id), str(r.kind), str(r.item_code), str(r.quarter)): r for r in data.itertuples()}
    current = data[(data["quarter"] == str(quarter)) & data["below"]]
    found: list[ReviewItem] = []
    for row in current.itertuples():
        streak = []
        q = quarter
        while True:
            hit = lookup.get((int(row.unit_id), str(row.kind), str(row.item_code), str(q)))
            if hit is None or not hit.below:
                break
            streak.append({"quarter": str(q), "value": float(hit.value), "n": int(hit.n)})
            q = q.previous()
        if len(streak) < min_quarters:
            continue
        streak.reverse()
        first = streak[0]["quarter"]
        item = session.scalar(
            select(ReviewItem).where(
                ReviewItem.unit_id == int(row.unit_id),
                ReviewItem.kind == str(row.kind),
                ReviewItem.item_code == str(row.item_code),
                ReviewItem.quarter_from == first,
            )
        )
        if item is None:
            item = ReviewItem(
                unit_id=int(row.unit_id),
                kind=str(row.kind),
                item_code=str(row.item_code),
                item_label=str(getattr(row, "item_label", "") or row.item_code),
                quarter_from=first,
                quarter_to=str(quarter),
                threshold=float(limits[str(row.kind)]),
                evidence=streak,
            )
            session.add(item)
        elif item.decided_at is None:
            item.quarter_to = str(quarter)
            item.evidence = streak
            # Labels improve over time (question text instead of its code): an open item takes the newest.
            item.item_label = str(getattr(row, "item_label", "") or item.item_label)
        found.append(item)
    session.flush()
    return found


def record_decision(session: Session, item_id: int, decision: str, user_id: int | None) -> ReviewItem:
    """Close a review item with the evaluators' decision (flush only)."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise AssessmentError("no_item", N_("审核项不存在"))
    text = (decision or "").strip()
    if not text:
        raise AssessmentError("empty_decision", N_("请填写审核结论"), "decision")
    item.decision = text
    item.decided_by_id = user_id
    item.decided_at = utcnow()
    session.flush()
    return item
