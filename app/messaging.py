"""SMS and e-mail channels and the delivery job: one RQ job per planned message (routing.messages).

``deliver(delivery_id)`` renders the text (tracking number and a link on PUBLIC_BASE_URL, never a name),
sends it through the channel and records the attempt. A transient failure (gateway 5xx/429, timeout,
refused connection, SMTP 4xx) is committed to the log and then raised, so RQ retries the job with the
backoff of its policy in ``app.queue``; after ``routing.messages.MAX_ATTEMPTS`` it is marked failed.
A channel that is not configured (no SMS_GATEWAY_URL / SMTP_HOST) marks its rows skipped.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from flask import current_app, has_request_context
from flask_babel import force_locale, gettext

from app.i18n import DEFAULT_LOCALE
from app.security import phone_code_key, public_url
from app.web.public import token_key
from core import jobs
from core.db import utcnow
from core.models import User
from routing import messages, phone_codes
from routing.intake import case_token
from routing.messages import EMAIL, SMS, MessageDelivery, Outcome
from routing.models import Case

log = logging.getLogger(__name__)

DELIVER = "app.messaging.deliver"


class DeliveryRetry(Exception):
    """A transient failure was logged; raised so the queue retries the job later."""


def _templates(name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    configured = current_app.config.get(name) or {}
    if isinstance(configured, str):
        configured = json.loads(configured)
    return {**defaults, **configured}


def _link(endpoint: str, **values: Any) -> str:
    if has_request_context():
        return public_url(endpoint, **values)
    with current_app.test_request_context():  # url_for needs a request outside SERVER_NAME set-ups
        return public_url(endpoint, **values)


def sms_text(case: Case, event: str) -> str:
    """The SMS of ``event`` for ``case``: the event's template with the tracking number and status link."""
    template = _templates("SMS_TEMPLATES", messages.SMS_TEMPLATES)[event]
    link = _link(
        "web.status",
        tracking_number=case.tracking_number,
        k=case_token(token_key(), case.tracking_number),
    )
    with force_locale(DEFAULT_LOCALE):  # residents get Chinese, whatever the UI language of who acted
        return gettext(template).format(tracking_number=case.tracking_number, link=link)


