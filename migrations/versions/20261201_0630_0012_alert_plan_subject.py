"""alerts.plan_id, alerts.subject_date: what a plan's alert was raised about

An alert resolved by hand keeps its key while its subject still waits, and the scan let the key go by
comparing the alert's `raised_at` with the times of the plan, the evaluation or the contact. A scan run with
`--now` ahead of the clock (or a clock that differs between machines) made a replan, an evaluation or a
contact look older than the alert, and the next plan's alerts were never raised. The alert now names the
plan and the date that made it due; the scan compares those with the plan as it stands.

Existing open and held alerts of these kinds whose subject has not moved on (by the old rule) are given
their case's active plan and its current date; the others are resolved or released by the next scan.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 06:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On SQLite the table is rebuilt (a foreign key cannot be added to a table there); no table refers to
    # `alerts`, so nothing else is touched.
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('subject_date', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_alerts_plan_id'), ['plan_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_alerts_plan_id_plans'), 'plans', ['plan_id'], ['id'],
                                    ondelete='CASCADE')

    # Open and held alerts whose subject is still the one they were raised for, by the rule in force until
    # now (the times), are given their plan and its date; the others are left without, and the next scan
    # resolves them or lets their key go, as the old rule would have.
    active_plan = ("SELECT plans.id FROM plans WHERE plans.case_id = alerts.case_id AND plans.status = 'active' "
                   "ORDER BY plans.number DESC LIMIT 1")
    same_plan = ("EXISTS (SELECT 1 FROM plans JOIN cases ON cases.id = plans.case_id "
                 "WHERE plans.case_id = alerts.case_id AND plans.status = 'active' "
                 "AND cases.state = 'accompaniment' AND plans.created_at <= alerts.raised_at{})")
    still = {
        "evaluation_overdue": same_plan.format(
            " AND (plans.evaluated_at IS NULL OR plans.evaluated_at < alerts.raised_at)"),
        "no_contact": same_plan.format("") + (
            " AND NOT EXISTS (SELECT 1 FROM contact_notes WHERE contact_notes.case_id = alerts.case_id "
            "AND contact_notes.created_at >= alerts.raised_at)"),
    }
    for kind, column in (("evaluation_overdue", "next_evaluation_date"), ("no_contact", "no_contact_since")):
        op.execute(
            f"UPDATE alerts SET plan_id = ({active_plan}), "
            f"subject_date = (SELECT plans.{column} FROM plans WHERE plans.id = ({active_plan})) "
            f"WHERE alerts.kind = '{kind}' AND alerts.open_key IS NOT NULL AND {still[kind]}")


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_alerts_plan_id_plans'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_alerts_plan_id'))
        batch_op.drop_column('subject_date')
        batch_op.drop_column('plan_id')
