"""Routing jobs: thin entry points of primitive arguments, each one unit of work, safe to run twice.

Enqueued through :func:`core.jobs.enqueue` (the web shell's RQ adapter applies queue, job id, retry and
timeout). Transient database errors propagate so RQ retries the job; permanent ones (the case is gone)
are logged and recorded in ``routing_failures`` and the job ends normally, so it is not retried.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from core import jobs
from core.i18n import DomainError
from routing import services

log = logging.getLogger(__name__)

ROUTE_CASE = "routing.jobs.route_case"
# Worth retrying: a lost connection, a lock timeout, a deadlock, a concurrent update of the same case.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    StaleDataError,
    TimeoutError,
    ConnectionError,
)


def is_transient(error: BaseException) -> bool:
    """Whether RQ should retry after ``error``."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


MAX_HOPS_PER_JOB = 4  # city → district → street → community, then a job of its own if more follow


def route_case(case_id: int, hop_no: int | None = None) -> str:
    """Route a case down every automatic hop that follows, in one transaction; returns what the last
    hop did.

    The hops are one unit of work (:func:`routing.services.route_down`): all committed together or none,
    so a transient error anywhere propagates and RQ's retry starts again from the first hop not done.
    Each hop row keeps its (case, hop) constraint, so a repeated or concurrent job is a no-op.
    """
    try:
        with jobs.unit_of_work() as session:
            result = services.route_down(session, case_id, hop_no=hop_no, max_hops=MAX_HOPS_PER_JOB)
    except IntegrityError:
        # A concurrent run of the same hop won the (case, hop) constraint: it goes on from there.
        return "noop"
    except DomainError as error:
        if is_transient(error):
            raise
        log.warning("routing of case %s failed for good: %s", case_id, error.code)
        with jobs.unit_of_work() as session:
            services.record_failure(session, case_id, ROUTE_CASE, error.code, str(error))
        return f"failed:{error.code}"
    if result.next_hop is not None:
        jobs.enqueue(ROUTE_CASE, case_id, result.next_hop)
    return result.action


def sweep(older_than_seconds: int = 60, limit: int = 1000, now: datetime | None = None) -> int:
    """Re-enqueue the next hop of every case stuck in submitted/dispatching; returns how many."""
    with jobs.unit_of_work() as session:
        stuck = services.stuck_cases(session, timedelta(seconds=older_than_seconds), now=now, limit=limit)
    for case_id, hop_no in stuck:
        jobs.enqueue(ROUTE_CASE, case_id, hop_no)
    if stuck:
        log.info("sweeper re-enqueued %d stuck case(s)", len(stuck))
    return len(stuck)


def purge_phone_codes(now: datetime | None = None) -> int:
    """Delete one-time codes (and the phone number each holds) a day after they were issued."""
    from routing import phone_codes

    with jobs.unit_of_work() as session:
        return phone_codes.purge_old(session, now=now)


def scan_deadlines(
    warning_share: float = services.DEFAULT_WARNING_SHARE, now: datetime | None = None
) -> dict[str, int]:
    """Flag deadline warnings and overdue cases (督办), once per case, kind and deadline, close
    resolved cases whose callback window passed without a rating, and recount 暂定 deadlines whose
    year's holiday notice has arrived."""
    from routing.calendar_services import recompute_provisional

    with jobs.unit_of_work() as session:
        counts = {"recomputed": recompute_provisional(session, now=now)}
    with jobs.unit_of_work() as session:
        counts |= services.scan_deadlines(session, warning_share=warning_share, now=now)
    if any(counts.values()):
        log.info("deadline scan: %s", counts)
    return counts
