"""Benchmark: the survey analysis path on 1,000,000 answers beside a bare pandas groupby, in the same run.

Synthetic data: 50,000 respondents × 20 likert items = 1,000,000 answers in 5,000 communities (10
respondents each), answers 1–5 with about 8 % 不了解 (NaN / dont_know).

Measured, each for wall time (best of ``--repeat``) and, in a separate traced run, peak Python memory
(tracemalloc: numpy and pandas buffers are traced; SQLite's own C heap is not):

1. in memory — ``surveys.frames.index_from_answers`` (per community × item and per community overall index,
   each with a t interval) against the bare ``groupby(["community_code", "question"])["value"].mean()``;
2. database — ``surveys.frames.community_results`` (sums in SQL, intervals in numpy) against the naive
   path: ``pd.read_sql`` of every answer row, then the same bare groupby. SQLite file in a temp folder, or
   the PostgreSQL database named by ``--database-url`` (its tables are dropped and recreated: give it a
   database of its own, e.g. ``createdb -h 127.0.0.1 -U postgres bench_surveys``).

Run: ``.venv/bin/python bench/bench_surveys.py [--respondents 50000] [--items 20] [--communities 5000]
[--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_surveys]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import app.models  # noqa: F401 - registers every table on the metadata
from core.db import Base
from core.models import Level, Unit, UnitKind
from surveys.frames import community_results, index_from_answers
from surveys.models import Question, QuestionKind, Survey, SurveyResponse, SurveyStatus


def synthetic(respondents: int, items: int, communities: int, seed: int = 2026) -> pd.DataFrame:
    """Long answers: community_code, respondent, question, value (1..5, NaN = 不了解)."""
    rng = np.random.default_rng(seed)
    community = np.arange(respondents) % communities
    # Each community has its own mean so the index varies between communities.
    centre = rng.uniform(2.5, 4.5, communities)[community]
    values = np.clip(np.rint(centre[:, None] + rng.normal(0, 1, (respondents, items))), 1, 5)
    values[rng.random((respondents, items)) < 0.08] = np.nan
    codes = np.array([f"C{i:05d}" for i in range(communities)])
    return pd.DataFrame(
        {
            "community_code": pd.Categorical(np.repeat(codes[community], items)),
            "respondent": np.repeat(np.arange(respondents), items),
            "question": pd.Categorical(np.tile([f"q{j + 1:02d}" for j in range(items)], respondents)),
            "value": values.ravel(),
        }
    )


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(best wall seconds, peak traced MiB, last result)."""
    best = float("inf")
    result = None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    del result
    gc.collect()
    tracemalloc.start()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, result


