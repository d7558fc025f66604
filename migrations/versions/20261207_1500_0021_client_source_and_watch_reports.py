"""api_clients.source, and the watch_report alert: referrals from where the rules can see, 見守り通報

A 見守り協定 company's or a 包括's system posts referrals like any other system, but the rules route on where a
referral came from (`sources` in routing.yaml): a client may now carry a source of categories.yaml, given to
its referrals instead of `api`. Existing clients keep `api` (no source set).

A 見守り協定 partner's narrow report (POST /watch-reports) waits at the desk with an alert of its own kind, and
a department's request that an FM convene a 支援会議 waits on the FM dashboard with another.

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

OLD_KINDS = ("handoff_stalled", "handoff_escalated", "handoff_declined", "unrouted", "multi_agency_candidate",
             "evaluation_overdue", "no_contact", "basis_needed", "handed_back", "notice_unseen")
NEW_KINDS = OLD_KINDS + ("watch_report", "meeting_requested")


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), nullable=True))
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_alerts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_alerts_kind'), _kinds(NEW_KINDS))


def downgrade() -> None:
    # A report's alert has no kind to go back to: it goes; the report's case stays, at the desk.
    op.execute(f"DELETE FROM alerts WHERE NOT ({_kinds(OLD_KINDS)})")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_alerts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_alerts_kind'), _kinds(OLD_KINDS))
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('source')
