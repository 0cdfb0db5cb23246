"""One-time SMS codes to a resident's phone: verify the account's phone, reset a forgotten password.

A code is 6 digits, valid :data:`CODE_TTL`, used once, and dead after :data:`MAX_WRONG` wrong tries; a
newer code of the same purpose replaces an older one. At most one new code per phone every
:data:`RESEND_SECONDS` and ``max_per_hour`` per hour (checked here in the database; the web shell adds
Flask-Limiter counters per address and per account).

Neither the database nor the job queue holds a code. A row keeps a random nonce and an HMAC of the code;
the code itself is an HMAC of the nonce under the application's key (:func:`derive_code`), computed again
by the delivery job (``app.messaging``) when it sends the SMS, and compared in constant time when the
resident types it. The SMS goes through the message delivery log (:mod:`routing.messages`): one
``MessageDelivery`` row per code, one delivery job with retries, recipient masked.

Verifying the phone joins the account's earlier requests: cases filed without an account (web, hotline)
whose contact phone is the account's phone (normalised as intake stores it). Nothing is joined, and no
case is named, before a code was verified.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, Integer, String, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, DbSession, utcnow
from core.i18n import N_, DomainError
from core.models import Role, User
from core.privacy import mask_phone
from routing import messages, notify
from routing.intake import MOBILE, normalise_phone
from routing.models import Case

VERIFY, RESET = "phone_verify", "password_reset"
PURPOSES = (VERIFY, RESET)
CODE_TTL = timedelta(minutes=10)
MAX_WRONG = 5  # wrong tries per code; then the code is dead and a new one must be asked for
RESEND_SECONDS = 60  # at most one new code per phone this often
MAX_PER_HOUR = 5  # default of new codes per phone per hour (PHONE_CODE_MAX_PER_HOUR)
DIGITS = 6


class PhoneCode(Base):
    """One code sent to one account's phone for one purpose (no code in it: a nonce and an HMAC)."""

    __tablename__ = "phone_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    # The normalised phone the code went to (the account's phone at the time): a changed phone voids it.
    phone: Mapped[str] = mapped_column(String(20), index=True)
    nonce: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


def derive_code(key: bytes, nonce: str) -> str:
    """The 6-digit code of a row: HMAC-SHA256 of its nonce under ``key``, reduced to decimal digits."""
    digest = hmac.new(key, b"phone-code:" + nonce.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**DIGITS:0{DIGITS}d}"


def _code_hash(key: bytes, nonce: str, code: str) -> str:
    return hmac.new(key, f"phone-code-hash:{nonce}:{code}".encode(), hashlib.sha256).hexdigest()


def _clean(code: str) -> str:
    return "".join((code or "").split())


TOO_SOON = N_("验证码已发送，请 1 分钟后再重新获取")
TOO_MANY = N_("获取验证码次数过多，请 1 小时后再试")
NO_PHONE = N_("账号没有登记手机号码，无法发送验证码")
INVALID = N_("验证码不正确或已失效，请核对短信或重新获取")


KEEP = timedelta(days=1)  # codes (and the phone number each holds) are deleted this long after issue


