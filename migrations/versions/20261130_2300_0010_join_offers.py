"""join_offers: a department told of a case offers to work on it (参加の申し出)

A notified department could only mark its notice 確認済み; to work on the case it had to reach the owner
some other way. An offer waits on the case (and in the owner's inbox) until the owner asks the department
to join or lets the offer go.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 23:00:00
"""
import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'join_offers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('open_key', sa.String(length=40), nullable=True),
        sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=False),
        sa.Column('answered_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column('answered_by_id', sa.Integer(), nullable=True),
        sa.Column('answer_note', sa.Text(), nullable=True),
        sa.Column('handoff_id', sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'accepted', 'declined', 'withdrawn', 'lapsed')",
                           name=op.f('ck_join_offers_status')),
        sa.ForeignKeyConstraint(['answered_by_id'], ['users.id'], name=op.f('fk_join_offers_answered_by_id_users')),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_join_offers_case_id_cases'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_join_offers_created_by_id_users')),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name=op.f('fk_join_offers_department_id_departments')),
        sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_join_offers_handoff_id_handoffs'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_join_offers')),
        sa.UniqueConstraint('open_key', name=op.f('uq_join_offers_open_key')),
    )
    op.create_index(op.f('ix_join_offers_case_id'), 'join_offers', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_join_offers_case_id'), table_name='join_offers')
    op.drop_table('join_offers')
