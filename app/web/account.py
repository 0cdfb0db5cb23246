"""A signed-in user's own account: change the password, turn the TOTP second factor on or off (staff),
verify the phone by an SMS code (residents), which joins the earlier requests filed with that phone."""

from __future__ import annotations

from typing import Any

import segno
from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import login_required, login_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.accounts import change_password, disable_totp, enable_totp, new_totp_secret, totp_uri, verify_totp
from app.audit import audit
from app.auth import SessionUser, roles_required, signed_in_user
from app.extensions import db, limiter
from app.i18n import message_of
from app.ratelimit import limit_from_config
from app.security import phone_code_key
from core.i18n import DomainError
from core.models import Role, User
from core.privacy import mask_phone
from routing import phone_codes

bp = Blueprint("account", __name__, url_prefix="/account")


class PasswordChangeForm(FlaskForm):
    """Current and new password."""

    current = PasswordField(
        _l("当前密码"), validators=[DataRequired(message=_l("请输入当前密码")), Length(max=200)]
    )
    password = PasswordField(
        _l("新密码（至少 10 位，不能是常见密码）"),
        validators=[DataRequired(message=_l("请输入新密码")), Length(max=200)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(_l("再次输入新密码"), validators=[DataRequired(message=_l("请再次输入新密码"))])


class CodeForm(FlaskForm):
    """A 6-digit code from the authenticator app."""

    code = StringField(
        _l("验证码"),
        validators=[DataRequired(message=_l("请输入 6 位验证码")), Length(max=10)],
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code"},
    )


class PhoneCodeForm(FlaskForm):
    """The 6-digit code of the SMS sent to the account's phone."""

    code = StringField(
        _l("短信验证码"),
        validators=[DataRequired(message=_l("请输入短信中的 6 位验证码")), Length(max=10)],
        render_kw={"inputmode": "numeric", "autocomplete": "one-time-code"},
    )


def _me() -> User:
    user = signed_in_user()
    assert user is not None  # login_required
    return user


def _page(status: int = 200, **forms: Any) -> Any:
    user = _me()
    enrol_secret = session.get("totp_enrol") if user.is_staff and not user.totp_secret else None
    qr = None
    if enrol_secret:
        uri = totp_uri(enrol_secret, user.username, current_app.config["TOTP_ISSUER"])
        qr = Markup(segno.make(uri, error="m").svg_inline(scale=4, title=_("两步验证二维码")))
    page = render_template(
        "account.html",
        user=user,
        password_form=forms.get("password_form") or PasswordChangeForm(formdata=None),
        code_form=forms.get("code_form") or CodeForm(formdata=None),
        phone_form=forms.get("phone_form") or PhoneCodeForm(formdata=None),
        phone_masked=mask_phone(user.phone),
        send_form=FlaskForm(formdata=None),
        enrol_secret=enrol_secret,
        qr=qr,
    )
    return page, status


@bp.route("/")
@login_required
def index() -> Any:
    """The account page (a staff member without a second factor gets an enrolment QR code)."""
    user = _me()
    if user.is_staff and not user.totp_secret and not session.get("totp_enrol"):
        session["totp_enrol"] = new_totp_secret()
    return _page()


@bp.route("/password", methods=["POST"])
@login_required
def password() -> Any:
    """Change one's own password: every other session of the account ends, this one goes on."""
    user = _me()
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return _page(422, password_form=form)
    if form.password.data != form.confirm.data:
        form.confirm.errors = [*form.confirm.errors, _("两次输入的密码不一致")]
        return _page(422, password_form=form)
    try:
        change_password(db.session, user, form.current.data or "", form.password.data or "")
    except DomainError as error:
        db.session.rollback()
        getattr(form, error.field or "password").errors.append(message_of(error))
        return _page(422, password_form=form)
    if user.is_staff:
        audit("password.change", user, "user", user.id)
    db.session.commit()
    login_user(SessionUser(user))  # this browser gets the new session token; copies of the old cookie die
    flash(_("密码已修改，其他设备上的登录已失效"))
    return redirect(url_for("account.index"))


@bp.route("/totp", methods=["POST"])
@login_required
def totp_enable() -> Any:
    """Turn on the second factor with the code the app shows for the enrolment secret."""
    user = _me()
    secret = session.get("totp_enrol")
    form = CodeForm()
    if not user.is_staff or user.totp_secret or not secret:
        return redirect(url_for("account.index"))
    if not form.validate_on_submit():
        return _page(422, code_form=form)
    try:
        enable_totp(db.session, user, secret, form.code.data or "")
    except DomainError as error:
        db.session.rollback()
        form.code.errors = [*form.code.errors, message_of(error)]
        return _page(422, code_form=form)
    audit("totp.enrol", user, "user", user.id)
    db.session.commit()
    session.pop("totp_enrol", None)
    flash(_("已启用两步验证，下次登录时需要输入验证码"))
    return redirect(url_for("account.index"))


@bp.route("/totp/disable", methods=["POST"])
@login_required
def totp_disable() -> Any:
    """Turn the second factor off; a current code is required."""
    user = _me()
    form = CodeForm()
    if not user.totp_secret:
        return redirect(url_for("account.index"))
    if not form.validate_on_submit() or not verify_totp(db.session, user, form.code.data or ""):
        db.session.rollback()
        if not form.code.errors:
            form.code.errors = [_("验证码不正确或已使用")]
        return _page(422, code_form=form)
    disable_totp(db.session, user)
    audit("totp.disable", user, "user", user.id)
    db.session.commit()
    flash(_("已关闭两步验证"))
    return redirect(url_for("account.index"))


def _user_key() -> str:
    user = signed_in_user()
    return f"user:{user.id if user else ''}"


@bp.route("/phone/code", methods=["POST"])
@roles_required(Role.resident)
@limiter.limit(limit_from_config("PHONE_CODE_LIMIT_TARGET"), key_func=_user_key, scope="code-account")
@limiter.limit(limit_from_config("PHONE_CODE_LIMIT_ADDRESS"), scope="code-address")
def phone_code() -> Any:
    """验证手机号: send a one-time code to the account's phone."""
    user = _me()
    form = FlaskForm()
    if not form.validate_on_submit():
        return _page(422)
    try:
        phone_codes.issue_code(
            db.session,
            user,
            phone_codes.VERIFY,
            phone_code_key(),
            max_per_hour=int(current_app.config["PHONE_CODE_MAX_PER_HOUR"]),
        )
    except DomainError as error:
        db.session.rollback()
        phone_form = PhoneCodeForm(formdata=None)
        phone_form.code.errors = [_(error.message)]
        return _page(422, phone_form=phone_form)
    audit("phone.code_sent", user, "user", user.id, {"purpose": phone_codes.VERIFY})
    db.session.commit()
    flash(_("验证码已发送至 %(phone)s，10 分钟内有效", phone=mask_phone(user.phone)))
    return redirect(url_for("account.index", _anchor="phone"))


@bp.route("/phone/verify", methods=["POST"])
@roles_required(Role.resident)
@limiter.limit(limit_from_config("PHONE_CODE_CHECK_LIMIT_ADDRESS"), scope="code-check")
def phone_verify() -> Any:
    """Check the code: the phone is verified and earlier requests with that phone join the account."""
    user = _me()
    form = PhoneCodeForm()
    if not form.validate_on_submit():
        return _page(422, phone_form=form)
    joined = phone_codes.verify_phone(db.session, user, form.code.data or "", phone_code_key())
    if joined is None:
        db.session.commit()  # the wrong try counts against the code
        form.code.errors = [*form.code.errors, _(phone_codes.INVALID)]
        return _page(422, phone_form=form)
    audit(
        "phone.verify",
        user,
        "user",
        user.id,
        {"joined_cases": [case.tracking_number for case in joined]},
    )
    db.session.commit()
    if joined:
        flash(
            ngettext(
                "手机号已验证，以前用此号码反映的 %(num)s 件诉求已加入“我的诉求”",
                "手机号已验证，以前用此号码反映的 %(num)s 件诉求已加入“我的诉求”",
                len(joined),
            )
        )
        return redirect(url_for("web.my_requests"))
    flash(_("手机号已验证"))
    return redirect(url_for("account.index", _anchor="phone"))
