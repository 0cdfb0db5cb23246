"""case photos, me-too counts and community boundaries

Revision ID: photos_0001
Revises: openapi_0001
Create Date: 2026-12-01 08:15:00

"""
from alembic import op
import sqlalchemy as sa


revision = "photos_0001"
down_revision = "openapi_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "case_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_case_photos_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_photos")),
        sa.UniqueConstraint("key", name=op.f("uq_case_photos_key")),
    )
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_photos_case_id"), ["case_id"], unique=False)
    op.create_table(
        "unit_boundaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_unit_boundaries_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_boundaries")),
        sa.UniqueConstraint("unit_id", name=op.f("uq_unit_boundaries_unit_id")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("me_too_count", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("me_too_count")
    op.drop_table("unit_boundaries")
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_photos_case_id"))
    op.drop_table("case_photos")
