"""unit imports uploaded by admins and run by a job

Revision ID: hygiene_0002
Revises: hygiene_0001
Create Date: 2026-12-01 07:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = "hygiene_0002"
down_revision = "hygiene_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "unit_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("problem_total", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], name=op.f("fk_unit_imports_uploaded_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_imports")),
    )


def downgrade():
    op.drop_table("unit_imports")
