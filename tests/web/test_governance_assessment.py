"""The assessment reads the co-governance ledgers and topics: ``ledger:`` and ``topic:`` leaf sources
with known answers, and unknown measures refused."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session

from assessment import rules
from assessment.inputs import co_governance_frame, leaf_inputs
from assessment.systems import describe_source
from assessment.vocabulary import AssessmentError, parse_source
from core.db import utcnow
from core.models import unit_by_code
from core.quarter import Quarter
from governance import ledgers
from governance import rules as gov_rules
from governance import services as gov
from tests.builders import COMMUNITY, compound, user


def _meeting(session: Session, unit_code: str, held_on: str) -> None:
    unit = unit_by_code(session, unit_code)
    raw = {
        "held_on": held_on,
        "attendees": "党委",
        "attendee_count": "5",
        "issues": "议题",
        "resolutions": "决定",
    }
    ledgers.create(session, user(session, "admin"), "meetings", unit, raw)


def test_ledger_and_topic_measures_per_community(session: Session) -> None:
    community = unit_by_code(session, COMMUNITY)
    assert community is not None
    _meeting(session, COMMUNITY, "2026-08-01")
    _meeting(session, COMMUNITY, "2026-09-30")
    _meeting(session, COMMUNITY, "2026-10-01")  # next quarter
    _meeting(session, compound(session).code, "2026-07-15")
    _meeting(session, "420102-S1", "2026-07-20")  # the street's meeting counts for each of its communities
    admin = user(session, "admin")
    member = ledgers.create(
        session,
        admin,
        "party_members",
        community,
        {"name": "李四", "work_unit": "区委", "registered_on": "2026-07-01"},
    )
    for hours in ("2", "3.5"):
        ledgers.create(
            session,
            admin,
            "party_services",
            None,
            {"member_id": str(member.id), "served_on": "2026-08-08", "service": "义诊", "hours": hours},
        )
    staff = user(session, "handler-community")
    adopted = gov.raise_topic(session, staff, community, "议题甲", "内容")
    gov.act(session, adopted.id, staff, gov_rules.StartDiscussion())
    gov.act(session, adopted.id, staff, gov_rules.RecordDecision("通过", True))
    gov.raise_topic(session, staff, community, "议题乙", "内容")  # still raised: not decided
    row = co_governance_frame(session, Quarter.of_utc(utcnow())).loc[community.id]
    q3 = co_governance_frame(session, "2026Q3").loc[community.id]
    assert (
        q3["ledger:meetings_community"],
        q3["ledger:meetings_compound"],
        q3["ledger:meetings_street"],
    ) == (2, 1, 1)
    assert (q3["ledger:party_members"], q3["ledger:party_hours"]) == (1, 5.5)
    # Topics raised before the quarter's end count (these were raised now, in the current quarter).
    assert row["topic:topics"] == 2 and row["topic:decided_share"] == 50.0
    assert row["topic:carried_out_share"] == 0.0 and math.isnan(row["topic:rating"])


def test_leaf_inputs_take_ledger_sources() -> None:
    import pandas as pd

    root = rules.Indicator("T", "总", children=[rules.Indicator("L1", "联席会议", rule=rules.Linear(0, 4))])
    co = pd.DataFrame({"ledger:meetings_community": [3.0]}, index=pd.Index([7], name="unit_id"))
    inputs = leaf_inputs(
        root, {"L1": "ledger:meetings_community"}, [7, 8], None, None, None, (1, 0, 0), co_governance=co
    )
    assert inputs.values.loc[7, "L1"] == 3.0 and math.isnan(inputs.values.loc[8, "L1"])


def test_unknown_measures_are_refused_and_sources_are_described() -> None:
    assert parse_source("topic:decided_share") == ("topic", "decided_share")
    with pytest.raises(AssessmentError):
        parse_source("ledger:nope")
    assert describe_source("ledger:party_hours") == "共治台帐：在职党员服务时长（小时）"


def test_xlsx_ledger_has_a_sheet_per_ledger_with_the_quarters_rows(app: object, session: Session) -> None:
    from openpyxl import Workbook

    from app.web.ledgers import add_co_governance_sheets

    _meeting(session, COMMUNITY, "2026-08-01")
    _meeting(session, COMMUNITY, "2026-11-01")
    book = Workbook()
    add_co_governance_sheets(book, Quarter.parse("2026Q3"))
    names = set(book.sheetnames)
    assert {f"台帐-{spec.label}" for spec in ledgers.LEDGERS.values()} <= names and "共治指标" in names
    meetings = list(book["台帐-联席会议"].iter_rows(values_only=True))
    assert meetings[0][2] == "会议日期" and [r[2] for r in meetings[1:]] == ["2026-08-01"]