def load_database(url: str, answers: pd.DataFrame, items: int) -> None:
    """Write units, one open survey, its questions, responses and answers (Core inserts, not timed)."""
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    codes = answers["community_code"].cat.categories
    with Session(engine) as session:
        city = Unit(code="B", name="市", level=Level.city, kind=UnitKind.government, path="/1/")
        session.add(city)
        session.flush()
        session.execute(
            insert(Unit),
            [
                {
                    "code": c,
                    "name": f"社区{c}",
                    "level": Level.community,
                    "kind": UnitKind.community,
                    "parent_id": city.id,
                    "path": f"/1/{i + 2}/",
                    "population": 5000,
                }
                for i, c in enumerate(codes)
            ],
        )
        survey = Survey(quarter="2026Q3", title="bench", version=1, status=SurveyStatus.open, salt="x")
        session.add(survey)
        session.flush()
        session.execute(
            insert(Question),
            [
                {
                    "survey_id": survey.id,
                    "position": j,
                    "name": f"q{j + 1:02d}",
                    "label": f"Q{j + 1}",
                    "kind": QuestionKind.likert5,
                    "choices": [],
                    "indicator_code": f"I{j % 4}",
                }
                for j in range(items)
            ],
        )
        unit_ids: dict[str, int] = dict(session.execute(text("SELECT code, id FROM units")).all())
        question_ids: dict[str, int] = dict(
            session.execute(text("SELECT name, id FROM survey_questions")).all()
        )
        first = answers.drop_duplicates("respondent")
        session.execute(
            insert(SurveyResponse),
            [
                {
                    "id": int(r) + 1,
                    "survey_id": survey.id,
                    "community_id": unit_ids[c],
                    "instance_id": f"b{r}",
                    "source": "online",
                }
                for r, c in zip(first["respondent"], first["community_code"], strict=True)
            ],
        )
        values = answers["value"].to_numpy()
        response = answers["respondent"].to_numpy() + 1
        qids = answers["question"].map(question_ids).to_numpy()
        session.commit()
    rows = [
        (int(r), int(q), None if v != v else float(v), v != v)
        for r, q, v in zip(response, qids, values, strict=True)
    ]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            # COPY is PostgreSQL's bulk path: a million rows in seconds instead of minutes.
            with cursor.copy(
                "COPY survey_answers (response_id, question_id, value_num, dont_know) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute("ANALYZE")
        else:
            # Plain executemany through the DB-API: the ORM bulk path is ~5× slower for a million rows.
            cursor.executemany(
                "INSERT INTO survey_answers (response_id, question_id, value_num, dont_know) "
                "VALUES (?, ?, ?, ?)",
                [(r, q, v, int(d)) for r, q, v, d in rows],
            )
        raw.commit()
    finally:
        raw.close()
    engine.dispose()


def main() -> None:
    """Run both comparisons and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--respondents", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--communities", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-db", action="store_true")
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL URL (default: SQLite in a temp folder)"
    )
    args = parser.parse_args()
    answers = synthetic(args.respondents, args.items, args.communities)
    print(
        f"answers: {len(answers):,} ({args.respondents:,} respondents × {args.items} items, "
        f"{args.communities:,} communities); pandas {pd.__version__}"
    )

    rows: list[tuple[str, float, float]] = []
    t_path, m_path, out = measure(lambda: index_from_answers(answers), args.repeat)
    t_bare, m_bare, bare = measure(
        lambda: answers.groupby(["community_code", "question"], observed=True)["value"].mean(), args.repeat
    )
    rows += [
        ("index_from_answers (n, index, t interval; items + overall)", t_path, m_path),
        ("bare groupby mean (community × item)", t_bare, m_bare),
    ]
    check = out[out["level"] == "question"].set_index(["community_code", "code"])["index"]
    expected = (bare - 1) * 25
    assert np.allclose(check.to_numpy(), expected.reindex(check.index).to_numpy()), "results disagree"
    print(f"in-memory groups: {len(out):,} rows ({(out['level'] == 'overall').sum():,} communities)")

    if not args.skip_db:
        with tempfile.TemporaryDirectory() as folder:
            url = args.database_url or f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
            start = time.perf_counter()
            load_database(url, answers, args.items)
            engine = create_engine(url)
            print(
                f"loaded {engine.dialect.name} in {time.perf_counter() - start:.1f} s "
                "(not part of the measures)"
            )

            def sql_path() -> pd.DataFrame:
                with Session(engine) as session:
                    return community_results(session, "2026Q3")

            def naive_path() -> pd.Series:
                with engine.connect() as conn:
                    frame = pd.read_sql(
                        text(
                            "SELECT r.community_id, q.name AS question, a.value_num FROM survey_answers a "
                            "JOIN survey_responses r ON r.id = a.response_id "
                            "JOIN survey_questions q ON q.id = a.question_id"
                        ),
                        conn,
                    )
                return frame.groupby(["community_id", "question"])["value_num"].mean()

            t_sql, m_sql, result = measure(sql_path, args.repeat)
            t_naive, m_naive, _ = measure(naive_path, args.repeat)
            engine.dispose()
            rows += [
                ("community_results (SQL sums → intervals; items, indicators, overall)", t_sql, m_sql),
                ("read_sql of all answers + bare groupby mean", t_naive, m_naive),
            ]
            print(f"database result rows: {len(result):,}")

    print(f"\n{'path':<72} {'seconds':>8} {'peak MiB':>9}")
    for name, seconds, mib in rows:
        print(f"{name:<72} {seconds:>8.3f} {mib:>9.1f}")
    print(
        f"\nratio in memory  (analysis / bare groupby): time {t_path / t_bare:.1f}×, memory {m_path / m_bare:.1f}×"
    )
    if not args.skip_db:
        print(
            f"ratio database   (SQL path / read_sql + groupby): time {t_sql / t_naive:.2f}×, "
            f"memory {m_sql / m_naive:.2f}×"
        )
        print(f"ratio SQL path / bare in-memory groupby: time {t_sql / t_bare:.1f}×")


if __name__ == "__main__":
    main()
