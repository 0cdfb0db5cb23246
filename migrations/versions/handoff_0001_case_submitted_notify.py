"""PostgreSQL hands new cases to routing: a trigger notifies the routing dispatcher of each one

An AFTER INSERT trigger on cases sends the new case's id on the ``minhu_case_submitted`` channel
(delivered when the inserting transaction commits). The routing workers listen and queue the first hop,
so intake no longer enqueues from the web process. Nothing on SQLite (the dispatcher watches for new ids
there).

Revision ID: handoff_0001
Revises: phonecode_0001
Create Date: 2026-12-01 21:00:00

"""

from alembic import op

from routing.models import HANDOFF_DDL, HANDOFF_DROP

revision = "handoff_0001"
down_revision = "phonecode_0001"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in HANDOFF_DDL:
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for statement in HANDOFF_DROP:
            op.execute(statement)
