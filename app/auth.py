"""Sign-in, sign-out, the second factor and roles; the session rules of staff.

A session cookie names the user *and* the user's current session token; rotating the token on the
server (logout, password change, role or unit change, disabling) ends every copy of the cookie. Staff
sessions also end after ``STAFF_SESSION_IDLE_MINUTES`` without a request and ``STAFF_SESSION_MAX_HOURS``
after sign-in. Failed sign-ins are counted per account and per address (Flask-Limiter, deducted only on
failure) and locked out for the window once over the limit — even with the right password.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.accounts import USERNAME, authenticate, create_user, dummy_hash, register_resident, verify_totp
from app.audit import audit
from app.extensions import db, limiter, login_manager
from app.i18n import message_of
from app.ratelimit import form_key, limit_from_config
from core.i18n import N_, DomainError
from core.models import Role, User

__all__ = ["USERNAME", "authenticate", "create_user", "register_resident", "roles_required", "signed_in_user"]

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
TOTP_PENDING_SECONDS = 300  # between the password and the code


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField(
        _l("用户名"), validators=[DataRequired(message=_l("请输入用户名")), Length(max=80)]
    )
    password = PasswordField(_l("密码"), validators=[DataRequired(message=_l("请输入密码")), Length(max=200)])


class TotpForm(FlaskForm):
    """The 6-digit code of the authenticator app."""

    code = StringField(
        _l("验证码"),
        validators=[DataRequired(message=_l("请输入 6 位验证码")), Length(max=10)],
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code"},
    )


class SessionUser:
    """Adapter giving Flask-Login what it needs without making the core model import Flask."""

    def __init__(self, user: User) -> None:
        self.user = user

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        """Session identifier: user id and the user's current session token."""
        return f"{self.user.id}:{self.user.session_token}"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


def _session_expired(user: User) -> bool:
    """Idle and absolute lifetimes of staff sessions (residents keep the browser session)."""
    if not user.is_staff:
        return False
    from flask import current_app

    now = time.time()
    signed_in = float(session.get("_auth_at", 0))
    seen = float(session.get("_seen_at", signed_in))
    idle = int(current_app.config["STAFF_SESSION_IDLE_MINUTES"]) * 60
    absolute = int(current_app.config["STAFF_SESSION_MAX_HOURS"]) * 3600
    if now - signed_in > absolute or now - seen > idle:
        return True
    if now - seen > 30:  # refresh the idle clock, but not on every request (each write resends the cookie)
        session["_seen_at"] = now
    return False


def load_user(session_id: str) -> SessionUser | None:
    """The session's user while its token is current, the account active and the session not expired."""
    user_id, _sep, token = session_id.partition(":")
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    if user is None or not user.active or not hmac.compare_digest(token, user.session_token):
        return None
    if _session_expired(user):
        session.clear()
        flash(_("登录已超时，请重新登录"))
        return None
    return SessionUser(user)


def _fresh_request_state() -> None:
    """Every request loads its user (token and lifetimes checked) and starts with no audit flags.

    An app context, and with it ``g``, can outlive one request (a test client inside a pushed app
    context, a CLI command); a user cached there must not skip the checks of the next request.
    """
    for name in ("_login_user", "login_failed", "contacts_shown"):
        g.pop(name, None)


