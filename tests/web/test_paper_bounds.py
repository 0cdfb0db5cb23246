"""Paper uploads: district/community consistency, column lengths, a short error report, bad cells, and
large files imported by a job with progress (jobs run inline here: RQ_ASYNC is off in the web tier)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from surveys import jobs as survey_jobs
from surveys import paper
from surveys.imports import INSTANCE_MAX
from surveys.models import PaperUpload, SurveyResponse
from tests.conftest import login
from tests.web.test_surveys import C1, make_survey, responses, upload

HEADER = "instance_id,community,district,q_env,q_know\n"


def latest_upload(session: Session) -> PaperUpload:
    """The newest paper upload."""
    session.expire_all()
    row = session.scalar(select(PaperUpload).order_by(PaperUpload.id.desc()))
    assert row is not None
    return row


@pytest.fixture
def inline_bytes(app: Flask) -> Iterator[None]:
    """Every upload counts as large, so it goes through the job."""
    previous = app.config["IMPORT_INLINE_BYTES"]
    app.config["IMPORT_INLINE_BYTES"] = 10
    try:
        yield
    finally:
        app.config["IMPORT_INLINE_BYTES"] = previous


def test_a_row_whose_district_does_not_hold_its_community_is_refused(client: Any, session: Session) -> None:
    survey = make_survey(session)
    login(client, "evaluator")
    data = HEADER + f"P-1,{C1},420102,5,y\nP-2,{C1},420103,5,y\nP-3,{C1},,4,n\n"
    body = upload(client, survey, data.encode()).get_data(as_text=True)
    assert "已保存 2 份" in body and f"社区“{C1}”不属于区“420103”" in body
    stored = session.scalars(select(SurveyResponse.instance_id).where(SurveyResponse.survey_id == survey.id))
    assert set(stored) == {"paper-P-1", "paper-P-3"}


def test_instance_ids_are_held_to_their_column_length(client: Any, session: Session) -> None:
    survey = make_survey(session)
    login(client, "evaluator")
    fits, too_long = "A" * INSTANCE_MAX, "B" * (INSTANCE_MAX + 1)
    body = upload(client, survey, (HEADER + f"{fits},{C1},,5,y\n{too_long},{C1},,5,y\n").encode()).get_data(
        as_text=True
    )
    assert "已保存 1 份" in body and f"问卷编号过长（最多 {INSTANCE_MAX} 字符）" in body
    assert responses(session, survey) == 1


def test_a_control_character_rejects_its_row_and_keeps_the_others(client: Any, session: Session) -> None:
    survey = make_survey(session)
    login(client, "evaluator")
    body = upload(client, survey, (HEADER + f"P-1,{C1},,5,y\nP-2,{C1},,5\x00,y\n").encode()).get_data(
        as_text=True
    )
    assert "已保存 1 份" in body and "含有控制字符" in body
    assert responses(session, survey) == 1


def test_thousands_of_bad_rows_give_a_short_page_and_a_counted_report(client: Any, session: Session) -> None:
    survey = make_survey(session)
    login(client, "evaluator")
    data = HEADER + "".join(f"P-{i},NOWHERE,,9,x\n" for i in range(4_000))
    response = upload(client, survey, data.encode())
    body = response.get_data(as_text=True)
    row = latest_upload(session)
    assert row.rejected_total == 12_000  # three problems a row: community, likert, choice
    assert len(row.rejected) == 200
    assert "退回 12000 处问题" in body and "仅列出前 200 处问题（共 12000 处）" in body
    assert len(response.data) < 150_000


def test_a_large_upload_runs_as_a_job_and_its_page_shows_the_outcome(
    client: Any, session: Session, inline_bytes: None
) -> None:
    survey = make_survey(session)
    login(client, "evaluator")
    data = HEADER + f"P-1,{C1},,5,y\nP-2,{C1},,9,y\nP-3,{C1},,4,n\n"
    response = upload(client, survey, data.encode())
    assert response.status_code == 302
    assert re.search(rf"/surveys/{survey.id}/uploads/\d+$", response.headers["Location"])
    row = latest_upload(session)
    assert (row.status, row.stored, row.rejected_total, row.valid_rows, row.processed) == ("done", 2, 1, 2, 2)
    assert row.payload is None  # the file is not kept once read
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "导入完成" in page and "已保存 2 份" in page and "data-refresh" not in page
    # Run again (a retried job): nothing is added.
    assert survey_jobs.import_paper_upload(row.id) == "done"
    assert responses(session, survey) == 2


def test_a_queued_upload_shows_progress_and_refreshes(client: Any, session: Session) -> None:
    survey = make_survey(session)
    row = paper.queue_paper(session, survey, (HEADER + f"P-1,{C1},,5,y\n").encode(), "big.csv")
    session.commit()
    login(client, "evaluator")
    page = client.get(f"/surveys/{survey.id}/uploads/{row.id}").get_data(as_text=True)
    assert "排队中" in page and 'data-refresh="2"' in page and "<progress" in page
    assert survey_jobs.import_paper_upload(row.id) == "done"
    session.expire_all()  # the job wrote through its own session; a real request starts afresh
    assert "导入完成" in client.get(f"/surveys/{survey.id}/uploads/{row.id}").get_data(as_text=True)


def test_the_job_commits_progress_after_each_chunk_and_resumes(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paper, "CHUNK", 2)
    survey = make_survey(session)
    data = HEADER + "".join(f"P-{i},{C1},,5,y\n" for i in range(5))
    row = paper.queue_paper(session, survey, data.encode(), "big.csv")
    steps = list(paper.run_paper_upload(session, row))
    assert steps == [0, 2, 4, 5] and row.status == "done" and row.stored == 5
    # A run that stopped after the first chunk resumes where it was and stores the rest once.
    again = paper.queue_paper(session, survey, data.replace("P-", "Q-").encode(), "big.csv")
    run = paper.run_paper_upload(session, again)
    next(run), next(run)
    assert again.processed == 2 and again.status == "running"
    assert list(paper.run_paper_upload(session, again)) == [2, 4, 5]
    assert again.stored == 5 and responses(session, survey) == 10


def test_a_job_whose_file_is_refused_as_a_whole_says_why(client: Any, session: Session) -> None:
    survey = make_survey(session)
    row = paper.queue_paper(session, survey, b"id,place\n1,2\n", "bad.csv")
    session.commit()
    assert survey_jobs.import_paper_upload(row.id) == "failed"
    assert survey_jobs.import_paper_upload(row.id) == "failed"  # a second run changes nothing
    session.expire_all()
    login(client, "evaluator")
    page = client.get(f"/surveys/{survey.id}/uploads/{row.id}").get_data(as_text=True)
    assert "文件未导入" in page and "缺少列：instance_id, community" in page
    assert responses(session, survey) == 0
