"""paper uploads: total of rejected rows, and the state of a large upload imported by a job

Revision ID: hygiene_0001
Revises: surveyfix_0001
Create Date: 2026-12-01 07:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = "hygiene_0001"
down_revision = "surveyfix_0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("survey_paper_uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejected_total", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("status", sa.String(length=20), server_default="done", nullable=False))
        batch_op.add_column(sa.Column("valid_rows", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("processed", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("message", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("payload", sa.LargeBinary(), nullable=True))


def downgrade():
    with op.batch_alter_table("survey_paper_uploads", schema=None) as batch_op:
        batch_op.drop_column("payload")
        batch_op.drop_column("message")
        batch_op.drop_column("processed")
        batch_op.drop_column("valid_rows")
        batch_op.drop_column("status")
        batch_op.drop_column("rejected_total")
