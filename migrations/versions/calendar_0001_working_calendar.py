"""working calendar as data: holiday notices per year; provisional deadlines on cases

Creates calendar_years and calendar_dates and seeds them with every year the installed
chinesecalendar package knows (here, once per database, before any process serves). Adds
cases.deadline_provisional and cases.deadline_basis.

Revision ID: calendar_0001
Revises: e013c090c407
Create Date: 2026-12-01 07:30:00

"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "calendar_0001"
down_revision = "e013c090c407"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("imported_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["imported_by_id"], ["users.id"], name=op.f("fk_calendar_years_imported_by_id_users")
        ),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_calendar_years")),
    )
    op.create_table(
        "calendar_dates",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["year"], ["calendar_years.year"], name=op.f("fk_calendar_dates_year_calendar_years")
        ),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_dates")),
    )
    with op.batch_alter_table("calendar_dates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_dates_year"), ["year"], unique=False)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deadline_provisional", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("deadline_basis", sa.JSON(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_cases_deadline_provisional"), ["deadline_provisional"], unique=False
        )
    _seed_from_library()


def _seed_from_library():
    """Every year the chinesecalendar package knows (self-contained: no application code)."""
    try:
        import chinese_calendar
    except ImportError:  # the package is a dependency; without it `flask calendar import` fills the years
        return
    names = {h.value: h.chinese for h in chinese_calendar.Holiday}
    rows = [(d, "holiday", names.get(n, n)) for d, n in chinese_calendar.holidays.items()]
    rows += [(d, "workday", names.get(n, n) + "调休") for d, n in chinese_calendar.workdays.items()]
    years = sorted({d.year for d, _k, _n in rows})
    now = datetime.now(UTC).replace(tzinfo=None)
    years_table = sa.table(
        "calendar_years",
        sa.column("year", sa.Integer),
        sa.column("source", sa.String),
        sa.column("note", sa.String),
        sa.column("revision", sa.Integer),
        sa.column("updated_at", sa.DateTime),
    )
    dates_table = sa.table(
        "calendar_dates",
        sa.column("day", sa.Date),
        sa.column("year", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("name", sa.String),
    )
    op.bulk_insert(
        years_table,
        [
            {"year": y, "source": "library", "note": "chinesecalendar", "revision": 1, "updated_at": now}
            for y in years
        ],
    )
    op.bulk_insert(
        dates_table, [{"day": d, "year": d.year, "kind": k, "name": n} for d, k, n in sorted(rows)]
    )


def downgrade():
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_deadline_provisional"))
        batch_op.drop_column("deadline_basis")
        batch_op.drop_column("deadline_provisional")
    with op.batch_alter_table("calendar_dates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_dates_year"))
    op.drop_table("calendar_dates")
    op.drop_table("calendar_years")
