"""page form submissions and list indexes

The one-time keys of page forms (a form sent twice is applied once), and indexes for the staff pages'
lists at 100,000 cases: every term of the case visibility filter can use an index (cases by creating
department, consent agencies by department), and counts by state read one covering index.

Revision ID: 0005
Revises: 0006
Create Date: 2026-11-28 08:07:29.828855
"""
import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0005'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('form_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_form_submissions_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_form_submissions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_submissions')),
    sa.UniqueConstraint('user_id', 'token', name=op.f('uq_form_submissions_user_id_token'))
    )
    op.create_index(op.f('ix_form_submissions_created_at'), 'form_submissions', ['created_at'], unique=False)

    # Index operations only: no table is copied.
    op.drop_index(op.f('ix_cases_state_owner'), table_name='cases')
    op.create_index('ix_cases_state_owner_created', 'cases',
                    ['state', 'owning_department_id', 'created_department_id'], unique=False)
    op.create_index(op.f('ix_cases_created_department_id'), 'cases', ['created_department_id'], unique=False)
    op.create_index(op.f('ix_consent_agencies_department_id'), 'consent_agencies', ['department_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_consent_agencies_department_id'), table_name='consent_agencies')
    op.drop_index(op.f('ix_cases_created_department_id'), table_name='cases')
    op.drop_index('ix_cases_state_owner_created', table_name='cases')
    op.create_index(op.f('ix_cases_state_owner'), 'cases', ['state', 'owning_department_id'], unique=False)
    op.drop_index(op.f('ix_form_submissions_created_at'), table_name='form_submissions')
    op.drop_table('form_submissions')
