"""Co-governance jobs: close the votes whose deadline has passed (run by the periodic beat)."""

from __future__ import annotations

import logging
from datetime import datetime

from core import jobs
from governance import services

log = logging.getLogger(__name__)


def close_due_votes(now: datetime | None = None) -> int:
    """Close every vote past its deadline and freeze its tally, in one transaction; how many closed."""
    with jobs.unit_of_work() as session:
        closed = services.close_due_votes(session, now)
    if closed:
        log.info("closed %s vote(s) at their deadline", closed)
    return closed
