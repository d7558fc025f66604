"""case_departments: each department's standing relation to a case, for lists and counts

A busy department (the desk records and hands on most consultations) may know of most cases; testing
every way it may know of them on each case row made its start page and case list slow at 100,000 cases.
The engine now keeps the union of those relations in one table (engine.case_departments); this revision
creates it and fills it from the records.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 21:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# The same relations engine.case_departments keeps, as they stand at this revision.
FILL = """
INSERT INTO case_departments (case_id, department_id, content, state)
SELECT rel.case_id, rel.department_id, max(rel.content) = 1, cases.state
FROM (
    SELECT id AS case_id, owning_department_id AS department_id, 1 AS content
      FROM cases WHERE owning_department_id IS NOT NULL
    UNION ALL
    SELECT id, created_department_id, CASE WHEN owning_department_id IS NULL THEN 1 ELSE 0 END
      FROM cases WHERE created_department_id IS NOT NULL
    UNION ALL
    SELECT cases.id, departments.id, 1
      FROM cases JOIN departments ON departments.code = 'desk' WHERE cases.owning_department_id IS NULL
    UNION ALL
    SELECT case_id, to_department_id, 1 FROM handoffs WHERE state IN ('sent', 'accepted')
    UNION ALL
    SELECT case_id, from_department_id, 0 FROM handoffs WHERE from_department_id IS NOT NULL
    UNION ALL
    SELECT consents.case_id, consent_agencies.department_id, 1
      FROM consents JOIN consent_agencies ON consent_agencies.consent_id = consents.id
     WHERE consents.status = 'given'
       AND NOT EXISTS (SELECT 1 FROM consents AS newer
                        WHERE newer.case_id = consents.case_id AND newer.id > consents.id)
) AS rel JOIN cases ON cases.id = rel.case_id
GROUP BY rel.case_id, rel.department_id, cases.state
"""


def upgrade() -> None:
    op.create_table(
        'case_departments',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('department_id', sa.Integer(), nullable=False),
        sa.Column('content', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_departments_case_id_cases'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['department_id'], ['departments.id'],
                                name=op.f('fk_case_departments_department_id_departments')),
        sa.PrimaryKeyConstraint('case_id', 'department_id', name=op.f('pk_case_departments')),
    )
    op.create_index('ix_case_departments_department_id_state', 'case_departments',
                    ['department_id', 'state', 'content', 'case_id'], unique=False)
    op.execute(FILL)


def downgrade() -> None:
    op.drop_index('ix_case_departments_department_id_state', table_name='case_departments')
    op.drop_table('case_departments')
