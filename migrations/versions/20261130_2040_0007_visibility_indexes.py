"""cases.fm_id and handoffs.from_department_id: indexes for the visibility filter's ways in

The case FM's cases and the cases a department sent a つなぐシート for are two of the ways a person may
know of a case (engine.access.visible_cases_filter); without an index each was a scan of its table.

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-30 20:40:00
"""
from alembic import op

revision = '0007'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_fm_id'), ['fm_id'], unique=False)
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoffs_from_department_id'), ['from_department_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoffs_from_department_id'))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_fm_id'))
