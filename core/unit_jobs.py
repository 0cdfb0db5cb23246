"""Job entry point of uploaded unit imports: a primitive argument, one service call, safe to run twice."""

from __future__ import annotations

from core.csvio import ImportRejected, RowError
from core.inputs import UnsafeValue
from core.jobs import unit_of_work
from core.unit_imports import UnitImport, mark_running, record_failure, run_unit_import


def import_unit_file(import_id: int) -> str:
    """Import an uploaded unit file; a finished (done or failed) import is left alone."""
    with unit_of_work() as session:
        row = session.get(UnitImport, import_id)
        if row is None:
            return "missing"
        if row.status in ("done", "failed"):
            return row.status
        mark_running(session, row)
        session.commit()
        try:
            try:
                run_unit_import(session, row)
            except UnsafeValue as unsafe:  # a value no row check caught (the flush guard): refused too
                raise ImportRejected([RowError(1, unsafe.problem.message, unsafe.column)]) from unsafe
        except ImportRejected as rejected:
            session.rollback()
            failed = session.get(UnitImport, import_id)
            assert failed is not None
            record_failure(session, failed, rejected)
        return row.status
