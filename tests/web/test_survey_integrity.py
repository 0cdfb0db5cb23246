"""Open-link integrity: per-device and per-address limits, bursts held for an evaluator, results say why."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.db import utcnow
from core.models import Unit
from surveys import frames, integrity, services
from surveys.models import ResponseStatus, SurveyResponse, SurveySubmission
from tests.conftest import login
from tests.web.test_surveys import C1, GOOD_ANSWERS, make_survey


def stored(session, survey, status=None):
    query = select(func.count()).select_from(SurveyResponse).where(SurveyResponse.survey_id == survey.id)
    if status is not None:
        query = query.where(SurveyResponse.status == status)
    return session.scalar(query)


def post(client, survey, address="10.1.1.1", data=None):
    return client.post(
        f"/s/{survey.id}/{C1}", data=data or GOOD_ANSWERS, environ_base={"REMOTE_ADDR": address}
    )


def overall_n(session, quarter="2026Q3"):
    table = frames.community_results(session, quarter)
    row = table[(table["level"] == "overall") & (table["community_code"] == C1)]
    return int(row["n"].iloc[0]) if len(row) else 0


@pytest.fixture
def limits(app, monkeypatch):
    """Small limits so a test can reach them: 2 per device, 4 per address, bursts of 3 in 10 minutes."""
    for name, value in {
        "SURVEY_LIMIT_PER_DEVICE": 2,
        "SURVEY_LIMIT_PER_ADDRESS": 4,
        "SURVEY_LIMIT_WINDOW_SECONDS": 86400,
        "SURVEY_BURST_COUNT": 3,
        "SURVEY_BURST_SECONDS": 600,
    }.items():
        monkeypatch.setitem(app.config, name, value)


def test_one_device_cannot_answer_without_limit(client, session, limits):
    # Before: every anonymous POST from the same browser was stored.
    survey = make_survey(session)
    first = client.get(f"/s/{survey.id}/{C1}")
    assert "survey_device=" in first.headers.get("Set-Cookie", "")
    assert post(client, survey, "10.0.0.1").status_code == 200
    assert post(client, survey, "10.0.0.2").status_code == 200
    refused = post(client, survey, "10.0.0.3")
    assert refused.status_code == 429 and "提交次数过多" in refused.get_data(as_text=True)
    assert stored(session, survey) == 2
    assert integrity.exclusions(session, [survey.id]).refused == {"refused_device": 1}


def test_one_address_is_limited_even_when_the_cookie_is_thrown_away(app, client, session, limits):
    survey = make_survey(session)
    codes = []
    for _ in range(5):
        fresh = app.test_client()  # a new browser each time: no device cookie to count
        codes.append(post(fresh, survey, "10.9.9.9").status_code)
    assert codes == [200, 200, 200, 200, 429]
    assert stored(session, survey) == 4
    assert post(app.test_client(), survey, "10.9.9.10").status_code == 200  # another address is fine


def test_a_burst_is_held_out_of_results_until_an_evaluator_decides(app, client, session, limits):
    survey = make_survey(session)
    for _ in range(2):
        assert post(app.test_client(), survey, "10.2.2.2").status_code == 200
    assert stored(session, survey, ResponseStatus.held) == 0 and overall_n(session) >= 2
    before = overall_n(session)
    assert post(app.test_client(), survey, "10.2.2.2").status_code == 200  # the third within 10 minutes
    held = session.scalars(
        select(SurveyResponse).where(
            SurveyResponse.survey_id == survey.id, SurveyResponse.status == ResponseStatus.held
        )
    ).all()
    assert len(held) == 3 and {r.hold_reason for r in held} == {"burst_address"}
    assert overall_n(session) == before - 2  # the two counted ones left with the third
    login(client, "evaluator")
    results = client.get("/surveys/results?quarter=2026Q3").get_data(as_text=True)
    assert (
        "本季度共有 3 份答卷未计入以下结果" in results
        and "待审核 3 份：同一网络地址短时间内集中提交" in results
    )
    page = client.get(f"/surveys/{survey.id}/review")
    assert page.status_code == 200 and page.get_data(as_text=True).count('data-status="held"') == 3
    progress = client.get(f"/surveys/{survey.id}/progress").get_data(as_text=True)
    assert "另有 3 份待审核、0 份已排除的公开链接答卷不计入上面的数字" in progress
    ids = [r.id for r in held]
    response = client.post(f"/surveys/{survey.id}/review", data={"responses": ids[:2], "accept": "计入结果"})
    assert response.status_code == 302
    response = client.post(f"/surveys/{survey.id}/review", data={"responses": ids[2:], "exclude": "排除"})
    assert response.status_code == 302
    assert stored(session, survey, ResponseStatus.accepted) >= 2
    assert stored(session, survey, ResponseStatus.excluded) == 1
    assert overall_n(session) == before
    results = client.get("/surveys/results?quarter=2026Q3").get_data(as_text=True)
    assert (
        "本季度共有 1 份答卷未计入以下结果" in results
        and "已排除 1 份：同一网络地址短时间内集中提交" in results
    )
    decided = session.get(SurveyResponse, ids[0])
    assert decided.decided_by is not None and decided.decided_at is not None


def test_review_needs_a_selection_and_is_for_evaluators(client, session, limits):
    survey = make_survey(session)
    login(client, "resident")
    assert client.get(f"/surveys/{survey.id}/review").status_code == 403
    client.post("/logout")
    login(client, "evaluator")
    response = client.post(f"/surveys/{survey.id}/review", data={"accept": "计入结果"})
    assert response.status_code == 422 and "请至少选择一份答卷" in response.get_data(as_text=True)


def test_panel_tokens_are_not_limited(client, session, limits):
    survey = make_survey(session)
    community = session.scalar(select(Unit).where(Unit.code == C1))
    tokens = services.generate_tokens(session, survey, community, 4)
    session.commit()
    codes = [
        client.post(f"/s/{survey.id}/{C1}?t={t}", data=GOOD_ANSWERS, environ_base={"REMOTE_ADDR": "10.3.3.3"})
        for t in tokens
    ]
    assert [c.status_code for c in codes] == [200] * 4
    assert stored(session, survey, ResponseStatus.accepted) == 4


def test_only_keyed_hashes_are_stored_and_closing_forgets_them(client, session, limits):
    survey = make_survey(session)
    client.get(f"/s/{survey.id}/{C1}")
    assert post(client, survey, "10.4.4.4").status_code == 200
    cookie = client.get_cookie("survey_device").value
    row = session.scalar(select(SurveySubmission).where(SurveySubmission.survey_id == survey.id))
    assert row.address_hash == integrity.client_hash("test-secret", survey, "address:10.4.4.4")
    assert row.device_hash == integrity.client_hash("test-secret", survey, "device:" + cookie)
    assert "10.4.4.4" not in row.address_hash and cookie not in row.device_hash
    services.close_survey(session, survey)
    session.refresh(row)
    assert (row.device_hash, row.address_hash, row.response_id is not None) == (None, None, True)


def test_the_window_slides(session):
    survey = make_survey(session)
    community = session.scalar(select(Unit).where(Unit.code == C1))
    limits = integrity.Limits(window_seconds=3600, per_device=1, per_address=10, burst_count=5)
    client = integrity.Client(device="d" * 64, address="a" * 64)
    then = utcnow() - timedelta(hours=2)
    response = services.submit_online(
        session, survey, community, {"q_env": ["3"]}, services.Respondent(), client=client, limits=limits
    )
    session.execute(
        SurveySubmission.__table__.update()
        .where(SurveySubmission.response_id == response.id)
        .values(submitted_at=then)
    )
    assert integrity.admit(session, survey, client, limits) == ""  # two hours ago is outside the window
    integrity.record(session, survey, client, response, "", limits)
    with pytest.raises(integrity.LimitReached) as refused:
        integrity.admit(session, survey, client, limits)
    assert refused.value.outcome == "refused_device"


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        integrity.Limits(per_device=0)
    with pytest.raises(ValueError):
        integrity.Limits(burst_count=1)


@pytest.mark.integration
def test_simultaneous_answers_from_one_device_store_only_what_the_limit_allows(app):
    """Two answers racing from one device with a limit of 1: the advisory lock lets exactly one through."""
    from sqlalchemy import delete
    from sqlalchemy.orm import Session

    from app.extensions import db
    from surveys.models import Answer, Question, Survey, SurveySection

    with app.app_context():
        engine = db.engine
        if engine.dialect.name != "postgresql":
            pytest.skip(
                "并发限制依赖 PostgreSQL 的 advisory lock；本轮测试使用 SQLite（CI 的 PostgreSQL 轮次会运行）"
            )
        with Session(engine) as setup:
            survey = make_survey(setup, title="并发测试问卷")
            survey_id = survey.id
        limits = integrity.Limits(per_device=1, per_address=10, burst_count=5)
        client = integrity.Client(device="e" * 64, address="f" * 64)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def answer() -> None:
            with Session(engine) as own:
                survey = own.get(Survey, survey_id)
                community = own.scalar(select(Unit).where(Unit.code == C1))
                barrier.wait()
                try:
                    services.submit_online(
                        own,
                        survey,
                        community,
                        {"q_env": ["4"]},
                        services.Respondent(),
                        client=client,
                        limits=limits,
                    )
                    own.commit()
                    outcomes.append("stored")
                except integrity.LimitReached:
                    own.rollback()
                    outcomes.append("refused")

        try:
            threads = [threading.Thread(target=answer) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes) == ["refused", "stored"]
        finally:
            with Session(engine) as cleanup:
                responses = select(SurveyResponse.id).where(SurveyResponse.survey_id == survey_id)
                cleanup.execute(delete(SurveySubmission).where(SurveySubmission.survey_id == survey_id))
                cleanup.execute(delete(Answer).where(Answer.response_id.in_(responses)))
                cleanup.execute(delete(SurveyResponse).where(SurveyResponse.survey_id == survey_id))
                cleanup.execute(delete(Question).where(Question.survey_id == survey_id))
                cleanup.execute(delete(SurveySection).where(SurveySection.survey_id == survey_id))
                cleanup.execute(delete(Survey).where(Survey.id == survey_id))
                cleanup.commit()
