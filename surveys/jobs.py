"""Thin job entry points for surveys: primitive arguments, one service call, safe to run twice."""

from __future__ import annotations

from core.csvio import ImportRejected
from core.jobs import unit_of_work
from surveys import paper, services
from surveys.models import PaperUpload


def close_survey(survey_id: int) -> bool:
    """Close a survey's collection (closing an already closed survey changes nothing)."""
    with unit_of_work() as session:
        return services.close_survey(session, services.get_survey(session, survey_id))


def import_paper_upload(upload_id: int) -> str:
    """Import a queued paper upload outside the web process, committing after each chunk (progress).

    Safe to run twice: a finished upload is left alone, and a run that stopped half-way resumes at
    ``processed`` (rows already stored are recognised by their instance ids).
    """
    with unit_of_work() as session:
        upload = session.get(PaperUpload, upload_id)
        if upload is None:
            return "missing"
        if upload.status in ("done", "failed"):
            return upload.status
        try:
            for _done in paper.run_paper_upload(session, upload):
                session.commit()
        except ImportRejected as rejected:
            # The whole file is refused (missing columns, past a cap, out of time): say why, keep nothing.
            session.rollback()
            failed = session.get(PaperUpload, upload_id)
            assert failed is not None
            failed.status, failed.payload, failed.message = "failed", None, str(rejected)
            failed.rejected = [[e.line, e.column or "", e.message] for e in rejected.errors]
            failed.rejected_total = rejected.total
            return "failed"
        return upload.status
