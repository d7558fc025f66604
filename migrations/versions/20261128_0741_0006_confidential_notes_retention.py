"""support-meeting contact notes, birth year kept after retention, sign-in throttling index

A contact note can belong to a 支援会議 (only its members read it); retention reduces a birth date to its
year; failed sign-ins are counted per address from the audit trail.

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-28 07:41:48.939376
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_addr_at', ['remote_addr', 'at'], unique=False)

    with op.batch_alter_table('contact_notes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('meeting_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_contact_notes_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_contact_notes_meeting_id_meetings'), 'meetings',
                                    ['meeting_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('birth_year', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_column('birth_year')

    with op.batch_alter_table('contact_notes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_contact_notes_meeting_id_meetings'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_contact_notes_meeting_id'))
        batch_op.drop_column('meeting_id')

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_addr_at')
