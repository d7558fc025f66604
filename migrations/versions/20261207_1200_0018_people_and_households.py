"""One record per person, and households

Until now every consultation made its own person row and carried its household as a list. This revision:

- people: name_key and kana_key (name and kana folded for matching, engine.people.names.match_key),
  created_at, merged_into_id (a record merged into another keeps its row), an index on the birth date, and
  one live record per 宛名番号 (a partial unique index);
- rows with the same 宛名番号 become one person: the oldest record stays, the cases of the others move to it
  and each other row is kept as merged into it, with a person_merges row saying what moved (an unmerge can
  put it back);
- person_candidates (possible matches for staff to decide: the records already there born the same day with
  the same name or kana become candidates too) and person_merges;
- households and household_members: each person whose consultations listed a household gets one household,
  with the person as a member and every listed member (without a record of their own: a list carried no
  宛名番号 to match them by), relative to the person and noting the case that listed them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 12:00:00
"""
import unicodedata
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

import engine.dbtypes

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# The fold as this revision made it (a later change of engine.people.names must not change what ran here).
_VARIANTS = str.maketrans({
    "髙": "高", "﨑": "崎", "嵜": "崎", "𠮷": "吉", "齋": "斎", "齊": "斎", "斉": "斎", "邊": "辺", "邉": "辺",
    "澤": "沢", "濱": "浜", "濵": "浜", "櫻": "桜", "廣": "広", "國": "国", "德": "徳", "惠": "恵", "眞": "真",
    "嶋": "島", "嶌": "島", "槇": "槙", "冨": "富", "藏": "蔵", "實": "実", "壽": "寿", "會": "会", "條": "条",
    "學": "学", "來": "来", "淺": "浅", "瀨": "瀬", "龍": "竜", "黑": "黒", "曾": "曽", "彌": "弥", "與": "与",
    "圓": "円", "萬": "万", "舘": "館", "峯": "峰", "栁": "柳", "桒": "桑", "禮": "礼", "薗": "園", "籠": "篭",
    "驒": "騨", "鷗": "鴎", "兒": "児", "彥": "彦", "莊": "荘",
})
_DROP = str.maketrans("", "", " ・･.=＝-‐")
_VU = (("ゔぁ", "ば"), ("ゔぃ", "び"), ("ゔぇ", "べ"), ("ゔぉ", "ぼ"), ("ゔ", "ぶ"))
MERGED_BY_REVISION = "移行（同じ宛名番号の記録を1人にまとめました）"


