"""Co-governance pages: residents raise, vote and rate from the phone; staff move topics; ledgers with
evidence and exports; the case's status page shows its topic; refusals store nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import utcnow
from core.models import Role
from governance import rules
from governance import services as gov
from governance.models import Ballot, JointMeeting, Topic
from routing.intake import case_token
from tests.builders import (
    OTHER_DISTRICT_COMMUNITY,
    TOKEN_KEY,
    compound,
    make_user,
    new_case,
    user,
)
from tests.conftest import login


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _voting_topic(session: Session) -> Topic:
    staff = user(session, "handler-community")
    topic = gov.raise_topic(
        session, staff, compound(session), "楼道加装扶手", "老人上下楼不便", origin="staff"
    )
    now = utcnow()
    gov.act(session, topic.id, staff, rules.StartDiscussion(), now)
    resident = user(session, "resident")
    resident.phone = "13800005555"
    gov.verify_home(
        session, gov.declare_home(session, resident, compound(session)).id, user(session, "admin")
    )
    gov.act(session, topic.id, staff, rules.OpenVote(now + timedelta(days=1), quorum=1, eligible=1), now)
    session.commit()  # a refused request rolls back to here, not past the test's data
    return topic


def test_public_list_and_topic_page_show_the_step(client: Any, session: Session) -> None:
    topic = _voting_topic(session)
    page = client.get("/topics?community=420102-S1-C1&stage=decide").get_data(as_text=True)
    assert "楼道加装扶手" in page and "民事民决" in page
    detail = client.get(f"/topics/{topic.id}").get_data(as_text=True)
    assert 'id="vote"' in detail and "结果在截止后公布" in detail
    assert client.get("/topics/999999").status_code == 404


def test_resident_votes_once_from_the_page(client: Any, session: Session) -> None:
    topic = _voting_topic(session)
    login(client, "resident")
    page = client.get(f"/topics/{topic.id}").get_data(as_text=True)
    assert 'id="ballot"' in page
    assert client.post(f"/topics/{topic.id}/vote", data={"choice": "yes"}).status_code == 302
    again = client.post(f"/topics/{topic.id}/vote", data={"choice": "no"}, follow_redirects=True)
    assert "只能投一票" in again.get_data(as_text=True)
    assert session.scalars(select(Ballot.choice)).all() == ["yes"]


def test_vote_after_the_deadline_is_refused_and_stores_nothing(client: Any, session: Session) -> None:
    topic = _voting_topic(session)
    assert topic.vote is not None
    topic.vote.closes_at = utcnow() - timedelta(minutes=1)
    session.commit()
    login(client, "resident")
    before = _count(session, Ballot)
    page = client.post(f"/topics/{topic.id}/vote", data={"choice": "yes"}, follow_redirects=True).get_data(
        as_text=True
    )
    assert "表决已截止" in page
    assert _count(session, Ballot) == before


def test_staff_close_the_vote_and_the_tally_is_published(client: Any, session: Session) -> None:
    topic = _voting_topic(session)
    gov.cast_ballot(session, topic.id, user(session, "resident"), "yes")
    assert topic.vote is not None
    topic.vote.closes_at = utcnow() - timedelta(minutes=1)
    session.commit()
    login(client, "handler-community")
    assert client.post(f"/topics/{topic.id}/act/close_vote").status_code == 302
    page = client.get(f"/topics/{topic.id}").get_data(as_text=True)
    assert "表决结果（已公布）" in page and "通过" in page


def test_progress_of_140_is_refused_with_a_clear_error(client: Any, session: Session) -> None:
    staff = user(session, "handler-community")
    topic = gov.raise_topic(session, staff, compound(session), "修路", "路面坑洼", origin="staff")
    gov.act(session, topic.id, staff, rules.StartDiscussion())
    gov.act(session, topic.id, staff, rules.RecordDecision("议事会一致同意", True))
    gov.act(session, topic.id, staff, rules.StartProject("物业", 5000))
    session.commit()
    login(client, "handler-community")
    page = client.post(
        f"/topics/{topic.id}/act/report_progress", data={"progress": "140"}, follow_redirects=True
    )
    assert "进度必须在 0% 到 100% 之间" in page.get_data(as_text=True)
    assert topic.project is not None
    session.refresh(topic.project)
    assert topic.project.progress == 0
    client.post(f"/topics/{topic.id}/act/report_progress", data={"progress": "60", "note": "已开工"})
    session.refresh(topic.project)
    assert topic.project.progress == 60


def test_staff_of_another_community_get_404_and_change_nothing(client: Any, session: Session) -> None:
    topic = _voting_topic(session)
    make_user(session, "far", Role.handler, OTHER_DISTRICT_COMMUNITY)
    from werkzeug.security import generate_password_hash

    user(session, "far").password_hash = generate_password_hash("demo-pass-2026")
    session.commit()
    login(client, "far")
    assert client.post(f"/topics/{topic.id}/act/start_discussion").status_code == 404
    assert client.post(f"/topics/{topic.id}/link", data={"tracking_number": "X"}).status_code == 404


def test_resident_raises_a_topic_from_the_phone_form(client: Any, session: Session) -> None:
    resident = user(session, "resident")
    resident.phone = "13800006666"
    case = new_case(session, resident=resident)
    session.commit()
    login(client, "resident")
    assert client.get("/topics/new").status_code == 200
    bad = client.post("/topics/new", data={"place": "420102-S1-C1", "title": "", "description": "x"})
    assert bad.status_code == 200 and "请填写议题标题" in bad.get_data(as_text=True)
    response = client.post(
        "/topics/new",
        data={
            "place": "420102-S1-C1",
            "title": "垃圾分类点",
            "description": "希望增设",
            "cases": case.tracking_number,
        },
    )
    assert response.status_code == 302
    topic = session.scalar(select(Topic).where(Topic.title == "垃圾分类点"))
    assert topic is not None and gov.linked_cases(session, topic) == [case]
    status = client.get(f"/status/{case.tracking_number}?k={case_token(TOKEN_KEY, case.tracking_number)}")
    page = status.get_data(as_text=True)
    assert 'id="case-topics"' in page and "垃圾分类点" in page and "民事民提" in page


def test_meeting_without_a_date_is_refused_and_a_valid_one_is_listed_and_exported(
    client: Any, session: Session
) -> None:
    login(client, "handler-community")
    before = _count(session, JointMeeting)
    data = {
        "unit": "420102-S1-C1",
        "held_on": "",
        "attendees": "社区党委、物业",
        "attendee_count": "8",
        "issues": "停车",
        "resolutions": "划线",
    }
    refused = client.post("/ledgers/meetings", data=data)
    assert refused.status_code == 422 and "请填写会议日期" in refused.get_data(as_text=True)
    assert _count(session, JointMeeting) == before
    data["held_on"] = "2026-09-15"
    assert client.post("/ledgers/meetings", data=data).status_code == 302
    assert "社区党委、物业" in client.get("/ledgers/meetings").get_data(as_text=True)
    exported = client.get("/ledgers/meetings/export.csv?start=2026-07-01&end=2026-10-01").get_data(
        as_text=True
    )
    assert "2026-09-15" in exported and "会议日期" in exported
    xlsx = client.get("/ledgers/meetings/export.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    far = {**data, "unit": OTHER_DISTRICT_COMMUNITY}
    assert client.post("/ledgers/meetings", data=far).status_code == 404


def test_party_service_hours_are_bounded(client: Any, session: Session) -> None:
    login(client, "handler-community")
    client.post(
        "/ledgers/party_members",
        data={"unit": "420102-S1-C1", "name": "张三", "work_unit": "市民政局", "registered_on": "2026-07-01"},
    )
    from governance.models import PartyMember, PartyService

    member = session.scalar(select(PartyMember).where(PartyMember.name == "张三"))
    assert member is not None
    bad = client.post(
        "/ledgers/party_services",
        data={"member_id": str(member.id), "served_on": "2026-08-01", "service": "清扫", "hours": "30"},
    )
    assert bad.status_code == 422 and _count(session, PartyService) == 0
    client.post(
        "/ledgers/party_services",
        data={"member_id": str(member.id), "served_on": "2026-08-01", "service": "清扫", "hours": "2.5"},
    )
    assert session.scalar(select(PartyService.hours)) == 2.5


def test_ledger_evidence_is_read_only_within_the_rows_subtree(client: Any, session: Session) -> None:
    """A meeting's evidence file: its community's staff, admins and evaluators; another district's
    handler gets 404 as if it did not exist."""
    import io

    from governance.models import Attachment
    from tests.conftest import STRONG_PASSWORD, new_user

    login(client, "handler-community")
    data = {
        "unit": "420102-S1-C1",
        "held_on": "2026-09-16",
        "attendees": "社区党委",
        "attendee_count": "5",
        "issues": "楼道照明",
        "resolutions": "更换灯具",
        "evidence": (io.BytesIO(b"%PDF-1.4 minutes"), "minutes.pdf"),
    }
    assert client.post("/ledgers/meetings", data=data, content_type="multipart/form-data").status_code == 302
    file = session.scalars(select(Attachment).where(Attachment.owner_kind == "meetings")).all()[-1]
    url = f"/governance/files/{file.id}"
    with client.get(url) as response:  # a streamed file: close it
        assert response.data == b"%PDF-1.4 minutes"
    new_user(session, "handler-far", "handler", OTHER_DISTRICT_COMMUNITY)
    session.commit()  # a refused request rolls back to here
    for name, status in (("handler-far", 404), ("evaluator", 200), ("admin", 200), ("resident", 404)):
        client.post("/logout")
        login(client, name, STRONG_PASSWORD if name == "handler-far" else "demo-pass-2026")
        with client.get(url) as response:
            assert response.status_code == status, name
