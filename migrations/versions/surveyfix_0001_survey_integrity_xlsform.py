"""surveys: XLSForm expressions, translations and kept columns; answer status and submission keys

Revision ID: surveyfix_0001
Revises: calendar_0001
Create Date: 2026-12-01 07:00:00

Written by hand. Existing rows get empty expressions and extras, and every existing response stays
counted (status accepted).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'surveyfix_0001'
down_revision = 'calendar_0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('surveys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('definition_extras', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('import_notes', sa.JSON(), nullable=False, server_default='[]'))

    with op.batch_alter_table('survey_questions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('relevant', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('constraint', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('constraint_message', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('translations', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('extras', sa.JSON(), nullable=False, server_default='{}'))

    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'status',
                sa.Enum('accepted', 'held', 'excluded', name='responsestatus', native_enum=False, length=20),
                nullable=False,
                server_default='accepted',
            )
        )
        batch_op.add_column(sa.Column('hold_reason', sa.String(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('decided_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_survey_responses_status'), ['status'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_survey_responses_decided_by_users'), 'users', ['decided_by'], ['id']
        )

    op.create_table('survey_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.Integer(), nullable=False),
    sa.Column('response_id', sa.Integer(), nullable=True),
    sa.Column('device_hash', sa.String(length=64), nullable=True),
    sa.Column('address_hash', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['response_id'], ['survey_responses.id'], name=op.f('fk_survey_submissions_response_id_survey_responses')),
    sa.ForeignKeyConstraint(['survey_id'], ['surveys.id'], name=op.f('fk_survey_submissions_survey_id_surveys')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_submissions'))
    )
    with op.batch_alter_table('survey_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_submissions_address_hash'), ['address_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_submissions_device_hash'), ['device_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_submissions_response_id'), ['response_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_submissions_submitted_at'), ['submitted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_submissions_survey_id'), ['survey_id'], unique=False)


def downgrade():
    with op.batch_alter_table('survey_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_submissions_survey_id'))
        batch_op.drop_index(batch_op.f('ix_survey_submissions_submitted_at'))
        batch_op.drop_index(batch_op.f('ix_survey_submissions_response_id'))
        batch_op.drop_index(batch_op.f('ix_survey_submissions_device_hash'))
        batch_op.drop_index(batch_op.f('ix_survey_submissions_address_hash'))
    op.drop_table('survey_submissions')

    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_survey_responses_decided_by_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_survey_responses_status'))
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('hold_reason')
        batch_op.drop_column('status')

    with op.batch_alter_table('survey_questions', schema=None) as batch_op:
        batch_op.drop_column('extras')
        batch_op.drop_column('translations')
        batch_op.drop_column('constraint_message')
        batch_op.drop_column('constraint')
        batch_op.drop_column('relevant')

    with op.batch_alter_table('surveys', schema=None) as batch_op:
        batch_op.drop_column('import_notes')
        batch_op.drop_column('definition_extras')
