"""Co-governance services: residencies, topics through the five steps, ballots, comments, ratings.

Each service takes a Session and flushes; the caller commits. A step is snapshot → ``rules.decide`` →
apply: the topic row changes, a :class:`~governance.models.TopicStep` records who and when, an
the audit trail (``core.audit``) records the edit, and the resident of every linked case gets a
notice (delivered after the commit, see ``routing.notify``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit as core_audit
from core.db import DbSession, utcnow
from core.i18n import N_
from core.models import Level, Role, Unit, User
from governance import rules
from governance.models import (
    Ballot,
    Comment,
    Milestone,
    Project,
    Rating,
    Residency,
    Topic,
    TopicCase,
    TopicStep,
    Vote,
)
from governance.rules import Actor, GovernanceError, Stage, Tally, TopicSnapshot
from routing import notify
from routing.models import Case

TITLE_MAX = 120


def audit(
    session: DbSession, entity: str, entity_id: int, action: str, user: User | None, **values: Any
) -> None:
    """Record one edit of a co-governance record in the audit trail (flush only; no personal data)."""
    details = {"action": action, **{k: _plain(v) for k, v in values.items()}}
    core_audit.record(session, "governance.edit", user, entity, entity_id, details)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool | dict) else str(value)


# --- residents and places ----------------------------------------------------------------------


def community_of(unit: Unit) -> Unit:
    """The community a place belongs to (the unit itself for a community)."""
    if unit.level == Level.compound and unit.parent is not None:
        return unit.parent
    if unit.level != Level.community:
        raise GovernanceError("bad_place", N_("议题和居住地只能是社区或其下的小区/网格"), "place")
    return unit


def verified_home(session: DbSession, user: User | None) -> Unit | None:
    """The resident's confirmed home unit (compound or community), or None."""
    if user is None or user.role is not Role.resident:
        return None
    residency = session.scalar(select(Residency).where(Residency.user_id == user.id))
    return residency.unit if residency is not None and residency.verified_at is not None else None


def declare_home(session: DbSession, resident: User, place: Unit) -> Residency:
    """A resident says where they live (a compound or community); staff confirm it later."""
    if resident.role is not Role.resident or not resident.phone:
        raise GovernanceError("not_resident", N_("只有绑定手机号的居民账户可以登记居住地"))
    community_of(place)
    residency = session.scalar(select(Residency).where(Residency.user_id == resident.id))
    if residency is None:
        residency = Residency(user_id=resident.id, unit_id=place.id)
        session.add(residency)
    elif residency.unit_id != place.id:
        residency.unit_id, residency.verified_at, residency.verified_by_id = place.id, None, None
    session.flush()
    audit(session, "residency", residency.id, "declare", resident, unit_id=place.id)
    return residency


def verify_home(session: DbSession, residency_id: int, staff: User) -> Residency:
    """Community staff confirm a resident's declared home (makes them a verified resident of the place)."""
    residency = session.get(Residency, residency_id)
    if residency is None:
        raise GovernanceError("not_found", N_("居住登记不存在"))
    rules.check_staff(actor_of(session, staff), community_of(residency.unit).path)
    residency.verified_at, residency.verified_by_id = utcnow(), staff.id
    session.flush()
    audit(session, "residency", residency.id, "verify", staff, unit_id=residency.unit_id)
    return residency


def eligible_voters(session: DbSession, place: Unit) -> int:
    """Verified residents whose home lies in ``place`` (the place itself or its compounds)."""
    stmt = (
        select(func.count(Residency.id))
        .join(Unit, Unit.id == Residency.unit_id)
        .join(User, User.id == Residency.user_id)
        .where(
            Residency.verified_at.is_not(None),
            Unit.path.startswith(place.path, autoescape=True),
            User.active.is_(True),
            User.phone.is_not(None),
        )
    )
    return int(session.scalar(stmt) or 0)


def actor_of(session: DbSession, user: User | None) -> Actor:
    """The rules' view of a user (residents carry their verified home's path)."""
    if user is None:
        return rules.SYSTEM_ACTOR
    home = verified_home(session, user)
    return Actor(user.id, user.role, user.unit_id, home.path if home is not None else None)


# --- topics -------------------------------------------------------------------------------------


def snapshot(topic: Topic) -> TopicSnapshot:
    """What the rules need to know about ``topic``."""
    vote = topic.vote
    return TopicSnapshot(
        stage=Stage(topic.stage),
        community_path=topic.community.path,
        place_path=topic.place.path,
        closed=topic.closed_at is not None,
        outcome=rules.Outcome(topic.outcome) if topic.outcome else None,
        vote_open=vote is not None and vote.closed_at is None,
        vote_closes_at=vote.closes_at if vote is not None else None,
        progress=topic.project.progress if topic.project is not None else None,
        ratings=len(topic.ratings),
        evaluation_closes_at=topic.evaluation_closes_at,
    )


