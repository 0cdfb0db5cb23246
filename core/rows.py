"""Core INSERTs that hand back persistent, fully loaded ORM objects: the hot write path of intake.

A flush of a new object runs the unit of work (dependency sorting, history, events) and, for a case
with its first event, sends two statements; per intake that was over a quarter of a web worker's time.
:func:`insert_with_child` sends plain INSERT statements (on PostgreSQL a parent and its first child in
one statement) and then places the objects in the session exactly as a query would have loaded them, so
reading them sends no SELECT and later changes to them flush as usual.

A read can ride along (``also``): on PostgreSQL it is a further CTE of the same statement, so it costs no
round trip and sees the tables as they were before the INSERTs; elsewhere it runs just after them and
leaves the new parent's row out.

Given a Connection instead of a Session, the statements run on it and the objects come back detached:
for a connection in AUTOCOMMIT mode the rows are committed when the call returns, so no session's
transaction holds them (intake's one-statement case).

What a flush would do and this does too: Python-side column defaults, and the flush guard's check of
strings (:func:`core.inputs.check_values`) before anything is sent. What it does not do: fire flush events
(``after_flush`` listeners do not see the rows; callers tell such listeners themselves), or evaluate
SQL-expression defaults (only models whose defaults are Python values may use it).
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Column,
    Connection,
    CursorResult,
    Insert,
    Row,
    Select,
    Table,
    bindparam,
    insert,
    inspect,
    select,
    true,
)
from sqlalchemy.orm import Mapper, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from core.db import Base, DbSession
from core.inputs import check_values

M = TypeVar("M", bound=Base)
C = TypeVar("C", bound=Base)


def insert_with_child(
    target: DbSession | Connection,
    parent: type[M],
    parent_values: dict[str, Any],
    child: type[C],
    child_values: dict[str, Any],
    foreign_key: str,
    *,
    parent_empty: tuple[str, ...] = (),
    also: Select[Any] | None = None,
    also_params: dict[str, Any] | None = None,
) -> tuple[M, C, list[Row[Any]]]:
    """INSERT a parent row and one child row pointing at it (``foreign_key``); both returned loaded, with
    the rows of the read ``also`` (bound with ``also_params``; its first column must never be NULL and,
    when it reads the parent's table, must be its primary key).

    PostgreSQL gets one statement (the parent's INSERT in a CTE feeding the child's, ``also`` in another
    CTE), so one round trip; its rows carry the two new keys as trailing columns (read the read's columns
    by name). Other databases get two INSERTs and then ``also``. Either way ``also`` returns no row of
    the new parent: a CTE sees the tables as they were before the statement, and elsewhere rows whose
    first column is the new parent's key are left out.

    ``target``: a session (the objects are placed in it, persistent) or a connection (they are detached).
    """
    parent_mapper, child_mapper = inspect(parent), inspect(child)
    check_values(parent_mapper, parent_values)
    check_values(child_mapper, child_values)
    parent_table, child_table = _table(parent), _table(child)
    parent_row = _complete(parent_table, parent_values)
    child_row = _complete(child_table, child_values)
    parent_sent = _sent_columns(parent_table, parent_values)
    child_sent = _sent_columns(child_table, child_values) - {foreign_key}
    if isinstance(target, Connection):
        connection, session = target, None
    else:
        connection, session = target.connection(), target
    found: list[Row[Any]] = []
    if connection.dialect.name == "postgresql":
        params = {f"p_{k}": parent_row[k] for k in parent_sent} | {f"c_{k}": child_row[k] for k in child_sent}
        pair = _insert_pair(parent, child, foreign_key, parent_sent, child_sent)
        if also is None:
            child_key, parent_key = tuple(cast(CursorResult[Any], connection.execute(pair, params)).one())
        else:
            rows = list(connection.execute(_with_read(pair, also), {**params, **(also_params or {})}))
            # The read's rows, each with the child's and the parent's keys appended (one row of NULLs
            # and the keys when it found nothing).
            child_key, parent_key = rows[0][-2], rows[0][-1]
            found = [row for row in rows if row[0] is not None]
    else:
        parent_key = cast(
            CursorResult[Any], connection.execute(_insert_one(parent, parent_sent), parent_row)
        ).scalar_one()
        child_key = cast(
            CursorResult[Any],
            connection.execute(
                _insert_one(child, child_sent | {foreign_key}), {**child_row, foreign_key: parent_key}
            ),
        ).scalar_one()
        if also is not None:
            # After the INSERTs: a read first would hold SQLite to a snapshot that another writer's commit
            # makes stale ("database is locked" at the INSERT, not a wait).
            read = connection.execute(also, also_params or {})
            found = [row for row in read if row[0] != parent_key]
    parent_obj = _loaded(session, parent_mapper, {**parent_row, _pk(parent).key: parent_key}, parent_empty)
    child_obj = _loaded(
        session, child_mapper, {**child_row, _pk(child).key: child_key, foreign_key: parent_key}, ()
    )
    return parent_obj, child_obj, found


@cache
def _table(model: type[Base]) -> Table:
    return cast(Table, inspect(model).local_table)


@cache
def _pk(model: type[Base]) -> Column[Any]:
    (key,) = _table(model).primary_key.columns
    return key


def _complete(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Every column but the primary key: the given value, else its Python default, else NULL."""
    row: dict[str, Any] = {}
    for key, kind, default in _columns(table):
        if key in values:
            row[key] = values[key]
        elif kind == _SCALAR:
            row[key] = default
        elif kind == _CALLABLE:
            row[key] = default(None)  # SQLAlchemy's one-argument (context) form of a callable default
        else:
            row[key] = None
    return row


def _sent_columns(table: Table, values: dict[str, Any]) -> frozenset[str]:
    """The columns the INSERT names: those given and those with a default (the rest are NULL anyway).

    Fewer parameters keep the statement within psycopg's cache of converted queries (at most 50
    parameters), which otherwise re-parses the query text on every execution.
    """
    every, defaulted = _column_sets(table)
    return defaulted | (every & values.keys())


_NONE, _SCALAR, _CALLABLE = 0, 1, 2


@cache
def _columns(table: Table) -> tuple[tuple[str, int, Any], ...]:
    """(key, kind of default, default) of every column but the primary key, read once per table."""
    found = []
    for column in table.columns:
        if column.primary_key:
            continue
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            found.append((column.key, _SCALAR, default.arg))  # type: ignore[attr-defined]
        elif default is not None and getattr(default, "is_callable", False):
            found.append((column.key, _CALLABLE, default.arg))  # type: ignore[attr-defined]
        else:
            found.append((column.key, _NONE, None))
    return tuple(found)


@cache
def _column_sets(table: Table) -> tuple[frozenset[str], frozenset[str]]:
    """(every non-key column, those with a Python default)."""
    columns = _columns(table)
    return frozenset(k for k, _, _ in columns), frozenset(k for k, kind, _ in columns if kind != _NONE)


@cache
def _insert_one(model: type[Base], columns: frozenset[str]) -> Insert:
    # Built once per column set: its cache key is memoised on the statement.
    table = _table(model)
    return (
        insert(table)
        .values({k: bindparam(k, type_=table.c[k].type) for k in sorted(columns)})
        .returning(_pk(model))
    )


@cache
def _insert_pair(
    parent: type[Base],
    child: type[Base],
    foreign_key: str,
    parent_columns: frozenset[str],
    child_columns: frozenset[str],
) -> Insert:
    parent_table, child_table = _table(parent), _table(child)
    new_parent = (
        insert(parent_table)
        .values({k: bindparam(f"p_{k}", type_=parent_table.c[k].type) for k in sorted(parent_columns)})
        .returning(_pk(parent))
        .cte("new_parent")
    )
    names = sorted(child_columns)
    rows = select(
        new_parent.c[_pk(parent).key], *(bindparam(f"c_{k}", type_=child_table.c[k].type) for k in names)
    )
    return (
        insert(child_table)
        .from_select([foreign_key, *names], rows)
        .returning(_pk(child), child_table.c[foreign_key])
    )


@lru_cache(maxsize=32)  # ``also`` is a query built once (module level), so a handful of entries
def _with_read(pair: Insert, also: Select[Any]) -> Select[Any]:
    """``pair`` (the child's INSERT … RETURNING) as a CTE, ``also`` as another, joined: one statement."""
    inserted = pair.cte("new_child")
    found = also.cte("also")
    child_key, parent_key = inserted.c
    return select(
        *found.c, child_key.label("inserted_child_key"), parent_key.label("inserted_parent_key")
    ).select_from(inserted.outerjoin(found, true()))


@cache
def _attribute_columns(mapper: Mapper[Any]) -> tuple[tuple[str, str], ...]:
    """(attribute, column key) of every mapped column, read once per model."""
    return tuple((prop.key, prop.columns[0].key) for prop in mapper.column_attrs)


def _loaded(
    session: DbSession | None, mapper: Mapper[Any], row: dict[str, Any], empty: tuple[str, ...]
) -> Any:
    """The object a query would have loaded for ``row``: committed values, no history, no events;
    placed in ``session`` (persistent), else left detached.

    Column values go straight into the instance's dict, as SQLAlchemy's own loader puts them; a
    collection needs its adapter, so the ``empty`` ones go through ``set_committed_value``.
    """
    obj = mapper.class_manager.new_instance()
    values = instance_state(obj).dict
    for attribute, column in _attribute_columns(mapper):
        values[attribute] = row.get(column)
    for name in empty:
        set_committed_value(obj, name, [])
    make_transient_to_detached(obj)
    if session is not None:
        session.add(obj)
    return obj
