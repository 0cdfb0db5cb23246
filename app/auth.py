"""Sign-in, roles and account creation (passwords hashed by werkzeug's scrypt)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.extensions import db, login_manager
from core.db import DbSession
from core.i18n import DomainError
from core.models import STAFF_ROLES, Role, Unit, User
from routing.intake import MOBILE, normalise_phone

bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
USERNAME = re.compile(r"^[A-Za-z0-9_-]{3,40}$")


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("用户名", validators=[DataRequired(message="请输入用户名"), Length(max=80)])
    password = PasswordField("密码", validators=[DataRequired(message="请输入密码")])


class SessionUser:
    """Adapter giving Flask-Login what it needs without making the core model import Flask."""

    def __init__(self, user: User) -> None:
        self.user = user

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        """Session identifier."""
        return str(self.user.id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


def init_app(app: Flask) -> None:
    """Register the login views and the user loader."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录"

    @login_manager.user_loader
    def load_user(user_id: str) -> SessionUser | None:
        user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
        return SessionUser(user) if user is not None and user.active else None

    app.register_blueprint(bp)


class RegisterForm(FlaskForm):
    """A resident's own account: follow all one's requests in one place."""

    username = StringField(
        "用户名",
        validators=[
            DataRequired(message="请输入用户名"),
            Length(min=3, max=40, message="用户名长度应为 3–40 个字符"),
        ],
    )
    display_name = StringField("称呼", validators=[Length(max=40)])
    phone = StringField("手机号码", render_kw={"inputmode": "tel", "autocomplete": "tel"})
    password = PasswordField("密码（至少 8 位）", validators=[DataRequired(message="请输入密码")])
    confirm = PasswordField("再次输入密码", validators=[DataRequired(message="请再次输入密码")])


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
    if len(password) < 8:
        raise DomainError("weak_password", "密码至少 8 位", "password")
    if session.scalar(select(User).where(User.username == username)):
        raise DomainError("duplicate", f"用户名 {username} 已存在", "username")
    unit = session.scalar(select(Unit).where(Unit.code == unit_code)) if unit_code else None
    if unit_code and unit is None:
        raise DomainError("unknown_unit", f"单位 {unit_code} 不存在", "unit")
    if role in STAFF_ROLES and unit is None:
        raise DomainError("unit_required", "工作人员必须绑定单位", "unit")
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


def register_resident(
    session: DbSession, username: str, password: str, phone: str, display_name: str = ""
) -> User:
    """Create a resident account (residents are not bound to a unit); flush only."""
    normalised = normalise_phone(phone)
    if not MOBILE.match(normalised):
        raise DomainError("invalid", "手机号码格式不正确，应为 11 位大陆手机号", "phone")
    if not USERNAME.match(username):
        raise DomainError("invalid", "用户名只能包含字母、数字、下划线和短横线", "username")
    user = create_user(session, username, password, Role.resident, None, display_name or username)
    user.phone = normalised
    return user


def authenticate(session: DbSession, username: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user


def is_local_path(target: str) -> bool:
    """Whether ``target`` is a path on this site (never an open redirect after sign-in)."""
    # Browsers read "/\\evil.example" like "//evil.example"; control characters are stripped before that.
    if not target.startswith("/") or "\\" in target or any(ord(c) < 32 for c in target):
        return False
    return not target.startswith("//")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in."""
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(db.session, form.username.data or "", form.password.data or "")
        if user is None:
            form.password.errors = [*form.password.errors, _("用户名或密码错误")]
        else:
            login_user(SessionUser(user))
            target = request.args.get("next") or ""
            if not is_local_path(target):
                target = url_for("web.home")
            return redirect(target)
    return render_template("login.html", form=form)


@bp.route("/register", methods=["GET", "POST"])
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
                getattr(form, error.field or "username").errors.append(_(error.message))
            else:
                db.session.commit()
                login_user(SessionUser(user))
                flash(_("注册成功，已为您登录"))
                return redirect(url_for("web.my_requests"))
    return render_template("register.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """Sign out."""
    logout_user()
    flash(_("已退出登录"))
    return redirect(url_for("web.home"))