def raise_topic(
    session: DbSession,
    user: User,
    place: Unit,
    title: str,
    description: str,
    origin: str | None = None,
    case_ids: Sequence[int] = (),
) -> Topic:
    """Raise a topic (民事民提): a resident online, or staff on residents' behalf / from a case cluster."""
    community = community_of(place)
    clean = (title or "").strip()
    if not clean:
        raise GovernanceError("missing_text", N_("请填写议题标题"), "title")
    if len(clean) > TITLE_MAX:
        raise GovernanceError("too_long", f"议题标题过长（最多 {TITLE_MAX} 个字）", "title")
    text = (description or "").strip()
    if not text:
        raise GovernanceError("missing_text", N_("请说明议题的内容"), "description")
    if len(text) > 4000:
        raise GovernanceError("too_long", N_("议题内容过长（最多 4000 个字）"), "description")
    if user.role is Role.resident:
        if not user.phone:
            raise GovernanceError("not_resident", N_("请先在账户中绑定手机号再提出议题"))
        origin = "resident"
    else:
        rules.check_staff(actor_of(session, user), community.path)
        origin = origin if origin in ("staff", "cluster") else "staff"
    topic = Topic(
        community_id=community.id,
        place_id=place.id,
        community=community,
        place=place,
        title=clean,
        description=text,
        stage=Stage.raise_.value,
        origin=origin,
        raised_by_id=user.id,
        created_at=utcnow(),
    )
    session.add(topic)
    session.flush()
    session.add(
        TopicStep(
            topic_id=topic.id,
            action="raise",
            from_stage=None,
            to_stage=Stage.raise_.value,
            actor_id=user.id,
            actor_role=user.role.value,
            actor_unit_id=user.unit_id,
            note="",
            details={"origin": origin},
            created_at=utcnow(),
        )
    )
    audit(session, "topic", topic.id, "raise", user, title=clean, place_id=place.id, origin=origin)
    for case_id in case_ids:
        link_case(session, topic, case_id, user, notify_resident=False)
    session.flush()
    return topic


def link_case(
    session: DbSession, topic: Topic, case_id: int, user: User, notify_resident: bool = True
) -> TopicCase:
    """Link a case of the topic's community to it (staff); its resident follows the topic from now on."""
    if user.role is not Role.resident or topic.raised_by_id != user.id:
        rules.check_staff(actor_of(session, user), topic.community.path)
    case = session.get(Case, case_id)
    if case is None or case.community_id != topic.community_id:
        raise GovernanceError("bad_case", N_("只能关联本社区的诉求"), "case")
    if user.role is Role.resident and case.resident_id != user.id:
        raise GovernanceError("bad_case", N_("只能关联本人提交的诉求"), "case")
    existing = session.scalar(
        select(TopicCase).where(TopicCase.topic_id == topic.id, TopicCase.case_id == case.id)
    )
    if existing is not None:
        return existing
    link = TopicCase(topic_id=topic.id, case_id=case.id, linked_by_id=user.id, created_at=utcnow())
    session.add(link)
    session.flush()
    audit(session, "topic", topic.id, "link_case", user, case_id=case.id)
    if notify_resident:
        notify.send(
            cast(Session, session),
            "resident",
            case.resident_id,
            case,
            f"您的诉求已纳入社区议题「{topic.title}」，可在诉求进度页查看议事进展。",
        )
    return link


def linked_cases(session: DbSession, topic: Topic) -> list[Case]:
    """The cases linked to a topic, oldest first."""
    stmt = select(Case).join(TopicCase, TopicCase.case_id == Case.id).where(TopicCase.topic_id == topic.id)
    return list(session.scalars(stmt.order_by(Case.id)))


def topics_of_case(session: DbSession, case: Case) -> list[Topic]:
    """The topics a case is linked to (its status page shows them)."""
    stmt = select(Topic).join(TopicCase, TopicCase.topic_id == Topic.id).where(TopicCase.case_id == case.id)
    return list(session.scalars(stmt.order_by(Topic.id)))


def _lock(session: DbSession, topic_id: int) -> Topic:
    topic = session.get(Topic, topic_id, with_for_update=True)
    if topic is None:
        raise GovernanceError("not_found", N_("议题不存在"))
    return topic


def act(
    session: DbSession, topic_id: int, user: User | None, command: rules.Command, now: datetime | None = None
) -> Topic:
    """One step of a topic: snapshot → decide → apply, recorded and audited; linked residents notified."""
    now = now or utcnow()
    topic = _lock(session, topic_id)
    if isinstance(command, rules.CloseVote):
        raise GovernanceError("internal", N_("请使用结束表决功能"))
    transition = rules.decide(snapshot(topic), command, actor_of(session, user), now)
    _apply(session, topic, transition, command, user, now)
    return topic


