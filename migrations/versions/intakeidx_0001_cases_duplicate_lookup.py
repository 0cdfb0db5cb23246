"""the duplicate check's index: cases by (community, category, created_at)

Every intake asks for the newest open cases of one community and category; with millions of cases the
single-column community index made it scan every case of the community.

Revision ID: intakeidx_0001
Revises: messages_0001
Create Date: 2026-12-01 10:40:00

"""

from alembic import op

revision = "intakeidx_0001"
down_revision = "messages_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_cases_duplicate_lookup", "cases", ["community_id", "category_id", "created_at"], unique=False
    )


def downgrade():
    op.drop_index("ix_cases_duplicate_lookup", table_name="cases")
