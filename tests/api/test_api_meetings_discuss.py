"""POST /cases/{id}/events with `also_cases`: a meeting that takes up further cases by number, refused by name
(422) when a number is unknown or not readable; GET /cases/{id} of a discussed case lists the meeting, never a
支援会議's records."""
from __future__ import annotations

from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Case, Meeting, MeetingCase
from tests.api.support import assert_problem, auth, count
from tests.household_support import household  # noqa: F401  (fixture)

MEMBERS = [{"user": "livelihood", "acknowledged": True}]


def _fire(client, token, case_id, event, **fields):
    version = client.get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()["version"]
    return client.post(f"/api/v1/cases/{case_id}/events", json={"event": event, "version": version, **fields},
                       headers=auth(token))


def test_a_support_meeting_takes_up_the_sons_case_by_number(client, make_token, actors, household, sessions):
    fm = make_token("cases:read,cases:write", user=actors.fm, name="fm-tool")
    r = _fire(client, fm, household.mother, "convene_support_meeting", members=MEMBERS,
              minutes="母と長男の状況を共有した。", also_cases=[household.son_number])
    assert r.status_code == 200, r.get_data(as_text=True)
    meeting = r.get_json()["meetings"][0]
    assert meeting["case_number"] == household.mother_number and meeting["case_id"] == household.mother
    assert meeting["discussed_cases"] == [{"id": household.son, "case_number": household.son_number}]
    with unit_of_work(sessions) as s:
        assert set(s.scalars(select(MeetingCase.case_id))) == {household.mother, household.son}
    # The member reads the son's case; the meeting is listed there, its records stay on its page.
    livelihood = make_token("cases:read", user=actors.livelihood, name="livelihood-system")
    son = client.get(f"/api/v1/cases/{household.son}", headers=auth(livelihood))
    assert son.status_code == 200 and son.get_json()["access"] == "content"
    listed = son.get_json()["meetings"]
    assert [(m["case_number"], m["readable"]) for m in listed] == [(household.mother_number, True)]
    assert "minutes" not in listed[0] and "母と長男" not in son.get_data(as_text=True)


def test_an_unknown_or_unreadable_number_is_422_by_field(client, make_token, actors, household, sessions,
                                                         open_case, fire):
    other = open_case(categories=["poverty"])
    fire(actors.livelihood, other, "accept_handoff")
    fm = make_token("cases:read,cases:write", user=actors.fm, name="fm-tool")
    with unit_of_work(sessions) as s:
        number = s.get(Case, other).case_number
    body = assert_problem(_fire(client, fm, household.mother, "convene_support_meeting", members=MEMBERS,
                                also_cases=["R8-999999", number]), 422, "validation-error")
    assert body["errors"]["also_cases"] == [
        "ケース「R8-999999」は見つかりません。",
        f"「{number}」は内容を閲覧できないケースのため、会議で検討するケースに加えられません。"]
    assert count(sessions, Meeting) == 0
    body = assert_problem(_fire(client, fm, household.mother, "convene_support_meeting", members=MEMBERS,
                                also_cases=household.son_number), 422, "validation-error")
    assert "also_cases" in body["errors"]
