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
    # Until now every way of resolving an alert (a person's 解決, whose note was required, an action, the
    # scan) wrote its note over `note`: a resolved alert's note is its resolution's. The acknowledgement's
    # note it replaced is gone.
    op.execute("UPDATE alerts SET resolution_note = note, note = NULL WHERE status = 'resolved' AND note IS NOT NULL")


def downgrade() -> None:
    op.execute("UPDATE alerts SET note = resolution_note WHERE resolution_note IS NOT NULL")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('resolution_note')
