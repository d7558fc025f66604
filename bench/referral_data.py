"""Referrals for bench/intake.py and bench/import.py, and the check that two senders wrote the same rows.

The referrals look like a partner's: six kinds of consultation (an 8050 household, 生活困窮, 子育て, 障害, one no
rule matches, 借金と住まい), people of an age that fits each, names and kana from short lists so that about one
referral in ten is about someone referred a little earlier (名寄せ leaves a candidate for staff), and a household
member for some. Two senders given different `side`s never name the same person (their birth dates differ by a
day), so each side's 名寄せ finds only its own earlier people.
"""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.models import (
    Alert,
    AuditEvent,
    Case,
    CaseCategory,
    CaseDepartment,
    CaseHistory,
    CaseNotice,
    Handoff,
    HouseholdMember,
    IdempotencyKey,
    Person,
    PersonCandidate,
    Provision,
)

KINDS = [  # categories, birth year, a household member or None
    (["elder_care", "hikikomori"], 1944, ("長男", 1972, "長期のひきこもり")),
    (["poverty"], 1975, None),
    (["child_rearing"], 1989, ("長女", 2016, "不登校")),
    (["disability"], 1992, None),
    (["other"], 1960, None),
    (["debt", "housing"], 1981, ("妻", 1983, None)),
]
AREAS = ["廿日市", "佐伯", "吉和", "大野", "宮島"]
FAMILY = [("廿日", "ハツカ"), ("佐伯", "サエキ"), ("山田", "ヤマダ"), ("大野", "オオノ"), ("宮島", "ミヤジマ"),
          ("吉和", "ヨシワ"), ("高橋", "タカハシ"), ("渡辺", "ワタナベ"), ("田中", "タナカ"), ("中村", "ナカムラ")]
GIVEN = [("太郎", "タロウ"), ("花子", "ハナコ"), ("一郎", "イチロウ"), ("幸子", "サチコ"), ("健", "ケン"),
         ("恵子", "ケイコ"), ("誠", "マコト"), ("和子", "カズコ"), ("茂", "シゲル"), ("洋子", "ヨウコ"),
         ("進", "ススム"), ("京子", "キョウコ"), ("修", "オサム")]
# Far enough back that the earlier referral has been answered, even with many clients posting at once: two
# referrals of one person written at the same moment on PostgreSQL do not see each other (neither side
# would then leave a candidate, and the counts would depend on timing).
REFERRED_AGAIN_AFTER = 65  # from a referral whose number ends in 9 to one ending in 4, never itself a repeat
SUMMARY = "母の介護サービスの相談から、同居する家族の困りごとを把握。本人の了解を得て紹介します。"


def _person(i: int, side: int) -> dict:
    if i % 10 == 9 and i >= REFERRED_AGAIN_AFTER:
        i -= REFERRED_AGAIN_AFTER  # referred again: the same name, kana and birth date as an earlier referral
    categories, year, _ = KINDS[i % len(KINDS)]
    family, given = FAMILY[(i // 7) % len(FAMILY)], GIVEN[(i // 3) % len(GIVEN)]
    born = date(year, 1, 1) + timedelta(days=(i * 2 + side) % 720)
    return {"name": f"{family[0]} {given[0]}", "name_kana": f"{family[1]} {given[1]}",
            "birth_date": born.isoformat(), "area": AREAS[i % len(AREAS)]}


def referral(i: int, run: str, side: int = 0) -> dict:
    """The i-th referral of a run, as the JSON body of POST /api/v1/referrals."""
    categories, _, member = KINDS[i % len(KINDS)]
    body = {
        "external_ref": f"{run}-{i:06d}",
        "referrer": {"organization": "大野地域包括支援センター", "contact_name": "山田 花子",
                     "contact_phone": "0829-00-0000"},
        "person": _person(i, side),
        "categories": categories,
        "summary": SUMMARY,
        "urgency": "normal",
        "consent_to_share": False,
    }
    if member is not None:
        relationship, year, note = member
        body["household"] = [{"relationship": relationship, "birth_year": year, **({"note": note} if note else {})}]
    return body


def rows_written(conn: Connection, client_id: int) -> dict[str, int]:
    """How many rows of each table the referrals of one client made."""
    cases = select(Case.id).where(Case.referral_client_id == client_id)
    people = select(Case.person_id).where(Case.referral_client_id == client_id)

    def count(model, *where) -> int:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

    return {
        "idempotency_keys": count(IdempotencyKey, IdempotencyKey.client_id == client_id),
        "people": count(Person, Person.id.in_(people)),
        "person_candidates": count(PersonCandidate, PersonCandidate.person_id.in_(people)),
        "cases": count(Case, Case.referral_client_id == client_id),
        "case_categories": count(CaseCategory, CaseCategory.case_id.in_(cases)),
        "household_members": count(HouseholdMember, HouseholdMember.person_id.in_(people)
                                   | HouseholdMember.recorded_with_case_id.in_(cases)),
        "case_history": count(CaseHistory, CaseHistory.case_id.in_(cases)),
        "handoffs": count(Handoff, Handoff.case_id.in_(cases)),
        "case_notices": count(CaseNotice, CaseNotice.case_id.in_(cases)),
        "provisions": count(Provision, Provision.case_id.in_(cases)),
        "alerts": count(Alert, Alert.case_id.in_(cases)),
        "audit_events": count(AuditEvent, AuditEvent.case_id.in_(cases), AuditEvent.action != "referral.replay"),
        "case_departments": count(CaseDepartment, CaseDepartment.case_id.in_(cases)),
    }


def same_rows(conn: Connection, engine_client: int, core_client: int) -> list[str]:
    """The tables where the two clients' referrals made different numbers of rows (empty: the same rows)."""
    a, b = rows_written(conn, engine_client), rows_written(conn, core_client)
    return [f"{table}: {a[table]} (engine) / {b[table]} (Core)" for table in a if a[table] != b[table]]
