"""Suggest topics from clusters of similar cases: same community and category, similar text.

Similarity is the Jaccard index of the texts' character bigrams (Chinese has no spaces; bigrams catch
"电梯"/"路灯"/"垃圾" without a dictionary). Clusters are single-link groups of cases whose similarity
reaches ``threshold``; only groups of at least ``min_size`` cases are suggested.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core.db import DbSession
from core.models import Unit
from governance.models import TopicCase
from routing.models import Case

_NOISE = re.compile(r"[\s\d，。！？、,.!?；;：:（）()“”\"'\-—]+")


def bigrams(text: str) -> frozenset[str]:
    """The set of character bigrams of ``text`` without spaces, digits and punctuation."""
    clean = _NOISE.sub("", text or "")
    if len(clean) < 2:
        return frozenset({clean}) if clean else frozenset()
    return frozenset(clean[i : i + 2] for i in range(len(clean) - 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard index of two bigram sets (0 when both are empty)."""
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def groups(texts: Sequence[str], threshold: float = 0.2) -> list[list[int]]:
    """Single-link groups of indexes into ``texts`` whose pairwise similarity reaches ``threshold``."""
    grams = [bigrams(t) for t in texts]
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            if similarity(grams[i], grams[j]) >= threshold:
                parent[find(j)] = find(i)
    out: dict[int, list[int]] = {}
    for i in range(len(texts)):
        out.setdefault(find(i), []).append(i)
    return sorted(out.values(), key=lambda g: (-len(g), g[0]))


@dataclass(frozen=True)
class Cluster:
    """A suggested topic: similar cases of one community and category."""

    community: Unit
    category: str
    cases: tuple[Case, ...]

    @property
    def title(self) -> str:
        """A suggested topic title."""
        return f"{self.category}问题集中反映（{len(self.cases)} 件）"


def suggest(
    session: DbSession,
    root: Unit | None,
    since: datetime,
    threshold: float = 0.2,
    min_size: int = 2,
    limit: int = 2000,
) -> list[Cluster]:
    """Clusters of similar cases (not yet linked to a topic) received since ``since`` in ``root``'s subtree."""
    linked = select(TopicCase.case_id)
    stmt = (
        select(Case)
        .join(Unit, Unit.id == Case.community_id)
        .where(Case.created_at >= since, Case.id.not_in(linked), Case.merged_into_id.is_(None))
    )
    if root is not None:
        stmt = stmt.where(Unit.path.startswith(root.path, autoescape=True))
    cases = list(session.scalars(stmt.order_by(Case.id).limit(limit)))
    buckets: dict[tuple[int, int], list[Case]] = {}
    for case in cases:
        buckets.setdefault((case.community_id, case.category_id), []).append(case)
    found = []
    for bucket in buckets.values():
        for group in groups([c.description for c in bucket], threshold):
            if len(group) >= min_size:
                members = tuple(bucket[i] for i in group)
                found.append(Cluster(members[0].community, members[0].category.name, members))
    return sorted(found, key=lambda c: -len(c.cases))
