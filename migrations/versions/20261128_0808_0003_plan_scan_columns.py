"""plans: the no-contact clock and the indexes the stall scan reads

Revision ID: 0003
Revises: 0005
Create Date: 2026-11-28 07:41:14.171641
"""
import zoneinfo
from datetime import timezone

import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0003'
down_revision = '0005'
branch_labels = None
depends_on = None

JST = zoneinfo.ZoneInfo("Asia/Tokyo")


def upgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('no_contact_since', sa.Date(), nullable=True))
        batch_op.create_index('ix_plans_status_next_evaluation', ['status', 'next_evaluation_date'], unique=False)
        batch_op.create_index('ix_plans_status_no_contact', ['status', 'no_contact_since'], unique=False)

    # Existing plans: the later of the adoption day (JST) and the last contact recorded since.
    plans = sa.table('plans', sa.column('id', sa.Integer), sa.column('case_id', sa.Integer),
                     sa.column('created_at', engine.dbtypes.UTCDateTime()),
                     sa.column('no_contact_since', sa.Date))
    notes = sa.table('contact_notes', sa.column('case_id', sa.Integer), sa.column('contact_on', sa.Date))
    bind = op.get_bind()
    last_contact = (sa.select(sa.func.max(notes.c.contact_on)).where(notes.c.case_id == plans.c.case_id)
                    .scalar_subquery())
    rows = bind.execute(sa.select(plans.c.id, plans.c.created_at, last_contact.label('last_contact'))).all()
    for plan_id, created_at, last in rows:
        since = created_at.astimezone(timezone.utc).astimezone(JST).date()
        if last is not None and last > since:
            since = last
        bind.execute(plans.update().where(plans.c.id == plan_id).values(no_contact_since=since))


def downgrade() -> None:
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_index('ix_plans_status_no_contact')
        batch_op.drop_index('ix_plans_status_next_evaluation')
        batch_op.drop_column('no_contact_since')
