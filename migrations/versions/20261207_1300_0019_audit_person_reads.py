"""audit_events: an index of the rows that name a person's record

Reads of a person's record (GET /people/{id}), their refusals and merges name the person rather than a case.
The 開示請求 answer gathers them with the rows of the person's cases; this partial index finds them without
reading the whole trail, and costs nothing on the rows about anything else.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 13:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_events_person', 'audit_events', ['object_id'],
                    sqlite_where=sa.text("object_type = 'person'"),
                    postgresql_where=sa.text("object_type = 'person'"))


def downgrade() -> None:
    op.drop_index('ix_audit_events_person', table_name='audit_events')
