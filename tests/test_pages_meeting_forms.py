"""The 支援会議 and 重層的支援会議 on the case page: who convenes and how to ask, which consent event to use,
the 開催日時 typed in 和暦."""
from __future__ import annotations

import re

from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Meeting
from tests.pages_support import (  # noqa: F401  (fixtures)
    FUTURE,
    app,
    case_in,
    case_version,
    error_beside,
    input_value,
    text_of,
    web,
)


def _convene_hint(response) -> str | None:
    body = response.get_data(as_text=True)
    start = body.find('id="convene-ask"')
    return text_of(body[start:body.find("</p>", start)]) if start >= 0 else None


def test_the_owning_department_is_told_that_an_fm_convenes_and_whom_to_ask(web, actors, case_in):
    case_id = case_in("assigned")
    hint = _convene_hint(web(actors.livelihood).get(f"/cases/{case_id}"))
    assert hint is not None
    assert "FM（係長級）が招集します" in hint and "fmさん・fm2さん" in hint and "「FMに支援会議の開催を依頼する」から依頼する" in hint


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


def test_the_time_a_support_meeting_was_held_is_typed_in_wareki(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.fm)
    page = client.get(f"/cases/{case_id}")
    body = page.get_data(as_text=True)
    # No browser date-time picker: a text input that starts with now in 和暦, as every other date on the pages.
    held = re.search(r'<input id="ev-convene_support_meeting-held_at"[^>]*>', body).group(0)
    assert 'type="text"' in held
    assert re.fullmatch(r"令和\d+年\d+月\d+日 \d\d:\d\d", input_value(page, "ev-convene_support_meeting", "held_at"))
    assert "例: 令和8年12月7日 14:30" in text_of(page)
    url = f"/cases/{case_id}/events/convene_support_meeting"
    form = {"version": case_version(sessions, case_id), "members.0.user": "livelihood",
            "members.0.acknowledged": "1"}
    r = client.post(url, form | {"held_at": "令和8年12月1日"})
    assert r.status_code == 422
    assert error_beside(r, "ev-convene_support_meeting", "held_at") == "時刻も入力してください（例: 令和8年12月7日 14:30）。"
    assert input_value(r, "ev-convene_support_meeting", "held_at") == "令和8年12月1日"
    r = client.post(url, form | {"held_at": "令和8年12月1日 午後2時半"})
    assert r.status_code == 303
    with unit_of_work(sessions) as s:
        meeting = s.scalars(select(Meeting).where(Meeting.case_id == case_id)).one()
        assert meeting.held_at.isoformat() == "2026-12-01T05:30:00+00:00"  # 14:30 JST


def test_the_layered_meeting_is_recorded_from_the_page_and_shown_with_its_agencies_and_plan(web, actors, case_in,
                                                                                              sessions):
    case_id = case_in("layered_meeting")
    client = web(actors.livelihood)
    page = client.get(f"/cases/{case_id}")
    assert re.fullmatch(r"令和\d+年\d+月\d+日 \d\d:\d\d", input_value(page, "ev-adopt_plan", "held_at"))
    assert "出席機関" in text_of(page)
    form = {"version": case_version(sessions, case_id), "goals": "「家賃を払えるようになりたい」",
            "roles.0.department": "livelihood", "roles.0.role": "家計相談", "main_department": "livelihood",
            "next_evaluation_date": FUTURE, "attendees": ["shakyo"]}
    url = f"/cases/{case_id}/events/adopt_plan"
    r = client.post(url, form | {"held_at": "令和8年12月1日", "attendees": ["elderly"]})
    assert r.status_code == 422
    assert error_beside(r, "ev-adopt_plan", "held_at") == "時刻も入力してください（例: 令和8年12月7日 14:30）。"
    r = client.post(url, form | {"held_at": "令和8年12月1日 10時"} | {"attendees": ["elderly"]})
    assert r.status_code == 422
    assert "出席機関にできません: 高齢介護課" in error_beside(r, "ev-adopt_plan", "attendees")
    assert client.post(url, form | {"held_at": "令和8年12月1日 10時"}).status_code == 303
    case_page = text_of(client.get(f"/cases/{case_id}"))
    assert "重層的支援会議 令和8年12月1日 10:00" in case_page
    with unit_of_work(sessions) as s:
        meeting = s.scalars(select(Meeting).where(Meeting.case_id == case_id)).one()
        names = [a.department.name for a in meeting.attendees]
        meeting_id = meeting.id
    assert f"（出席機関: {'、'.join(names)}・支援プラン第1版を決定）" in case_page
    assert "構成員 1人" not in case_page
    meeting_page = text_of(client.get(f"/meetings/{meeting_id}"))
    assert f"出席機関 {'、'.join(names)}" in meeting_page and "支援プラン 第1版を決定" in meeting_page
    assert "開催日時 令和8年12月1日 10:00" in meeting_page and "構成員 1人" not in meeting_page
