"""Languages of the web shell: the locale of a request, the language switch, domain messages rendered.

Chinese (zh_CN) is the source language and the default; English (en) is a full catalogue in
``app/translations``. A request's locale is the ``lang`` cookie the switch sets, else the browser's
Accept-Language among the supported ones, else zh_CN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Flask, has_request_context, redirect, request, url_for
from flask_babel import get_locale, refresh
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from core.i18n import fill

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

bp = Blueprint("i18n", __name__)


def select_locale() -> str:
    """The ``lang`` cookie if it names a supported locale, else Accept-Language, else zh_CN (and always
    zh_CN outside a request: jobs, the CLI)."""
    if not has_request_context():
        return DEFAULT_LOCALE
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LOCALES:
        return chosen
    return request.accept_languages.best_match(LOCALES) or DEFAULT_LOCALE


def current_language() -> str:
    """The request's language as an HTML ``lang`` value (``zh-CN`` or ``en``)."""
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "zh-CN"


def safe_next(target: str | None) -> str:
    """``target`` when it is a same-site relative path, else the home page (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("web.home")
    return target


@bp.route("/language", methods=["POST"])
def set_language() -> Response:
    """Remember the chosen language (``lang=en|zh_CN``) in a cookie and go back to ``next`` (same site)."""
    response = redirect(safe_next(request.form.get("next")))
    lang = request.form.get("lang", "")
    if lang in LOCALES:
        response.set_cookie(COOKIE, lang, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)
    return response


class Translatable(Protocol):
    """A refused operation or problem: its ``message`` (or ``message_id``) and, optionally, ``params``."""

    @property
    def message(self) -> str: ...


def message_of(error: Translatable) -> str:
    """The user-facing text of a domain error or problem: its message id translated, parameters filled.

    Text parameters are looked up too: domain code passes labels it marked with ``N_`` (an action, a
    state phrase); any other text (a name, a code) has no catalogue entry and comes through unchanged.
    """
    params = getattr(error, "params", None) or {}
    message_id = getattr(error, "message_id", None) or error.message
    return fill(_(message_id), {k: translate(v) for k, v in params.items()})


K = TypeVar("K")


class TranslatedLabels(Mapping[K, str]):
    """A read-only view of a domain label table (marked with ``N_``) that translates on lookup."""

    def __init__(self, labels: Mapping[K, str]) -> None:
        self._labels = labels

    def __getitem__(self, key: K) -> str:
        return _(self._labels[key])

    def __iter__(self) -> Iterator[K]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)


def init_app(app: Flask, babel: Any) -> None:
    """Bind the locale selector and register the language switch."""
    babel.init_app(app, locale_selector=select_locale)
    app.register_blueprint(bp)
    # Flask-Babel caches the locale on ``g``, which outlives a request when an app context was already
    # pushed (tests, CLI code serving requests): choose afresh for every request.
    app.before_request(refresh)

    @app.context_processor
    def language() -> dict[str, Any]:
        return {"current_language": current_language}

    # ``{{ label|translate }}``: a domain text (marked with N_) looked up as it is. Unlike Jinja's ``_()``,
    # no %-formatting is applied, so a label with a literal "%" is safe.
    app.jinja_env.filters["translate"] = translate


def translate(text: Any) -> Any:
    """The catalogue's translation of a domain text; anything else (empty, a number) unchanged."""
    return _(text) if isinstance(text, str) and text else text
