"""scores.sample_flag: the missing-data policy's flag on a leaf's input (样本不足 / 无样本)

Revision ID: assess_0001
Revises: hygiene_0002
Create Date: 2026-12-01 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "assess_0001"
down_revision = "hygiene_0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sample_flag", sa.String(length=20), server_default="", nullable=False))


def downgrade():
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.drop_column("sample_flag")
