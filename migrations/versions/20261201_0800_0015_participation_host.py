"""participation_matches.host: the 協力事業者 as a code of config/categories.yaml

Matches could not be recorded at all, and their host would have been free text; the host is now a code of
the `participation_hosts` list (the label at the time is kept in host_name).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 08:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('participation_matches', sa.Column('host', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('participation_matches', schema=None) as batch_op:
        batch_op.drop_column('host')
