"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 07:26:24.640366
"""
import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    audit_head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.create_table('case_number_counters',
    sa.Column('fiscal_year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('fiscal_year', name=op.f('pk_case_number_counters'))
    )
    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('areas', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.CheckConstraint("kind IN ('city_section', 'outside_agency', 'partner')", name=op.f('ck_departments_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments')),
    sa.UniqueConstraint('code', name=op.f('uq_departments_code'))
    )
    op.create_table('people',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_kana', sa.String(length=100), nullable=True),
    sa.Column('search_key', sa.String(length=220), nullable=False),
    sa.Column('sex', sa.String(length=16), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('area', sa.String(length=32), nullable=True),
    sa.Column('resident_id', sa.String(length=32), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('anonymised_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people'))
    )
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_people_search_key'), ['search_key'], unique=False)

    op.create_table('retention_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ran_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('cutoff', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('case_ids', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_runs'))
    )
    op.create_table('routing_rule_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('source_name', sa.String(length=300), nullable=False),
    sa.Column('source_text', sa.Text(), nullable=False),
    sa.Column('loaded_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('loaded_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routing_rule_versions')),
    sa.UniqueConstraint('number', name=op.f('uq_routing_rule_versions_number'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('session_epoch', sa.Integer(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('staff', 'fm', 'admin')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_users_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('login', name=op.f('uq_users_login'))
    )
    op.create_table('api_clients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('webhook_url', sa.String(length=500), nullable=True),
    sa.Column('webhook_secret', sa.String(length=128), nullable=True),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_clients_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_clients')),
    sa.UniqueConstraint('name', name=op.f('uq_api_clients_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_api_tokens_client_id_api_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_client_id'), ['client_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=120), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_events_actor_id_users')),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_audit_events_client_id_api_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_events_seq'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_case_at', ['case_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_case_id'), ['case_id'], unique=False)

    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_number', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('owning_department_id', sa.Integer(), nullable=True),
    sa.Column('created_department_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('fm_id', sa.Integer(), nullable=True),
    sa.Column('consent_to_share', sa.Boolean(), nullable=False),
    sa.Column('multi_agency_candidate', sa.Boolean(), nullable=False),
    sa.Column('routing_rule_version', sa.Integer(), nullable=True),
    sa.Column('routing_rule_name', sa.String(length=100), nullable=True),
    sa.Column('routing_reason', sa.Text(), nullable=True),
    sa.Column('proposed_department_id', sa.Integer(), nullable=True),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('referral_client_id', sa.Integer(), nullable=True),
    sa.Column('external_ref', sa.String(length=255), nullable=True),
    sa.Column('referrer', sa.JSON(), nullable=True),
    sa.Column('business_categories', sa.JSON(), nullable=False),
    sa.Column('support_decision_date', sa.Date(), nullable=True),
    sa.Column('opened_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('close_reason', sa.String(length=32), nullable=True),
    sa.Column('close_note', sa.Text(), nullable=True),
    sa.Column('updated_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('anonymised_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("(state = 'closed' AND closed_at IS NOT NULL AND close_reason IS NOT NULL) OR (state <> 'closed' AND closed_at IS NULL)", name=op.f('ck_cases_closed_fields')),
    sa.CheckConstraint("state IN ('intake', 'handoff', 'assigned', 'support_meeting', 'consent', 'layered_meeting', 'accompaniment', 'suspended', 'closed')", name=op.f('ck_cases_state')),
    sa.CheckConstraint("state NOT IN ('assigned', 'accompaniment', 'layered_meeting') OR owning_department_id IS NOT NULL", name=op.f('ck_cases_owned_states_have_owner')),
    sa.CheckConstraint("urgency IN ('normal', 'urgent')", name=op.f('ck_cases_urgency')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_cases_created_by_id_users')),
    sa.ForeignKeyConstraint(['created_department_id'], ['departments.id'], name=op.f('fk_cases_created_department_id_departments')),
    sa.ForeignKeyConstraint(['fm_id'], ['users.id'], name=op.f('fk_cases_fm_id_users')),
    sa.ForeignKeyConstraint(['owning_department_id'], ['departments.id'], name=op.f('fk_cases_owning_department_id_departments')),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_cases_person_id_people')),
    sa.ForeignKeyConstraint(['proposed_department_id'], ['departments.id'], name=op.f('fk_cases_proposed_department_id_departments')),
    sa.ForeignKeyConstraint(['referral_client_id'], ['api_clients.id'], name=op.f('fk_cases_referral_client_id_api_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('case_number', name=op.f('uq_cases_case_number')),
    sa.UniqueConstraint('referral_client_id', 'external_ref', name=op.f('uq_cases_referral_client_id_external_ref'))
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_owning_department_id'), ['owning_department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_referral_client_id'), ['referral_client_id'], unique=False)
        batch_op.create_index('ix_cases_state_owner', ['state', 'owning_department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cases_updated_at'), ['updated_at'], unique=False)

    op.create_table('case_categories',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('primary', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_categories_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', 'code', name=op.f('pk_case_categories'))
    )
    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('given_by', sa.String(length=100), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('obtained_on', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("method IS NULL OR method IN ('written', 'oral')", name=op.f('ck_consents_method')),
    sa.CheckConstraint("status IN ('given', 'refused', 'withdrawn')", name=op.f('ck_consents_status')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_consents_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_consents_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents'))
    )
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consents_case_id'), ['case_id'], unique=False)

    op.create_table('contact_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('contact_on', sa.Date(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('business_category', sa.String(length=32), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_contact_notes_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_contact_notes_department_id_departments')),
    sa.ForeignKeyConstraint(['staff_id'], ['users.id'], name=op.f('fk_contact_notes_staff_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_notes'))
    )
    with op.batch_alter_table('contact_notes', schema=None) as batch_op:
        batch_op.create_index('ix_contact_notes_case_date', ['case_id', 'contact_on'], unique=False)

    op.create_table('handoffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('primary', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('from_department_id', sa.Integer(), nullable=True),
    sa.Column('to_department_id', sa.Integer(), nullable=False),
    sa.Column('sender_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('sent_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('escalate_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('declined_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('declined_by_id', sa.Integer(), nullable=True),
    sa.Column('decline_reason', sa.Text(), nullable=True),
    sa.Column('withdrawn_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state <> 'accepted' OR accepted_at IS NOT NULL", name=op.f('ck_handoffs_accepted_fields')),
    sa.CheckConstraint("state <> 'declined' OR (declined_at IS NOT NULL AND decline_reason IS NOT NULL)", name=op.f('ck_handoffs_declined_fields')),
    sa.CheckConstraint("state IN ('sent', 'accepted', 'declined', 'withdrawn')", name=op.f('ck_handoffs_state')),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], name=op.f('fk_handoffs_accepted_by_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_handoffs_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['declined_by_id'], ['users.id'], name=op.f('fk_handoffs_declined_by_id_users')),
    sa.ForeignKeyConstraint(['from_department_id'], ['departments.id'], name=op.f('fk_handoffs_from_department_id_departments')),
    sa.ForeignKeyConstraint(['sender_id'], ['users.id'], name=op.f('fk_handoffs_sender_id_users')),
    sa.ForeignKeyConstraint(['to_department_id'], ['departments.id'], name=op.f('fk_handoffs_to_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoffs'))
    )
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoffs_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_handoffs_open_due', ['state', 'due_at'], unique=False)
        batch_op.create_index('ix_handoffs_open_escalate', ['state', 'escalate_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_handoffs_to_department_id'), ['to_department_id'], unique=False)

    op.create_table('household_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('relationship_label', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('birth_year', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_household_members_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_household_members'))
    )
    with op.batch_alter_table('household_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_household_members_case_id'), ['case_id'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.JSON(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_idempotency_keys_case_id_cases'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_idempotency_keys_client_id_api_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('client_id', 'key', name=op.f('uq_idempotency_keys_client_id_key'))
    )
    op.create_table('meetings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('held_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('convenor_id', sa.Integer(), nullable=False),
    sa.Column('secretariat_department_id', sa.Integer(), nullable=True),
    sa.Column('minutes', sa.Text(), nullable=True),
    sa.Column('decisions', sa.Text(), nullable=True),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('support_meeting', 'layered_meeting')", name=op.f('ck_meetings_kind')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_meetings_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['convenor_id'], ['users.id'], name=op.f('fk_meetings_convenor_id_users')),
    sa.ForeignKeyConstraint(['secretariat_department_id'], ['departments.id'], name=op.f('fk_meetings_secretariat_department_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meetings'))
    )
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meetings_case_id'), ['case_id'], unique=False)

    op.create_table('outbox_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_outbox_events_case_id_cases'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], name=op.f('fk_outbox_events_client_id_api_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events'))
    )
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_events_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_outbox_pending', ['delivered_at', 'next_attempt_at'], unique=False)

    op.create_table('participation_matches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('host_name', sa.String(length=200), nullable=False),
    sa.Column('activity', sa.Text(), nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('ended_on', sa.Date(), nullable=True),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_participation_matches_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_participation_matches_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participation_matches'))
    )
    with op.batch_alter_table('participation_matches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participation_matches_case_id'), ['case_id'], unique=False)

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('open_key', sa.String(length=100), nullable=True),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('raised_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('resolved_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('handoff_stalled', 'handoff_escalated', 'handoff_declined', 'unrouted', 'multi_agency_candidate', 'evaluation_overdue', 'no_contact')", name=op.f('ck_alerts_kind')),
    sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name=op.f('ck_alerts_status')),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'], name=op.f('fk_alerts_acknowledged_by_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_alerts_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_alerts_department_id_departments')),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_alerts_handoff_id_handoffs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_alerts_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('open_key', name=op.f('uq_alerts_open_key'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_handoff_id'), ['handoff_id'], unique=False)
        batch_op.create_index('ix_alerts_status_kind', ['status', 'kind'], unique=False)

    op.create_table('case_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('from_state', sa.String(length=32), nullable=True),
    sa.Column('to_state', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('handoff_id', sa.Integer(), nullable=True),
    sa.Column('at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_case_history_actor_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_history_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['handoff_id'], ['handoffs.id'], name=op.f('fk_case_history_handoff_id_handoffs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_history'))
    )
    with op.batch_alter_table('case_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_history_case_id'), ['case_id'], unique=False)

    op.create_table('consent_agencies',
    sa.Column('consent_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['consent_id'], ['consents.id'], name=op.f('fk_consent_agencies_consent_id_consents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_consent_agencies_department_id_departments')),
    sa.PrimaryKeyConstraint('consent_id', 'department_id', name=op.f('pk_consent_agencies'))
    )
    op.create_table('meeting_cases',
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_meeting_cases_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_meeting_cases_meeting_id_meetings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('meeting_id', 'case_id', name=op.f('pk_meeting_cases'))
    )
    op.create_table('meeting_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('secretariat', sa.Boolean(), nullable=False),
    sa.Column('acknowledged_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_meeting_members_department_id_departments')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_meeting_members_meeting_id_meetings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_meeting_members_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting_members')),
    sa.UniqueConstraint('meeting_id', 'user_id', name=op.f('uq_meeting_members_meeting_id_user_id'))
    )
    with op.batch_alter_table('meeting_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_members_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_members_user_id'), ['user_id'], unique=False)

    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('goals', sa.Text(), nullable=False),
    sa.Column('main_department_id', sa.Integer(), nullable=False),
    sa.Column('next_evaluation_date', sa.Date(), nullable=False),
    sa.Column('business_categories', sa.JSON(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revised_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('evaluated_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('active', 'superseded', 'ended')", name=op.f('ck_plans_status')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_plans_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_plans_created_by_id_users')),
    sa.ForeignKeyConstraint(['main_department_id'], ['departments.id'], name=op.f('fk_plans_main_department_id_departments')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_plans_meeting_id_meetings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('case_id', 'number', name=op.f('uq_plans_case_id_number'))
    )
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plans_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plans_next_evaluation_date'), ['next_evaluation_date'], unique=False)

    op.create_table('shared_facts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('consent_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('carried_by_id', sa.Integer(), nullable=False),
    sa.Column('carried_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['carried_by_id'], ['users.id'], name=op.f('fk_shared_facts_carried_by_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_shared_facts_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['consent_id'], ['consents.id'], name=op.f('fk_shared_facts_consent_id_consents')),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], name=op.f('fk_shared_facts_meeting_id_meetings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shared_facts'))
    )
    with op.batch_alter_table('shared_facts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shared_facts_case_id'), ['case_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_event_id', sa.Integer(), nullable=False),
    sa.Column('attempted_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_event_id'], ['outbox_events.id'], name=op.f('fk_webhook_deliveries_outbox_event_id_outbox_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_outbox_event_id'), ['outbox_event_id'], unique=False)

    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('evaluated_on', sa.Date(), nullable=False),
    sa.Column('goals_met', sa.String(length=16), nullable=False),
    sa.Column('changes', sa.Text(), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('next_evaluation_date', sa.Date(), nullable=True),
    sa.Column('evaluator_id', sa.Integer(), nullable=False),
    sa.Column('created_at', engine.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("decision IN ('continue', 'replan', 'suspend', 'close')", name=op.f('ck_evaluations_decision')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_evaluations_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['evaluator_id'], ['users.id'], name=op.f('fk_evaluations_evaluator_id_users')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_evaluations_plan_id_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations'))
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_case_id'), ['case_id'], unique=False)

    op.create_table('plan_roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_plan_roles_department_id_departments')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_plan_roles_plan_id_plans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_roles'))
    )
    with op.batch_alter_table('plan_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_roles_plan_id'), ['plan_id'], unique=False)

    # The chain's head: one row, locked by every append.
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    with op.batch_alter_table('plan_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_roles_plan_id'))

    op.drop_table('plan_roles')
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_case_id'))

    op.drop_table('evaluations')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_outbox_event_id'))

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('shared_facts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shared_facts_case_id'))

    op.drop_table('shared_facts')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plans_next_evaluation_date'))
        batch_op.drop_index(batch_op.f('ix_plans_case_id'))

    op.drop_table('plans')
    with op.batch_alter_table('meeting_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_members_user_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_members_meeting_id'))

    op.drop_table('meeting_members')
    op.drop_table('meeting_cases')
    op.drop_table('consent_agencies')
    with op.batch_alter_table('case_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_history_case_id'))

    op.drop_table('case_history')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_status_kind')
        batch_op.drop_index(batch_op.f('ix_alerts_handoff_id'))
        batch_op.drop_index(batch_op.f('ix_alerts_case_id'))

    op.drop_table('alerts')
    with op.batch_alter_table('participation_matches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participation_matches_case_id'))

    op.drop_table('participation_matches')
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')
        batch_op.drop_index(batch_op.f('ix_outbox_events_client_id'))

    op.drop_table('outbox_events')
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meetings_case_id'))

    op.drop_table('meetings')
    op.drop_table('idempotency_keys')
    with op.batch_alter_table('household_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_members_case_id'))

    op.drop_table('household_members')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoffs_to_department_id'))
        batch_op.drop_index('ix_handoffs_open_escalate')
        batch_op.drop_index('ix_handoffs_open_due')
        batch_op.drop_index(batch_op.f('ix_handoffs_case_id'))

    op.drop_table('handoffs')
    with op.batch_alter_table('contact_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_notes_case_date')

    op.drop_table('contact_notes')
    with op.batch_alter_table('consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consents_case_id'))

    op.drop_table('consents')
    op.drop_table('case_categories')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_updated_at'))
        batch_op.drop_index('ix_cases_state_owner')
        batch_op.drop_index(batch_op.f('ix_cases_referral_client_id'))
        batch_op.drop_index(batch_op.f('ix_cases_person_id'))
        batch_op.drop_index(batch_op.f('ix_cases_owning_department_id'))

    op.drop_table('cases')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_case_id'))
        batch_op.drop_index('ix_audit_events_case_at')

    op.drop_table('audit_events')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_client_id'))

    op.drop_table('api_tokens')
    op.drop_table('api_clients')
    op.drop_table('users')
    op.drop_table('routing_rule_versions')
    op.drop_table('retention_runs')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_search_key'))

    op.drop_table('people')
    op.drop_table('departments')
    op.drop_table('case_number_counters')
    op.drop_table('audit_head')
