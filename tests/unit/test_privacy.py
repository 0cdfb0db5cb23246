"""Masking of names and phone numbers, and the log filter that keeps phone numbers out of logs."""

from __future__ import annotations

import logging

import pytest

from core.privacy import PiiLogFilter, mask_name, mask_phone, scrub


@pytest.mark.parametrize(
    ("name", "masked"), [("张三丰", "张**"), ("李四", "李*"), ("王", "王*"), ("", ""), (None, "")]
)
def test_mask_name_keeps_only_the_first_character(name: str | None, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138 1234 5678", "138****5678"),
        ("12345", "*****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone_keeps_three_and_four_digits(phone: str | None, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    "text",
    [
        "回电 13812345678 谢谢",
        "回电13812345678谢谢",
        "call +86 138-1234-5678 now",
        "call 86 138 1234 5678 now",
    ],
)
def test_scrub_masks_mobile_numbers_in_free_text(text: str) -> None:
    cleaned = scrub(text)
    assert "1234" not in cleaned and "138****5678" in cleaned


def test_scrub_leaves_other_numbers_alone() -> None:
    text = "受理编号 MH20260101-ABCDE，编号 420102，固话 027-85551234，23812345678 非手机号"
    assert scrub(text) == text


def test_log_filter_keeps_phone_numbers_out_of_log_output(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.privacy.filter")
    pii = PiiLogFilter()
    logger.addFilter(pii)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("居民 %s 来电，号码 %s", "张三", "13912345678")
            logger.warning("number in the message itself: 15800001111")
            logger.info("no phone here: case %d", 42)
    finally:
        logger.removeFilter(pii)
    assert "13912345678" not in caplog.text and "15800001111" not in caplog.text
    assert "139****5678" in caplog.text and "158****1111" in caplog.text
    assert "no phone here: case 42" in caplog.text
    assert all("13912345678" not in r.getMessage() for r in caplog.records)


def test_log_filter_never_drops_a_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "phone %s", ("13800000000",), None)
    assert PiiLogFilter().filter(record) is True
    assert record.getMessage() == "phone 138****0000"
