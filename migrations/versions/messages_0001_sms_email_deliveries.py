"""messages outside the app: SMS opt-in on cases, staff e-mail, the delivery log

Adds cases.sms_opt_in (false for existing cases), users.email (optional) and message_deliveries.

Revision ID: messages_0001
Revises: photos_0001
Create Date: 2026-12-01 08:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "messages_0001"
down_revision = "photos_0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_opt_in", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    op.create_table(
        "message_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("recipient_masked", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_message_deliveries_case_id_cases")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_message_deliveries_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_deliveries")),
    )
    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_deliveries_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_deliveries_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_deliveries_status"), ["status"], unique=False)


def downgrade():
    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_deliveries_status"))
        batch_op.drop_index(batch_op.f("ix_message_deliveries_created_at"))
        batch_op.drop_index(batch_op.f("ix_message_deliveries_case_id"))
    op.drop_table("message_deliveries")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("sms_opt_in")
