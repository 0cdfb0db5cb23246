"""Marker for user-facing strings in domain code.

Domain packages cannot import Flask-Babel, so they mark their Chinese (source-language) messages with
``N_``; the web shell passes them through ``gettext`` when rendering, which is where English can follow.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark a message for translation without translating it here."""
    return message


class DomainError(ValueError):
    """A refused operation with a machine code, an optional field and a user-facing (zh-CN) message."""

    status = 422

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