def purge_old(session: DbSession, now: datetime | None = None, keep: timedelta = KEEP) -> int:
    """Delete codes issued more than ``keep`` ago (long dead: 10 minutes, single use); how many.

    Their delivery-log rows stay, with the masked number only; the hourly limit looks back one hour."""
    cutoff = (now or utcnow()) - keep
    old = select(PhoneCode.id).where(PhoneCode.created_at < cutoff).scalar_subquery()
    session.execute(
        update(messages.MessageDelivery)
        .where(messages.MessageDelivery.phone_code_id.in_(old))
        .values(phone_code_id=None),
        execution_options={"synchronize_session": False},
    )
    result = session.execute(
        delete(PhoneCode).where(PhoneCode.created_at < cutoff),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def check_rate(session: DbSession, phone: str, now: datetime, max_per_hour: int = MAX_PER_HOUR) -> None:
    """Refuse a new code to ``phone`` within RESEND_SECONDS of the last one, or over the hourly number."""
    recent = session.scalar(
        select(func.count(PhoneCode.id)).where(
            PhoneCode.phone == phone, PhoneCode.created_at > now - timedelta(seconds=RESEND_SECONDS)
        )
    )
    if recent:
        raise DomainError("too_soon", TOO_SOON, "code")
    hourly = session.scalar(
        select(func.count(PhoneCode.id)).where(
            PhoneCode.phone == phone, PhoneCode.created_at > now - timedelta(hours=1)
        )
    )
    if (hourly or 0) >= max_per_hour:
        raise DomainError("too_many", TOO_MANY, "code")


def issue_code(
    session: DbSession,
    user: User,
    purpose: str,
    key: bytes,
    *,
    now: datetime | None = None,
    max_per_hour: int = MAX_PER_HOUR,
) -> PhoneCode:
    """Create a code for ``user``'s phone and queue its SMS (sent after the commit); flush only.

    Raises DomainError when the account has no mobile phone or the phone had a code too recently.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown code purpose {purpose}")
    now = now or utcnow()
    phone = normalise_phone(user.phone or "")
    if not MOBILE.match(phone):
        raise DomainError("no_phone", NO_PHONE, "code")
    check_rate(session, phone, now, max_per_hour)
    for older in session.scalars(
        select(PhoneCode).where(
            PhoneCode.user_id == user.id,
            PhoneCode.purpose == purpose,
            PhoneCode.used_at.is_(None),
            PhoneCode.expires_at > now,
        )
    ):
        older.expires_at = now  # only the newest code of a purpose counts
    nonce = secrets.token_hex(16)
    row = PhoneCode(
        user_id=user.id,
        purpose=purpose,
        phone=phone,
        nonce=nonce,
        code_hash=_code_hash(key, nonce, derive_code(key, nonce)),
        attempts=0,
        created_at=now,
        expires_at=now + CODE_TTL,
    )
    session.add(row)
    session.flush()
    delivery = messages.MessageDelivery(
        case_id=None,
        phone_code_id=row.id,
        channel=messages.SMS,
        event=purpose,
        user_id=user.id,
        recipient_masked=mask_phone(phone),
        status=messages.QUEUED,
        attempts=0,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    notify.hand_over(session, [delivery.id])
    return row


def is_live(row: PhoneCode, now: datetime | None = None) -> bool:
    """Unused, unexpired and not worn out by wrong tries."""
    now = now or utcnow()
    return row.used_at is None and row.expires_at > now and (row.attempts or 0) < MAX_WRONG


def check_code(
    session: DbSession, user: User, purpose: str, code: str, key: bytes, *, now: datetime | None = None
) -> PhoneCode | None:
    """The user's live code of ``purpose`` when ``code`` is it, else None (a wrong try is counted, flushed).

    The code is not used up here (:func:`consume` does it once the action it allows succeeded), so a
    refused new password does not cost the resident the code.
    """
    now = now or utcnow()
    row = session.scalar(
        select(PhoneCode)
        .where(PhoneCode.user_id == user.id, PhoneCode.purpose == purpose)
        .order_by(PhoneCode.id.desc())
        .limit(1)
    )
    if row is None or not is_live(row, now) or row.phone != normalise_phone(user.phone or ""):
        return None
    if not hmac.compare_digest(row.code_hash, _code_hash(key, row.nonce, _clean(code))):
        row.attempts = (row.attempts or 0) + 1
        session.flush()
        return None
    return row


def consume(session: DbSession, row: PhoneCode, now: datetime | None = None) -> None:
    """Use the code up (single use); flush only."""
    row.used_at = now or utcnow()
    session.flush()


def verify_phone(
    session: DbSession, user: User, code: str, key: bytes, *, now: datetime | None = None
) -> list[Case] | None:
    """Mark the account's phone verified by ``code`` and join its earlier requests; None for a wrong code.

    Returns the cases joined (flush only; the caller audits and commits).
    """
    now = now or utcnow()
    row = check_code(session, user, VERIFY, code, key, now=now)
    if row is None:
        return None
    consume(session, row, now)
    user.phone_verified_at = now
    session.flush()
    return join_earlier_cases(session, user)


def join_earlier_cases(session: DbSession, user: User) -> list[Case]:
    """Give a resident with a *verified* phone the cases with that contact phone that have no account."""
    if user.role != Role.resident or user.phone_verified_at is None or not user.phone:
        return []
    phone = normalise_phone(user.phone)
    cases = list(
        session.scalars(
            select(Case).where(Case.contact_phone == phone, Case.resident_id.is_(None)).order_by(Case.id)
        )
    )
    for case in cases:
        case.resident_id = user.id
    session.flush()
    return cases


def reset_account(session: DbSession, identifier: str) -> User | None:
    """The active resident account a password reset by SMS is for: by username, or by its mobile phone.

    Staff accounts are never found (admins reset staff passwords). A phone shared by several resident
    accounts finds none (the username tells them apart).
    """
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    phone = normalise_phone(identifier)
    found: User | None = None
    if MOBILE.match(phone):
        users = list(
            session.scalars(
                select(User)
                .where(User.phone == phone, User.role == Role.resident, User.active.is_(True))
                .limit(2)
            )
        )
        found = users[0] if len(users) == 1 else None
    if found is None:  # a username may be all digits too
        found = session.scalar(select(User).where(User.username == identifier))
    if found is None or found.role != Role.resident or not found.active or not found.phone:
        return None
    return found
