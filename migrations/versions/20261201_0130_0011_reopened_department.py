"""cases.reopened_department_id: the department that reopened a case holds it in 受付

A closed case reopened by the staff of its last owner went back to 受付 without an owner, held only by the
window that first recorded it and the desk: the department that reopened it could neither send it on nor
close it again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 01:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its REFERENCES clause but cannot add a constraint afterwards, and
        # rebuilding `cases` in batch mode would drop the table every record of a case refers to.
        columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("cases")}
        if "reopened_department_id" not in columns:  # left by a downgrade
            op.execute("ALTER TABLE cases ADD COLUMN reopened_department_id INTEGER REFERENCES departments (id)")
        return
    op.add_column('cases', sa.Column('reopened_department_id', sa.Integer(), nullable=True))
    op.create_foreign_key(op.f('fk_cases_reopened_department_id_departments'), 'cases', 'departments',
                          ['reopened_department_id'], ['id'])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite refuses to drop a column named in a foreign key: the column stays, unused, and an upgrade
        # takes it back.
        return
    op.drop_constraint(op.f('fk_cases_reopened_department_id_departments'), 'cases', type_='foreignkey')
    op.drop_column('cases', 'reopened_department_id')
