"""Private-link tokens never reach a log line (the status page's ?k=, the API's ?token=, a panel ?t=)."""

from __future__ import annotations

import logging

from core.privacy import PiiLogFilter, scrub


def test_tokens_in_query_strings_are_masked() -> None:
    line = '127.0.0.1 - - "GET /status/MH2026000123?k=AbC-12_x&lang=zh HTTP/1.1" 200 -'
    assert scrub(line) == '127.0.0.1 - - "GET /status/MH2026000123?k=***&lang=zh HTTP/1.1" 200 -'
    assert scrub("/api/v1/requests/MH1?token=abc") == "/api/v1/requests/MH1?token=***"
    assert scrub("/s/3/420102-S1-C1?x=1&t=secret") == "/s/3/420102-S1-C1?x=1&t=***"


def test_other_parameters_are_kept() -> None:
    assert scrub("/workbench?state=accepted&kind=1&page=2") == "/workbench?state=accepted&kind=1&page=2"


def test_werkzeug_style_record_with_args_is_masked() -> None:
    # werkzeug logs its access line as a %-format with the request line as an argument.
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '%s - - [%s] "%s" %s -',
        ("127.0.0.1", "t", "GET /status/X?k=tok", 200),
        None,
    )
    assert PiiLogFilter().filter(record)
    assert record.getMessage() == '127.0.0.1 - - [t] "GET /status/X?k=***" 200 -'
