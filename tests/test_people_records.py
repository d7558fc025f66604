"""One record per person: candidates decided by staff, merges by an FM or the administrator, and unmerges
that restore both records; households joined from consultations, each reader seeing the household's other
cases only as far as they may."""
from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine.audit import trail
from engine.cases import intake
from engine.db import unit_of_work
from engine.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from engine.models import AuditEvent, Case, CaseHistory, HouseholdMember, Person, PersonCandidate, PersonMerge, User
from engine.people import households, records
from tests.conftest import NOW, intake_fields

TODAY = date(2026, 11, 30)


def _open(sessions, actor, *, categories=("poverty",), household=None, **person) -> Case:
    fields = intake_fields(categories=list(categories), household=household or [],
                           person={"area": "廿日市", "birth_date": "1950-04-01", **person})
    with unit_of_work(sessions) as s:
        case = intake.open_case(s, s.get(User, actor.id), fields, now=NOW, route=False)
        s.expunge(case)
        return case


def _candidate(sessions, person_id) -> PersonCandidate:
    with sessions() as s:
        return s.scalar(select(PersonCandidate).where(PersonCandidate.person_id == person_id))


def _person_of(sessions, case_id) -> int:
    with sessions() as s:
        return s.get(Case, case_id).person_id


# --- candidates and merges ------------------------------------------------------------------------------------

def test_staff_confirm_a_candidate_and_the_newer_case_files_under_the_known_person(sessions, actors):
    known = _open(sessions, actors.window, name="髙橋 一郎")
    newer = _open(sessions, actors.window, name="高橋 一郎")
    candidate = _candidate(sessions, newer.person_id)
    with unit_of_work(sessions) as s:
        records.decide_candidate(s, s.get(User, actors.window.id), candidate.id, "confirm", now=NOW)
    assert _person_of(sessions, newer.id) == known.person_id
    with sessions() as s:
        merged = s.get(Person, newer.person_id)
        assert merged.merged_into_id == known.person_id and merged.name == "高橋 一郎"  # the row stays as it was
        assert s.get(PersonCandidate, candidate.id).status == "confirmed"
        assert s.scalar(select(CaseHistory.event).where(CaseHistory.case_id == newer.id,
                                                        CaseHistory.event == "person.merge")) == "person.merge"
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.action == "person.merge")) == "person.merge"
        assert trail.verify(s).ok


def test_a_rejected_candidate_leaves_two_people(sessions, actors):
    known = _open(sessions, actors.window, name="斎藤 花")
    newer = _open(sessions, actors.window, name="齋藤 花")
    candidate = _candidate(sessions, newer.person_id)
    with unit_of_work(sessions) as s:
        records.decide_candidate(s, s.get(User, actors.window.id), candidate.id, "reject", now=NOW)
    assert _person_of(sessions, newer.id) != known.person_id
    with sessions() as s:
        assert s.get(PersonCandidate, candidate.id).status == "rejected"
    with unit_of_work(sessions) as s, pytest.raises(Conflict):
        records.decide_candidate(s, s.get(User, actors.window.id), candidate.id, "confirm", now=NOW)


def test_a_candidate_is_decided_only_by_someone_who_reads_the_newer_case(sessions, actors):
    _open(sessions, actors.window, name="高橋 一郎")
    newer = _open(sessions, actors.window, name="髙橋 一郎")
    candidate = _candidate(sessions, newer.person_id)
    with unit_of_work(sessions) as s, pytest.raises(NotFound):
        records.decide_candidate(s, s.get(User, actors.livelihood.id), candidate.id, "confirm", now=NOW)
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as bad:
        records.decide_candidate(s, s.get(User, actors.window.id), candidate.id, "maybe", now=NOW)
    assert list(bad.value.errors) == ["decision"]
    assert _candidate(sessions, newer.person_id).status == "open"