def close_vote(session: DbSession, topic_id: int, user: User | None, now: datetime | None = None) -> Topic:
    """Close a vote at its deadline: count the ballots once, freeze and publish the tally."""
    now = now or utcnow()
    topic = _lock(session, topic_id)
    vote = topic.vote
    if vote is None or vote.closed_at is not None:
        raise GovernanceError("no_vote", N_("该议题没有进行中的表决"))
    counts = dict(
        session.execute(
            select(Ballot.choice, func.count(Ballot.id))
            .where(Ballot.vote_id == vote.id)
            .group_by(Ballot.choice)
        ).all()
    )
    tally = Tally(
        counts.get("yes", 0), counts.get("no", 0), counts.get("abstain", 0), vote.quorum, vote.majority
    )
    transition = rules.decide(snapshot(topic), rules.CloseVote(tally), actor_of(session, user), now)
    _apply(session, topic, transition, rules.CloseVote(tally), user, now)
    return topic


def close_due_votes(session: DbSession, now: datetime | None = None) -> int:
    """Close every vote whose deadline has passed (the sweeper); returns how many closed."""
    now = now or utcnow()
    due = session.scalars(select(Vote.topic_id).where(Vote.closed_at.is_(None), Vote.closes_at <= now)).all()
    for topic_id in due:
        close_vote(session, topic_id, None, now)
    return len(due)


def _apply(
    session: DbSession,
    topic: Topic,
    transition: rules.Transition,
    command: Any,
    user: User | None,
    now: datetime,
) -> None:
    before, after = transition.before, transition.after
    if isinstance(command, rules.OpenVote):
        session.add(
            Vote(
                topic_id=topic.id,
                quorum=command.quorum,
                majority=command.majority,
                eligible=command.eligible,
                opened_at=now,
                closes_at=command.closes_at,
            )
        )
        topic.decision_method = "vote"
    elif isinstance(command, rules.CloseVote):
        vote = topic.vote
        assert vote is not None
        vote.yes, vote.no, vote.abstain = command.tally.yes, command.tally.no, command.tally.abstain
        vote.result, vote.closed_at = command.tally.result.value, now
    elif isinstance(command, rules.RecordDecision):
        topic.decision_method, topic.decision_text = "meeting", transition.note
        session.add(
            Comment(
                topic_id=topic.id,
                author_id=user.id if user else None,
                kind="minutes",
                body=transition.note,
                created_at=now,
            )
        )
    elif isinstance(command, rules.StartProject):
        details = transition.details
        project = Project(
            topic_id=topic.id,
            owner=details["owner"],
            budget=command.budget,
            funding=[list(share) for share in details["funding"]],
            progress=0,
            started_at=now,
        )
        project.milestones = [Milestone(position=i, title=t) for i, t in enumerate(details["milestones"])]
        session.add(project)
    elif isinstance(command, rules.ReportProgress):
        assert topic.project is not None
        topic.project.progress = transition.details["progress"]
    elif isinstance(command, rules.FinishProject):
        assert topic.project is not None
        topic.project.finished_at = now
        topic.evaluation_closes_at = command.closes_at
    topic.stage = after.stage.value
    topic.outcome = after.outcome.value if after.outcome is not None else None
    if after.closed and topic.closed_at is None:
        topic.closed_at = now
    topic.updated_at = now
    session.add(
        TopicStep(
            topic_id=topic.id,
            action=transition.action.value,
            from_stage=before.stage.value,
            to_stage=after.stage.value,
            actor_id=user.id if user else None,
            actor_role=user.role.value if user else "system",
            actor_unit_id=user.unit_id if user else None,
            note=transition.note,
            details=transition.details,
            created_at=now,
        )
    )
    audit(session, "topic", topic.id, transition.action.value, user, **transition.details)
    session.flush()
    session.refresh(topic)
    if after.stage != before.stage or after.closed != before.closed:
        _notify_followers(session, topic, after)


def _notify_followers(session: DbSession, topic: Topic, after: TopicSnapshot) -> None:
    if after.closed:
        message = f"您关注的社区议题「{topic.title}」已结束（{after.stage.label}）。"
    else:
        message = f"您关注的社区议题「{topic.title}」进入「{after.stage.label}」阶段。"
    for case in linked_cases(session, topic):
        notify.send(cast(Session, session), "resident", case.resident_id, case, message)


# --- residents' part -----------------------------------------------------------------------------