def init_app(app: Flask) -> None:
    """Register the login views and the user loader."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = N_("请先登录")
    login_manager.localize_callback = _  # the flash is translated when it is shown
    login_manager.user_loader(load_user)
    app.before_request(_fresh_request_state)
    dummy_hash()  # computed now, so the first unknown-user sign-in costs no more than later ones
    app.register_blueprint(bp)


def signed_in_user() -> User | None:
    """The signed-in User model, or None."""
    return cast(User, current_user.user) if current_user.is_authenticated else None


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Refuse (403) a signed-in user whose role is not one of ``roles``; send others to the login page."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator


def is_local_path(target: str) -> bool:
    """Whether ``target`` is a path on this site (never an open redirect after sign-in)."""
    # Browsers read "/\\evil.example" like "//evil.example"; control characters are stripped before that.
    if not target.startswith("/") or "\\" in target or any(ord(c) < 32 for c in target):
        return False
    return not target.startswith("//")


def _failed(_response: Any) -> bool:
    """Deduct from the sign-in limits only when this attempt failed."""
    return bool(g.get("login_failed"))


def _login_breached(_limit: RequestLimit) -> None:
    """Audit a refused (locked-out) sign-in attempt against the account, when the account exists."""
    username = (request.form.get("username") or "").strip()
    user = db.session.scalar(select(User).where(User.username == username)) if username else None
    audit(
        "login.rate_limited",
        user if user is not None and user.is_staff else None,
        "user",
        user.id if user else "",
    )
    db.session.commit()


def _record_failure(user: User | None, reason: str) -> None:
    g.login_failed = True
    # A resident's own sign-ins are not staff activity; unknown accounts are recorded without the name typed.
    if user is None or user.is_staff:
        audit("login.failure", user, "user", user.id if user else "", {"reason": reason})
        db.session.commit()


def _complete_login(user: User) -> Any:
    session.pop("totp_pending", None)
    login_user(SessionUser(user))
    session["_auth_at"] = session["_seen_at"] = time.time()
    if user.is_staff:
        audit("login.success", user, "user", user.id)
    db.session.commit()
    target = request.args.get("next") or ""
    return redirect(target if is_local_path(target) else _landing(user))


# Where a sign-in without ?next= lands: staff on their work, residents on their requests.
_LANDINGS = {
    Role.resident: "web.my_requests",
    Role.handler: "workbench.queue",
    Role.dispatcher: "workbench.queue",
    Role.operator: "workbench.queue",
    Role.admin: "workbench.queue",
    Role.evaluator: "assessment.dashboard",
}


def _landing(user: User) -> str:
    return url_for(_LANDINGS.get(user.role, "web.home"))


def _account_here() -> str:
    """Rate-limit key: the typed account at this client address. Someone failing at another address
    cannot lock the owner out; LOGIN_LIMIT_ACCOUNT_ALL still caps guesses spread over many addresses."""
    return f"{form_key('username')()}@{get_remote_address()}"


LOGIN_LIMITS = [
    limiter.limit(
        limit_from_config("LOGIN_LIMIT_ACCOUNT"),
        key_func=_account_here,
        scope="login-account",
        methods=["POST"],
        deduct_when=_failed,
        on_breach=_login_breached,
    ),
    limiter.limit(
        limit_from_config("LOGIN_LIMIT_ACCOUNT_ALL"),
        key_func=form_key("username"),
        scope="login-account-all",
        methods=["POST"],
        deduct_when=_failed,
        on_breach=_login_breached,
    ),
    limiter.limit(
        limit_from_config("LOGIN_LIMIT_ADDRESS"),
        scope="login-address",
        methods=["POST"],
        deduct_when=_failed,
        on_breach=_login_breached,
    ),
]


@bp.route("/login", methods=["GET", "POST"])
@LOGIN_LIMITS[0]
@LOGIN_LIMITS[1]
@LOGIN_LIMITS[2]
def login() -> Any:
    """Sign in (then the second factor, when the account has one)."""
    form = LoginForm()
    if form.validate_on_submit():
        username = (form.username.data or "").strip()
        user = authenticate(db.session, username, form.password.data or "")
        if user is None:
            known = db.session.scalar(select(User).where(User.username == username))
            _record_failure(known, "password" if known is not None else "unknown_account")
            form.password.errors = [*form.password.errors, _("用户名或密码错误")]
        elif user.totp_secret:
            session["totp_pending"] = {"id": user.id, "token": user.session_token, "at": time.time()}
            target = request.args.get("next") or ""
            return redirect(
                url_for("auth.totp", next=target) if is_local_path(target) else url_for("auth.totp")
            )
        else:
            return _complete_login(user)
    return render_template("login.html", form=form)


def _pending_user() -> User | None:
    pending = session.get("totp_pending") or {}
    user = db.session.get(User, int(pending.get("id", 0))) if pending else None
    fresh = time.time() - float(pending.get("at", 0)) < TOTP_PENDING_SECONDS
    if user is None or not fresh or not user.active or pending.get("token") != user.session_token:
        return None
    return user


def _pending_key() -> str:
    return f"totp:{(session.get('totp_pending') or {}).get('id', '')}"


@bp.route("/login/totp", methods=["GET", "POST"])
@limiter.limit(
    limit_from_config("LOGIN_LIMIT_ACCOUNT"),
    key_func=_pending_key,
    scope="login-account-totp",
    methods=["POST"],
    deduct_when=_failed,
)
def totp() -> Any:
    """The second step of a staff sign-in: the authenticator app's code."""
    user = _pending_user()
    if user is None:
        session.pop("totp_pending", None)
        flash(_("请重新输入用户名和密码"))
        return redirect(url_for("auth.login"))
    form = TotpForm()
    if form.validate_on_submit():
        if verify_totp(db.session, user, form.code.data or ""):
            return _complete_login(user)
        g.login_failed = True
        audit("totp.failure", user, "user", user.id)
        db.session.commit()
        form.code.errors = [*form.code.errors, _("验证码不正确或已使用")]
    return render_template("login_totp.html", form=form)


class RegisterForm(FlaskForm):
    """A resident's own account: follow all one's requests in one place."""

    username = StringField(
        _l("用户名"),
        validators=[
            DataRequired(message=_l("请输入用户名")),
            Length(min=3, max=40, message=_l("用户名长度应为 3–40 个字符")),
        ],
    )
    display_name = StringField(_l("称呼"), validators=[Length(max=40)])
    phone = StringField(_l("手机号码"), render_kw={"inputmode": "tel", "autocomplete": "tel"})
    password = PasswordField(
        _l("密码（至少 10 位，不能是常见密码）"),
        validators=[DataRequired(message=_l("请输入密码")), Length(max=200)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(_l("再次输入密码"), validators=[DataRequired(message=_l("请再次输入密码"))])


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(limit_from_config("REGISTER_LIMIT"), scope="register", methods=["POST"])
def register() -> Any:
    """Residents create an account (optional: anyone may submit without one)."""
    form = RegisterForm()
    if form.validate_on_submit():
        if form.password.data != form.confirm.data:
            form.confirm.errors = [*form.confirm.errors, _("两次输入的密码不一致")]
        else:
            try:
                user = register_resident(
                    db.session,
                    (form.username.data or "").strip(),
                    form.password.data or "",
                    form.phone.data or "",
                    (form.display_name.data or "").strip(),
                )
            except DomainError as error:
                db.session.rollback()
                getattr(form, error.field or "username").errors.append(message_of(error))
            else:
                db.session.commit()
                login_user(SessionUser(user))
                flash(_("注册成功，已为您登录"))
                return redirect(url_for("web.my_requests"))
    return render_template("register.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """Sign out: every session of the account ends, including copies of this cookie."""
    user = signed_in_user()
    if user is not None:
        user.end_sessions()
        if user.is_staff:
            audit("logout", user, "user", user.id)
        db.session.commit()
    logout_user()
    session.clear()
    flash(_("已退出登录"))
    return redirect(url_for("web.home"))
