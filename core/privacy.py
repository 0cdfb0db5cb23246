"""Masking of residents' names and phone numbers wherever the viewer may not see them."""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")


def mask_name(name: str | None) -> str:
    """Keep the first character: 张三丰 → 张**; empty stays empty."""
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str:
    """Keep the first three and last four digits: 13812345678 → 138****5678."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


# Private-link tokens in URLs (status page ?k=, API ?token=, survey panel ?t=): an access log line
# such as "GET /status/…?k=… HTTP/1.1" would otherwise hand anyone who reads the log the case.
_TOKEN = re.compile(r"([?&](?:k|token|t)=)[^&\s\"']+")


def scrub(text: str) -> str:
    """Mask every mainland mobile number and every private-link token inside free text."""
    return _TOKEN.sub(r"\1***", _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text))


class PiiLogFilter(logging.Filter):
    """Logging filter that masks phone numbers and link tokens in every record, so none reaches a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the formatted message with phone numbers masked."""
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