def cast_ballot(
    session: DbSession, topic_id: int, user: User, choice: str, now: datetime | None = None
) -> Ballot:
    """A verified resident of the place votes once, before the deadline (the unique key backs the rule)."""
    now = now or utcnow()
    topic = _lock(session, topic_id)
    try:
        picked = rules.Choice(choice)
    except ValueError:
        raise GovernanceError("bad_choice", N_("请选择同意、不同意或弃权"), "choice") from None
    vote = topic.vote
    voted = (
        vote is not None
        and session.scalar(select(Ballot.id).where(Ballot.vote_id == vote.id, Ballot.voter_id == user.id))
        is not None
    )
    rules.check_ballot(snapshot(topic), actor_of(session, user), now, voted)
    assert vote is not None
    ballot = Ballot(vote_id=vote.id, voter_id=user.id, choice=picked.value, cast_at=now)
    session.add(ballot)
    session.flush()
    audit(session, "vote", vote.id, "ballot", user)  # the choice stays secret in the audit trail
    return ballot


def rate(
    session: DbSession, topic_id: int, user: User, score: Any, comment: str = "", now: datetime | None = None
) -> Rating:
    """A verified resident of the place rates the carried-out topic once (民事民评)."""
    now = now or utcnow()
    topic = _lock(session, topic_id)
    rated = (
        session.scalar(select(Rating.id).where(Rating.topic_id == topic.id, Rating.resident_id == user.id))
        is not None
    )
    value = rules.check_rating(snapshot(topic), actor_of(session, user), now, rated, score)
    text = (comment or "").strip()
    if len(text) > 1000:
        raise GovernanceError("too_long", N_("评价内容过长（最多 1000 个字）"), "comment")
    rating = Rating(topic_id=topic.id, resident_id=user.id, score=value, comment=text, created_at=now)
    session.add(rating)
    session.flush()
    session.expire(topic, ["ratings"])
    audit(session, "topic", topic.id, "rate", user, score=value)
    return rating


def add_comment(session: DbSession, topic_id: int, user: User, body: str, kind: str = "comment") -> Comment:
    """A comment (residents, staff) or meeting minutes (staff only) on an open topic."""
    topic = session.get(Topic, topic_id)
    if topic is None:
        raise GovernanceError("not_found", N_("议题不存在"))
    actor = actor_of(session, user)
    snap = snapshot(topic)
    if not rules.may_comment(snap, actor):
        raise GovernanceError("closed", N_("该议题已结束或您无权发言"))
    if kind == "minutes":
        rules.check_staff(actor, topic.community.path)
    text = (body or "").strip()
    if not text:
        raise GovernanceError("missing_text", N_("请填写内容"), "body")
    if len(text) > 4000:
        raise GovernanceError("too_long", N_("内容过长（最多 4000 个字）"), "body")
    comment = Comment(
        topic_id=topic.id,
        author_id=user.id,
        kind="minutes" if kind == "minutes" else "comment",
        body=text,
        created_at=utcnow(),
    )
    session.add(comment)
    session.flush()
    audit(session, "comment", comment.id, "add", user, topic_id=topic.id, kind=comment.kind)
    return comment


def hide_comment(session: DbSession, comment_id: int, staff: User, reason: str) -> Comment:
    """Moderation by the community: hide a comment with a reason (kept, audited, not shown)."""
    comment = session.get(Comment, comment_id)
    if comment is None:
        raise GovernanceError("not_found", N_("留言不存在"))
    topic = session.get(Topic, comment.topic_id)
    assert topic is not None
    rules.check_staff(actor_of(session, staff), topic.community.path)
    text = (reason or "").strip()
    if not text:
        raise GovernanceError("missing_text", N_("请填写隐藏理由"), "reason")
    comment.hidden, comment.hidden_by_id, comment.hidden_reason = True, staff.id, text[:200]
    session.flush()
    audit(session, "comment", comment.id, "hide", staff, reason=text[:200])
    return comment


@dataclass(frozen=True)
class Evaluation:
    """A topic's evaluation: how many rated and the mean score."""

    count: int
    mean: float | None


def evaluation(topic: Topic) -> Evaluation:
    """The residents' ratings of a topic."""
    scores = [r.score for r in topic.ratings]
    return Evaluation(len(scores), round(sum(scores) / len(scores), 2) if scores else None)


def topics_in(
    session: DbSession, unit: Unit | None = None, stage: str | None = None, limit: int = 200
) -> list[Topic]:
    """Topics of a unit's subtree (all when None), newest first, optionally at one stage."""
    stmt = select(Topic).join(Unit, Unit.id == Topic.place_id)
    if unit is not None:
        stmt = stmt.where(Unit.path.startswith(unit.path, autoescape=True))
    if stage:
        stmt = stmt.where(Topic.stage == stage)
    return list(session.scalars(stmt.order_by(Topic.id.desc()).limit(limit)))
