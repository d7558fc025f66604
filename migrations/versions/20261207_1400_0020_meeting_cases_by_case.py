"""meeting_cases.case_id: an index for the meetings that discussed a case

A meeting may discuss several cases (the 支援会議 of a household); a case's page, its person's 開示請求
answer and retention look up the meetings that discussed it by the case, which the primary key
(meeting_id, case_id) cannot serve.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 14:00:00
"""
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('meeting_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_cases_case_id'), ['case_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('meeting_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_cases_case_id'))
