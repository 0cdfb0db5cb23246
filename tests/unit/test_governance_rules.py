"""The five-step state machine and the ballot / rating rules, with known answers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.models import Role
from governance import rules
from governance.rules import Action, Actor, GovernanceError, Outcome, Stage, Tally, TopicSnapshot

NOW = datetime(2026, 9, 1, 8, 0)
COMMUNITY = "/1/2/3/4/"
COMPOUND = "/1/2/3/4/9/"
STAFF = Actor(10, Role.handler, unit_id=4)
STREET = Actor(11, Role.dispatcher, unit_id=3)
OTHER = Actor(12, Role.handler, unit_id=5)
RESIDENT = Actor(20, Role.resident, home_unit_path=COMPOUND)
ELSEWHERE = Actor(21, Role.resident, home_unit_path="/1/2/3/5/")
UNVERIFIED = Actor(22, Role.resident)


def snap(stage: Stage = Stage.raise_, **kw: object) -> TopicSnapshot:
    return TopicSnapshot(stage=stage, community_path=COMMUNITY, place_path=COMPOUND, **kw)  # type: ignore[arg-type]


def test_tally_quorum_and_majority() -> None:
    assert Tally(yes=2, no=0, quorum=3).result is Outcome.no_quorum
    assert Tally(yes=2, no=1, abstain=0, quorum=3).result is Outcome.adopted
    assert Tally(yes=2, no=2, quorum=3).result is Outcome.rejected  # half is not more than half
    assert Tally(yes=1, no=0, abstain=5, quorum=3).result is Outcome.adopted  # abstentions count for quorum
    assert Tally(yes=6, no=4, quorum=1, majority=2 / 3).result is Outcome.rejected
    assert Tally(yes=7, no=3, quorum=1, majority=2 / 3).result is Outcome.adopted
    assert Tally(abstain=3, quorum=3).result is Outcome.rejected


def test_five_steps_in_order_by_community_staff() -> None:
    s = rules.decide(snap(), rules.StartDiscussion(), STAFF, NOW).after
    assert s.stage is Stage.discuss
    vote = rules.OpenVote(closes_at=NOW + timedelta(days=3), quorum=2, eligible=5)
    s = rules.decide(s, vote, STAFF, NOW).after
    assert (s.stage, s.vote_open) == (Stage.decide, True)
    with pytest.raises(GovernanceError) as early:
        rules.decide(s, rules.CloseVote(Tally(yes=2, quorum=2)), STAFF, NOW)
    assert early.value.code == "vote_running"
    later = NOW + timedelta(days=3)
    s = rules.decide(s, rules.CloseVote(Tally(yes=2, quorum=2)), rules.SYSTEM_ACTOR, later).after
    assert (s.outcome, s.vote_open, s.closed) == (Outcome.adopted, False, False)
    s = rules.decide(
        s, rules.StartProject("业委会", 1000, (("居民自筹", 400), ("社区", 600))), STAFF, later
    ).after
    assert (s.stage, s.progress) == (Stage.carry_out, 0)
    assert Action.finish_project not in rules.allowed_actions(s, STAFF, later)
    s = rules.decide(s, rules.ReportProgress(100), STAFF, later).after
    assert Action.finish_project in rules.allowed_actions(s, STAFF, later)
    s = rules.decide(s, rules.FinishProject(closes_at=later + timedelta(days=7)), STAFF, later).after
    assert s.stage is Stage.evaluate
    with pytest.raises(GovernanceError):
        rules.decide(s, rules.CloseEvaluation(), STAFF, later)  # no ratings yet
    s = rules.decide(
        TopicSnapshot(**{**s.__dict__, "ratings": 3}), rules.CloseEvaluation(), STAFF, later
    ).after
    assert s.closed


def test_street_staff_may_act_other_communities_and_residents_may_not() -> None:
    assert rules.allowed_actions(snap(), STREET, NOW) == [Action.start_discussion]
    for actor in (OTHER, RESIDENT):
        assert rules.allowed_actions(snap(), actor, NOW) == []
        with pytest.raises(GovernanceError) as refused:
            rules.decide(snap(), rules.StartDiscussion(), actor, NOW)
        assert refused.value.code == "out_of_scope"


def test_allowed_actions_match_decide_per_stage() -> None:
    discuss = snap(Stage.discuss)
    assert set(rules.allowed_actions(discuss, STAFF, NOW)) == {Action.open_vote, Action.record_decision}
    rejected = rules.decide(discuss, rules.RecordDecision("会议决定暂缓", adopted=False), STAFF, NOW).after
    assert rejected.closed and rules.allowed_actions(rejected, STAFF, NOW) == []


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (rules.OpenVote(closes_at=NOW, quorum=1, eligible=3), "bad_deadline"),
        (rules.OpenVote(closes_at=NOW + timedelta(hours=1), quorum=0, eligible=3), "bad_quorum"),
        (rules.OpenVote(closes_at=NOW + timedelta(hours=1), quorum=4, eligible=3), "bad_quorum"),
        (rules.OpenVote(closes_at=NOW + timedelta(hours=1), quorum=1, eligible=0), "no_voters"),
        (
            rules.OpenVote(closes_at=NOW + timedelta(hours=1), quorum=1, majority=1.0, eligible=3),
            "bad_majority",
        ),
        (rules.RecordDecision("  ", adopted=True), "missing_text"),
    ],
)
def test_bad_decision_payloads_are_refused(command: rules.Command, code: str) -> None:
    with pytest.raises(GovernanceError) as refused:
        rules.decide(snap(Stage.discuss), command, STAFF, NOW)
    assert refused.value.code == code


@pytest.mark.parametrize("value", [140, -1, 50.5, "50", True])
def test_progress_outside_0_to_100_is_refused(value: object) -> None:
    carrying = snap(Stage.carry_out, outcome=Outcome.adopted, progress=10)
    with pytest.raises(GovernanceError) as refused:
        rules.decide(carrying, rules.ReportProgress(value), STAFF, NOW)  # type: ignore[arg-type]
    assert refused.value.code == "bad_progress"


def test_funding_beyond_budget_is_refused() -> None:
    adopted = snap(Stage.decide, outcome=Outcome.adopted)
    with pytest.raises(GovernanceError) as refused:
        rules.decide(adopted, rules.StartProject("物业", 100, (("社区", 80), ("居民", 30))), STAFF, NOW)
    assert refused.value.code == "bad_funding"
    with pytest.raises(GovernanceError):
        rules.decide(snap(Stage.decide, outcome=Outcome.rejected), rules.StartProject("x", 1), STAFF, NOW)


def test_ballot_only_by_verified_residents_of_the_place_once_before_the_deadline() -> None:
    voting = snap(Stage.decide, vote_open=True, vote_closes_at=NOW + timedelta(hours=1))
    rules.check_ballot(voting, RESIDENT, NOW, already_voted=False)
    cases = [
        (RESIDENT, NOW, True, "already_voted"),
        (RESIDENT, NOW + timedelta(hours=1), False, "vote_closed"),
        (ELSEWHERE, NOW, False, "not_resident"),
        (UNVERIFIED, NOW, False, "not_verified"),
        (STAFF, NOW, False, "role_forbidden"),
    ]
    for actor, at, voted, code in cases:
        with pytest.raises(GovernanceError) as refused:
            rules.check_ballot(voting, actor, at, voted)
        assert refused.value.code == code, (actor, code)


def test_rating_is_1_to_5_once_in_the_evaluation() -> None:
    evaluating = snap(Stage.evaluate, evaluation_closes_at=NOW + timedelta(days=1))
    assert rules.check_rating(evaluating, RESIDENT, NOW, False, 5) == 5
    for score, rated, code in ((6, False, "bad_score"), (0, False, "bad_score"), (4, True, "already_rated")):
        with pytest.raises(GovernanceError) as refused:
            rules.check_rating(evaluating, RESIDENT, NOW, rated, score)
        assert refused.value.code == code
    with pytest.raises(GovernanceError):
        rules.check_rating(snap(Stage.carry_out), RESIDENT, NOW, False, 4)


def test_similar_case_texts_cluster_and_unrelated_ones_do_not() -> None:
    from governance.clusters import bigrams, groups, similarity

    texts = [
        "小区电梯经常停运，老人上下楼困难",
        "电梯又停运了，老人上下楼很困难",
        "晚上广场舞音响太吵",
        "3栋电梯经常停运，上下楼困难",
    ]
    assert groups(texts, 0.2) == [[0, 1, 3], [2]]
    assert similarity(bigrams("电梯停运"), bigrams("电梯停运")) == 1.0
    assert similarity(bigrams(""), bigrams("")) == 0.0
