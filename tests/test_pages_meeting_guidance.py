"""The case page says who convenes a 支援会議 and how to ask, and which of the two consent events to use."""
from __future__ import annotations

from tests.pages_support import app, case_in, text_of, web  # noqa: F401  (fixtures)


def _convene_hint(response) -> str | None:
    body = response.get_data(as_text=True)
    start = body.find('id="convene-ask"')
    return text_of(body[start:body.find("</p>", start)]) if start >= 0 else None


def test_the_owning_department_is_told_that_an_fm_convenes_and_whom_to_ask(web, actors, case_in):
    case_id = case_in("assigned")
    hint = _convene_hint(web(actors.livelihood).get(f"/cases/{case_id}"))
    assert hint is not None
    assert "FM（係長級）が招集します" in hint and "fmさん・fm2さん" in hint and "依頼してください" in hint


def test_the_fm_who_convened_is_named_and_the_fm_is_offered_the_form_instead(web, actors, case_in):
    case_id = case_in("support_meeting")  # convened by `fm`: the case's own FM
    hint = _convene_hint(web(actors.livelihood).get(f"/cases/{case_id}"))
    assert hint is not None and "FMのfmさんに" in hint and "fm2" not in hint
    fm_page = web(actors.fm).get(f"/cases/{case_id}")
    assert _convene_hint(fm_page) is None and "支援会議を開く" in text_of(fm_page)


def test_no_hint_where_a_meeting_cannot_be_convened_or_for_a_reader_outside_the_case(web, actors, case_in):
    assert _convene_hint(web(actors.livelihood).get(f"/cases/{case_in('layered_meeting')}")) is None
    assert _convene_hint(web(actors.window).get(f"/cases/{case_in('assigned')}")) is None


def test_the_two_consent_events_say_which_to_use(web, actors, case_in):
    page = web(actors.fm).get(f"/cases/{case_in('support_meeting')}")
    body = page.get_data(as_text=True)
    assert 'id="consent-choice"' in body
    text = text_of(page)
    assert "同意をまだ得ていなければ「同意確認に進む」" in text and "同意をすでに得ているときは「同意を記録する」" in text
