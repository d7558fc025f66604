"""Bases for sharing with bodies outside the city, and the record of each provision (提供記録)

A body outside the city (an outside agency, a partner) receives a person's data only on a basis the law
gives; the engine checks it at every outward share and records the provision. This revision adds:

- departments.commission_work, commission_categories: the commission (委託) a body has, as
  config/departments.yaml declares it (`tsunagu departments load` fills them in);
- provisions: who gave which body what of a case, when, on which basis;
- handoffs.lapsed_at: a join that ended with the consent it rested on (the department keeps metadata);
- consents.recorded_by_client_id (a consent given with a referral from another system), recorded_by_id
  now nullable for it;
- case_notices.escalate_at and alerts.notice_id: a notice of a 多機関協働 candidate nobody has seen goes to
  the FM; new alert kinds basis_needed, handed_back and notice_unseen.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 09:00:00
"""
import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

OLD_KINDS = ("handoff_stalled", "handoff_escalated", "handoff_declined", "unrouted", "multi_agency_candidate",
             "evaluation_overdue", "no_contact")
NEW_KINDS = OLD_KINDS + ("basis_needed", "handed_back", "notice_unseen")


def _kinds(kinds) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('commission_work', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('commission_categories', sa.JSON(), nullable=False, server_default='[]'))

    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lapsed_at', engine.dbtypes.UTCDateTime(), nullable=True))

    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_by_client_id', sa.Integer(), nullable=True))
        batch_op.alter_column('recorded_by_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(batch_op.f('fk_consents_recorded_by_client_id_api_clients'), 'api_clients',
                                    ['recorded_by_client_id'], ['id'])

    with op.batch_alter_table('case_notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalate_at', engine.dbtypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_case_notices_escalate_at'), ['escalate_at'], unique=False)

    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_alerts_notice_id_case_notices'), 'case_notices', ['notice_id'],
                                    ['id'], ondelete='CASCADE')
        batch_op.drop_constraint(batch_op.f('ck_alerts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_alerts_kind'), _kinds(NEW_KINDS))

    op.create_table(
        'provisions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('what', sa.String(length=16), nullable=False),
        sa.Column('basis', sa.String(length=32), nullable=False),
        sa.Column('basis_code', sa.String(length=32), nullable=True),
        sa.Column('basis_note', sa.Text(), nullable=True),
        sa.Column('commission_work', sa.Text(), nullable=True),
        sa.Column('consent_id', sa.Integer(), nullable=True),
        sa.Column('meeting_id', sa.Integer(), nullable=True),
        sa.Column('handoff_id', sa.Integer(), nullable=True),
        sa.Column('given_by_id', sa.Integer(), nullable=True),
        sa.Column('given_by_client_id', sa.Integer(), nullable=True),
        sa.Column('given_at', engine.dbtypes.UTCDateTime(), nullable=False),
        sa.CheckConstraint("what IN ('sheet', 'join', 'meeting', 'fact', 'notice', 'plan_role')",
                           name=op.f('ck_provisions_what')),
        sa.CheckConstraint("basis IN ('commission', 'consent', 'support_meeting', 'statute')",
                           name=op.f('ck_provisions_basis')),
        sa.CheckConstraint("basis <> 'statute' OR (basis_code IS NOT NULL AND basis_note IS NOT NULL)",
                           name=op.f('ck_provisions_statute_has_code_and_note')),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_provisions_case_id_cases'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name=op.f('fk_provisions_department_id_departments')),
        sa.ForeignKeyConstraint(['consent_id'], ['consents.id'], name=op.f('fk_provisions_consent_id_consents'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_provisions_meeting_id_meetings'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_provisions_handoff_id_handoffs'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['given_by_id'], ['users.id'], name=op.f('fk_provisions_given_by_id_users')),
        sa.ForeignKeyConstraint(['given_by_client_id'], ['api_clients.id'],
                                name=op.f('fk_provisions_given_by_client_id_api_clients')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_provisions')),
    )
    op.create_index('ix_provisions_case_department', 'provisions', ['case_id', 'department_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_provisions_case_department', table_name='provisions')
    op.drop_table('provisions')
    op.execute(f"DELETE FROM alerts WHERE NOT ({_kinds(OLD_KINDS)})")
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_alerts_kind'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_alerts_kind'), _kinds(OLD_KINDS))
        batch_op.drop_constraint(batch_op.f('fk_alerts_notice_id_case_notices'), type_='foreignkey')
        batch_op.drop_column('notice_id')
    with op.batch_alter_table('case_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_notices_escalate_at'))
        batch_op.drop_column('escalate_at')
    # A consent a referring system recorded has no member of staff to name: it goes with the downgrade.
    op.execute("DELETE FROM consents WHERE recorded_by_id IS NULL")
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_consents_recorded_by_client_id_api_clients'), type_='foreignkey')
        batch_op.alter_column('recorded_by_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('recorded_by_client_id')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_column('lapsed_at')
    with op.batch_alter_table('departments', schema=None) as batch_op:
        batch_op.drop_column('commission_categories')
        batch_op.drop_column('commission_work')
