"""Co-governance services against the database: the five steps, one ballot per verified resident, the
frozen tally, notices to linked cases' residents, audit, and refusals that store nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.audit import AuditEvent
from core.db import utcnow
from core.models import Role, unit_by_code
from governance import rules
from governance import services as gov
from governance.models import Ballot, Topic, TopicStep
from governance.rules import GovernanceError
from routing.models import Notice
from tests.builders import (
    OTHER_DISTRICT_COMMUNITY,
    compound,
    make_user,
    new_case,
    user,
    verified_resident,
)


def _topic(session: Session) -> Topic:
    place = compound(session)
    staff = user(session, "handler-community")
    return gov.raise_topic(
        session, staff, place, "加装充电桩", "电动车充电难，楼道飞线充电有隐患", origin="staff"
    )


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_topic_through_five_steps_records_each_step_and_notifies_linked_residents(session: Session) -> None:
    resident = user(session, "resident")
    case = new_case(session, resident=resident)
    topic = _topic(session)
    staff = user(session, "handler-community")
    gov.link_case(session, topic, case.id, staff)
    voters = [
        verified_resident(session, f"voter{i}", compound(session), phone=f"1390000{i:04d}") for i in range(3)
    ]
    now = utcnow()
    gov.act(session, topic.id, staff, rules.StartDiscussion(), now)
    gov.add_comment(session, topic.id, voters[0], "同意，建议装在北门")
    eligible = gov.eligible_voters(session, topic.place)
    assert eligible == 3
    gov.act(
        session, topic.id, staff, rules.OpenVote(now + timedelta(days=2), quorum=2, eligible=eligible), now
    )
    for voter, choice in zip(voters, ("yes", "yes", "no"), strict=True):
        gov.cast_ballot(session, topic.id, voter, choice, now)
    with pytest.raises(GovernanceError) as again:
        gov.cast_ballot(session, topic.id, voters[0], "no", now)
    assert again.value.code == "already_voted"
    later = now + timedelta(days=2)
    with pytest.raises(GovernanceError) as late:
        gov.cast_ballot(
            session,
            topic.id,
            verified_resident(session, "late", compound(session), "13900009999"),
            "yes",
            later,
        )
    assert late.value.code == "vote_closed"
    assert gov.close_due_votes(session, later) == 1
    vote = topic.vote
    assert vote is not None and (vote.yes, vote.no, vote.abstain, vote.result) == (2, 1, 0, "adopted")
    # The tally is frozen: a ballot row slipped in afterwards changes nothing.
    session.add(Ballot(vote_id=vote.id, voter_id=user(session, "late").id, choice="no"))
    session.flush()
    with pytest.raises(GovernanceError):
        gov.close_vote(session, topic.id, staff, later)
    assert (vote.yes, vote.no) == (2, 1)
    gov.act(
        session,
        topic.id,
        staff,
        rules.StartProject("业委会", 20000, (("社区", 15000), ("居民", 5000)), ("选址", "安装")),
        later,
    )
    gov.act(session, topic.id, staff, rules.ReportProgress(100), later)
    gov.act(session, topic.id, staff, rules.FinishProject(later + timedelta(days=7)), later)
    gov.rate(session, topic.id, voters[0], 5, "很方便", later)
    gov.rate(session, topic.id, voters[1], 4, "", later)
    gov.act(session, topic.id, staff, rules.CloseEvaluation(), later)
    assert topic.closed_at is not None and topic.stage == "evaluate"
    assert gov.evaluation(topic) == gov.Evaluation(2, 4.5)
    steps = session.scalars(
        select(TopicStep.action).where(TopicStep.topic_id == topic.id).order_by(TopicStep.id)
    ).all()
    assert steps == [
        "raise",
        "start_discussion",
        "open_vote",
        "close_vote",
        "start_project",
        "report_progress",
        "finish_project",
        "close_evaluation",
    ]
    messages = session.scalars(
        select(Notice.message).where(Notice.case_id == case.id, Notice.recipient_id == resident.id)
    ).all()
    assert any("纳入社区议题" in m for m in messages)
    assert sum("进入" in m for m in messages) == 4  # discuss, decide, carry_out, evaluate
    assert any("已结束" in m for m in messages)
    assert gov.topics_of_case(session, case) == [topic]
    audited = [
        e.details["action"]
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "topic", AuditEvent.object_id == str(topic.id))
        )
    ]
    assert "raise" in audited and "rate" in audited and "close_evaluation" in audited
    assert all(
        e.action == "governance.edit"
        for e in session.scalars(select(AuditEvent).where(AuditEvent.object_type == "vote"))
    )


def test_only_residents_of_the_place_vote(session: Session) -> None:
    topic = _topic(session)
    staff = user(session, "handler-community")
    now = utcnow()
    gov.act(session, topic.id, staff, rules.StartDiscussion(), now)
    verified_resident(session, "home", compound(session))
    gov.act(session, topic.id, staff, rules.OpenVote(now + timedelta(days=1), quorum=1, eligible=1), now)
    elsewhere = unit_by_code(session, OTHER_DISTRICT_COMMUNITY)
    assert elsewhere is not None
    stranger = verified_resident(session, "stranger", elsewhere, phone="13900002222")
    unverified = make_user(session, "unverified", Role.resident, None)
    unverified.phone = "13900003333"
    gov.declare_home(session, unverified, compound(session))
    before = _count(session, Ballot)
    for voter, code in ((stranger, "not_resident"), (unverified, "not_verified"), (staff, "role_forbidden")):
        with pytest.raises(GovernanceError) as refused:
            gov.cast_ballot(session, topic.id, voter, "yes", now)
        assert refused.value.code == code
    assert _count(session, Ballot) == before


def test_staff_of_another_community_cannot_edit_and_bad_progress_stores_nothing(session: Session) -> None:
    topic = _topic(session)
    far_staff = make_user(session, "far-handler", Role.handler, OTHER_DISTRICT_COMMUNITY)
    steps = _count(session, TopicStep)
    with pytest.raises(GovernanceError) as refused:
        gov.act(session, topic.id, far_staff, rules.StartDiscussion())
    assert refused.value.code == "out_of_scope"
    staff = user(session, "handler-community")
    now = utcnow()
    gov.act(session, topic.id, staff, rules.StartDiscussion(), now)
    gov.act(session, topic.id, staff, rules.RecordDecision("居民议事会表决通过", adopted=True), now)
    gov.act(session, topic.id, staff, rules.StartProject("社区", 1000), now)
    steps = _count(session, TopicStep)
    with pytest.raises(GovernanceError) as bad:
        gov.act(session, topic.id, staff, rules.ReportProgress(140), now)
    assert bad.value.code == "bad_progress"
    assert topic.project is not None and topic.project.progress == 0
    assert _count(session, TopicStep) == steps


def test_resident_raises_a_topic_and_links_only_own_cases(session: Session) -> None:
    resident = user(session, "resident")
    resident.phone = "13800007777"
    own = new_case(session, resident=resident)
    other = new_case(session, phone="13800008888")
    place = unit_by_code(session, "420102-S1-C1")
    assert place is not None
    topic = gov.raise_topic(session, resident, place, "楼道灯", "楼道灯常坏", case_ids=[own.id])
    assert topic.origin == "resident" and [c.id for c in gov.linked_cases(session, topic)] == [own.id]
    with pytest.raises(GovernanceError):
        gov.link_case(session, topic, other.id, resident)
    with pytest.raises(GovernanceError) as blank:
        gov.raise_topic(session, resident, place, "  ", "x")
    assert blank.value.field == "title"


def test_compounds_are_imported_below_communities_only(session: Session) -> None:
    from core.csvio import ImportRejected
    from core.units import import_units

    header = "code,name,level,parent_code,kind,note\n"
    import_units(session, header + "420102-S1-C1-G1,第一网格,compound,420102-S1-C1,compound,\n")
    grid = unit_by_code(session, "420102-S1-C1-G1")
    community = unit_by_code(session, "420102-S1-C1")
    assert grid is not None and community is not None and community.contains(grid)
    with pytest.raises(ImportRejected):
        import_units(session, header + "420102-S1-G2,街道网格,compound,420102-S1,compound,\n")


def test_the_beat_job_closes_votes_past_their_deadline(session: Session) -> None:
    from governance import jobs as governance_jobs

    topic = _topic(session)
    staff = user(session, "handler-community")
    now = utcnow()
    gov.act(session, topic.id, staff, rules.StartDiscussion(), now)
    verified_resident(session, "beat-voter", compound(session))
    gov.act(session, topic.id, staff, rules.OpenVote(now + timedelta(hours=1), quorum=1, eligible=1), now)
    session.commit()
    assert governance_jobs.close_due_votes(now) == 0
    assert governance_jobs.close_due_votes(now + timedelta(hours=1)) == 1
    session.expire_all()
    assert topic.vote is not None and topic.vote.result == "no_quorum" and topic.closed_at is not None
