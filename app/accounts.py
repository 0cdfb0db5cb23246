"""Account services: create, authenticate, change password, move and disable users (take a Session, flush).

Passwords are hashed by werkzeug's scrypt and checked against the policy in ``core.passwords``. Every
change that should end a user's other sessions (password, role, unit, disabling) rotates the user's
session token; the views commit.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from core.db import DbSession
from core.i18n import N_, DomainError
from core.models import STAFF_ROLES, Role, Unit, User
from core.passwords import check_password
from routing import phone_codes
from routing.intake import MOBILE, normalise_phone

USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,40}$")


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, checked for unknown usernames so they cost as much as known ones."""
    return generate_password_hash(secrets.token_urlsafe(16))


def create_user(
    session: DbSession,
    username: str,
    password: str,
    role: Role | str,
    unit_code: str | None = None,
    display_name: str = "",
) -> User:
    """Create an account; staff must be bound to a unit (flush only)."""
    role = Role(role)
    if not USERNAME.match(username):
        raise DomainError("invalid", N_("用户名只能包含字母、数字、下划线和短横线，长度 3–40"), "username")
    check_password(password, username, display_name)
    if session.scalar(select(User).where(User.username == username)):
        # Said to admins only (the resident registration page words it without confirming the account).
        raise DomainError("duplicate", N_("该用户名不可用，请换一个"), "username")
    unit = _unit(session, unit_code)
    if role in STAFF_ROLES and unit is None:
        raise DomainError("unit_required", N_("工作人员必须绑定单位"), "unit")
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        unit=unit,
        display_name=display_name or username,
    )
    session.add(user)
    session.flush()
    return user


def _unit(session: DbSession, unit_code: str | None) -> Unit | None:
    unit = session.scalar(select(Unit).where(Unit.code == unit_code)) if unit_code else None
    if unit_code and unit is None:
        raise DomainError("unknown_unit", N_("单位 %(unit)s 不存在"), "unit", unit=unit_code)
    return unit


def register_resident(
    session: DbSession, username: str, password: str, phone: str, display_name: str = ""
) -> User:
    """Create a resident account (residents are not bound to a unit); flush only."""
    normalised = normalise_phone(phone)
    if not MOBILE.match(normalised):
        raise DomainError("invalid", N_("手机号码格式不正确，应为 11 位大陆手机号"), "phone")
    user = create_user(session, username, password, Role.resident, None, display_name or username)
    user.phone = normalised
    return user


def authenticate(session: DbSession, username: str, password: str) -> User | None:
    """The active user with these credentials, or None; the same hash work whether the user exists or not."""
    user = session.scalar(select(User).where(User.username == username))
    valid = check_password_hash(user.password_hash if user is not None else dummy_hash(), password)
    if user is None or not valid or not user.active:
        return None
    return user


def change_password(session: DbSession, user: User, current: str, new: str) -> None:
    """The user's own change: the current password must be right; ends every session (flush only)."""
    if not check_password_hash(user.password_hash, current):
        raise DomainError("wrong_password", N_("当前密码不正确"), "current")
    set_password(session, user, new)


def set_password(session: DbSession, user: User, new: str) -> None:
    """Set a password that meets the policy and end every session of the user (flush only)."""
    check_password(new, user.username, user.display_name)
    user.password_hash = generate_password_hash(new)
    user.end_sessions()
    session.flush()


def reset_password_by_code(
    session: DbSession, identifier: str, code: str, new: str, key: bytes
) -> User | None:
    """Set a resident's new password with the SMS code sent for the reset (flush only).

    None when there is no such resident account or the code is not its live reset code (a wrong try is
    counted: the caller commits either way). A password refused by the policy raises DomainError and
    leaves the code unused. The reset ends every session of the account.
    """
    user = phone_codes.reset_account(session, identifier)
    if user is None:
        return None
    row = phone_codes.check_code(session, user, phone_codes.RESET, code, key)
    if row is None:
        return None
    set_password(session, user, new)
    phone_codes.consume(session, row)
    return user


@dataclass(frozen=True)
class UserChange:
    """What an admin may change on an account: role, unit, active, display name."""

    role: Role
    unit_code: str | None
    active: bool
    display_name: str


def update_user(session: DbSession, user: User, change: UserChange) -> dict[str, list[str | bool | None]]:
    """Apply ``change``; role, unit or active changes end the user's sessions. Returns {field: [old, new]}."""
    unit = _unit(session, change.unit_code)
    if change.role in STAFF_ROLES and unit is None:
        raise DomainError("unit_required", N_("工作人员必须绑定单位"), "unit")
    if change.role == Role.resident:
        unit = None
    before = {
        "role": str(user.role),
        "unit": user.unit.code if user.unit else None,
        "active": user.active,
        "display_name": user.display_name,
    }
    user.role = change.role
    user.unit = unit
    user.active = change.active
    user.display_name = change.display_name or user.display_name
    after = {
        "role": str(user.role),
        "unit": unit.code if unit else None,
        "active": user.active,
        "display_name": user.display_name,
    }
    changed: dict[str, list[str | bool | None]] = {
        key: [before[key], after[key]] for key in before if before[key] != after[key]
    }
    if {"role", "unit", "active"} & set(changed):
        user.end_sessions()
    session.flush()
    return changed


# --- TOTP second factor (RFC 6238 via pyotp) ----------------------------------------------------------

TOTP_WINDOW = 1  # accept the previous and next 30-second step too (phone clocks drift)


def new_totp_secret() -> str:
    """A fresh base32 secret for enrolment."""
    return pyotp.random_base32()


def totp_uri(secret: str, username: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the enrolment QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (within the window), or None."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
        at = moment + offset * totp.interval
        if hmac.compare_digest(totp.at(at), code):
            return totp.timecode(datetime.fromtimestamp(at, UTC))
    return None


def verify_totp(session: DbSession, user: User, code: str, secret: str | None = None) -> bool:
    """Whether ``code`` is a fresh valid code for the user's (or the given) secret; never the same step twice."""
    secret = secret or user.totp_secret
    if not secret:
        return False
    step = totp_step(secret, code)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    session.flush()
    return True


def enable_totp(session: DbSession, user: User, secret: str, code: str) -> None:
    """Turn the second factor on once the user proves the app shows the right codes (flush only)."""
    if not verify_totp(session, user, code, secret):
        raise DomainError("invalid_code", N_("验证码不正确或已使用，请输入应用中当前显示的 6 位数字"), "code")
    user.totp_secret = secret
    session.flush()


def disable_totp(session: DbSession, user: User) -> None:
    """Remove the second factor (the user's own choice or an admin's reset); flush only."""
    user.totp_secret = None
    user.totp_last_step = None
    session.flush()
