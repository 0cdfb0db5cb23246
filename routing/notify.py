"""Notifications: an in-app notice row for units and residents, and a pluggable outside channel.

:func:`send` writes a :class:`~routing.models.Notice` in the caller's transaction and hands the message
to the installed :class:`Notifier` only *after that transaction commits* (a rolled-back action must not
text anyone). The default :class:`LogNotifier` writes to the log; an SMS or e-mail channel implements
``notify`` and is installed with :func:`set_notifier`. Messages never carry names or phone numbers.

A notice that names an ``event`` (受理, 派单, 办结, 重办 for the resident; new case, overdue for a unit)
also plans SMS and e-mail messages (:mod:`routing.messages`) in the same transaction; after the commit
each planned delivery is handed to the delivery channel, by default the job ``app.messaging.deliver``.
A resident without an account has no in-app notice but still gets the SMS they opted in to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

from core import jobs
from core.db import DbSession, utcnow
from routing import messages
from routing.models import Case, Notice

log = logging.getLogger(__name__)

RECIPIENT_KINDS = ("unit", "resident")
_PENDING = "routing.notify.pending"
_PLANNED = "routing.notify.planned"
DELIVER_TASK = "app.messaging.deliver"


class Notifier(Protocol):
    """An outside channel (log, SMS, e-mail) for a notice."""

    def notify(self, recipient_kind: str, recipient_id: int, case: Case, message: str) -> None:
        """Deliver ``message`` about ``case`` to a unit or a resident."""


class LogNotifier:
    """Writes each notice to the log: recipient, tracking number and message, never contact details."""

    def notify(self, recipient_kind: str, recipient_id: int, case: Case, message: str) -> None:
        """Log the notice."""
        log.info("notice to %s %s about %s: %s", recipient_kind, recipient_id, case.tracking_number, message)


class MemoryNotifier:
    """Keeps delivered notices in a list (tests, and a template for new channels)."""

    def __init__(self) -> None:
        """Start with no deliveries."""
        self.sent: list[tuple[str, int, str, str]] = []

    def notify(self, recipient_kind: str, recipient_id: int, case: Case, message: str) -> None:
        """Remember the notice."""
        self.sent.append((recipient_kind, recipient_id, case.tracking_number, message))


_notifier: Notifier = LogNotifier()


def set_notifier(notifier: Notifier) -> Notifier:
    """Install the outside channel; returns the previous one so callers can restore it."""
    global _notifier
    previous, _notifier = _notifier, notifier
    return previous


def get_notifier() -> Notifier:
    """The installed outside channel."""
    return _notifier


def send(
    session: Session,
    recipient_kind: str,
    recipient_id: int | None,
    case: Case,
    message: str,
    *,
    event: str | None = None,
) -> None:
    """Record an in-app notice now and deliver it outside once the session commits (SMS/e-mail per event)."""
    if recipient_kind not in RECIPIENT_KINDS:
        raise ValueError(f"unknown recipient kind {recipient_kind}")
    if event is not None:
        announce(session, case, event, unit_id=recipient_id if recipient_kind == "unit" else None)
    if recipient_id is None:
        return
    session.add(
        Notice(
            recipient_kind=recipient_kind,
            recipient_id=recipient_id,
            case_id=case.id,
            message=message,
            created_at=utcnow(),
        )
    )
    session.info.setdefault(_PENDING, []).append((recipient_kind, recipient_id, case, message))


def announce(session: Session, case: Case, event: str, unit_id: int | None = None) -> None:
    """Plan the SMS/e-mail messages of ``event`` about ``case`` (no in-app notice); sent after commit."""
    planned = messages.plan(session, case, event, unit_id=unit_id)
    if planned:
        session.info.setdefault(_PLANNED, []).extend(row.id for row in planned)


def hand_over(session: DbSession, delivery_ids: list[int]) -> None:
    """Hand planned delivery rows (e.g. a one-time code's SMS) to the delivery channel after the commit."""
    session.info.setdefault(_PLANNED, []).extend(delivery_ids)


def _enqueue_delivery(delivery_id: int) -> None:
    jobs.enqueue(DELIVER_TASK, delivery_id)


_dispatch: Callable[[int], None] = _enqueue_delivery


def set_delivery_channel(dispatch: Callable[[int], None]) -> Callable[[int], None]:
    """Install what runs a planned delivery by id (default: enqueue ``app.messaging.deliver``)."""
    global _dispatch
    previous, _dispatch = _dispatch, dispatch
    return previous


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    # after_commit also fires when a SAVEPOINT is released: only the outermost commit delivers.
    if session.get_nested_transaction() is not None:
        return
    for delivery_id in session.info.pop(_PLANNED, []):
        try:
            _dispatch(delivery_id)
        except Exception:  # the row stays queued: the message sweeper picks it up
            log.exception("could not hand over message delivery %s", delivery_id)
    if _PENDING not in session.info:
        return
    for recipient_kind, recipient_id, case, message in session.info.pop(_PENDING):
        try:
            _notifier.notify(recipient_kind, recipient_id, case, message)
        except Exception:  # a broken SMS gateway must not undo a committed action
            log.exception("notifier failed for %s %s", recipient_kind, recipient_id)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: Any) -> None:
    # The outermost transaction ended without a commit delivering the notices: it was rolled back.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_PLANNED, None)


def notices_for(session: Session, recipient_kind: str, recipient_id: int, limit: int = 50) -> list[Notice]:
    """The latest notices of a unit or a resident, newest first."""
    stmt = (
        select(Notice)
        .where(Notice.recipient_kind == recipient_kind, Notice.recipient_id == recipient_id)
        .order_by(Notice.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def unread_notices(
    session: Session, recipient_kind: str, recipient_id: int, limit: int = 20
) -> list[tuple[Notice, str | None]]:
    """Unread notices with their case's tracking number, newest first: once per case and message (a
    repeated notice shows once), none about closed or merged cases (moot by then)."""
    stmt = (
        select(Notice, Case.tracking_number)
        .outerjoin(Case, Case.id == Notice.case_id)
        .where(Notice.recipient_kind == recipient_kind, Notice.recipient_id == recipient_id)
        .where(Notice.read_at.is_(None))
        .where(or_(Case.id.is_(None), Case.state.not_in(("closed", "merged"))))
        .order_by(Notice.id.desc())
        .limit(limit * 5)
    )
    seen: set[tuple[int | None, str]] = set()
    rows: list[tuple[Notice, str | None]] = []
    for notice, number in session.execute(stmt):
        if (notice.case_id, notice.message) in seen:
            continue
        seen.add((notice.case_id, notice.message))
        rows.append((notice, number))
    return rows[:limit]


def mark_case_read(session: Session, case_id: int, recipient_kind: str, recipient_id: int) -> int:
    """Mark the recipient's notices about one case as read (they opened it); how many changed."""
    ids = list(
        session.scalars(
            select(Notice.id).where(
                Notice.case_id == case_id,
                Notice.recipient_kind == recipient_kind,
                Notice.recipient_id == recipient_id,
                Notice.read_at.is_(None),
            )
        )
    )
    return mark_read(session, ids, recipient_kind, recipient_id) if ids else 0


def mark_read(session: Session, notice_ids: list[int], recipient_kind: str, recipient_id: int) -> int:
    """Mark the recipient's own notices as read; returns how many changed."""
    changed = 0
    for notice in session.scalars(select(Notice).where(Notice.id.in_(notice_ids))):
        if (
            notice.recipient_kind == recipient_kind
            and notice.recipient_id == recipient_id
            and not notice.read_at
        ):
            notice.read_at = utcnow()
            changed += 1
    return changed
