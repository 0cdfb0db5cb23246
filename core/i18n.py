"""Marker for user-facing strings in domain code.

Domain packages cannot import Flask-Babel, so they mark their Chinese (source-language) messages with
``N_``; the web shell passes them through ``gettext`` when rendering, which is where English can follow.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark a message for translation without translating it here."""
    return message


class DomainError(ValueError):
    """A refused operation with a machine code, an optional field and a user-facing (zh-CN) message.

    ``message`` is a message id (marked with ``N_``) that may hold ``%(name)s`` (or ``{name}``)
    placeholders, kept as ``message_id`` and filled from ``params`` when the web shell translates it
    (``app.i18n.message_of``): ``DomainError("too_long",
    N_("不能超过 %(max)s 个字"), "name", max=20)``. ``str(error)`` is the Chinese text, filled in. A
    parameter cannot be called ``code``, ``message`` or ``field`` (those are the arguments).
    """

    status = 422

    def __init__(self, code: str, message: str, field: str | None = None, **params: object) -> None:
        text = fill(message, params)
        super().__init__(text)
        self.code = code
        self.message = text  # the Chinese text, parameters filled in (as before parameters existed)
        self.message_id = message  # what the catalogue knows; translated at the edge with ``params``
        self.field = field
        self.params: dict[str, object] = params


def fill(message: str, params: dict[str, object]) -> str:
    """A message (id or translation) with its parameters: ``%(name)s`` placeholders, or ``{name}`` ones
    (str.format, for the messages written that way) when it has no ``%(``."""
    if not params:
        return message
    return message % params if "%(" in message else message.format(**params)
