"""Referrals and one record per person (名寄せ): the answer's `person_id` and `person_match`, and household
members given with a 宛名番号 (`household[].resident_id`), each joining as the person the city knows by it or
as a new record of their own."""
from __future__ import annotations

from sqlalchemy import select

from engine.models import Case, HouseholdMember, Person, PersonCandidate
from tests.api.support import count, post_referral, referral

MOTHER = {"name": "廿日 花子", "name_kana": "ハツカ ハナコ", "birth_date": "1946-05-01", "area": "大野"}
SON = {"name": "廿日 一郎", "name_kana": "ハツカ イチロウ", "birth_date": "1974-02-03", "area": "大野"}


def _post(client, token, n: int, **over) -> dict:
    resp = post_referral(client, token, referral(external_ref=f"OONO-PEOPLE-{n}", **over), key=f"people-{n}")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def _members(sessions, case_id: int) -> list[tuple]:
    """The household rows a case's referral listed: (relationship, person id, name, birth year, relative to)."""
    with sessions() as s:
        return [(m.relationship_label, m.person_id, m.name, m.birth_year, m.relative_to_id) for m in s.scalars(
            select(HouseholdMember).where(HouseholdMember.recorded_with_case_id == case_id)
            .order_by(HouseholdMember.id))]


def test_the_same_resident_id_twice_is_matched_to_the_same_person(client, partner, sessions):
    first = _post(client, partner, 1, person={**MOTHER, "resident_id": "0001234567"})
    # Another referrer's spelling and no kana: the 宛名番号 decides.
    second = _post(client, partner, 2, person={"name": "廿日 花子 ", "resident_id": "0001234567"})
    assert first["person_match"] == "new" and second["person_match"] == "matched"
    assert second["person_id"] == first["person_id"]
    with sessions() as s:
        assert [c.person_id for c in s.scalars(select(Case).order_by(Case.id))] == [first["person_id"]] * 2
        assert s.get(Person, first["person_id"]).name == "廿日 花子"  # what the record held stays
    assert count(sessions, Person) == 1


def test_the_same_name_and_birth_date_without_resident_id_is_a_candidate_never_merged(client, partner, sessions):
    first = _post(client, partner, 1, person=dict(MOTHER))
    second = _post(client, partner, 2, person={**MOTHER, "name": "廿日花子", "name_kana": "ﾊﾂｶ ﾊﾅｺ"})
    assert (first["person_match"], second["person_match"]) == ("new", "candidate")
    assert second["person_id"] != first["person_id"]
    with sessions() as s:
        [candidate] = s.scalars(select(PersonCandidate)).all()
        assert (candidate.person_id, candidate.candidate_id, candidate.status, candidate.reason) == (
            second["person_id"], first["person_id"], "open", "name_kana")
        assert [p.merged_into_id for p in s.scalars(select(Person))] == [None, None]
    # A third referral about her is a candidate of both records, still merging nothing.
    third = _post(client, partner, 3, person=dict(MOTHER))
    assert third["person_match"] == "candidate"
    assert count(sessions, Person) == 3 and count(sessions, Person, Person.merged_into_id.is_not(None)) == 0
    assert count(sessions, PersonCandidate, PersonCandidate.person_id == third["person_id"]) == 2


def test_a_member_with_a_known_resident_id_joins_as_that_person(client, partner, sessions):
    son = _post(client, partner, 1, person={**SON, "resident_id": "0002000001"}, household=[],
                categories=["hikikomori"])
    mother = _post(client, partner, 2, person={**MOTHER, "resident_id": "0001234567"}, household=[
        {"relationship": "長男", "name": "廿日 一郎", "birth_year": 1974, "resident_id": "0002000001",
         "note": "長期のひきこもり"}])
    assert mother["person_id"] != son["person_id"] and mother["person_match"] == "new"
    # He is listed as the record the city has of him: no second record, his place in her household.
    assert count(sessions, Person) == 2
    assert _members(sessions, mother["id"]) == [("長男", son["person_id"], None, 1974, mother["person_id"])]
    with sessions() as s:
        [her_place] = s.scalars(select(HouseholdMember).where(HouseholdMember.person_id == mother["person_id"])).all()
        [his_place] = s.scalars(select(HouseholdMember).where(HouseholdMember.person_id == son["person_id"])).all()
        assert her_place.household_id == his_place.household_id and her_place.relationship_label == "本人"


def test_a_person_joins_the_household_a_listed_member_already_has(client, partner, sessions):
    son = _post(client, partner, 1, person={**SON, "resident_id": "0002000001"}, categories=["hikikomori"],
                household=[{"relationship": "長女", "name": "廿日 三葉", "birth_year": 2005}])
    mother = _post(client, partner, 2, person={**MOTHER, "resident_id": "0001234567"}, household=[
        {"relationship": "長男", "name": "廿日 一郎", "birth_year": 1974, "resident_id": "0002000001"}])
    with sessions() as s:
        [his_place] = s.scalars(select(HouseholdMember).where(HouseholdMember.person_id == son["person_id"])).all()
        [her_place] = s.scalars(select(HouseholdMember).where(HouseholdMember.person_id == mother["person_id"])).all()
        # Her place in his household, as he would say it: his 親.
        assert her_place.household_id == his_place.household_id
        assert (his_place.relationship_label, her_place.relationship_label, her_place.relative_to_id) == (
            "本人", "親", son["person_id"])
        members = s.scalars(select(HouseholdMember).where(HouseholdMember.household_id == his_place.household_id)
                            ).all()
        assert sorted(m.name or s.get(Person, m.person_id).name for m in members) == [
            "廿日 一郎", "廿日 三葉", "廿日 花子"]
    assert count(sessions, Person) == 2


def test_a_member_with_an_unknown_resident_id_becomes_a_record_of_their_own(client, partner, sessions):
    mother = _post(client, partner, 1, person={**MOTHER, "resident_id": "0001234567"}, household=[
        {"relationship": "長男", "name": "廿日 一郎", "birth_year": 1974, "resident_id": "0002000001"},
        {"relationship": "長女", "name": "廿日 二葉", "birth_year": 1977}])
    with sessions() as s:
        son = s.scalar(select(Person).where(Person.resident_id == "0002000001"))
        assert son is not None and son.id != mother["person_id"] and son.name == "廿日 一郎"
        son_id = son.id
    # The son is a record of his own (his birth year as listed kept with his place); the daughter, listed
    # without a 宛名番号, stays as listed.
    assert _members(sessions, mother["id"]) == [("長男", son_id, None, 1974, mother["person_id"]),
                                                ("長女", None, "廿日 二葉", 1977, mother["person_id"])]
    # When he is referred himself, by his 宛名番号, it is that record.
    his = _post(client, partner, 2, person={**SON, "resident_id": "0002000001"}, household=[],
                categories=["hikikomori"])
    assert (his["person_id"], his["person_match"]) == (son_id, "matched")
    assert count(sessions, Person) == 2