def _key(text):
    if not text:
        return ""
    s = unicodedata.normalize("NFKC", text).lower().translate(_VARIANTS)
    s = "".join(s.split()).translate(_DROP)
    s = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" or c == "ヴ" else c for c in s)
    for vu, b in _VU:
        s = s.replace(vu, b)
    return s


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(timezone.utc)
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('kana_key', sa.String(length=200), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('created_at', engine.dbtypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('merged_into_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_people_merged_into_id_people'), 'people', ['merged_into_id'],
                                    ['id'])
        batch_op.create_index(batch_op.f('ix_people_merged_into_id'), ['merged_into_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_people_birth_date'), ['birth_date'], unique=False)

    people = sa.table('people', sa.column('id', sa.Integer), sa.column('name', sa.String),
                      sa.column('name_kana', sa.String), sa.column('resident_id', sa.String),
                      sa.column('sex', sa.String),
                      sa.column('birth_date', sa.Date), sa.column('area', sa.String),
                      sa.column('phone', sa.String), sa.column('address', sa.String),
                      sa.column('name_key', sa.String), sa.column('kana_key', sa.String),
                      sa.column('created_at', engine.dbtypes.UTCDateTime()),
                      sa.column('merged_into_id', sa.Integer))
    cases = sa.table('cases', sa.column('id', sa.Integer), sa.column('person_id', sa.Integer),
                     sa.column('opened_at', engine.dbtypes.UTCDateTime()))
    opened = dict(conn.execute(sa.select(cases.c.person_id, sa.func.min(cases.c.opened_at))
                               .group_by(cases.c.person_id)).all())
    for pid, name, kana in conn.execute(sa.select(people.c.id, people.c.name, people.c.name_kana)).all():
        conn.execute(people.update().where(people.c.id == pid).values(
            name_key=_key(name), kana_key=_key(kana), created_at=opened.get(pid) or now))
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.alter_column('created_at', existing_type=engine.dbtypes.UTCDateTime(), nullable=False)

    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('person_match', sa.String(length=16), nullable=True))

    op.create_table(
        'person_merges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('survivor_id', sa.Integer(), nullable=False),
        sa.Column('merged_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('merged_at', engine.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('merged_by_id', sa.Integer(), nullable=True),
        sa.Column('case_ids', sa.JSON(), nullable=False),
        sa.Column('member_ids', sa.JSON(), nullable=False),
        sa.Column('resident_id_moved', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('undone_at', engine.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('undone_by_id', sa.Integer(), nullable=True),
        sa.Column('undo_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['survivor_id'], ['people.id'], name=op.f('fk_person_merges_survivor_id_people')),
        sa.ForeignKeyConstraint(['merged_id'], ['people.id'], name=op.f('fk_person_merges_merged_id_people')),
        sa.ForeignKeyConstraint(['merged_by_id'], ['users.id'], name=op.f('fk_person_merges_merged_by_id_users')),
        sa.ForeignKeyConstraint(['undone_by_id'], ['users.id'], name=op.f('fk_person_merges_undone_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_person_merges')),
    )
    op.create_index(op.f('ix_person_merges_survivor_id'), 'person_merges', ['survivor_id'], unique=False)
    op.create_index(op.f('ix_person_merges_merged_id'), 'person_merges', ['merged_id'], unique=False)
    op.create_table(
        'person_candidates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('candidate_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('found_at', engine.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('decided_at', engine.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('merge_id', sa.Integer(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'confirmed', 'rejected')", name=op.f('ck_person_candidates_status')),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_person_candidates_person_id_people')),
        sa.ForeignKeyConstraint(['candidate_id'], ['people.id'],
                                name=op.f('fk_person_candidates_candidate_id_people')),
        sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'],
                                name=op.f('fk_person_candidates_decided_by_id_users')),
        sa.ForeignKeyConstraint(['merge_id'], ['person_merges.id'],
                                name=op.f('fk_person_candidates_merge_id_person_merges')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_person_candidates')),
        sa.UniqueConstraint('person_id', 'candidate_id', name=op.f('uq_person_candidates_person_id_candidate_id')),
    )
    op.create_index(op.f('ix_person_candidates_person_id'), 'person_candidates', ['person_id'], unique=False)
    op.create_index(op.f('ix_person_candidates_candidate_id'), 'person_candidates', ['candidate_id'], unique=False)

    # The same 宛名番号 is the same person: the oldest record stays, the others' cases move to it.
    merges = sa.table('person_merges', sa.column('survivor_id', sa.Integer), sa.column('merged_id', sa.Integer),
                      sa.column('reason', sa.Text), sa.column('merged_at', engine.dbtypes.UTCDateTime()),
                      sa.column('case_ids', sa.JSON), sa.column('member_ids', sa.JSON))
    rows = conn.execute(sa.select(people.c.id, people.c.resident_id).where(people.c.resident_id.is_not(None))
                        .order_by(people.c.id)).all()
    first: dict[str, int] = {}
    for pid, resident_id in rows:
        survivor = first.setdefault(resident_id, pid)
        if survivor == pid:
            continue
        moved = list(conn.execute(sa.select(cases.c.id).where(cases.c.person_id == pid)).scalars())
        conn.execute(cases.update().where(cases.c.person_id == pid).values(person_id=survivor))
        conn.execute(people.update().where(people.c.id == pid).values(merged_into_id=survivor))
        conn.execute(merges.insert().values(survivor_id=survivor, merged_id=pid, reason=MERGED_BY_REVISION,
                                            merged_at=now, case_ids=moved, member_ids=[]))
    op.create_index('uq_people_resident_id_live', 'people', ['resident_id'], unique=True,
                    sqlite_where=sa.text("resident_id IS NOT NULL AND merged_into_id IS NULL"),
                    postgresql_where=sa.text("resident_id IS NOT NULL AND merged_into_id IS NULL"))

    # Records that may be one person (the same birth date, the same name or kana) are left as candidates for
    # staff, as a new consultation's would be: never merged by the revision.
    candidates = sa.table('person_candidates', sa.column('person_id', sa.Integer),
                          sa.column('candidate_id', sa.Integer), sa.column('reason', sa.String),
                          sa.column('status', sa.String), sa.column('found_at', engine.dbtypes.UTCDateTime()))
    by_day: dict = {}
    for row in conn.execute(sa.select(people.c.id, people.c.birth_date, people.c.name_key, people.c.kana_key,
                                      people.c.resident_id)
                            .where(people.c.birth_date.is_not(None), people.c.merged_into_id.is_(None))
                            .order_by(people.c.id)).all():
        by_day.setdefault(row.birth_date, []).append(row)
    for day_rows in by_day.values():
        for i, newer in enumerate(day_rows):
            for older in day_rows[:i]:
                if newer.resident_id and older.resident_id and newer.resident_id != older.resident_id:
                    continue
                by_name = bool(newer.name_key) and newer.name_key in (older.name_key, older.kana_key)
                by_kana = bool(newer.kana_key) and newer.kana_key in (older.kana_key, older.name_key)
                if by_name or by_kana:
                    conn.execute(candidates.insert().values(
                        person_id=newer.id, candidate_id=older.id, status="open", found_at=now,
                        reason="name_kana" if by_name and by_kana else ("name" if by_name else "kana")))

    # Household lists become households: one per person whose consultations listed one.
    old = sa.table('household_members', sa.column('id', sa.Integer), sa.column('case_id', sa.Integer),
                   sa.column('relationship_label', sa.String), sa.column('name', sa.String),
                   sa.column('birth_year', sa.Integer), sa.column('note', sa.Text))
    listed = conn.execute(
        sa.select(cases.c.person_id, old.c.case_id, old.c.relationship_label, old.c.name, old.c.birth_year,
                  old.c.note, cases.c.opened_at)
        .join(cases, cases.c.id == old.c.case_id).order_by(cases.c.person_id, old.c.case_id, old.c.id)).all()
    op.drop_table('household_members')
    op.create_table(
        'households',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', engine.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_households')),
    )
    op.create_table(
        'household_members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('relationship_label', sa.String(length=50), nullable=False),
        sa.Column('relative_to_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=100), nullable=True),
        sa.Column('birth_year', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('since', sa.Date(), nullable=True),
        sa.Column('until', sa.Date(), nullable=True),
        sa.Column('recorded_with_case_id', sa.Integer(), nullable=True),
        sa.Column('created_at', engine.dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'],
                                name=op.f('fk_household_members_household_id_households'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_household_members_person_id_people')),
        sa.ForeignKeyConstraint(['relative_to_id'], ['people.id'],
                                name=op.f('fk_household_members_relative_to_id_people')),
        sa.ForeignKeyConstraint(['recorded_with_case_id'], ['cases.id'],
                                name=op.f('fk_household_members_recorded_with_case_id_cases'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_household_members')),
    )
    op.create_index(op.f('ix_household_members_household_id'), 'household_members', ['household_id'], unique=False)
    op.create_index(op.f('ix_household_members_person_id'), 'household_members', ['person_id'], unique=False)
    households = sa.table('households', sa.column('id', sa.Integer),
                          sa.column('created_at', engine.dbtypes.UTCDateTime()))
    members = sa.table('household_members', sa.column('household_id', sa.Integer), sa.column('person_id', sa.Integer),
                       sa.column('relationship_label', sa.String), sa.column('relative_to_id', sa.Integer),
                       sa.column('name', sa.String), sa.column('birth_year', sa.Integer),
                       sa.column('note', sa.Text), sa.column('recorded_with_case_id', sa.Integer),
                       sa.column('created_at', engine.dbtypes.UTCDateTime()))
    household_of: dict[int, int] = {}
    for person_id, case_id, label, name, birth_year, note, opened_at in listed:
        if person_id not in household_of:
            household_of[person_id] = conn.execute(
                households.insert().values(created_at=opened_at or now).returning(households.c.id)).scalar_one()
            conn.execute(members.insert().values(household_id=household_of[person_id], person_id=person_id,
                                                 relationship_label="本人", created_at=opened_at or now))
        conn.execute(members.insert().values(
            household_id=household_of[person_id], relationship_label=label, relative_to_id=person_id, name=name,
            birth_year=birth_year, note=note, recorded_with_case_id=case_id, created_at=opened_at or now))


def downgrade() -> None:
    conn = op.get_bind()
    # Back to a list per case: the members each case listed (a member with a record of their own by the
    # record's name); members added on the household itself since have no case to go back to.
    members = sa.table('household_members', sa.column('household_id', sa.Integer),
                       sa.column('person_id', sa.Integer), sa.column('relationship_label', sa.String),
                       sa.column('name', sa.String), sa.column('birth_year', sa.Integer),
                       sa.column('note', sa.Text), sa.column('recorded_with_case_id', sa.Integer))
    named = sa.table('people', sa.column('id', sa.Integer), sa.column('name', sa.String))
    listed = conn.execute(sa.select(members.c.recorded_with_case_id, members.c.relationship_label,
                                    sa.func.coalesce(members.c.name, named.c.name), members.c.birth_year,
                                    members.c.note)
                          .outerjoin(named, named.c.id == members.c.person_id)
                          .where(members.c.recorded_with_case_id.is_not(None))).all()
    op.drop_table('household_members')
    op.drop_table('households')
    op.create_table(
        'household_members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('relationship_label', sa.String(length=50), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=True),
        sa.Column('birth_year', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_household_members_case_id_cases'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_household_members')),
    )
    op.create_index(op.f('ix_household_members_case_id'), 'household_members', ['case_id'], unique=False)
    old = sa.table('household_members', sa.column('case_id', sa.Integer), sa.column('relationship_label', sa.String),
                   sa.column('name', sa.String), sa.column('birth_year', sa.Integer), sa.column('note', sa.Text))
    for case_id, label, name, birth_year, note in listed:
        conn.execute(old.insert().values(case_id=case_id, relationship_label=label, name=name,
                                         birth_year=birth_year, note=note))

    # Each merge still in force is undone: the cases that moved go back to their own record.
    cases = sa.table('cases', sa.column('id', sa.Integer), sa.column('person_id', sa.Integer))
    merges = sa.table('person_merges', sa.column('id', sa.Integer), sa.column('merged_id', sa.Integer),
                      sa.column('case_ids', sa.JSON), sa.column('undone_at', engine.dbtypes.UTCDateTime()))
    for merged_id, case_ids in conn.execute(sa.select(merges.c.merged_id, merges.c.case_ids)
                                            .where(merges.c.undone_at.is_(None))
                                            .order_by(merges.c.id.desc())).all():
        if case_ids:
            conn.execute(cases.update().where(cases.c.id.in_(case_ids)).values(person_id=merged_id))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('person_match')
    op.drop_index('uq_people_resident_id_live', table_name='people')
    op.drop_table('person_candidates')
    op.drop_table('person_merges')
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_people_birth_date'))
        batch_op.drop_index(batch_op.f('ix_people_merged_into_id'))
        batch_op.drop_constraint(batch_op.f('fk_people_merged_into_id_people'), type_='foreignkey')
        batch_op.drop_column('merged_into_id')
        batch_op.drop_column('created_at')
        batch_op.drop_column('kana_key')
        batch_op.drop_column('name_key')