def code_text(row: phone_codes.PhoneCode) -> str:
    """The SMS carrying a one-time code: the purpose's template with the code and its minutes."""
    template = _templates("SMS_TEMPLATES", messages.SMS_TEMPLATES)[row.purpose]
    minutes = int(phone_codes.CODE_TTL.total_seconds() // 60)
    with force_locale(DEFAULT_LOCALE):  # residents get Chinese, whatever the UI language
        return gettext(template).format(
            code=phone_codes.derive_code(phone_code_key(), row.nonce), minutes=minutes
        )


def email_text(case: Case, event: str) -> tuple[str, str]:
    """Subject and body of the staff e-mail of ``event``, linking to the case's workbench page."""
    subject, body = messages.EMAIL_TEMPLATES[event]
    link = _link("workbench.case_page", tracking_number=case.tracking_number)
    with force_locale(DEFAULT_LOCALE):  # as SMS: not in the language of the page that triggered it
        return (
            gettext(subject).format(tracking_number=case.tracking_number),
            gettext(body).format(tracking_number=case.tracking_number, link=link),
        )


def send_sms(phone: str, text: str, reference: str) -> Outcome:
    """POST one SMS to the gateway as JSON {to, text, reference} with the configured auth header."""
    config = current_app.config
    url = config.get("SMS_GATEWAY_URL")
    if not url:
        return Outcome(False, skipped=True, error="SMS_GATEWAY_URL not set")
    body = json.dumps({"to": phone, "text": text, "reference": reference}, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json; charset=utf-8")
    if config.get("SMS_GATEWAY_AUTH_VALUE"):
        request.add_header(
            config.get("SMS_GATEWAY_AUTH_HEADER") or "Authorization", config["SMS_GATEWAY_AUTH_VALUE"]
        )
    try:
        with urllib.request.urlopen(
            request, timeout=float(config.get("SMS_GATEWAY_TIMEOUT") or 10)
        ) as response:
            return Outcome(True, code=response.status)
    except urllib.error.HTTPError as error:
        transient = error.code >= 500 or error.code in (408, 429)
        return Outcome(False, code=error.code, error=f"HTTP {error.code}", transient=transient)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(False, error=type(reason).__name__, transient=True)


def send_email(to: str, subject: str, body: str) -> Outcome:
    """Send one plain-text e-mail through SMTP (STARTTLS and login when configured)."""
    config = current_app.config
    host = config.get("SMTP_HOST")
    if not host:
        return Outcome(False, skipped=True, error="SMTP_HOST not set")
    message = EmailMessage()
    message["From"] = config.get("SMTP_FROM") or "noreply@localhost"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="minhu")
    message.set_content(body)
    try:
        with smtplib.SMTP(
            host, int(config.get("SMTP_PORT") or 587), timeout=float(config.get("SMTP_TIMEOUT") or 10)
        ) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls()
            if config.get("SMTP_USER"):
                smtp.login(config["SMTP_USER"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as error:
        return Outcome(
            False, code=error.smtp_code, error=f"SMTP {error.smtp_code}", transient=error.smtp_code < 500
        )
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _text in error.recipients.values()]
        code = codes[0] if codes else None
        return Outcome(False, code=code, error="recipient refused", transient=bool(code and code < 500))
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(False, error=type(error).__name__, transient=True)
    return Outcome(True, code=250)


def _attempt_code(session: Any, delivery: MessageDelivery) -> Outcome:
    row = session.get(phone_codes.PhoneCode, delivery.phone_code_id)
    if row is None:
        return Outcome(False, error="code gone")
    if not phone_codes.is_live(row):  # a late retry must not send a code that no longer works
        return Outcome(False, error="code no longer valid")
    return send_sms(row.phone, code_text(row), f"msg-{delivery.id}")


def _attempt(session: Any, delivery: MessageDelivery) -> Outcome:
    if delivery.phone_code_id is not None:
        return _attempt_code(session, delivery)
    case = session.get(Case, delivery.case_id)
    if case is None:
        return Outcome(False, error="case gone")
    if delivery.channel == SMS:
        if not case.contact_phone:
            return Outcome(False, error="no phone")
        return send_sms(case.contact_phone, sms_text(case, delivery.event), f"msg-{delivery.id}")
    if delivery.channel == EMAIL:
        user = session.get(User, delivery.user_id) if delivery.user_id else None
        if user is None or not user.email or not user.active:
            return Outcome(False, error="no address")
        subject, body = email_text(case, delivery.event)
        return send_email(user.email, subject, body)
    return Outcome(False, error=f"unknown channel {delivery.channel}")


def deliver(delivery_id: int) -> str:
    """RQ job: send one planned message and log the attempt; raises on a transient failure to be retried."""
    with jobs.unit_of_work() as session:
        delivery = session.get(MessageDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            return "gone"
        if messages.is_final(delivery):
            return delivery.status  # a repeated job sends nothing twice
        try:
            outcome = _attempt(session, delivery)
        except Exception as error:  # a bug in rendering or a channel: log it, do not retry for ever
            log.exception("message %s could not be attempted", delivery_id)
            outcome = Outcome(False, error=type(error).__name__)
        retry = messages.record(delivery, outcome)
        status, attempts = delivery.status, delivery.attempts
    # Only ids, channel and code in the log: the recipient is never written (masked in the table).
    log.info(
        "message %s %s after %s attempt(s): %s", delivery_id, status, attempts, outcome.code or outcome.error
    )
    if retry:
        raise DeliveryRetry(f"message {delivery_id}: {outcome.error}")
    return status


def sweep(older_than_seconds: int = 900) -> int:
    """Re-enqueue deliveries still queued or retrying after ``older_than_seconds``; returns how many."""
    with jobs.unit_of_work() as session:
        ids = messages.stuck(session, utcnow() - timedelta(seconds=older_than_seconds))
    for delivery_id in ids:
        jobs.enqueue(DELIVER, delivery_id)
    return len(ids)
