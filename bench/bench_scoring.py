"""Bench: score a megacity quarter (5,000 communities, 1,000,000 cases, 1,000,000 survey answers).

Synthetic rows are generated inside PostgreSQL (INSERT … SELECT generate_series) into a database created
for the bench (``BENCH_DATABASE_URL``, default postgresql+psycopg://postgres@127.0.0.1:5432/bench_scoring).
Measured: the scoring run as the job does it — case rates aggregated in SQL, survey results aggregated
in SQL, scoring of every community, roll-up, ranks, explanations, writing the results — and, in the same
run, the bare stack: reading the same million cases into pandas and one groupby.
Target on a 2-core machine: under 30 s and under 2 GiB.

    .venv/bin/python bench/bench_scoring.py [--reuse]
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from sqlalchemy import JSON, Engine, create_engine, insert, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app.models  # noqa: F401 - registers every table
from assessment import inputs, services
from assessment.inputs import case_rates
from assessment.models import EvaluatorEntry
from core.db import Base
from core.models import Category, Unit
from routing.models import Case

URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_scoring")
QUARTER = "2026Q3"
COMMUNITIES, STREETS, DISTRICTS = 5000, 250, 16
CASES = ANSWERS = 1_000_000


def create_database() -> None:
    """Create the bench database once (outside a transaction, as PostgreSQL requires)."""
    admin = URL.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)[0] + "/postgres"
    name = URL.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


BASE_COLUMNS = (
    "id, tracking_number, channel, category_id, district_id, street_id, community_id, address, description, "
    "contact_name, contact_phone, anonymous, state, returns_count, reopen_count, solved, satisfaction, "
    "sign_for_deadline, deadline, created_at, updated_at, version"
)


def _neutral(column: Any, created: str) -> str:
    """A neutral SQL value for a NOT NULL column the bench does not care about."""
    if isinstance(column.type, JSON):
        default = getattr(column.default, "arg", None)
        return "'[]'" if getattr(default, "__name__", "") == "list" else "'{}'"
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return "'{}'"
    if kind is bool:
        return "false"
    if kind in (int, float):
        return "0"
    if kind.__name__ == "datetime":
        return created
    if kind is dict or kind is list:
        return "'{}'"
    return "''"


def populate(engine: Engine) -> None:
    """Schema and synthetic rows: the unit tree, a catalogue, cases with events, answers, entries."""
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        units = [dict(id=1, code="C", name="市", level="city", kind="government", parent_id=None, path="/1/")]
        units += [
            dict(
                id=2 + d,
                code=f"D{d}",
                name=f"区{d}",
                level="district",
                kind="district",
                parent_id=1,
                path=f"/1/{2 + d}/",
            )
            for d in range(DISTRICTS)
        ]
        units += [
            dict(id=100 + s, code=f"S{s}", name=f"街道{s}", level="street", kind="street", parent_id=2 + s % DISTRICTS,
                 path=f"/1/{2 + s % DISTRICTS}/{100 + s}/")
            for s in range(STREETS)
        ]  # fmt: skip
        units += [
            dict(id=1000 + c, code=f"K{c}", name=f"社区{c}", level="community", kind="community",
                 parent_id=100 + c // 20, path=f"/x/{1000 + c}/", population=3000 + (c * 37) % 9000)
            for c in range(COMMUNITIES)
        ]  # fmt: skip
        session.execute(insert(Unit), [{"note": "", "is_demo": True, "active": True, **u} for u in units])
        session.execute(
            insert(Category),
            [dict(id=i, code=f"CAT{i}", name=f"类别{i}", group="", default_level="community", urgency="normal",
                  sign_for_hours=4.0, resolution_limit=7.0, resolution_unit="working_days", active=True)
             for i in range(1, 11)],
        )  # fmt: skip
        session.commit()
    created = "timestamp '2026-07-01' + (g % 7776000) * interval '1 second'"
    comm = "(1000 + g % 5000)"
    listed = set(BASE_COLUMNS.split(", "))
    # Routing keeps growing: fill any other NOT NULL column with a neutral value of its type.
    extra = [c for c in Case.__table__.columns if not c.nullable and c.name not in listed]
    names = "".join(f", {c.name}" for c in extra)
    values = "".join(f", {_neutral(c, created)}" for c in extra)
    with engine.begin() as conn:
        conn.execute(
            text(f"""
            INSERT INTO cases ({BASE_COLUMNS}{names})
            SELECT g, 'B' || g, 'web', 1 + g % 10, 2 + ((g % 5000) / 20) % 16, 100 + (g % 5000) / 20, {comm},
                '地址', '描述', '居民', '13800000000', false, 'closed',
                CASE WHEN (g * 7) % 100 < 4 THEN 1 ELSE 0 END, CASE WHEN (g * 13) % 100 < 3 THEN 1 ELSE 0 END,
                CASE WHEN (g * 31 + g / 5000) % 100 < 85 + (g % 5000) % 10 THEN true ELSE false END,
                CASE WHEN (g * 17 + g / 5000) % 100 < 60 + (g % 5000) % 30 THEN 'satisfied'
                     WHEN (g * 17 + g / 5000) % 100 < 92 THEN 'basically_satisfied'
                     WHEN (g * 17 + g / 5000) % 100 < 97 THEN 'dissatisfied' END,
                {created} + interval '4 hours', {created} + interval '7 days', {created}, {created}, 1{values}
            FROM generate_series(1, {CASES}) AS g""")
        )
        for action, delay in (("dispatch", "1 minute"), ("accept", "3 hours"), ("resolve", "6 days")):
            jitter = "((g * 11) % 7) * interval '1 hour'" if action != "dispatch" else "interval '0'"
            conn.execute(
                text(f"""
                INSERT INTO case_events (case_id, action, reason, details, created_at)
                SELECT g, '{action}', '', '{{}}', {created} + interval '{delay}' + {jitter}
                FROM generate_series(1, {CASES}) AS g""")
            )
        conn.execute(text("CREATE TABLE bench_survey_answers (community_id int, code text, value float)"))
        conn.execute(
            text(f"""
            INSERT INTO bench_survey_answers
            SELECT 1000 + (g / 10) % 5000, 'Q' || (g % 10), 25 * ((g * 7 + g / 50000) % 5)
            FROM generate_series(1, {ANSWERS}) AS g""")
        )
        conn.execute(text("ANALYZE"))
    with Session(engine) as session:
        codes = (
            "party_checklist",
            "volunteer_events",
            "inspection_failings",
            "online_check",
            "autonomy_checklist",
        )
        session.execute(
            insert(EvaluatorEntry),
            [dict(quarter=QUARTER, unit_id=1000 + c, code=code, value=float((c * 7 + i) % 10 * 10 if i != 2 else c % 4),
                  note="", evidence_file="", evidence_name="")
             for c in range(COMMUNITIES) for i, code in enumerate(codes)],
        )  # fmt: skip
        session.commit()


def survey_frame(session: Session) -> pd.DataFrame:
    """The survey contract (community × code: n, index, low, high), aggregated in SQL like surveys.frames."""
    rows = session.execute(
        text("""
        SELECT community_id, code, count(*) AS n, avg(value) AS index, coalesce(stddev_samp(value), 0) AS sd
        FROM bench_survey_answers GROUP BY community_id, code""")
    ).all()
    frame = pd.DataFrame(rows, columns=["community_id", "code", "n", "index", "sd"])
    half = 1.96 * frame["sd"] / frame["n"].pow(0.5)
    return frame.assign(low=frame["index"] - half, high=frame["index"] + half)


def main() -> None:
    """Populate (untimed), then time the scoring run and the bare pandas baseline."""
    create_database()
    engine = create_engine(URL)
    t = time.perf_counter()
    if "--reuse" not in sys.argv:  # --reuse: keep the rows of a previous bench run (setup takes minutes)
        populate(engine)
    print(f"populate (untimed setup): {time.perf_counter() - t:.1f} s")

    t0 = time.perf_counter()
    with Session(engine) as session:
        t_cases = time.perf_counter()
        cases = case_rates(session, QUARTER)
        t_cases = time.perf_counter() - t_cases
        t_survey = time.perf_counter()
        survey = survey_frame(session)
        t_survey = time.perf_counter() - t_survey
        t_score = time.perf_counter()
        run = services.run_scoring(session, QUARTER, cases, survey, inputs.entries_frame(session, QUARTER))
        session.commit()
        t_score = time.perf_counter() - t_score
        scored = run.params["scored"]
    total = time.perf_counter() - t0
    # Process peak RSS, read before the baseline loads its own million rows (tracemalloc would slow the run).
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t1 = time.perf_counter()
    with engine.connect() as conn:
        raw = pd.read_sql(text("SELECT community_id, satisfaction, solved FROM cases"), conn)
    t_read = time.perf_counter() - t1
    t2 = time.perf_counter()
    raw.groupby("community_id").agg(n=("satisfaction", "count"), solved=("solved", "sum"))
    t_groupby = time.perf_counter() - t2

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"communities scored: {scored} of {COMMUNITIES}; cases {CASES:,}; survey answers {ANSWERS:,}")
    print(f"scoring run: {total:.2f} s  (case rates SQL {t_cases:.2f} s, survey SQL {t_survey:.2f} s, "
          f"score+roll-up+explain+write {t_score:.2f} s)")  # fmt: skip
    print(f"scoring run: process peak RSS {peak_rss:.0f} MiB (after the baseline too: {maxrss:.0f} MiB)")
    print(
        f"bare pandas: read_sql of 1M cases {t_read:.2f} s + groupby {t_groupby:.3f} s = {t_read + t_groupby:.2f} s"
    )
    print(f"ratio scoring run / bare read+groupby: {total / (t_read + t_groupby):.2f}")
    print(f"target: < 30 s and < 2 GiB → {'met' if total < 30 and peak_rss < 2048 else 'NOT met'}")


if __name__ == "__main__":
    main()
