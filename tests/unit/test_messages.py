"""Delivery bookkeeping of routing.messages: retries up to MAX_ATTEMPTS, masking, the queue policy."""

from __future__ import annotations

import pytest

from app.queue import policy_for
from routing import messages
from routing.messages import FAILED, RETRYING, SENT, SKIPPED, MessageDelivery, Outcome


def row() -> MessageDelivery:
    """A fresh queued delivery (not stored)."""
    return MessageDelivery(
        channel="sms", event="accepted", recipient_masked="138****5678", status="queued", attempts=0
    )


def test_transient_failures_retry_until_the_last_attempt() -> None:
    delivery = row()
    for attempt in range(1, messages.MAX_ATTEMPTS):
        assert messages.record(delivery, Outcome(False, code=503, error="HTTP 503", transient=True)) is True
        assert (delivery.status, delivery.attempts, delivery.last_code) == (RETRYING, attempt, 503)
    assert messages.record(delivery, Outcome(False, code=503, error="HTTP 503", transient=True)) is False
    assert (delivery.status, delivery.attempts) == (FAILED, messages.MAX_ATTEMPTS)
    assert messages.is_final(delivery)


def test_permanent_failure_is_not_retried() -> None:
    delivery = row()
    assert messages.record(delivery, Outcome(False, code=400, error="HTTP 400")) is False
    assert (delivery.status, delivery.attempts, delivery.last_error) == (FAILED, 1, "HTTP 400")


def test_success_after_a_retry_records_the_time() -> None:
    delivery = row()
    messages.record(delivery, Outcome(False, error="ConnectionRefusedError", transient=True))
    assert messages.record(delivery, Outcome(True, code=200)) is False
    assert (delivery.status, delivery.attempts, delivery.last_code, delivery.last_error) == (
        SENT,
        2,
        200,
        None,
    )
    assert delivery.sent_at is not None and delivery.sent_at == delivery.last_attempt_at


def test_unconfigured_channel_is_skipped_without_an_attempt() -> None:
    delivery = row()
    assert messages.record(delivery, Outcome(False, skipped=True, error="SMS_GATEWAY_URL not set")) is False
    assert (delivery.status, delivery.attempts) == (SKIPPED, 0)


@pytest.mark.parametrize(
    ("address", "masked"),
    [("zhang.san@wuhan.gov.cn", "z****@wuhan.gov.cn"), ("a@b.cn", "a****@b.cn"), ("", ""), ("bad", "***")],
)
def test_mask_email(address: str, masked: str) -> None:
    assert messages.mask_email(address) == masked


def test_queue_retries_match_the_attempts_the_log_allows() -> None:
    policy = policy_for("app.messaging.deliver")
    assert len(policy.retry_intervals) == messages.MAX_ATTEMPTS - 1
    assert list(policy.retry_intervals) == sorted(policy.retry_intervals)  # backoff grows


def test_every_event_has_a_text_and_no_name_placeholder() -> None:
    for event in messages.RESIDENT_EVENTS:
        assert (
            "{tracking_number}" in messages.SMS_TEMPLATES[event] and "{link}" in messages.SMS_TEMPLATES[event]
        )
    for event in messages.STAFF_EVENTS:
        subject, body = messages.EMAIL_TEMPLATES[event]
        assert "{tracking_number}" in subject and "{link}" in body
    texts = [
        *messages.SMS_TEMPLATES.values(),
        *(t for pair in messages.EMAIL_TEMPLATES.values() for t in pair),
    ]
    assert not any("name" in t or "phone" in t for t in texts)
