"""JSON API v1: co-governance topics (五步议事), public like the topic pages; linked cases appear as
tracking numbers only."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask_babel import gettext as _
from sqlalchemy import select

from app.api import bp
from app.errors import api_error
from app.extensions import db
from core.models import Unit
from governance import services as gov
from governance.models import Topic
from governance.rules import OUTCOME_LABELS, STAGE_LABELS, Stage

MAX_LIMIT = 200


def _iso(moment: Any) -> str | None:
    return moment.isoformat() + "Z" if moment is not None else None


def topic_json(topic: Topic, full: bool) -> dict[str, Any]:
    """A topic as the API shows it: stage, place, tally (once published), progress, evaluation."""
    vote = topic.vote
    project = topic.project
    evaluation = gov.evaluation(topic)
    data: dict[str, Any] = {
        "id": topic.id,
        "title": topic.title,
        "stage": topic.stage,
        "stage_label": STAGE_LABELS[Stage(topic.stage)],
        "closed": topic.closed_at is not None,
        "community": topic.community.code,
        "place": topic.place.code,
        "outcome": topic.outcome,
        "progress": project.progress if project is not None else None,
        "created_at": _iso(topic.created_at),
    }
    if full:
        closed = vote is not None and vote.closed_at is not None
        data.update(
            {
                "description": topic.description,
                "origin": topic.origin,
                "decision_method": topic.decision_method,
                "outcome_label": OUTCOME_LABELS.get(topic.outcome) if topic.outcome else None,  # type: ignore[call-overload]
                "linked_cases": [c.tracking_number for c in gov.linked_cases(db.session, topic)],
                "vote": None
                if vote is None
                else {
                    "quorum": vote.quorum,
                    "majority": vote.majority,
                    "eligible": vote.eligible,
                    "closes_at": _iso(vote.closes_at),
                    "closed": closed,
                    # The tally is published (and frozen) only once the vote has closed.
                    "tally": {"yes": vote.yes, "no": vote.no, "abstain": vote.abstain} if closed else None,
                    "result": vote.result,
                },
                "project": None
                if project is None
                else {
                    "owner": project.owner,
                    "budget": project.budget,
                    "funding": [{"source": s, "amount": a} for s, a in project.funding],
                    "progress": project.progress,
                    "milestones": [m.title for m in project.milestones],
                    "finished_at": _iso(project.finished_at),
                },
                "evaluation": {"ratings": evaluation.count, "mean": evaluation.mean},
                "steps": [
                    {"action": s.action, "from": s.from_stage, "to": s.to_stage, "at": _iso(s.created_at)}
                    for s in topic.steps
                ],
            }
        )
    return data


@bp.get("/topics")
def list_topics() -> Any:
    """Topics, newest first; filters ``community`` (a unit code: its subtree) and ``stage``; ``limit``."""
    errors = []
    stage = request.args.get("stage") or None
    if stage is not None and stage not in {s.value for s in Stage}:
        errors.append(
            {
                "field": "stage",
                "code": "invalid",
                "message": _("阶段应为 raise、discuss、decide、carry_out 或 evaluate"),
            }
        )
    community = None
    code = request.args.get("community")
    if code:
        community = db.session.scalar(select(Unit).where(Unit.code == code))
        if community is None:
            errors.append({"field": "community", "code": "unknown", "message": _("社区不存在")})
    raw_limit = request.args.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        errors.append({"field": "limit", "code": "invalid", "message": _("limit 应为 1 到 200 之间的整数")})
    if errors:
        return api_error(422, errors)
    found = gov.topics_in(db.session, community, stage, limit=int(raw_limit))
    return jsonify([topic_json(t, full=False) for t in found])


@bp.get("/topics/<int:topic_id>")
def get_topic(topic_id: int) -> Any:
    """One topic with its linked cases (tracking numbers), vote tally, project progress and evaluation."""
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        return api_error(404)
    return jsonify(topic_json(topic, full=True))
