"""api_clients.source: the source code of every referral a client sends

A 見守り協定 company's or a 包括's system posts referrals like any other system, but the rules route on where a
referral came from (`sources` in routing.yaml): a client may now carry a source of categories.yaml, given to
its referrals instead of `api`. Existing clients keep `api` (no source set).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('source')
