"""Declarative base shared by every domain package, with a constraint naming convention for Alembic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar, cast

from sqlalchemy import CursorResult, MetaData, Table, insert, inspect
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, scoped_session
from sqlalchemy.orm.attributes import set_committed_value

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


M = TypeVar("M", bound=Base)


def insert_loaded(
    session: DbSession, model: type[M], values: dict[str, Any], empty: tuple[str, ...] = ()
) -> M:
    """INSERT one row with a Core statement and return it as a persistent, fully loaded ORM object.

    For a hot path (intake): a flush of the same object costs about twice the Python time (unit of work,
    dependency sorting, history). Python-side column defaults are applied as a flush would apply them, and
    every column is loaded, so reading the object sends no SELECT; the relationships named in ``empty``
    are set to empty collections (a new row has none). The flush guard's check of strings
    (:func:`core.inputs.check_values`) runs on ``values`` first; ``after_flush`` listeners do not see the
    row. Only for models whose column defaults are Python values (not SQL expressions).
    """
    from core.inputs import check_values

    mapper = inspect(model)
    table = cast(Table, mapper.local_table)
    check_values(mapper, values)
    result = cast(CursorResult[Any], session.execute(insert(table).returning(*mapper.primary_key), values))
    key = result.one()
    inserted = {**cast(dict[str, Any], result.last_inserted_params()), **key._asdict()}
    obj = model(**{prop.key: inserted.get(prop.columns[0].key) for prop in mapper.column_attrs})
    make_transient_to_detached(obj)
    session.add(obj)
    for name in empty:
        set_committed_value(obj, name, [])
    return obj
