"""Paper questionnaire uploads: read and check a file, then store its valid rows in chunks.

A small file is imported in the request (:func:`import_paper`). A large one is recorded with its bytes
(:func:`queue_paper`) and imported by ``surveys.jobs.import_paper_upload`` outside the web process:
:func:`run_paper_upload` flushes after every chunk, the job commits there, so the page can show
``processed`` of ``valid_rows`` while it runs. Rows whose instance id is already stored add nothing, so a
job that runs twice (or resumes after a crash) doubles nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.csvio import ErrorLog
from core.i18n import N_
from core.inputs import column_length
from core.models import Level, Unit, User
from surveys.definitions import SurveyError
from surveys.imports import PAPER_PREFIX, PaperBatch, paper_rows, read_paper
from surveys.models import PaperUpload, Survey, SurveyResponse, SurveyStatus

CHUNK = 500  # rows stored per flush (and per progress step, and per IN (...) lookup)
FILENAME_MAX = column_length(PaperUpload.filename) or 200


def _check_open(survey: Survey) -> None:
    if survey.status == SurveyStatus.draft:
        raise SurveyError("not_open", N_("问卷尚未开始收集，不能导入纸质问卷"))


def community_districts(session: Session) -> dict[str, str]:
    """Active community code → the code of the district above it (from the units' paths)."""
    rows = session.execute(
        select(Unit.code, Unit.path).where(Unit.level == Level.community, Unit.active.is_(True))
    ).all()
    district_ids = {code: path.strip("/").split("/")[1] if path.count("/") > 2 else "" for code, path in rows}
    district_codes = {
        uid: code
        for uid, code in session.execute(select(Unit.id, Unit.code).where(Unit.level == Level.district))
    }
    return {code: district_codes.get(int(d), "") if d else "" for code, d in district_ids.items()}


def read_paper_file(session: Session, survey: Survey, data: bytes, filename: str) -> PaperBatch:
    """Read and check a paper file against the survey and the unit tree (stores nothing)."""
    log = ErrorLog()  # one cap for the file's bad cells and bad rows
    rows = paper_rows(data, filename, errors=log)
    return read_paper(rows, survey.questions, community_districts(session), error_log=log)


def store_rows(session: Session, survey: Survey, upload: PaperUpload, batch: PaperBatch) -> Iterator[int]:
    """Store the batch's rows not stored before, flushing after each chunk and yielding rows done so far."""
    from surveys.services import Respondent, _store  # the one place a response is written

    units = {
        u.code: u
        for u in session.scalars(select(Unit).where(Unit.code.in_({r.community_code for r in batch.rows})))
    }
    for start in range(upload.processed, len(batch.rows), CHUNK):
        chunk = batch.rows[start : start + CHUNK]
        known = set(
            session.scalars(
                select(SurveyResponse.instance_id).where(
                    SurveyResponse.survey_id == survey.id,
                    SurveyResponse.instance_id.in_([PAPER_PREFIX + r.instance_id for r in chunk]),
                )
            )
        )
        for row in chunk:
            instance = PAPER_PREFIX + row.instance_id
            if instance in known:
                upload.duplicates += 1
                continue
            respondent = Respondent(row.age_band, row.gender)
            _store(
                session,
                survey,
                units[row.community_code],
                instance,
                "paper",
                respondent,
                row.district_code,
                row.answers,
            )
            upload.stored += 1
        upload.processed = start + len(chunk)
        session.flush()
        yield upload.processed


def _record(upload: PaperUpload, batch: PaperBatch) -> None:
    upload.rejected = [[e.line, e.column or "", e.message] for e in batch.errors]
    upload.rejected_total = batch.total_errors
    upload.valid_rows = len(batch.rows)


def import_paper(
    session: Session, survey: Survey, data: bytes, filename: str, user: User | None = None
) -> PaperUpload:
    """Store every valid row of a paper file now; rejected rows are recorded; known instance ids add nothing."""
    _check_open(survey)
    batch = read_paper_file(session, survey, data, filename)
    upload = PaperUpload(
        survey_id=survey.id,
        filename=filename[:FILENAME_MAX],
        uploaded_by=user.id if user else None,
        stored=0,
        duplicates=0,
        processed=0,
        status="done",
    )
    _record(upload, batch)
    session.add(upload)
    session.flush()
    for _done in store_rows(session, survey, upload, batch):
        pass
    return upload


def queue_paper(
    session: Session, survey: Survey, data: bytes, filename: str, user: User | None = None
) -> PaperUpload:
    """Record a large file for the import job (status ``queued``; its bytes are kept until it is read)."""
    _check_open(survey)
    upload = PaperUpload(
        survey_id=survey.id,
        filename=filename[:FILENAME_MAX],
        uploaded_by=user.id if user else None,
        stored=0,
        duplicates=0,
        processed=0,
        rejected=[],
        status="queued",
        payload=data,
    )
    session.add(upload)
    session.flush()
    return upload


def run_paper_upload(session: Session, upload: PaperUpload) -> Iterator[int]:
    """The job's work: read the kept file, record its problems, store rows chunk by chunk (yields between).

    Raises ImportRejected for a file refused as a whole (missing columns, past a cap, out of time).
    """
    survey = session.get(Survey, upload.survey_id)
    assert survey is not None  # the foreign key
    batch = read_paper_file(session, survey, upload.payload or b"", upload.filename)
    _record(upload, batch)
    upload.status = "running"
    session.flush()
    yield upload.processed
    yield from store_rows(session, survey, upload, batch)
    upload.status, upload.payload = "done", None
    session.flush()
