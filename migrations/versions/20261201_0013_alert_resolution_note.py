"""alerts.resolution_note: the note written on 解決, beside the one written on 確認

An alert had one `note`: resolving it with a note, or resolving it by the engine (「受理により解決」),
replaced the note its acknowledgement had carried. Each now has its own column.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 07:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('resolution_note', sa.Text(), nullable=True))
    # Until now a resolved alert kept the note of its last step in `note`: when that step was the 解決,
    # it belongs to the resolution (an acknowledgement's note, replaced then, cannot be told apart).
    op.execute("UPDATE alerts SET resolution_note = note, note = NULL "
               "WHERE status = 'resolved' AND note IS NOT NULL AND acknowledged_at IS NULL")


def downgrade() -> None:
    op.execute("UPDATE alerts SET note = resolution_note WHERE resolution_note IS NOT NULL")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('resolution_note')
