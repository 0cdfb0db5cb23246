"""A validated rules upload waiting for the admin's confirmation (派单规则上传预览).

The parsed rules are written once to ``<instance>/staged-rules/<id>.json``, ``id`` being 32 random
bytes (URL-safe); the file's content is signed with the app's secret (itsdangerous, salted) and carries
the uploader's id, the version the preview was diffed against, the note and the time. A confirmation
names only the id: what is published is what was previewed, read back from the server, never from the
form. Loading checks the id's shape (no path tricks), the signature, the age (``STAGE_SECONDS``) and
that the same admin asks; anything else reads as "no such preview". Published or cancelled previews are
deleted; stale files are swept whenever a new upload is staged.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from routing.rules import Rule

STAGE_SECONDS = 2 * 3600  # a preview older than this must be uploaded again
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)
_SALT = "staged-dispatch-rules"


@dataclass(frozen=True)
class StagedRules:
    """One staged upload."""

    token: str
    user_id: int
    based_on: int
    note: str
    filename: str
    rules: list[Rule]


def _folder() -> Path:
    return Path(current_app.instance_path) / "staged-rules"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _path(token: str) -> Path | None:
    return _folder() / f"{token}.json" if _TOKEN.match(token or "") else None


def stage(user_id: int, based_on: int, rules: list[Rule], note: str, filename: str) -> str:
    """Store the upload; returns its id."""
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    _sweep(folder)
    token = secrets.token_urlsafe(32)
    payload = {
        "token": token,
        "user_id": user_id,
        "based_on": based_on,
        "note": note,
        "filename": filename,
        "rules": [[r.level, r.category, r.group, r.place, r.unit_code, r.priority] for r in rules],
    }
    path = folder / f"{token}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(_serializer().dumps(payload)), encoding="utf-8")
    os.replace(temporary, path)  # never a half-written preview
    return token


def load(token: str, user_id: int) -> StagedRules | None:
    """The staged upload with this id, if it exists, is intact, fresh and was staged by ``user_id``."""
    path = _path(token)
    if path is None or not path.is_file():
        return None
    try:
        payload = _serializer().loads(json.loads(path.read_text(encoding="utf-8")), max_age=STAGE_SECONDS)
    except (BadSignature, ValueError, OSError):
        return None
    if payload.get("token") != token or payload.get("user_id") != user_id:
        return None
    rules = [
        Rule(level, category, group, place, unit, int(priority))
        for level, category, group, place, unit, priority in payload["rules"]
    ]
    return StagedRules(token, user_id, int(payload["based_on"]), payload["note"], payload["filename"], rules)


def discard(token: str) -> None:
    """Delete a staged upload (published, cancelled or stale)."""
    path = _path(token)
    if path is not None:
        path.unlink(missing_ok=True)


def _sweep(folder: Path) -> None:
    cutoff = time.time() - STAGE_SECONDS
    for old in folder.glob("*.json"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)
        except OSError:
            continue
