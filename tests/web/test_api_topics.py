"""GET /api/v1/topics and /api/v1/topics/<id>: filters, stage vocabulary, cases as tracking numbers,
the tally published only after the vote closes, progress and evaluation; bad filters are 422."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.db import utcnow
from governance import rules
from governance import services as gov
from tests.builders import compound, new_case, user, verified_resident


def test_topics_list_filters_and_detail(client: Any, session: Session) -> None:
    staff = user(session, "handler-community")
    case = new_case(session)
    topic = gov.raise_topic(session, staff, compound(session), "停车难", "夜间乱停车", case_ids=[case.id])
    now = utcnow()
    gov.act(session, topic.id, staff, rules.StartDiscussion(), now)
    voter = verified_resident(session, "api-voter", compound(session))
    gov.act(session, topic.id, staff, rules.OpenVote(now + timedelta(hours=1), quorum=1, eligible=1), now)
    gov.cast_ballot(session, topic.id, voter, "yes", now)
    session.commit()
    listed = client.get("/api/v1/topics?community=420102-S1-C1&stage=decide").get_json()
    assert [t["id"] for t in listed if t["title"] == "停车难"] == [topic.id]
    assert all(t["stage"] == "decide" for t in listed)
    detail = client.get(f"/api/v1/topics/{topic.id}").get_json()
    assert detail["stage"] == "decide" and detail["linked_cases"] == [case.tracking_number]
    assert detail["vote"]["tally"] is None  # not published while the vote runs
    assert "contact_phone" not in str(detail) and case.contact_phone not in str(detail)
    gov.close_vote(session, topic.id, None, now + timedelta(hours=1))
    gov.act(session, topic.id, staff, rules.StartProject("物业", 3000), now + timedelta(hours=1))
    gov.act(session, topic.id, staff, rules.ReportProgress(40), now + timedelta(hours=1))
    session.commit()
    detail = client.get(f"/api/v1/topics/{topic.id}").get_json()
    assert (
        detail["vote"]["tally"] == {"yes": 1, "no": 0, "abstain": 0} and detail["vote"]["result"] == "adopted"
    )
    assert (detail["stage"], detail["progress"], detail["project"]["progress"]) == ("carry_out", 40, 40)
    assert detail["evaluation"] == {"ratings": 0, "mean": None}


def test_bad_filters_are_structured_422_and_unknown_topic_404(client: Any, session: Session) -> None:
    response = client.get("/api/v1/topics?stage=closed&community=NOPE&limit=0")
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert fields == {"stage", "community", "limit"}
    assert client.get("/api/v1/topics/999999").status_code == 404
