"""Adapter feeding callback (回访) ratings of cases into survey analysis (surveys never imports routing)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from core.models import Category, Unit
from core.quarter import Quarter
from routing.models import Case
from surveys.frames import callback_summary


def callback_ratings(session: Session, quarter: Quarter | None = None) -> pd.DataFrame:
    """Rated cases as community_code, category_code, satisfaction, solved (optionally of one quarter)."""
    community = aliased(Unit)
    query = (
        select(community.code, Category.code, Case.satisfaction, Case.solved)
        .join(community, community.id == Case.community_id)
        .join(Category, Category.id == Case.category_id)
        .where(Case.satisfaction.is_not(None))
    )
    if quarter is not None:
        query = query.where(Case.created_at >= quarter.start, Case.created_at < quarter.end)
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=["community_code", "category_code", "satisfaction", "solved"])


def callback_results(session: Session, quarter: Quarter | None = None) -> pd.DataFrame:
    """Callback satisfaction by community and category with Wilson intervals."""
    return callback_summary(callback_ratings(session, quarter))
