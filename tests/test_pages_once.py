"""Forms sent twice and forms from an out-of-date page: the one-time key tells them apart.

The same form sent twice (a double click, or sent again after the back button) is applied once, and its
second send is refused with a link to what the first saved. A second form built on an older version of the
case (another tab) is not a double click: it says the page is out of date, shows the case as it is now and
keeps what was typed, to be sent again on purpose.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import CaseHistory, ContactNote, Handoff, Meeting
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_state,
    case_version,
    count,
    form_token,
    text_of,
    used_keys,
    web,
)

TWICE = "この操作は既に記録されています"
STALE = "画面が古くなっています"


def _sheets(sessions, case_id):
    with unit_of_work(sessions) as s:
        return sorted((h.to_department.code, h.state, h.reason)
                      for h in s.scalars(select(Handoff).where(Handoff.case_id == case_id)))


def _actions(response) -> str:
    return response.get_data(as_text=True).split('id="actions"')[1].split("</section>")[0]


def test_a_second_tab_with_another_choice_is_out_of_date_not_sent_twice(web, actors, case_in, sessions):
    """Two tabs on one case: the sheet sent from the first; the second, with another department and another
    reason, is told its page is out of date, sees the case as it is now and keeps the reason it typed."""
    case_id = case_in("intake")
    client = web(actors.window)
    action = f"/cases/{case_id}/events/send_handoff"
    first_tab, second_tab = client.get(f"/cases/{case_id}"), client.get(f"/cases/{case_id}")
    version = case_version(sessions, case_id)
    first = {"version": version, "submission_token": form_token(first_tab, action), "to_department": "livelihood",
             "reason": "生活費の相談のため", "summary": "失職して家賃を滞納している。"}
    assert client.post(action, first).status_code == 303

    second = client.post(action, {**first, "submission_token": form_token(second_tab, action),
                                  "to_department": "health", "reason": "通院の相談が中心のため"})
    assert second.status_code == 409
    page = text_of(second)
    assert STALE in page and "ケースが更新されました" in page and TWICE not in page
    assert "現在の状態は「つなぐシート送付中」です" in page
    # 送る is no longer offered (the sheet went): what was typed is shown to copy.
    assert "通院の相談が中心のため" in page and "今の状態ではできません" in page
    assert _sheets(sessions, case_id) == [("livelihood", "sent", "生活費の相談のため")]


def test_the_same_form_sent_twice_is_applied_once_and_does_not_come_back_filled(web, actors, case_in, sessions):
    case_id = case_in("intake")
    client = web(actors.window)
    action = f"/cases/{case_id}/events/send_handoff"
    form = {"version": case_version(sessions, case_id), "submission_token": form_token(client.get(f"/cases/{case_id}"),
                                                                                      action),
            "to_department": "livelihood", "reason": "生活費の相談のため", "summary": "失職して家賃を滞納している。"}
    assert client.post(action, form).status_code == 303
    again = client.post(action, form)
    assert again.status_code == 409
    page = text_of(again)
    assert TWICE in page and "2回目の送信は行っていません" in page and STALE not in page
    assert "生活費の相談のため" not in _actions(again)
    assert _sheets(sessions, case_id) == [("livelihood", "sent", "生活費の相談のため")]


# Every form of the case page that changes the case: (state, who, path, fields, what a sent form writes).
FORMS = [
    ("handoff", "livelihood", "events/accept_handoff", {}, "accept_handoff"),
    ("consent", "fm", "events/refuse_consent", {"given_by": "本人", "note": "本人が同意しなかった"},
     "refuse_consent"),
    ("assigned", "livelihood", "events/close", {"close_reason": "goal_met", "confirm": "1"}, "close"),
    ("assigned", "livelihood", "join", {"to_department": "health", "reason": "通院の支援をお願いしたい",
                                        "summary": "就労前に通院の支援が必要。"}, "handoff.request_join"),
    ("handoff", "window", "redirect", {"to_department": "health", "reason": "居場所の相談が中心のため"},
     "routing_override"),
    ("assigned", "livelihood", "amend", {"person.name": "廿日 太郎", "person.birth_date": "昭和35年5月1日",
                                         "summary": "失職して家賃を滞納している（訂正）。"}, "amend"),
]


@pytest.mark.parametrize("state,who,path,fields,written", FORMS, ids=[f[2] for f in FORMS])
def test_every_case_form_tells_a_double_send_from_an_out_of_date_page(web, actors, case_in, sessions, state, who,
                                                                      path, fields, written):
    case_id = case_in(state)
    client = web(getattr(actors, who))
    action = f"/cases/{case_id}/{path}"
    tab1, tab2 = client.get(f"/cases/{case_id}"), client.get(f"/cases/{case_id}")
    key1, key2 = form_token(tab1, action), form_token(tab2, action)
    assert key1 != key2  # each page its own key
    form = {"version": case_version(sessions, case_id), "submission_token": key1, **fields}
    first = client.post(action, form)
    assert first.status_code == 303, text_of(first)
    history = count(sessions, CaseHistory, CaseHistory.case_id == case_id)

    twice = client.post(action, form)
    assert twice.status_code == 409 and TWICE in text_of(twice) and STALE not in text_of(twice)
    stale = client.post(action, {**form, "submission_token": key2})
    assert stale.status_code == 409 and STALE in text_of(stale) and TWICE not in text_of(stale)
    for typed in (v for k, v in fields.items() if k in ("reason", "summary", "note")):
        assert typed in text_of(stale)  # kept, in the form or to copy
    assert count(sessions, CaseHistory, CaseHistory.case_id == case_id) == history
    assert count(sessions, CaseHistory, CaseHistory.case_id == case_id, CaseHistory.event == written) == 1


def test_a_page_offers_the_keys_already_used_on_the_case_beside_its_own(web, actors, case_in, sessions):
    """A page shown again from history is fetched afresh: the key the form was sent with is among its
    choices, for the browser to put back with what was typed."""
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    action = f"/cases/{case_id}/notes"
    token = form_token(client.get(f"/cases/{case_id}"), action)
    form = {"submission_token": token, "contact_on": "令和8年11月27日", "method": "phone", "body": "電話した。"}
    assert client.post(action, form).status_code == 303
    page = client.get(f"/cases/{case_id}")
    assert form_token(page, action) != token and token in used_keys(page, action)
    # Not offered to anyone else, nor on another case.
    assert token not in web(actors.fm).get(f"/cases/{case_id}").get_data(as_text=True)
    other = case_in("assigned")
    assert token not in client.get(f"/cases/{other}").get_data(as_text=True)


def test_a_record_sent_again_is_saved_once_with_a_link_to_it(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    action = f"/cases/{case_id}/notes"
    form = {"submission_token": form_token(client.get(f"/cases/{case_id}"), action), "contact_on": "令和8年11月27日",
            "method": "phone", "body": "電話した。"}
    assert client.post(action, form).status_code == 303
    again = client.post(action, form)
    assert again.status_code == 303
    body = client.get(again.headers["Location"]).get_data(as_text=True)
    flash = re.search(r'<p class="flash flash-info"[^>]*>(.*?)</p>', body, flags=re.S).group(1)
    assert "この支援経過は既に記録されています" in flash and "2回目は保存していません" in flash
    with unit_of_work(sessions) as s:
        note_id = s.scalars(select(ContactNote.id)).one()
    assert f'<a href="/cases/{case_id}#note-{note_id}">記録した支援経過を見る</a>' in flash
    assert f'<li id="note-{note_id}">' in body
    assert case_state(sessions, case_id) == "assigned"


def test_an_inbox_answer_sent_twice_is_not_an_answer_from_an_older_list(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    with unit_of_work(sessions) as s:
        handoff_id = s.scalar(select(Handoff.id).where(Handoff.case_id == case_id))
    client = web(actors.livelihood)
    action = f"/inbox/{handoff_id}"
    tab1, tab2 = client.get("/inbox"), client.get("/inbox")
    accept = {"decision": "accept", "version": case_version(sessions, case_id),
              "submission_token": form_token(tab1, action)}
    assert client.post(action, accept).status_code == 303
    twice = client.post(action, accept)
    assert twice.status_code == 409 and "この回答は既に記録されています" in text_of(twice)
    assert "2回目の送信は行っていません" in text_of(twice) and STALE not in text_of(twice)
    body = tab2.get_data(as_text=True)
    decline_key = form_token(body[body.index("<summary>返送する</summary>"):], action)
    stale = client.post(action, {"decision": "decline", "version": accept["version"], "reason": "所管外のため",
                                 "submission_token": decline_key})
    assert stale.status_code == 409 and STALE in text_of(stale) and "既に記録されています" not in text_of(stale)
    assert "所管外のため" in text_of(stale)
    assert case_state(sessions, case_id) == "assigned"


def test_a_meeting_record_sent_again_from_history_is_added_once_with_a_link(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    with unit_of_work(sessions) as s:
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
    client = web(actors.livelihood)
    client.post(f"/meetings/{meeting_id}/acknowledge", {})
    action = f"/meetings/{meeting_id}/record"
    form = {"submission_token": form_token(client.get(f"/meetings/{meeting_id}"), action),
            "minutes": "家計の見直しを話し合った。"}
    assert client.post(action, form).status_code == 303
    page = client.get(f"/meetings/{meeting_id}")
    assert form["submission_token"] in used_keys(page, action)  # for the browser to put back
    again = client.post(action, form)
    body = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "この追記は既に記録されています" in body
    assert f'<a href="/meetings/{meeting_id}#minutes">追記した記録を見る</a>' in body
    assert body.count("家計の見直しを話し合った。") == 1
