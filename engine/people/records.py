"""One record per person: the record a consultation is filed under, the candidates staff decide, and the
merge of two records (and its undoing).

A merge moves the cases and household places of one record to the other and keeps the merged row, pointing
at the survivor; the person_merges row says exactly what moved, so an unmerge puts back both records as they
were (cases and places moved since stay where they are). Each is audited and appended to the history of
every case it moved; nothing is rewritten.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from engine import access
from engine.audit import trail
from engine.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from engine.models import Case, CaseHistory, HouseholdMember, Person, PersonCandidate, PersonMerge, utcnow
from engine.people import matching
from engine.people.names import fold_for_search, match_key

MERGERS = ("fm", "admin")
MAY_NOT_MERGE = "2人の記録を統合（または統合を取り消し）できるのは、FMと管理者だけです。"


def set_name(person: Person, name: str, kana: str | None) -> None:
    """Name and kana, with the keys search and matching read."""
    person.name, person.name_kana = name, kana
    person.search_key = fold_for_search(name, kana)
    person.name_key, person.kana_key = match_key(name), match_key(kana)


def person_for_intake(session: Session, facts: dict, *, now: datetime) -> tuple[Person, str]:
    """The record a new consultation is filed under, and how it was found (matching.MATCHED / NEW /
    CANDIDATE). The same 宛名番号 files it under the known person (what the known record lacks is filled in
    from the consultation; nothing it holds is overwritten). Otherwise a new record is made, with a
    PersonCandidate for each known person it may be, left for staff."""
    found = matching.find(session, name=facts["name"], kana=facts.get("name_kana"),
                          birth_date=facts.get("birth_date"), resident_id=facts.get("resident_id"))
    if found.person is not None:
        known = found.person
        for key in ("name_kana", "sex", "birth_date", "area", "phone", "address"):
            if getattr(known, key) in (None, "") and facts.get(key):
                setattr(known, key, facts[key])
        if not known.kana_key and known.name_kana:
            set_name(known, known.name, known.name_kana)
        return known, matching.MATCHED
    person = Person(sex=facts.get("sex"), birth_date=facts.get("birth_date"), area=facts.get("area") or None,
                    resident_id=facts.get("resident_id") or None, phone=facts.get("phone"),
                    address=facts.get("address"), created_at=now)
    set_name(person, facts["name"].strip(), facts.get("name_kana"))
    session.add(person)
    session.flush()
    for known, reason in found.candidates:
        session.add(PersonCandidate(person_id=person.id, candidate_id=known.id, reason=reason, found_at=now))
    return person, found.kind


def live(session: Session, person_id: int) -> Person:
    """The record `person_id` is now: itself, or the one it was merged into (followed to the end)."""
    person = session.get(Person, person_id)
    seen = set()
    while person is not None and person.merged_into_id is not None and person.id not in seen:
        seen.add(person.id)
        person = session.get(Person, person.merged_into_id)
    if person is None:
        raise NotFound("指定された人は見つかりません。")
    return person


def case_ids_of(session: Session, person_id: int) -> list[int]:
    return list(session.scalars(select(Case.id).where(Case.person_id == person_id).order_by(Case.id)))


def sight_of_person(session: Session, actor, person: Person) -> access.Sight:
    """How much of a person `actor` may see: CONTENT when they may read the content of one of the person's
    cases (the person's details, household, candidates); METADATA for an FM or the administrator, who
    decide merges (who the person is, that their cases exist and who owns them); NONE otherwise."""
    if not access.is_person(actor) or not getattr(actor, "active", False):
        return access.Sight.NONE
    ids = case_ids_of(session, person.id)
    if ids and session.scalar(select(Case.id).where(
            Case.id.in_(ids), access.content_cases_filter(session, actor)).limit(1)) is not None:
        return access.Sight.CONTENT
    return access.Sight.METADATA if actor.role in MERGERS else access.Sight.NONE


def require_sight(session: Session, actor, person_id: int, at_least: access.Sight = access.Sight.METADATA,
                  ) -> Person:
    """The live record, if `actor` may see it so far; NotFound otherwise (as for a case out of sight)."""
    try:
        person = live(session, person_id)
    except NotFound:
        raise
    if sight_of_person(session, actor, person) < at_least:
        raise NotFound("指定された人は見つかりません。")
    return person


def open_candidates(session: Session, person_id: int) -> list[PersonCandidate]:
    """The undecided candidates of a record, either side of them."""
    return list(session.scalars(select(PersonCandidate).where(
        PersonCandidate.status == "open",
        or_(PersonCandidate.person_id == person_id, PersonCandidate.candidate_id == person_id))
        .order_by(PersonCandidate.id)))


def may_decide(session: Session, actor, row: PersonCandidate) -> bool:
    """Whether `actor` decides the candidate: staff who read the content of a case of the newer record, an
    FM or the administrator."""
    if getattr(actor, "role", None) not in ("staff", "fm", "admin") or not getattr(actor, "active", False):
        return False
    if actor.role in MERGERS:
        return True
    return sight_of_person(session, actor, session.get(Person, row.person_id)) >= access.Sight.CONTENT


def decide_candidate(session: Session, actor, candidate_id: int, decision: str, *, note: str | None = None,
                     now: datetime | None = None, remote_addr: str | None = None) -> PersonCandidate:
    """Staff who read the newer record's case decide: `confirm` (the two are one person: the newer record is
    merged into the known one) or `reject` (two people; not proposed again)."""
    now = now or utcnow()
    row = session.get(PersonCandidate, candidate_id)
    if row is None or not may_decide(session, actor, row):
        raise NotFound("指定された名寄せの候補は見つかりません。")
    if decision not in ("confirm", "reject"):
        raise ValidationFailed({"decision": ["confirm（同一人物）か reject（別人）を指定してください。"]})
    if row.status != "open":
        raise Conflict("この候補は既に判断されています。")
    row.status = "confirmed" if decision == "confirm" else "rejected"
    row.decided_at, row.decided_by_id = now, actor.id
    if decision == "confirm":
        merge = _merge(session, actor, survivor=live(session, row.candidate_id), merged=live(session, row.person_id),
                       reason=note or "名寄せの候補を同一人物と確認", now=now, remote_addr=remote_addr)
        row.merge_id = merge.id
    trail.record(session, actor=actor, action="person.candidate_confirm" if decision == "confirm"
                 else "person.candidate_reject", object_type="person",
                 object_id=row.person_id, remote_addr=remote_addr, at=now,
                 detail={"candidate": row.candidate_id})
    session.flush()
    return row


def merge(session: Session, actor, survivor_id: int, merged_id: int, *, reason: str, now: datetime | None = None,
          remote_addr: str | None = None) -> PersonMerge:
    """An FM or the administrator finds two records to be one person: `merged_id` becomes `survivor_id`."""
    now = now or utcnow()
    if getattr(actor, "role", None) not in MERGERS or not getattr(actor, "active", False):
        raise PermissionDenied(MAY_NOT_MERGE)
    if not (reason or "").strip():
        raise ValidationFailed({"reason": ["統合の理由（同一人物と判断した根拠）を入力してください。"]})
    survivor = live(session, survivor_id)
    try:
        merged = live(session, merged_id)
    except NotFound:
        raise ValidationFailed({"merged_id": ["この記録番号の人は見つかりません。"]}) from None
    if merged.id == survivor.id and merged_id != survivor_id:
        raise Conflict("この記録は既にこの人の記録に統合されています。")
    return _merge(session, actor, survivor=survivor, merged=merged, reason=reason.strip(), now=now,
                  remote_addr=remote_addr)


def _merge(session: Session, actor, *, survivor: Person, merged: Person, reason: str, now: datetime,
           remote_addr: str | None) -> PersonMerge:
    if survivor.id == merged.id:
        raise ValidationFailed({"merged_id": ["同じ記録どうしは統合できません。"]})
    if survivor.anonymised_at is not None or merged.anonymised_at is not None:
        raise ValidationFailed({"merged_id": ["匿名化された記録は統合できません。"]})
    if survivor.resident_id and merged.resident_id and survivor.resident_id != merged.resident_id:
        raise ValidationFailed({"merged_id": ["宛名番号が異なる2人の記録は統合できません（宛名番号が違えば別の人です）。"]})
    case_ids = case_ids_of(session, merged.id)
    member_ids = list(session.scalars(select(HouseholdMember.id).where(HouseholdMember.person_id == merged.id)))
    session.execute(update(Case).where(Case.id.in_(case_ids)).values(person_id=survivor.id)
                    .execution_options(synchronize_session="fetch"))
    session.execute(update(HouseholdMember).where(HouseholdMember.id.in_(member_ids)).values(person_id=survivor.id)
                    .execution_options(synchronize_session="fetch"))
    takes_number = bool(merged.resident_id) and not survivor.resident_id
    merged.merged_into_id = survivor.id
    if takes_number:
        session.flush()  # the merged row lets go of the 宛名番号 first (one live record per number)
        survivor.resident_id = merged.resident_id
    row = PersonMerge(survivor_id=survivor.id, merged_id=merged.id, reason=reason, merged_at=now,
                      merged_by_id=getattr(actor, "id", None), case_ids=case_ids, member_ids=member_ids,
                      resident_id_moved=takes_number)
    session.add(row)
    session.flush()
    for case in session.scalars(select(Case).where(Case.id.in_(case_ids))):
        session.add(CaseHistory(case_id=case.id, event="person.merge", from_state=case.state, to_state=case.state,
                                actor_id=getattr(actor, "id", None), at=now,
                                detail={"merge": row.id, "person": survivor.id}))
    trail.record(session, actor=actor, action="person.merge", object_type="person", object_id=survivor.id,
                 remote_addr=remote_addr, at=now, detail={"merged": merged.id, "merge": row.id, "cases": case_ids})
    _close_candidates_between(session, survivor.id, merged.id, actor, now)
    return row


def _close_candidates_between(session: Session, a: int, b: int, actor, now: datetime) -> None:
    for c in session.scalars(select(PersonCandidate).where(
            PersonCandidate.status == "open",
            or_((PersonCandidate.person_id == a) & (PersonCandidate.candidate_id == b),
                (PersonCandidate.person_id == b) & (PersonCandidate.candidate_id == a)))):
        c.status, c.decided_at, c.decided_by_id = "confirmed", now, getattr(actor, "id", None)


def unmerge(session: Session, actor, merge_id: int, *, reason: str, now: datetime | None = None,
            remote_addr: str | None = None) -> PersonMerge:
    """Undo a merge: the merged record lives again with the cases and household places that moved (those
    still on the survivor). Refused while a later merge into the same survivor still stands on it."""
    now = now or utcnow()
    if getattr(actor, "role", None) not in MERGERS or not getattr(actor, "active", False):
        raise PermissionDenied(MAY_NOT_MERGE)
    row = session.get(PersonMerge, merge_id)
    if row is None:
        raise NotFound("指定された統合の記録は見つかりません。")
    if row.undone_at is not None:
        raise Conflict("この統合は既に取り消されています。")
    if not (reason or "").strip():
        raise ValidationFailed({"reason": ["取り消しの理由を入力してください。"]})
    merged, survivor = session.get(Person, row.merged_id), session.get(Person, row.survivor_id)
    if survivor.merged_into_id is not None:
        raise Conflict("統合先の記録が、その後さらに別の記録に統合されています。先にそちらの統合を取り消してください。")
    if row.resident_id_moved:
        survivor.resident_id = None  # the 宛名番号 came with the merged record: it goes back with it
        session.flush()
    elif merged.resident_id and merged.resident_id == survivor.resident_id:
        raise Conflict("2つの記録が同じ宛名番号を持つため、統合を取り消せません（同じ宛名番号は同じ人です）。")
    session.execute(update(Case).where(Case.id.in_(row.case_ids), Case.person_id == survivor.id)
                    .values(person_id=merged.id).execution_options(synchronize_session="fetch"))
    session.execute(update(HouseholdMember).where(HouseholdMember.id.in_(row.member_ids),
                                                  HouseholdMember.person_id == survivor.id)
                    .values(person_id=merged.id).execution_options(synchronize_session="fetch"))
    merged.merged_into_id = None
    row.undone_at, row.undone_by_id, row.undo_reason = now, actor.id, reason.strip()
    session.flush()
    for case in session.scalars(select(Case).where(Case.id.in_(row.case_ids), Case.person_id == merged.id)):
        session.add(CaseHistory(case_id=case.id, event="person.unmerge", from_state=case.state, to_state=case.state,
                                actor_id=actor.id, at=now, detail={"merge": row.id, "person": merged.id}))
    trail.record(session, actor=actor, action="person.unmerge", object_type="person", object_id=merged.id,
                 remote_addr=remote_addr, at=now, detail={"survivor": survivor.id, "merge": row.id})
    session.flush()
    return row


def merges_of(session: Session, person_id: int) -> list[PersonMerge]:
    """The merges a record took part in, newest first."""
    return list(session.scalars(select(PersonMerge).where(
        or_(PersonMerge.survivor_id == person_id, PersonMerge.merged_id == person_id))
        .order_by(PersonMerge.id.desc())))


def age_on(person: Person, today: date) -> int | None:
    if person.birth_date is None:
        return None
    b = person.birth_date
    return today.year - b.year - ((today.month, today.day) < (b.month, b.day))
