"""one-time SMS codes: verify a resident's phone, reset a password by SMS

Adds users.phone_verified_at, the phone_codes table (a nonce and an HMAC per code, never the code) and
lets a message delivery be about a code instead of a case (message_deliveries.case_id nullable,
message_deliveries.phone_code_id).

Revision ID: phonecode_0001
Revises: intakeidx_0001
Create Date: 2026-12-01 10:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "phonecode_0001"
down_revision = "intakeidx_0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_verified_at", sa.DateTime(), nullable=True))
    op.create_table(
        "phone_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_phone_codes_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_codes")),
    )
    with op.batch_alter_table("phone_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_codes_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_phone_codes_phone"), ["phone"], unique=False)
        batch_op.create_index(batch_op.f("ix_phone_codes_created_at"), ["created_at"], unique=False)
    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("phone_code_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_message_deliveries_phone_code_id_phone_codes"), "phone_codes", ["phone_code_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_message_deliveries_phone_code_id"), ["phone_code_id"], unique=False)


def downgrade():
    op.execute("DELETE FROM message_deliveries WHERE case_id IS NULL")
    with op.batch_alter_table("message_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_deliveries_phone_code_id"))
        batch_op.drop_constraint(batch_op.f("fk_message_deliveries_phone_code_id_phone_codes"), type_="foreignkey")
        batch_op.drop_column("phone_code_id")
        batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("phone_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_codes_created_at"))
        batch_op.drop_index(batch_op.f("ix_phone_codes_phone"))
        batch_op.drop_index(batch_op.f("ix_phone_codes_user_id"))
    op.drop_table("phone_codes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("phone_verified_at")
