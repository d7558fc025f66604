"""meeting_attendees: the agencies that attended a 重層的支援会議

A 重層的支援会議 was recorded only as the plan it decided, with its recorder as its one member and the
moment of typing as its time. It now records the agencies that attended (出席機関) besides its time held.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 16:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'meeting_attendees',
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name=op.f('fk_meeting_attendees_department_id_departments')),
        sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE',
                                name=op.f('fk_meeting_attendees_meeting_id_meetings')),
        sa.PrimaryKeyConstraint('meeting_id', 'department_id', name=op.f('pk_meeting_attendees')),
    )


def downgrade() -> None:
    op.drop_table('meeting_attendees')
