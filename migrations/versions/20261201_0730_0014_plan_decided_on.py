"""plans.decided_on: the 支援決定 day of each plan

The 支援決定 date was the day the plan was recorded, kept once per case and never renewed after a
reopening. Each plan now keeps the day its 重層的支援会議 decided it (given when the plan is recorded
later, today otherwise); existing plans take the day they were recorded (in Japan).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 07:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('plans', sa.Column('decided_on', sa.Date(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE plans SET decided_on = (created_at AT TIME ZONE 'Asia/Tokyo')::date")
    else:
        op.execute("UPDATE plans SET decided_on = date(created_at, '+9 hours')")


def downgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_column('decided_on')
