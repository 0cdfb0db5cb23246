"""Integrity of the open community link: per-device and per-address limits, bursts held for review.

Policy (all numbers are :class:`Limits`, set by configuration):
- within a sliding window (default 24 h) a device (a random cookie) may store at most ``per_device``
  answers and a network address at most ``per_address`` (a community centre's Wi-Fi is shared, so the
  address limit is the looser one); beyond that the answer is refused and the refusal counted;
- a burst — ``burst_count`` answers from one address or one device within ``burst_seconds`` — is held:
  the answer that completes it and the earlier answers of the burst still counted become ``held``, out of
  every result until an evaluator accepts them (or excludes them for good).
Devices and addresses are HMAC-SHA256 keyed with the instance secret and the survey's salt, never the
raw IP or cookie; closing the survey clears them. Panel tokens, paper questionnaires and the contact
check are not affected (they have their own one-answer rules).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from core.db import utcnow
from core.i18n import N_
from core.models import User
from surveys.definitions import SurveyError
from surveys.models import ResponseStatus, Survey, SurveyResponse, SurveySubmission

HOLD_REASONS = {
    "burst_address": N_("同一网络地址短时间内集中提交"),
    "burst_device": N_("同一设备短时间内集中提交"),
}
REFUSALS = {
    "refused_device": N_("超出每台设备的提交上限，未保存"),
    "refused_address": N_("超出每个网络地址的提交上限，未保存"),
}
EXCLUDED_BY_EVALUATOR = N_("考评员排除")


@dataclass(frozen=True)
class Limits:
    """How many open-link answers a device and an address may give, and what counts as a burst."""

    window_seconds: int = 86400
    per_device: int = 3
    per_address: int = 50
    burst_seconds: int = 600
    burst_count: int = 5

    def __post_init__(self) -> None:
        if min(self.window_seconds, self.per_device, self.per_address, self.burst_seconds) < 1:
            raise ValueError("survey limits must be positive")
        if self.burst_count < 2:
            raise ValueError("a burst needs at least 2 answers")


@dataclass(frozen=True)
class Client:
    """The keyed hashes of one submitter (either may be missing)."""

    device: str | None = None
    address: str | None = None


class LimitReached(SurveyError):
    """The device or address has used up its answers for now; ``outcome`` names which limit."""

    def __init__(self, outcome: str) -> None:
        super().__init__(
            "rate_limited",
            N_("提交次数过多，请稍后再试。每台设备、每个网络地址在一段时间内只能提交有限份问卷。"),
        )
        self.outcome = outcome


def client_hash(secret: str, survey: Survey, value: str) -> str:
    """HMAC-SHA256 of a device id or address, keyed with the instance secret and the survey's salt."""
    key = f"survey-client:{secret}:{survey.salt}".encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _count(session: Session, survey: Survey, column: Any, value: str, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(SurveySubmission)
            .where(
                SurveySubmission.survey_id == survey.id,
                SurveySubmission.outcome == "stored",
                column == value,
                SurveySubmission.submitted_at >= since,
            )
        )
        or 0
    )


def _serialise(session: Session, survey: Survey, client: Client) -> None:
    """On PostgreSQL, let one submission per device and per address count-and-store at a time.

    Transaction-level advisory locks keyed by (survey, hash prefix), taken in a fixed order, so two
    simultaneous answers from one address cannot both pass the count; SQLite writes one at a time anyway.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for value in sorted(v for v in (client.device, client.address) if v):
        key = int(value[:8], 16) - 2**31  # a signed 32-bit int from the hex digest
        session.execute(
            text("SELECT pg_advisory_xact_lock(:survey, :key)"), {"survey": survey.id, "key": key}
        )


def admit(
    session: Session, survey: Survey, client: Client, limits: Limits, now: datetime | None = None
) -> str:
    """Check the limits before an answer is stored: raise :class:`LimitReached`, or return the hold
    reason ("" when the answer counts straight away)."""
    now = now or utcnow()
    _serialise(session, survey, client)
    window = now - timedelta(seconds=limits.window_seconds)
    burst = now - timedelta(seconds=limits.burst_seconds)
    checks = (
        ("device", SurveySubmission.device_hash, client.device, limits.per_device),
        ("address", SurveySubmission.address_hash, client.address, limits.per_address),
    )
    reason = ""
    for what, column, value, limit in checks:
        if not value:
            continue
        if _count(session, survey, column, value, window) >= limit:
            raise LimitReached(f"refused_{what}")
        if not reason and _count(session, survey, column, value, burst) + 1 >= limits.burst_count:
            reason = f"burst_{what}"
    return reason


def record(
    session: Session,
    survey: Survey,
    client: Client,
    response: SurveyResponse,
    reason: str,
    limits: Limits,
    now: datetime | None = None,
) -> None:
    """Record a stored answer; when it completes a burst, hold it and the burst's earlier counted answers."""
    now = now or utcnow()
    session.add(
        SurveySubmission(
            survey_id=survey.id,
            response_id=response.id,
            device_hash=client.device,
            address_hash=client.address,
            outcome="stored",
            submitted_at=now,
        )
    )
    if reason:
        response.status, response.hold_reason = ResponseStatus.held, reason
        column = SurveySubmission.address_hash if reason == "burst_address" else SurveySubmission.device_hash
        value = client.address if reason == "burst_address" else client.device
        earlier = select(SurveySubmission.response_id).where(
            SurveySubmission.survey_id == survey.id,
            column == value,
            SurveySubmission.submitted_at >= now - timedelta(seconds=limits.burst_seconds),
            SurveySubmission.response_id.is_not(None),
        )
        session.execute(
            update(SurveyResponse)
            .where(SurveyResponse.id.in_(earlier), SurveyResponse.status == ResponseStatus.accepted)
            .values(status=ResponseStatus.held, hold_reason=reason)
            .execution_options(synchronize_session=False)
        )
    session.flush()


