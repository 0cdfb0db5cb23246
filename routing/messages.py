"""Messages outside the app: which SMS and e-mail an event sends, their texts, and the delivery log.

:func:`plan` runs inside the action's transaction (called by :func:`routing.notify.send`): it writes one
:class:`MessageDelivery` row per message, so the log is the outbox and nothing is sent for a rolled-back
action. After the commit each row becomes one job (``app.messaging.deliver``) that renders the text,
calls the channel (HTTP SMS gateway, SMTP) and records the outcome with :func:`record`.

Residents are reached by SMS at the case's contact phone, only when they opted in at intake (with or
without an account); staff by e-mail, every active user of the unit who has an address. Texts carry
the tracking number and a link, never a name or a phone number; the log keeps the recipient masked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, and_, event, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, utcnow
from core.i18n import N_
from core.models import User
from core.privacy import mask_phone
from routing.models import Case

SMS, EMAIL = "sms", "email"
CHANNELS = (SMS, EMAIL)
# Resident events (SMS) and staff events (e-mail).
RESIDENT_EVENTS = ("accepted", "dispatched", "resolved", "reopened")
STAFF_EVENTS = ("new_case", "overdue")
EVENTS = RESIDENT_EVENTS + STAFF_EVENTS
# One-time codes to an account's phone (routing.phone_codes); not planned by events.
CODE_EVENTS = ("phone_verify", "password_reset")

QUEUED, SENT, RETRYING, FAILED, SKIPPED = "queued", "sent", "retrying", "failed", "skipped"
STATUSES = (QUEUED, SENT, RETRYING, FAILED, SKIPPED)
# One first try and three retries; app.queue's policy for the delivery job retries len - 1 times.
MAX_ATTEMPTS = 4

# The one table of texts, per event. Placeholders: {tracking_number}, {link} (the resident's private
# status link, or the staff case page). Deployments override texts with SMS_TEMPLATES / EMAIL_TEMPLATES.
SMS_TEMPLATES: dict[str, str] = {
    "accepted": N_("【民呼我应】您的诉求 {tracking_number} 已受理，办理进展请查看：{link}"),
    "dispatched": N_("【民呼我应】您的诉求 {tracking_number} 已派至承办单位办理，进展请查看：{link}"),
    "resolved": N_("【民呼我应】您的诉求 {tracking_number} 已办结，请查看答复并评价：{link}"),
    "reopened": N_("【民呼我应】您的诉求 {tracking_number} 已重新办理，进展请查看：{link}"),
    # One-time codes: placeholders {code} and {minutes}.
    "phone_verify": N_("【民呼我应】您正在验证手机号，验证码 {code}，{minutes} 分钟内有效。请勿告诉他人。"),
    "password_reset": N_(
        "【民呼我应】您正在重置密码，验证码 {code}，{minutes} 分钟内有效。如非本人操作，请忽略本短信。"
    ),
}
EMAIL_TEMPLATES: dict[str, tuple[str, str]] = {
    "new_case": (
        N_("新工单 {tracking_number} 待签收"),
        N_("新工单 {tracking_number} 已派至本单位，请及时签收：{link}"),
    ),
    "overdue": (
        N_("工单 {tracking_number} 已超过办理时限"),
        N_("工单 {tracking_number} 已超过办理时限并被督办，请尽快办理：{link}"),
    ),
}
STATUS_LABELS = {
    QUEUED: N_("待发送"),
    SENT: N_("已发送"),
    RETRYING: N_("重试中"),
    FAILED: N_("发送失败"),
    SKIPPED: N_("未发送（通道未配置）"),
}
EVENT_LABELS = {
    "accepted": N_("受理"),
    "dispatched": N_("派单"),
    "resolved": N_("办结"),
    "reopened": N_("重办"),
    "new_case": N_("新工单"),
    "overdue": N_("超时"),
    "phone_verify": N_("手机验证码"),
    "password_reset": N_("重置密码验证码"),
}


class MessageDelivery(Base):
    """One SMS or e-mail about a case: the masked recipient, and how its delivery went."""

    __tablename__ = "message_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The case the message is about; None for a one-time code (then ``phone_code_id`` names the code).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    phone_code_id: Mapped[int | None] = mapped_column(ForeignKey("phone_codes.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    event: Mapped[str] = mapped_column(String(20))
    # E-mail: the staff member (the address is read at send time); SMS: none (the case's contact phone).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recipient_masked: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


@dataclass(frozen=True)
class Outcome:
    """What one attempt returned: success, the channel's code (HTTP status, SMTP reply), an error text."""

    ok: bool
    code: int | None = None
    error: str | None = None
    transient: bool = False
    skipped: bool = False


def mask_email(address: str | None) -> str:
    """Keep the first character of the local part and the domain: zhang@x.cn → z****@x.cn."""
    if not address or "@" not in address:
        return "*" * len(address or "")
    local, domain = address.rsplit("@", 1)
    return f"{local[:1]}****@{domain}"


