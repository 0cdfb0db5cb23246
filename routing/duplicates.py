"""Possible duplicates at intake: open cases in the same community and category with similar text.

Similarity is the Dice coefficient of character bigrams after dropping spaces and punctuation. Chinese
has no spaces between words, and bigrams catch most two-character words (垃圾, 清运, 漏水) without a
segmentation dictionary, so the function is pure, fast and gives the same answer everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, literal_column, select, update

from core.db import DbSession
from routing.lifecycle import OPEN_STATES
from routing.models import Case

THRESHOLD = 0.35  # below this, two reports of one problem rarely looked alike in the demo's texts
MAX_SUGGESTIONS = 3
CANDIDATES = 200  # the most recent open cases compared in one community and category
_OPEN = tuple(s.value for s in OPEN_STATES)
_DIGITS = re.compile(r"\d{5,}")  # phone numbers and the like are not shown back in a snippet


_NOT_ALNUM = re.compile(r"[\W_]+")  # \w is str.isalnum() and "_": this keeps exactly the alphanumerics


def normalise(text: str) -> str:
    """Lower-case letters, digits and CJK characters only (NFKC: full-width forms fold to ASCII)."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text or "").lower())


def bigrams(text: str) -> frozenset[str]:
    """The set of two-character sequences of the normalised text (the text itself when shorter).

    Cached for texts of ordinary length: every intake compares against up to CANDIDATES recent
    descriptions, mostly the same ones; long texts are not kept, which bounds the cache (see CACHED_LENGTH)."""
    return _cached_bigrams(text) if len(text or "") <= CACHED_LENGTH else _bigrams(text)


CACHED_LENGTH = (
    400  # characters: an entry is then ≤ ~40 KB (2,048 of them ≤ ~80 MB; ~10 MB for typical texts)
)


def _bigrams(text: str) -> frozenset[str]:
    plain = normalise(text)
    if len(plain) < 2:
        return frozenset({plain} if plain else ())
    return frozenset(map(str.__add__, plain, plain[1:]))


_cached_bigrams = lru_cache(maxsize=2048)(_bigrams)


def dice(left: frozenset[str], right: frozenset[str]) -> float:
    """Dice coefficient of two bigram sets, from 0.0 (nothing shared) to 1.0."""
    if not left or not right:
        return 0.0
    return 2 * len(left & right) / (len(left) + len(right))


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the two texts' character bigrams, from 0.0 (nothing shared) to 1.0."""
    return dice(bigrams(a), bigrams(b))


@dataclass(frozen=True)
class Duplicate:
    """An open case that may report the same problem (plain values, safe to show a resident)."""

    tracking_number: str
    state: str
    created_at: datetime
    me_too_count: int
    snippet: str
    score: float


def snippet(text: str, length: int = 30) -> str:
    """The start of a description with long digit runs (phone numbers) hidden."""
    short = _DIGITS.sub("…", " ".join((text or "").split()))
    return short if len(short) <= length else short[:length] + "…"


_CASES = Case.__table__.c
# Built once (Core, bound parameters): intake runs it on every request, on PostgreSQL inside the case's
# INSERT statement (routing.intake). The open states are literals: an expanding IN parameter would be
# re-rendered on every execution.
CANDIDATES_QUERY = (
    select(
        _CASES.id,
        _CASES.tracking_number,
        _CASES.state,
        _CASES.created_at,
        _CASES.me_too_count,
        _CASES.description,
    )
    .where(
        _CASES.community_id == bindparam("community_id"),
        _CASES.category_id == bindparam("category_id"),
        _CASES.state.in_([literal_column(f"'{state}'") for state in _OPEN]),
        _CASES.merged_into_id.is_(None),
        _CASES.created_at >= bindparam("since"),
    )
    .order_by(_CASES.created_at.desc())
    .limit(CANDIDATES)
)


def candidate_params(category_id: int, community_id: int, now: datetime, window_days: int) -> dict[str, Any]:
    """The parameters of :data:`CANDIDATES_QUERY` for one community and category."""
    return {
        "community_id": community_id,
        "category_id": category_id,
        "since": now - timedelta(days=window_days),
    }


def rank(
    rows: Iterable[Any],
    description: str,
    *,
    exclude_id: int | None = None,
    threshold: float = THRESHOLD,
) -> list[Duplicate]:
    """The rows of :data:`CANDIDATES_QUERY` as similar to ``description`` as ``threshold``, best first."""
    wanted = bigrams(description)
    scored = [(dice(wanted, bigrams(row.description)), row) for row in rows if row.id != exclude_id]
    best = sorted(
        ((score, row) for score, row in scored if score >= threshold),
        key=lambda pair: (-pair[0], pair[1].tracking_number),
    )[:MAX_SUGGESTIONS]
    return [
        Duplicate(
            row.tracking_number, row.state, row.created_at, row.me_too_count, snippet(row.description), score
        )
        for score, row in best
    ]


def possible_duplicates(
    session: DbSession,
    *,
    category_id: int | None,
    community_id: int | None,
    description: str,
    now: datetime,
    window_days: int,
    exclude_id: int | None = None,
    threshold: float = THRESHOLD,
) -> list[Duplicate]:
    """Open, unmerged cases of this category and community created within the window, most similar first.

    By ids (intake has them already): the query walks ``ix_cases_duplicate_lookup`` with no join."""
    if category_id is None or community_id is None or not normalise(description):
        return []
    rows = session.connection().execute(
        CANDIDATES_QUERY, candidate_params(category_id, community_id, now, window_days)
    )
    return rank(rows, description, exclude_id=exclude_id, threshold=threshold)


def add_me_too(session: DbSession, case: Case) -> bool:
    """Count one more resident with the same problem on an open case; False when the case is not open."""
    if case.state not in _OPEN:
        return False
    # One UPDATE adding 1, so concurrent "me too"s all count (and the case's version is not bumped).
    session.execute(
        update(Case).where(Case.id == case.id).values(me_too_count=Case.me_too_count + 1),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    session.refresh(case, ["me_too_count"])
    return True
