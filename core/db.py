"""Declarative base shared by every domain package, with a constraint naming convention for Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session

# Names every constraint deterministically so migrations can drop/alter them on PostgreSQL and SQLite alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Root of all models; plain SQLAlchemy so domain packages never import Flask."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Current time as a naive UTC datetime (the storage convention of every timestamp column)."""
    return datetime.now(UTC).replace(tzinfo=None)


# Services take a plain Session; the web shell hands them Flask-SQLAlchemy's scoped session, which
# proxies every Session method. This alias lets both type-check without the domain importing Flask.
DbSession: TypeAlias = Session | scoped_session[Any]
