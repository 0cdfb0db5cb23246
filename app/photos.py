"""Photo uploads: read the files of a request, re-encode them (core.images), store them under UPLOAD_DIR
and record them on the case; serve them only to those who may see the case."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, url_for
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage

from app.i18n import message_of
from core.db import DbSession
from core.images import ImageRejected, ProcessedImage, reencode
from routing.models import Case, CasePhoto

KINDS = ("intake", "evidence")


@dataclass(frozen=True)
class PhotoProblem:
    """Why the photos of a request were refused (zh-CN message already translated)."""

    code: str
    message: str


def upload_dir() -> Path:
    """The configured upload directory (created on first use)."""
    path = Path(current_app.config["UPLOAD_DIR"]) / "photos"
    path.mkdir(parents=True, exist_ok=True)
    return path


def request_limit() -> int:
    """Body limit of a request that may carry photos: all of them at their cap, plus the form."""
    cfg = current_app.config
    return int(cfg["PHOTO_MAX_COUNT"]) * int(cfg["PHOTO_MAX_BYTES"]) + 256 * 1024


def read_photos(files: list[FileStorage]) -> tuple[list[ProcessedImage], list[PhotoProblem]]:
    """Re-encode the uploaded files; every problem is reported and nothing is kept when there is one."""
    files = [f for f in files if f and f.filename]
    limit = int(current_app.config["PHOTO_MAX_COUNT"])
    if len(files) > limit:
        return [], [PhotoProblem("too_many", _("最多上传 %(n)s 张照片", n=limit))]
    done, problems = [], []
    max_bytes = int(current_app.config["PHOTO_MAX_BYTES"])
    for upload in files:
        data = upload.stream.read(max_bytes + 1)
        try:
            done.append(reencode(data, max_bytes))
        except ImageRejected as rejected:
            name = (upload.filename or "")[:60]
            message = message_of(rejected)
            problems.append(PhotoProblem(rejected.code, f"{name}：{message}"))
    return ([], problems) if problems else (done, [])


def attach(session: DbSession, case: Case, images: list[ProcessedImage], kind: str) -> list[CasePhoto]:
    """Write the files and add their rows to the case (flush only; the view commits)."""
    if kind not in KINDS:
        raise ValueError(kind)
    folder = upload_dir()
    rows = []
    for image in images:
        key = secrets.token_urlsafe(18)
        (folder / f"{key}.jpg").write_bytes(image.jpeg)
        (folder / f"{key}.thumb.jpg").write_bytes(image.thumbnail)
        row = CasePhoto(kind=kind, key=key, width=image.width, height=image.height, size=len(image.jpeg))
        case.photos.append(row)
        rows.append(row)
    session.flush()
    return rows


def photo_path(photo: CasePhoto, thumbnail: bool) -> Path:
    """Where a stored photo (or its thumbnail) lives."""
    return upload_dir() / (f"{photo.key}.thumb.jpg" if thumbnail else f"{photo.key}.jpg")


def photo_list(case: Case, token: str | None) -> list[dict[str, Any]]:
    """The case's photos as the status page and API list them (URLs carry the viewer's token, if any)."""
    extra: dict[str, Any] = {"k": token} if token else {}
    return [
        {
            "kind": p.kind,
            "width": p.width,
            "height": p.height,
            "url": url_for(
                "photos.photo", tracking_number=case.tracking_number, key=p.key, size="full", **extra
            ),
            "thumbnail_url": url_for(
                "photos.photo", tracking_number=case.tracking_number, key=p.key, size="thumb", **extra
            ),
        }
        for p in case.photos
    ]
