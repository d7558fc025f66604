"""Pages of meetings that discuss several cases: the forms offer the household's other cases and take any other
number, a refused number is shown beside the input, the son's page lists the meeting held on his mother's case,
the meeting's page names the cases it took up; the yearly report sets consultations, people and households side
by side."""
from __future__ import annotations

import re

from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Meeting, MeetingCase
from tests.household_support import household  # noqa: F401  (fixture)
from tests.pages_support import app, case_version, error_beside, text_of, web  # noqa: F401  (fixtures)

CONVENE = "ev-convene_support_meeting"


def _discussed(sessions, meeting_id) -> set[int]:
    with unit_of_work(sessions) as s:
        return set(s.scalars(select(MeetingCase.case_id).where(MeetingCase.meeting_id == meeting_id)))


def test_the_convene_form_offers_the_households_cases_and_takes_them(web, actors, household, sessions, fire):
    # The FM who convened the mother's first 支援会議 reads her case, her household and so her son's case number.
    fire(actors.fm, household.mother, "convene_support_meeting",
         members=[{"user": "elderly", "acknowledged": True}])
    client = web(actors.fm)
    page = client.get(f"/cases/{household.mother}").get_data(as_text=True)
    form = page[page.index(f'id="{CONVENE}-also_cases"'):]
    form = form[:form.index("</fieldset>")]
    assert f'name="also_cases" value="{household.son_number}"' in form  # the son's case, to tick
    assert len(re.findall(r'<input id="ev-convene_support_meeting-also_cases-\d"', form)) == 2  # any other number
    url = f"/cases/{household.mother}/events/convene_support_meeting"
    r = client.post(url, [("version", case_version(sessions, household.mother)), ("members.0.user", "livelihood"),
                          ("members.0.acknowledged", "1"), ("also_cases", household.son_number),
                          ("also_cases", ""), ("also_cases", "")])
    assert r.status_code == 303, text_of(r)
    with unit_of_work(sessions) as s:
        meeting_id = s.scalar(select(Meeting.id).order_by(Meeting.id.desc()).limit(1))
    assert _discussed(sessions, meeting_id) == {household.mother, household.son}


def test_an_fm_who_sees_only_the_metadata_is_offered_no_household_but_may_type(web, actors, household):
    page = web(actors.fm).get(f"/cases/{household.mother}").get_data(as_text=True)
    form = page[page.index(f'id="{CONVENE}-also_cases"'):]
    form = form[:form.index("</fieldset>")]
    assert 'type="checkbox"' not in form and household.son_number not in form
    assert len(re.findall(r'<input id="ev-convene_support_meeting-also_cases-\d"', form)) == 2


def test_a_number_refused_is_shown_beside_the_input_and_kept(web, actors, household, sessions):
    client = web(actors.fm)
    url = f"/cases/{household.mother}/events/convene_support_meeting"
    r = client.post(url, [("version", case_version(sessions, household.mother)), ("members.0.user", "livelihood"),
                          ("members.0.acknowledged", "1"), ("also_cases", household.son_number),
                          ("also_cases", "R8-999999")])
    assert r.status_code == 422
    assert error_beside(r, CONVENE, "also_cases") == "ケース「R8-999999」は見つかりません。"
    body = r.get_data(as_text=True)
    for i, typed in enumerate((household.son_number, "R8-999999")):  # what was typed stays
        assert f'id="{CONVENE}-also_cases-{i}" name="also_cases" value="{typed}"' in body
    with unit_of_work(sessions) as s:
        assert s.scalars(select(Meeting)).all() == []


def test_the_sons_page_lists_the_meeting_held_on_his_mothers_case(web, actors, household, sessions, fire):
    fire(actors.fm, household.mother, "convene_support_meeting",
         members=[{"user": "livelihood", "acknowledged": True}], minutes="母と長男の状況を共有した。",
         also_cases=[household.son_number])
    with unit_of_work(sessions) as s:
        meeting_id = s.scalars(select(Meeting.id)).one()
    member = web(actors.livelihood)
    page = text_of(member.get(f"/cases/{household.son}"))
    assert f"ケース {household.mother_number} の会議で併せて検討" in page
    page = text_of(member.get(f"/cases/{household.mother}"))
    assert f"併せて検討: {household.son_number}" in page
    r = member.get(f"/meetings/{meeting_id}")
    assert f"併せて検討したケース: {household.son_number}" in text_of(r)
    assert "母と長男の状況を共有した。" in text_of(r)
    # Someone who may not know of the son's case reads neither his page nor his number on the meeting's.
    assert web(actors.children).get(f"/cases/{household.son}").status_code == 404
    owner = text_of(web(actors.elderly).get(f"/meetings/{meeting_id}"))
    assert household.son_number in owner  # 高齢介護課 is named in the son's consent: it may know of his case


def test_the_plan_form_offers_the_households_cases(web, actors, household, fire):
    fire(actors.elderly, household.mother, "record_consent", given_by="本人", method="written", agencies=["elderly"])
    page = web(actors.elderly).get(f"/cases/{household.mother}").get_data(as_text=True)
    form = page[page.index('id="ev-adopt_plan-also_cases"'):]
    assert f'name="also_cases" value="{household.son_number}"' in form[:form.index("</fieldset>")]
    assert "本人の同意が記録されているケースだけ" in form


def test_the_report_sets_consultations_people_and_households_side_by_side(web, actors, household):
    r = web(actors.fm).get("/reports?year=2026")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    strip = body[body.index('<dl class="headline"'):body.index("</dl>")]
    assert re.findall(r"<dt>(.*?)</dt>", strip) == ["相談", "人", "支援中のケースが2件以上ある世帯"]
    assert [int(n) for n in re.findall(r'<span class="num">(\d+)</span>', strip)] == [2, 2, 1]
    assert "複合課題の世帯: 8050 1" in text_of(r)
