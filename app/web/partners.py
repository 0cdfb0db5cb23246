"""Admin pages for partners: API keys (create, scopes, rate limit, revoke) and webhooks (register,
enable/disable, delivery log)."""

from __future__ import annotations

import secrets
from typing import Any, cast

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from limits import parse
from sqlalchemy import select
from sqlalchemy.orm import Session
from wtforms import SelectMultipleField, StringField, widgets
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Length, Optional, ValidationError

from app.api import keys
from app.api.models import (
    SCOPE_LABELS,
    SCOPES,
    WEBHOOK_EVENT_LABELS,
    WEBHOOK_EVENTS,
    ApiKey,
    Webhook,
    WebhookDelivery,
)
from app.auth import roles_required, signed_in_user
from app.extensions import db
from app.web.forms import Form
from core.db import utcnow
from core.models import Role

bp = Blueprint("partners", __name__, url_prefix="/admin/partners")
DELIVERIES_SHOWN = 100


def dbs() -> Session:
    """The request's session, typed as a plain Session."""
    return cast(Session, db.session)


class CheckboxesField(SelectMultipleField):
    """Several checkboxes for one multiple choice."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not `required` on each box (DataRequired would add it): a browser would then refuse to submit
        # until every box is ticked. "At least one" is the validator's job, answered in Chinese.
        kwargs.setdefault("render_kw", {"required": False})
        super().__init__(*args, **kwargs)


def _rate_limit(_form: Any, field: Any) -> None:
    try:
        parse(field.data or "")
    except ValueError:
        raise ValidationError(_("频率限制格式应为“次数/时间单位”，例如 60/minute、1000/day")) from None


class ApiKeyForm(Form):
    """A new partner key."""

    name = StringField(
        _l("伙伴名称"), validators=[DataRequired(message=_l("请填写伙伴名称")), Length(max=80)]
    )
    scopes = CheckboxesField(
        _l("权限"),
        choices=[SelectChoice(s, SCOPE_LABELS[s]) for s in SCOPES],
        validators=[DataRequired(message=_l("请至少选择一项权限"))],
    )
    rate_limit = StringField(
        _l("频率限制"), default="60/minute", validators=[DataRequired(), Length(max=40), _rate_limit]
    )


class WebhookForm(Form):
    """A new webhook endpoint."""

    name = StringField(_l("名称"), validators=[DataRequired(message=_l("请填写名称")), Length(max=80)])
    url = StringField(
        _l("接收地址（http/https）"),
        validators=[
            DataRequired(message=_l("请填写接收地址")),
            Length(max=500),
            URL(require_tld=False, message=_l("地址格式不正确")),
        ],
    )
    secret = StringField(_l("签名密钥（留空自动生成）"), validators=[Optional(), Length(min=16, max=128)])
    events = CheckboxesField(
        _l("订阅事件"),
        choices=[SelectChoice(e, WEBHOOK_EVENT_LABELS[e]) for e in WEBHOOK_EVENTS],
        validators=[DataRequired(message=_l("请至少选择一个事件"))],
    )

    def validate_url(self, field: Any) -> None:
        """Only http and https, and (unless WEBHOOK_ALLOW_PRIVATE) only public addresses."""
        if not (field.data or "").lower().startswith(("http://", "https://")):
            raise ValidationError(_("接收地址必须以 http:// 或 https:// 开头"))
        from app.api.webhooks import destination_problem

        problem = destination_problem(field.data.strip(), bool(current_app.config["WEBHOOK_ALLOW_PRIVATE"]))
        if problem is not None:
            raise ValidationError(_(problem[0], **problem[1]))


def _keys_page(form: ApiKeyForm, issued: str | None = None, status: int = 200) -> Any:
    rows = dbs().scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    page = render_template(
        "partners/keys.html", form=form, keys=list(rows), issued=issued, labels=SCOPE_LABELS
    )
    return page, status


@bp.route("/keys", methods=["GET", "POST"])
@roles_required(Role.admin)
def api_keys() -> Any:
    """The keys, and the form that issues one (its full text is shown once)."""
    form = ApiKeyForm()
    if not form.is_submitted():
        return _keys_page(form)
    if not form.validate():
        return _keys_page(form, status=422)
    user = signed_in_user()
    text = keys.issue(
        dbs(),
        form.name.data.strip(),
        list(form.scopes.data),
        form.rate_limit.data.strip(),
        user.id if user else None,
    )
    dbs().commit()
    return _keys_page(ApiKeyForm(formdata=None), issued=text, status=201)


@bp.post("/keys/<int:key_id>/revoke")
@roles_required(Role.admin)
def revoke_key(key_id: int) -> Any:
    """Revoke a key: every later use is refused."""
    key = keys.revoke(dbs(), key_id)
    if key is None:
        abort(404)
    dbs().commit()
    flash(_("已吊销 %(name)s 的 api_key", name=key.name))
    return redirect(url_for("partners.api_keys"))


def _webhooks_page(form: WebhookForm, status: int = 200) -> Any:
    hooks = list(dbs().scalars(select(Webhook).order_by(Webhook.id)))
    page = render_template("partners/webhooks.html", form=form, hooks=hooks, labels=WEBHOOK_EVENT_LABELS)
    return page, status


@bp.route("/webhooks", methods=["GET", "POST"])
@roles_required(Role.admin)
def webhooks() -> Any:
    """The endpoints, and the form that registers one."""
    form = WebhookForm()
    if not form.is_submitted():
        return _webhooks_page(form)
    if not form.validate():
        return _webhooks_page(form, status=422)
    hook = Webhook(
        name=form.name.data.strip(),
        url=form.url.data.strip(),
        secret=(form.secret.data or "").strip() or secrets.token_urlsafe(32),
        events=list(form.events.data),
        active=True,
        created_at=utcnow(),
    )
    dbs().add(hook)
    dbs().commit()
    flash(_("已登记 %(name)s；签名密钥见详情页", name=hook.name))
    return redirect(url_for("partners.webhook", webhook_id=hook.id))


def _hook(webhook_id: int) -> Webhook | None:
    return dbs().get(Webhook, webhook_id)


@bp.get("/webhooks/<int:webhook_id>")
@roles_required(Role.admin)
def webhook(webhook_id: int) -> Any:
    """One endpoint with its secret and its latest deliveries (attempts, last response)."""
    hook = _hook(webhook_id)
    if hook is None:
        abort(404)
    deliveries = dbs().scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == hook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(DELIVERIES_SHOWN)
    )
    return render_template(
        "partners/webhook.html", hook=hook, deliveries=list(deliveries), labels=WEBHOOK_EVENT_LABELS
    )


@bp.post("/webhooks/<int:webhook_id>/toggle")
@roles_required(Role.admin)
def toggle_webhook(webhook_id: int) -> Any:
    """Disable an endpoint (its pending deliveries stop) or enable it again."""
    hook = _hook(webhook_id)
    if hook is None:
        abort(404)
    hook.active = not hook.active
    dbs().commit()
    flash(_("已启用") if hook.active else _("已停用"))
    return redirect(url_for("partners.webhook", webhook_id=hook.id))