class StaffRecipients:
    """Per-process cache, for ``ttl`` seconds, of each unit's active staff with an e-mail address.

    Every dispatch e-mails the receiving unit's staff; the look-up was one query per case routed. A flush
    in this process that adds, changes or deletes a user empties the cache at once; other processes see
    such a change within ``ttl`` seconds (the address itself is read again when the e-mail is sent).
    """

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, tuple[tuple[int, str], ...]]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, unit_id: int) -> tuple[tuple[int, str], ...]:
        """(user id, masked address) of the unit's active staff who have an e-mail address."""
        now = time.monotonic()
        hit = self._entries.get(unit_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        staff = session.scalars(
            select(User)
            .where(User.unit_id == unit_id, User.active.is_(True), User.email.is_not(None), User.email != "")
            .order_by(User.id)
        )
        found = tuple((user.id, mask_email(user.email)) for user in staff if user.is_staff)
        if not session.info.get(_USERS_TOUCHED):
            with self._lock:
                self._entries[unit_id] = (now + self.ttl, found)
        return found

    def clear(self) -> None:
        """Forget everything (after a change of users, and between tests)."""
        with self._lock:
            self._entries.clear()


staff_recipients = StaffRecipients()
_USERS_TOUCHED = "minhu_users_touched"  # session.info flag: this transaction flushed a User


@event.listens_for(Session, "after_flush")
def _users_flushed(session: Session, _context: Any) -> None:
    if any(isinstance(o, User) for o in (*session.new, *session.dirty, *session.deleted)):
        session.info[_USERS_TOUCHED] = True
        staff_recipients.clear()


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _users_settled(session: Session, *_: Any) -> None:
    if session.info.pop(_USERS_TOUCHED, False):
        staff_recipients.clear()


def plan(session: Session, case: Case, event: str, unit_id: int | None = None) -> list[MessageDelivery]:
    """Queue the messages ``event`` sends about ``case`` as delivery rows (flush only)."""
    if event not in EVENTS:
        raise ValueError(f"unknown message event {event}")
    now = utcnow()
    rows: list[MessageDelivery] = []
    if event in RESIDENT_EVENTS:
        if case.sms_opt_in and case.contact_phone:
            rows.append(
                MessageDelivery(
                    case_id=case.id,
                    channel=SMS,
                    event=event,
                    recipient_masked=mask_phone(case.contact_phone),
                    status=QUEUED,
                    attempts=0,
                    created_at=now,
                )
            )
    else:
        target = unit_id if unit_id is not None else case.current_unit_id
        if target is not None:
            for user_id, masked in staff_recipients.get(session, target):
                rows.append(
                    MessageDelivery(
                        case_id=case.id,
                        channel=EMAIL,
                        event=event,
                        user_id=user_id,
                        recipient_masked=masked,
                        status=QUEUED,
                        attempts=0,
                        created_at=now,
                    )
                )
    if rows:
        session.add_all(rows)
        session.flush()
    return rows


def is_final(delivery: MessageDelivery) -> bool:
    """Whether nothing more will be tried for this delivery."""
    return delivery.status in (SENT, FAILED, SKIPPED)


def record(delivery: MessageDelivery, outcome: Outcome, now: datetime | None = None) -> bool:
    """Log one attempt on the row; True when the job should raise so the queue retries it later."""
    now = now or utcnow()
    delivery.last_attempt_at = now
    delivery.last_code = outcome.code
    delivery.last_error = (outcome.error or None) and str(outcome.error)[:200]
    if outcome.skipped:
        delivery.status = SKIPPED
        return False
    delivery.attempts = (delivery.attempts or 0) + 1
    if outcome.ok:
        delivery.status, delivery.sent_at = SENT, now
        return False
    if outcome.transient and delivery.attempts < MAX_ATTEMPTS:
        delivery.status = RETRYING
        return True
    delivery.status = FAILED
    return False


def log_page(
    session: Session, *, status: str | None = None, channel: str | None = None, limit: int = 200
) -> list[MessageDelivery]:
    """The latest deliveries, newest first, optionally of one status or channel."""
    stmt = select(MessageDelivery).order_by(MessageDelivery.id.desc()).limit(limit)
    if status in STATUSES:
        stmt = stmt.where(MessageDelivery.status == status)
    if channel in CHANNELS:
        stmt = stmt.where(MessageDelivery.channel == channel)
    return list(session.scalars(stmt))


def stuck(session: Session, older_than: datetime, limit: int = 1000) -> list[int]:
    """Ids of deliveries queued, or retrying with no attempt, since before ``older_than`` (for the sweeper)."""
    stmt = (
        select(MessageDelivery.id)
        .where(
            or_(
                and_(MessageDelivery.status == QUEUED, MessageDelivery.created_at < older_than),
                and_(MessageDelivery.status == RETRYING, MessageDelivery.last_attempt_at < older_than),
            )
        )
        .order_by(MessageDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
