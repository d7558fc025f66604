"""case_notices: the departments a routing rule (or a sender) tells of a case they do not own

Until now a rule's `notify` departments were only written into the case history, although the reason
shown to staff says they are told ("…ひきこもり支援ステーションにも通知します"). This revision creates the
notices, makes one for each department named in the history of every つなぐシート sent so far, and adds
those departments to case_departments (they know the case exists; they read nothing of its content).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 22:30:00
"""
import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'case_notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column('acknowledged_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'],
                                name=op.f('fk_case_notices_acknowledged_by_id_users')),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_notices_case_id_cases'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name=op.f('fk_case_notices_department_id_departments')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_case_notices')),
        sa.UniqueConstraint('case_id', 'department_id', name=op.f('uq_case_notices_case_id_department_id')),
    )
    op.create_index(op.f('ix_case_notices_department_id'), 'case_notices', ['department_id'], unique=False)

    conn = op.get_bind()
    departments = dict(conn.execute(sa.text("SELECT code, id FROM departments")).all())
    history = sa.table('case_history', sa.column('id', sa.Integer), sa.column('case_id', sa.Integer),
                       sa.column('event', sa.String), sa.column('detail', sa.JSON),
                       sa.column('at', engine.dbtypes.UTCDateTime()))
    cases = sa.table('cases', sa.column('id', sa.Integer), sa.column('routing_reason', sa.Text),
                     sa.column('owning_department_id', sa.Integer))
    sent = conn.execute(
        sa.select(history.c.case_id, history.c.detail, history.c.at, cases.c.routing_reason,
                  cases.c.owning_department_id)
        .join(cases, cases.c.id == history.c.case_id)
        .where(history.c.event == 'send_handoff').order_by(history.c.id)).all()
    told = set()
    rows = []
    for case_id, detail, at, reason, owner in sent:
        for code in (detail or {}).get("notify") or []:
            dept = departments.get(code)
            if dept is None or dept == owner or (case_id, dept) in told:
                continue
            told.add((case_id, dept))
            rows.append({"case_id": case_id, "department_id": dept, "reason": reason or "振り分けルールによる通知",
                         "created_at": at})
    if rows:
        notices = sa.table('case_notices', sa.column('case_id', sa.Integer), sa.column('department_id', sa.Integer),
                           sa.column('reason', sa.Text), sa.column('created_at', engine.dbtypes.UTCDateTime()))
        op.bulk_insert(notices, rows)
    op.execute(
        "INSERT INTO case_departments (case_id, department_id, content, state)"
        " SELECT n.case_id, n.department_id, 1 = 0, c.state FROM case_notices n JOIN cases c ON c.id = n.case_id"
        " WHERE NOT EXISTS (SELECT 1 FROM case_departments d"
        "                    WHERE d.case_id = n.case_id AND d.department_id = n.department_id)")


def downgrade() -> None:
    op.execute(
        "DELETE FROM case_departments WHERE content = (1 = 0) AND EXISTS (SELECT 1 FROM case_notices n"
        " WHERE n.case_id = case_departments.case_id AND n.department_id = case_departments.department_id)"
        " AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.case_id = case_departments.case_id"
        "                 AND h.from_department_id = case_departments.department_id)"
        " AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.id = case_departments.case_id"
        "                 AND c.created_department_id = case_departments.department_id)")
    op.drop_index(op.f('ix_case_notices_department_id'), table_name='case_notices')
    op.drop_table('case_notices')
