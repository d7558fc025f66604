"""A person's name typed on the pages holds no bidirectional control (U+202E and the like), as through the API:
the message beside the name's input, what was typed kept, nothing written. Other text may hold them."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from engine.fields import BIDI_CONTROL
from engine.models import Case, Consent, HouseholdMember, User
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_version,
    count,
    error_beside,
    web,
)
from tests.people_support import household  # noqa: F401  (fixture)
from tests.test_pages_intake import SHAKYO_CONSENT, _preview

OVERRIDE = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: 「廿日\u202e郎太」 shows as 廿日太郎


@pytest.mark.parametrize("field", ["person.name", "person.name_kana", "household.0.name", "consent.given_by"])
@pytest.mark.parametrize("control", ["\u202e", "\u2066", "\u200f", "\u061c"])
def test_intake_refuses_a_name_with_a_bidirectional_control_beside_it(web, actors, sessions, field, control):
    over = {**SHAKYO_CONSENT, field: f"廿日{control}郎太"}
    r = _preview(web(actors.window), **over)
    assert r.status_code == 422
    assert error_beside(r, "in", field) == BIDI_CONTROL
    assert count(sessions, Case) == 0


def test_intake_takes_them_in_the_summary(web, actors):
    r = _preview(web(actors.window), summary="本人の記した文 \u202bمرحبا\u202c をそのまま記録")
    assert r.status_code == 200 and error_beside(r, "in", "summary") is None


def test_amending_the_name_refuses_one_too(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    form = {"version": case_version(sessions, case_id), "person.name": f"廿日{OVERRIDE}郎次", "person.name_kana": "",
            "person.birth_date": "昭和35年5月1日", "person.area": "廿日市", "summary": "失職して家賃を滞納している。"}
    r = web(actors.livelihood).post(f"/cases/{case_id}/amend", form)
    assert r.status_code == 422 and error_beside(r, "amend", "person.name") == BIDI_CONTROL
    with sessions() as s:
        assert s.get(Case, case_id).person.name == "廿日 太郎"


def test_who_gave_a_consent_is_a_name(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    r = web(actors.livelihood).post(f"/cases/{case_id}/events/record_consent", {
        "version": case_version(sessions, case_id), "given_by": f"長男{OVERRIDE}郎次", "method": "oral",
        "agencies": ["livelihood"]})
    assert r.status_code == 422 and error_beside(r, "ev-record_consent", "given_by") == BIDI_CONTROL
    assert count(sessions, Consent) == 0


def test_a_household_member_added_on_the_person_page_is_refused_too(household, web, sessions):
    owner = web(household.users["owner"])
    owner.get(f"/people/{household.taro}")
    before = count(sessions, HouseholdMember)
    r = owner.post(f"/people/{household.taro}/households/{household.household}/members", {
        "submission_token": uuid.uuid4().hex, "name": f"廿日{OVERRIDE}郎五", "relationship": "孫"})
    assert r.status_code == 422
    assert error_beside(r, f"hh{household.household}", "name") == BIDI_CONTROL
    assert count(sessions, HouseholdMember) == before


def test_a_staff_users_name_is_refused_too(web, actors, sessions):
    r = web(actors.admin).post("/admin/users", {"login": "tanaka", "name": f"田中{OVERRIDE}郎一",
                                                "department": "elderly", "role": "staff"})
    assert r.status_code == 422 and "文字の向きを変えるもの" in error_beside(r, "user", "name")
    with sessions() as s:
        assert s.scalar(select(User).where(User.login == "tanaka")) is None