def test_merge_and_unmerge_restore_both_records(sessions, actors):
    a = _open(sessions, actors.window, name="廿日 花子", resident_id="0100")
    b = _open(sessions, actors.window, name="廿日 はなこ", birth_date="1950-04-02")  # a typo in the birth date
    with unit_of_work(sessions) as s, pytest.raises(PermissionDenied):
        records.merge(s, s.get(User, actors.window.id), a.person_id, b.person_id, reason="同一人物")
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as no_reason:
        records.merge(s, s.get(User, actors.fm.id), a.person_id, b.person_id, reason=" ")
    assert list(no_reason.value.errors) == ["reason"]
    with unit_of_work(sessions) as s:
        merge_id = records.merge(s, s.get(User, actors.fm.id), a.person_id, b.person_id,
                                 reason="生年月日の入力誤り。本人に確認済み", now=NOW).id
    assert _person_of(sessions, b.id) == a.person_id
    with unit_of_work(sessions) as s:
        records.unmerge(s, s.get(User, actors.admin.id), merge_id, reason="別人と判明", now=NOW)
    assert _person_of(sessions, b.id) == b.person_id and _person_of(sessions, a.id) == a.person_id
    with sessions() as s:
        assert s.get(Person, b.person_id).merged_into_id is None
        row = s.get(PersonMerge, merge_id)
        assert row.undone_at is not None and row.undo_reason == "別人と判明"
        assert [r.event for r in s.scalars(select(CaseHistory).where(CaseHistory.case_id == b.id)
                                          .order_by(CaseHistory.id))][-2:] == ["person.merge", "person.unmerge"]
    with unit_of_work(sessions) as s, pytest.raises(Conflict):
        records.unmerge(s, s.get(User, actors.admin.id), merge_id, reason="二度目", now=NOW)


def test_a_resident_id_moves_with_the_merge_and_back_with_the_unmerge(sessions, actors):
    numbered = _open(sessions, actors.window, name="廿日 二郎", resident_id="0200")
    plain = _open(sessions, actors.window, name="廿日 次郎", birth_date="1961-01-01")
    with unit_of_work(sessions) as s:
        merge_id = records.merge(s, s.get(User, actors.fm.id), plain.person_id, numbered.person_id,
                                 reason="同一人物", now=NOW).id
    with sessions() as s:
        assert s.get(Person, plain.person_id).resident_id == "0200"
    # A new consultation with the number finds the survivor.
    again = _open(sessions, actors.window, name="廿日 二郎", resident_id="0200")
    assert again.person_id == plain.person_id
    with unit_of_work(sessions) as s:
        records.unmerge(s, s.get(User, actors.fm.id), merge_id, reason="別人", now=NOW)
    with sessions() as s:
        assert s.get(Person, plain.person_id).resident_id is None
        assert s.get(Person, numbered.person_id).resident_id == "0200"
        # The case opened since stays where it was filed.
        assert s.get(Case, again.id).person_id == plain.person_id


def test_two_different_resident_ids_are_never_merged(sessions, actors):
    a = _open(sessions, actors.window, name="廿日 三郎", resident_id="0301")
    b = _open(sessions, actors.window, name="廿日 三郎", resident_id="0302")
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as refused:
        records.merge(s, s.get(User, actors.fm.id), a.person_id, b.person_id, reason="同一人物")
    assert "宛名番号が異なる" in refused.value.errors["merged_id"][0]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(PersonMerge)) == 0


# --- households ----------------------------------------------------------------------------------------------

EIGHTY_FIFTY = [{"relationship": "長男", "name": "廿日 一郎", "birth_year": 1974, "note": "長期のひきこもり",
                 "resident_id": "0502"}]


def test_a_listed_member_with_a_resident_id_is_the_person_the_city_knows(sessions, actors):
    son = _open(sessions, actors.livelihood, name="廿日 一郎", resident_id="0502", birth_date="1974-06-01",
                categories=["hikikomori"])
    mother = _open(sessions, actors.elderly, name="廿日 花子", resident_id="0501", household=EIGHTY_FIFTY,
                   categories=["elder_care"])
    with sessions() as s:
        [place] = households.places_of(s, son.person_id, TODAY)
        [mother_place] = households.places_of(s, mother.person_id, TODAY)
        assert place.household_id == mother_place.household_id
        assert (place.relationship_label, place.relative_to_id) == ("長男", mother.person_id)
    # A second consultation listing the same son adds nobody.
    _open(sessions, actors.window, name="廿日 花子", resident_id="0501", household=EIGHTY_FIFTY)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(HouseholdMember)) == 2


