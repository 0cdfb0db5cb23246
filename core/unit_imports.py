"""Unit tree imports uploaded by an admin, run by a job outside the web process.

The file is kept in :class:`UnitImport` until the job (:func:`run_unit_import`) has read it; the import
itself stays all-or-nothing (``core.units.import_units``), so its progress is its state: queued →
running → done (with the counts) or failed (with the first problems and their total).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.csvio import ImportRejected
from core.db import Base, DbSession, utcnow
from core.inputs import column_length
from core.units import import_units


class UnitImport(Base):
    """One uploaded unit file and the outcome of its import job."""

    __tablename__ = "unit_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | done | failed
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    problems: Mapped[Any] = mapped_column(JSON, default=list)  # [[line, column, message], ...] (first 200)
    problem_total: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)


def queue_unit_import(session: DbSession, data: bytes, filename: str, user_id: int | None) -> UnitImport:
    """Record an uploaded unit file for the import job (flush only; the view commits, then enqueues)."""
    row = UnitImport(
        filename=filename[: column_length(UnitImport.filename) or 200],
        uploaded_by=user_id,
        status="queued",
        payload=data,
        problems=[],
    )
    session.add(row)
    session.flush()
    return row


def mark_running(session: DbSession, row: UnitImport) -> None:
    """Show the import as running (the job commits this before the long part)."""
    row.status = "running"
    session.flush()


def run_unit_import(session: DbSession, row: UnitImport) -> None:
    """Apply the kept file (all or nothing); on ImportRejected the caller rolls back and calls record_failure."""
    summary = import_units(session, row.payload or b"")
    row.created, row.updated, row.unchanged = summary.created, summary.updated, summary.unchanged
    row.status, row.payload, row.finished_at = "done", None, utcnow()
    session.flush()


def record_failure(session: DbSession, row: UnitImport, rejected: ImportRejected) -> None:
    """Keep why a file was refused (first problems and their count); nothing of it was applied."""
    row.status, row.payload, row.finished_at = "failed", None, utcnow()
    row.problems = [[e.line, e.column or "", e.message] for e in rejected.errors]
    row.problem_total = rejected.total
    row.message = str(rejected)
    session.flush()
