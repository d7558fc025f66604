"""Who reads a person and their household, over HTTP: one test per (role, read).

The reads: the person page (`/people/<id>`) and the case page's 世帯 section. A role sees the person page
as far as tests/people_support.ROLES says: the content (household, details) for a reader of the content of
one of the person's cases; who the person is and that their cases exist for an FM or the administrator (who
decide merges); nothing at all (404, and the refusal in the trail) for anyone else. The case page's 世帯
section is the case's content: only its readers see it. Every read that shows something is in the trail.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import AuditEvent, Case
from tests.pages_support import app, count, text_of, web  # noqa: F401  (fixtures)
from tests.people_support import CONTENT, METADATA, NOT_FOUND, ROLES, household  # noqa: F401

STATUS = {CONTENT: 200, METADATA: 200, NOT_FOUND: 404}


def _case_number(sessions, case_id):
    with sessions() as s:
        return s.scalar(select(Case.case_number).where(Case.id == case_id))


def _refusals(sessions):
    return count(sessions, AuditEvent, AuditEvent.outcome == "refused")


@pytest.mark.parametrize("role", ROLES)
def test_the_person_page_opens_as_far_as_the_role_sees_the_person(household, web, sessions, role):
    sight = ROLES[role][1]
    before = _refusals(sessions)
    r = web(household.users[role]).get(f"/people/{household.taro}")
    assert r.status_code == STATUS[sight], f"{role}: {r.status_code}"
    page = text_of(r)
    if sight == NOT_FOUND:
        assert "廿日 太郎" not in page and "廿日 花子" not in page
        assert _refusals(sessions) == before + 1
        assert count(sessions, AuditEvent, AuditEvent.outcome == "refused", AuditEvent.object_type == "person",
                     AuditEvent.object_id == str(household.taro)) == 1
        assert count(sessions, AuditEvent, AuditEvent.action == "person.read") == 0
        return
    # Who the person is, and their case, for everyone who may see them.
    assert "廿日 太郎" in page and "昭和21年5月1日" in page and _case_number(sessions, household.taro_case) in page
    content = sight == CONTENT
    for word in ("廿日 花子", "要介護2", "長期のひきこもり", "0829-55-0101"):  # household, phone: content only
        assert (word in page) == content, f"{role}: {word}"
    assert ("この方のケースの内容（世帯・相談内容・記録）は閲覧できません" in page) == (not content)
    rows = _reads(sessions, household.taro)
    assert len(rows) == 1, role
    assert ("households" in rows[0]["parts"]) == content
    assert rows[0]["cases"] == [household.taro_case]


def _reads(sessions, person_id):
    with sessions() as s:
        return [e.detail for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action == "person.read", AuditEvent.object_id == str(person_id)))]


@pytest.mark.parametrize("role", ROLES)
def test_the_case_page_shows_the_household_only_to_readers_of_the_content(household, web, sessions, role):
    sight = ROLES[role][1]
    r = web(household.users[role]).get(f"/cases/{household.taro_case}")
    page = text_of(r)
    if sight == NOT_FOUND:
        assert r.status_code == 404 and "廿日 花子" not in page
        return
    assert r.status_code == 200
    content = sight == CONTENT
    for word in ("廿日 花子", "要介護2", "廿日 一郎", "昭和49年（1974年）"):
        assert (word in page) == content, f"{role}: {word}"
    assert ('id="household"' in r.get_data(as_text=True)) == content
    assert (f'href="/people/{household.taro}"' in r.get_data(as_text=True)) == content
    # 一郎's own case, in the household: visible to those who may know of it, otherwise existence and owner.
    number = _case_number(sessions, household.ichiro_case)
    if content:
        sees_it = role == "member"  # the ステーション owns 一郎's case
        assert (number in page) == sees_it, role
        hidden = "長男 廿日 一郎（担当: はつかいちひきこもり支援ステーション）のケースがあります"
        assert (hidden in page) == (not sees_it), role
    else:
        assert number not in page