def record_refusal(
    session: Session, survey: Survey, client: Client, outcome: str, now: datetime | None = None
) -> None:
    """Count a refused submission (no answers are kept), so the results can say how many were refused."""
    if outcome not in REFUSALS:
        raise ValueError(f"unknown refusal {outcome}")
    session.add(
        SurveySubmission(
            survey_id=survey.id,
            device_hash=client.device,
            address_hash=client.address,
            outcome=outcome,
            submitted_at=now or utcnow(),
        )
    )
    session.flush()


def forget_clients(session: Session, survey: Survey) -> None:
    """Clear the device and address hashes of a survey (on close: the limits are no longer needed)."""
    session.execute(
        update(SurveySubmission)
        .where(SurveySubmission.survey_id == survey.id)
        .values(device_hash=None, address_hash=None)
    )
    session.flush()


DECISIONS = {"accept": ResponseStatus.accepted, "exclude": ResponseStatus.excluded}


def decide(
    session: Session, survey: Survey, response_ids: Sequence[int], decision: str, user: User | None
) -> int:
    """Accept or exclude held (or earlier decided) open-link answers of a survey; returns how many changed."""
    if decision not in DECISIONS:
        raise SurveyError("bad_decision", N_("请选择计入或排除"), "decision")
    if not response_ids:
        raise SurveyError("nothing_selected", N_("请至少选择一份答卷"), "responses")
    target = DECISIONS[decision]
    rows = session.scalars(
        select(SurveyResponse).where(
            SurveyResponse.survey_id == survey.id,
            SurveyResponse.id.in_(list(response_ids)),
            or_(SurveyResponse.hold_reason != "", SurveyResponse.status != ResponseStatus.accepted),
        )
    ).all()
    changed = 0
    for response in rows:
        if response.status == target:
            continue
        response.status, response.decided_at = target, utcnow()
        response.decided_by = user.id if user else None
        if target == ResponseStatus.excluded and not response.hold_reason:
            response.hold_reason = "evaluator"
        changed += 1
    session.flush()
    return changed


def reviewable(session: Session, survey: Survey, limit: int = 500) -> list[SurveyResponse]:
    """Held answers first, then decided ones (accepted after review or excluded), newest first."""
    order = (SurveyResponse.status != ResponseStatus.held, SurveyResponse.submitted_at.desc())
    return list(
        session.scalars(
            select(SurveyResponse)
            .where(
                SurveyResponse.survey_id == survey.id,
                or_(SurveyResponse.hold_reason != "", SurveyResponse.status != ResponseStatus.accepted),
            )
            .order_by(*order)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Exclusions:
    """Answers left out of a set of surveys' results, by why."""

    held: dict[str, int]
    excluded: dict[str, int]
    refused: dict[str, int]

    @property
    def total(self) -> int:
        """Held plus excluded answers (refused ones were never stored)."""
        return sum(self.held.values()) + sum(self.excluded.values())


def reason_label(reason: str) -> str:
    """The Chinese label of a hold, exclusion or refusal reason."""
    return {**HOLD_REASONS, **REFUSALS, "evaluator": EXCLUDED_BY_EVALUATOR}.get(reason, reason)


def exclusions(session: Session, survey_ids: Sequence[int]) -> Exclusions:
    """How many answers of these surveys are held, excluded (by reason) and refused (by limit)."""
    held: dict[str, int] = {}
    excluded: dict[str, int] = {}
    refused: dict[str, int] = {}
    if not survey_ids:
        return Exclusions(held, excluded, refused)
    rows = session.execute(
        select(SurveyResponse.status, SurveyResponse.hold_reason, func.count())
        .where(
            SurveyResponse.survey_id.in_(list(survey_ids)), SurveyResponse.status != ResponseStatus.accepted
        )
        .group_by(SurveyResponse.status, SurveyResponse.hold_reason)
    ).all()
    for status, reason, n in rows:
        (held if status == ResponseStatus.held else excluded)[reason or "evaluator"] = int(n)
    for outcome, n in session.execute(
        select(SurveySubmission.outcome, func.count())
        .where(SurveySubmission.survey_id.in_(list(survey_ids)), SurveySubmission.outcome != "stored")
        .group_by(SurveySubmission.outcome)
    ):
        refused[outcome] = int(n)
    return Exclusions(held, excluded, refused)
