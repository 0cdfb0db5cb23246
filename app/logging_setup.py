"""Logging: JSON lines (or plain text on a terminal), request and job ids, and no personal data.

Every record that reaches a handler passes :class:`ContextFilter` (adds ``request_id`` and the RQ
``job_id``) and ``core.privacy.PiiLogFilter`` (masks phones and private-link tokens in the message);
the formatters then scrub what those filters cannot see: the traceback text, where a database error
carries SQL parameters (``[parameters: …]``), PostgreSQL's ``DETAIL: Key (…)=(…)`` and ``Failing row
contains (…)`` lines with a resident's name, phone and description. The engine also runs with
``hide_parameters`` (see ``create_app``), so SQLAlchemy never puts parameters into messages at all.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter
from rq.job import get_current_job

from core.privacy import PiiLogFilter, scrub

REQUEST_ID: ContextVar[str | None] = ContextVar("minhu_request_id", default=None)
FORMATS = ("auto", "json", "text")

# Database error text that carries row values. SQLAlchemy's parameter line, PostgreSQL's DETAIL
# (unique/foreign-key keys, whole failing rows) and CONTEXT (e.g. COPY line contents).
_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_KEY_DETAIL = re.compile(r"Key \(([^)\n]*)\)=\([^\n]*?\) (already exists|is not present|conflicts)")
_FAILING_ROW = re.compile(r"Failing row contains \([^\n]*")
# Cheap superset of core.privacy's phone and token patterns: most lines skip the full scrub.
_MAYBE_PII = re.compile(r"1[3-9]\d[- ]?\d|[?&](?:k|token|t)=")
_DETAIL_LINE = re.compile(r"^(\s*(?:DETAIL|CONTEXT):[ \t]+)(?=\S)(?!Key \([^)\n]*\)=\(…\))[^\n]*$", re.M)


def scrub_line(text: str) -> str:
    """``core.privacy.scrub`` behind a cheap pre-check (a formatted line is scrubbed on every record)."""
    return scrub(text) if _MAYBE_PII.search(text) else text


def scrub_exception(text: str) -> str:
    """Remove row values from database error text, then mask phones and link tokens."""
    text = _PARAMETERS.sub("[parameters: hidden]", text)
    text = _KEY_DETAIL.sub(r"Key (\1)=(…) \2", text)
    text = _FAILING_ROW.sub("Failing row contains (…)", text)
    text = _DETAIL_LINE.sub(r"\1(hidden)", text)
    return scrub(text)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` (web) and ``job_id`` (RQ worker) to every record; scrubs tracebacks in messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the ids of the request or job this thread is serving (None outside either)."""
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        if not hasattr(record, "job_id"):
            job = get_current_job()
            record.job_id = job.id if job is not None else None
        if record.levelno >= logging.WARNING:
            # RQ logs a failed job's traceback as message text, not as exc_info: scrub row values there too.
            message = record.getMessage()
            if "Traceback" in message or "DETAIL:" in message or "[parameters:" in message:
                record.msg, record.args = scrub_exception(message), None
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time (UTC), level, logger, message, ids, extras, scrubbed traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json_ensure_ascii", False)  # Chinese stays readable (and greppable)
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Fixed leading fields, then the record's extras; ids only when set."""
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        super().add_fields(log_data, record, message_dict)
        for key in ("request_id", "job_id"):
            if log_data.get(key) is None:
                log_data.pop(key, None)

    def formatException(self, ei: Any) -> str:
        """The traceback without row values or phone numbers."""
        return scrub_exception(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:
        """A stack dump, scrubbed the same way."""
        return scrub_exception(str(super().formatStack(stack_info)))

    def format(self, record: logging.LogRecord) -> str:
        """Serialise, then mask phones and tokens anywhere in the line (extras included)."""
        return scrub_line(super().format(record))


class TextFormatter(logging.Formatter):
    """Plain lines for a person at a terminal, scrubbed exactly like the JSON ones."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s%(job_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format with the ids shown as ``[req-…]`` / ``[job …]`` (empty when neither is set)."""
        request_id = getattr(record, "request_id", None)
        job_id = getattr(record, "job_id", None)
        saved = record.__dict__.get("request_id"), record.__dict__.get("job_id")
        record.request_id = request_id or ""
        record.job_id = f" job {job_id}" if job_id else ""
        try:
            return scrub_line(super().format(record))
        finally:
            record.request_id, record.job_id = saved

    def formatException(self, ei: Any) -> str:
        """The traceback without row values or phone numbers."""
        return scrub_exception(super().formatException(ei))


def make_formatter(kind: str, stream: Any = None) -> logging.Formatter:
    """The formatter for ``LOG_FORMAT``: json, text, or auto (text on a terminal, JSON otherwise)."""
    if kind == "auto":
        stream = stream if stream is not None else sys.stderr
        kind = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    return TextFormatter() if kind == "text" else JsonFormatter()


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    @property
    def stream(self) -> Any:
        """The current standard error."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def make_handler(kind: str = "json", stream: Any = None) -> logging.Handler:
    """A stream handler (standard error by default) with the project's formatter and both filters."""
    handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    handler.setFormatter(make_formatter(kind, stream))
    add_filters(handler)
    return handler


def add_filters(handler: logging.Handler) -> None:
    """Give ``handler`` the context and privacy filters once."""
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
    if not any(isinstance(f, PiiLogFilter) for f in handler.filters):
        handler.addFilter(PiiLogFilter())


def configure(level: str = "INFO", kind: str = "auto") -> None:
    """Install the project's handler on the root logger once per process, and filter every handler.

    A root handler already carrying one of our formatters (gunicorn's ``logconfig_dict`` installs one
    before the app is built) is kept instead of adding a second.
    """
    if kind not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)} (got {kind!r})")
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter | TextFormatter) for h in root.handlers):
        root.addHandler(make_handler(kind))
    for handler in root.handlers:
        add_filters(handler)
    # Loggers that print request lines through handlers of their own get the privacy filter too.
    pii = PiiLogFilter()
    for name in ("", "werkzeug", "waitress", "rq.worker", "gunicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, PiiLogFilter) for f in logger.filters):
            logger.addFilter(pii)
        for handler in logger.handlers:
            add_filters(handler)
