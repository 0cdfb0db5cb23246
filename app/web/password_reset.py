"""忘记密码: a resident resets the password with a one-time code sent by SMS to the account's phone.

The answer never tells whether an account exists: whatever is typed (a resident's username or phone, a
staff username, nothing known), the same redirect and the same page follow; an SMS goes out only for an
active resident account with a phone, within the code limits (routing.phone_codes). Staff passwords are
reset by admins, never here. A reset ends every session of the account (its session token rotates).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.accounts import reset_password_by_code
from app.audit import audit
from app.extensions import db, limiter
from app.ratelimit import limit_from_config
from app.security import phone_code_key
from core.i18n import DomainError
from routing import phone_codes
from routing.intake import normalise_phone

bp = Blueprint("password", __name__, url_prefix="/login")
PENDING = "password_reset"
PENDING_SECONDS = 30 * 60  # the reset page remembers what was typed this long (a code lives 10 minutes)


class ForgotForm(FlaskForm):
    """The account: its username or its phone number."""

    identifier = StringField(
        _l("用户名或手机号码"),
        validators=[DataRequired(message=_l("请输入用户名或注册时填写的手机号码")), Length(max=80)],
        render_kw={"autocomplete": "username"},
    )


class ResetForm(FlaskForm):
    """The SMS code and the new password."""

    code = StringField(
        _l("短信验证码"),
        validators=[DataRequired(message=_l("请输入短信中的 6 位验证码")), Length(max=10)],
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code"},
    )
    password = PasswordField(
        _l("新密码（至少 10 位，不能是常见密码）"),
        validators=[DataRequired(message=_l("请输入新密码")), Length(max=200)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(_l("再次输入新密码"), validators=[DataRequired(message=_l("请再次输入新密码"))])


def _target_key() -> str:
    """Rate-limit key of a code request: what was typed, normalised (a phone however it was written)."""
    from flask import request

    typed = (request.form.get("identifier") or "").strip()
    return f"reset:{normalise_phone(typed).lower()[:80]}"


def _pending() -> str | None:
    pending = session.get(PENDING) or {}
    if not pending or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        return None
    return str(pending.get("identifier") or "") or None


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(
    limit_from_config("PHONE_CODE_LIMIT_TARGET"), key_func=_target_key, scope="code-target", methods=["POST"]
)
@limiter.limit(limit_from_config("PHONE_CODE_LIMIT_ADDRESS"), scope="code-address", methods=["POST"])
def forgot() -> Any:
    """Ask for a reset code: the same answer whether or not the account exists."""
    form = ForgotForm()
    if form.validate_on_submit():
        identifier = (form.identifier.data or "").strip()
        user = phone_codes.reset_account(db.session, identifier)
        if user is not None:
            try:
                phone_codes.issue_code(
                    db.session,
                    user,
                    phone_codes.RESET,
                    phone_code_key(),
                    max_per_hour=int(current_app.config["PHONE_CODE_MAX_PER_HOUR"]),
                )
            except DomainError:
                db.session.rollback()  # too soon or too many: said to nobody (the answer stays the same)
            else:
                audit("password.reset_code", user, "user", user.id)
                db.session.commit()
        session[PENDING] = {"identifier": identifier, "at": time.time()}
        flash(_("如果该账号存在并登记了手机号码，我们已向该号码发送验证码，10 分钟内有效"))
        return redirect(url_for("password.reset"))
    return render_template("password_forgot.html", form=form)


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(limit_from_config("PHONE_CODE_CHECK_LIMIT_ADDRESS"), scope="code-check", methods=["POST"])
def reset() -> Any:
    """Enter the SMS code and a new password."""
    identifier = _pending()
    if identifier is None:
        session.pop(PENDING, None)
        return redirect(url_for("password.forgot"))
    form = ResetForm()
    if form.validate_on_submit():
        if form.password.data != form.confirm.data:
            form.confirm.errors = [*form.confirm.errors, _("两次输入的密码不一致")]
            return render_template("password_reset.html", form=form), 422
        try:
            user = reset_password_by_code(
                db.session, identifier, form.code.data or "", form.password.data or "", phone_code_key()
            )
        except DomainError as error:  # the code was right, the new password is not allowed
            db.session.rollback()
            getattr(form, error.field or "password").errors.append(_(error.message))
            return render_template("password_reset.html", form=form), 422
        if user is None:
            db.session.commit()  # a wrong try counts against the code
            form.code.errors = [*form.code.errors, _(phone_codes.INVALID)]
            return render_template("password_reset.html", form=form), 422
        audit("password.reset_by_code", user, "user", user.id)
        db.session.commit()
        session.pop(PENDING, None)
        flash(_("密码已重置，所有设备上的登录已失效，请用新密码登录"))
        return redirect(url_for("auth.login"))
    status = 422 if form.errors else 200
    return render_template("password_reset.html", form=form), status