def test_a_person_joins_the_household_a_listed_member_already_has(sessions, actors):
    mother = _open(sessions, actors.elderly, name="廿日 花子", resident_id="0501", household=EIGHTY_FIFTY)
    son = _open(sessions, actors.livelihood, name="廿日 一郎", resident_id="0502",
                household=[{"relationship": "母", "name": "廿日 花子", "resident_id": "0501"}])
    assert son.person_match == "matched"  # listed by his mother, he had a record already
    with sessions() as s:
        places = households.places_of(s, son.person_id, TODAY)
        assert len(places) == 1
        assert places[0].household_id == households.places_of(s, mother.person_id, TODAY)[0].household_id


def test_the_household_shows_other_cases_only_as_far_as_the_reader_may_see(sessions, actors, fire):
    son = _open(sessions, actors.livelihood, name="廿日 一郎", resident_id="0502", birth_date="1974-06-01")
    mother = _open(sessions, actors.elderly, name="廿日 花子", resident_id="0501", household=EIGHTY_FIFTY)
    fire(actors.livelihood, son.id, "send_handoff", to_department="health", reason="r", summary="s")
    fire(actors.health, son.id, "accept_handoff")
    with sessions() as s:
        person = s.get(Person, mother.person_id)
        # The mother's recorder (高齢介護課) reads her case; the son's case is 健康推進課's.
        [view] = households.households_for(s, s.get(User, actors.elderly.id), person, today=TODAY,
                                           exclude_case_id=mother.id)
        assert [(m.relationship, m.name, m.is_self) for m in view.members] == [
            ("本人", "廿日 花子", True), ("長男", "廿日 一郎", False)]
        [other] = view.cases
        assert (other.visible, other.owner, other.id, other.case_number, other.state_label) == (
            False, "健康推進課", None, None, None)
        assert other.whose == "長男 廿日 一郎"
        # An FM sees every case's metadata: the number and state too.
        [view] = households.households_for(s, s.get(User, actors.fm.id), person, today=TODAY,
                                           exclude_case_id=mother.id)
        assert (view.cases[0].visible, view.cases[0].case_number) == (True, son.case_number)


def test_a_member_who_left_is_kept_with_the_period(sessions, actors):
    mother = _open(sessions, actors.elderly, name="廿日 花子", household=[{"relationship": "長女", "name": "廿日 春"}])
    with sessions() as s:
        daughter = s.scalar(select(HouseholdMember).where(HouseholdMember.relationship_label == "長女"))
    with unit_of_work(sessions) as s, pytest.raises(NotFound):
        households.end_membership(s, s.get(User, actors.livelihood.id), daughter.id, date(2026, 11, 1), now=NOW)
    with unit_of_work(sessions) as s:
        households.end_membership(s, s.get(User, actors.elderly.id), daughter.id, date(2026, 11, 1), now=NOW)
    with unit_of_work(sessions) as s, pytest.raises(Conflict):  # recorded already
        households.end_membership(s, s.get(User, actors.elderly.id), daughter.id, date(2026, 11, 2), now=NOW)
    with sessions() as s:
        [view] = households.households_for(s, s.get(User, actors.elderly.id), s.get(Person, mother.person_id),
                                           today=TODAY)
        assert [(m.relationship, m.until) for m in view.members] == [("本人", None), ("長女", date(2026, 11, 1))]


def test_add_member_checks_its_fields(sessions, actors):
    mother = _open(sessions, actors.elderly, name="廿日 花子", household=[{"relationship": "長女", "name": "廿日 春"}])
    with sessions() as s:
        household_id = households.places_of(s, mother.person_id, TODAY)[0].household_id
    with unit_of_work(sessions) as s, pytest.raises(ValidationFailed) as bad:
        households.add_member(s, s.get(User, actors.elderly.id), household_id,
                              {"relationship": "", "person_id": 99999, "relative_to": 12345}, now=NOW)
    assert set(bad.value.errors) == {"relationship", "person_id", "relative_to"}
    with unit_of_work(sessions) as s:
        row = households.add_member(s, s.get(User, actors.elderly.id), household_id,
                                    {"relationship": "孫", "name": "廿日 夏", "birth_year": 2010,
                                     "relative_to": mother.person_id}, now=NOW)
        assert (row.name, row.relative_to_id) == ("廿日 夏", mother.person_id)
