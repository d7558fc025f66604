"""users.must_change_password: a password someone else chose or saw is changed by its user first

A password issued on the 管理 page, or set with `tsunagu user password`, was seen by an administrator or an
operator. Until its user changes it, every page leads to the password change.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 06:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing users chose their passwords as before: false for them.
    op.add_column('users', sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('must_change_password')
