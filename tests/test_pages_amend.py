"""内容の修正 from the case page: the owner corrects the summary and the person's details; a blank input clears
a detail; mistakes are marked beside their inputs; stale, forbidden and unchanged forms write nothing."""
from __future__ import annotations

import re

from sqlalchemy import select

from engine.models import AuditEvent, Case, CaseHistory
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_version,
    count,
    error_beside,
    form_token,
    input_value,
    text_of,
    web,
)


def _form(sessions, case_id, **over):
    form = {"version": case_version(sessions, case_id), "person.name": "廿日 太郎", "person.name_kana": "ハツカ タロウ",
            "person.sex": "", "person.birth_date": "昭和35年5月1日", "person.area": "廿日市", "person.phone": "",
            "person.address": "", "person.resident_id": "", "summary": "失職して家賃を滞納している。"}
    form.update(over)
    return form


def _person(sessions, case_id):
    with sessions() as s:
        case = s.get(Case, case_id)
        p = case.person
        return {"name": p.name, "phone": p.phone, "birth_date": p.birth_date.isoformat() if p.birth_date else None,
                "summary": case.summary, "search_key": p.search_key}


def test_the_owner_corrects_the_summary_and_details_and_only_field_names_are_kept(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    page = client.get(f"/cases/{case_id}")
    assert "相談内容・本人の情報を修正する" in text_of(page)
    assert input_value(page, "amend", "person.birth_date") == "昭和35年5月1日"  # shown in 和暦
    r = client.post(f"/cases/{case_id}/amend", _form(sessions, case_id, **{
        "person.name": "廿日 次郎", "person.phone": "0829-20-0000", "summary": "失職して家賃を四か月滞納している。"}))
    assert r.status_code == 303
    assert "内容を修正しました" in text_of(client.get(r.headers["Location"]))
    now = _person(sessions, case_id)
    assert (now["name"], now["phone"], now["summary"]) == ("廿日 次郎", "0829-20-0000", "失職して家賃を四か月滞納している。")
    assert "廿日次郎" in now["search_key"]  # found by the corrected name
    with sessions() as s:
        row = s.scalar(select(CaseHistory).where(CaseHistory.case_id == case_id, CaseHistory.event == "amend"))
        assert sorted(row.detail["fields"]) == ["person.name", "person.phone", "summary"]
        audit = s.scalar(select(AuditEvent).where(AuditEvent.action == "case.amend"))
        assert "廿日 次郎" not in str(audit.detail) and audit.case_id == case_id
    # A blank input clears the detail.
    client.post(f"/cases/{case_id}/amend", _form(sessions, case_id, **{
        "person.name": "廿日 次郎", "person.phone": "", "summary": "失職して家賃を四か月滞納している。"}))
    assert _person(sessions, case_id)["phone"] is None


def test_mistakes_are_marked_beside_their_inputs_and_nothing_is_written(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    before = _person(sessions, case_id), case_version(sessions, case_id)
    client = web(actors.livelihood)
    r = client.post(f"/cases/{case_id}/amend", _form(sessions, case_id, **{
        "person.name": " ", "person.birth_date": "昭和35年13月1日", "summary": ""}))
    assert r.status_code == 422
    assert error_beside(r, "amend", "person.name") == "必須項目です。"
    assert "日付は" in error_beside(r, "amend", "person.birth_date")
    assert error_beside(r, "amend", "summary") == "必須項目です。"
    assert input_value(r, "amend", "person.birth_date") == "昭和35年13月1日"  # what was typed is kept
    r = client.post(f"/cases/{case_id}/amend", _form(sessions, case_id, **{"person.birth_date": "令和30年1月1日",
                                                                          "person.area": "東京", "person.sex": "bogus"}))
    assert r.status_code == 422
    assert error_beside(r, "amend", "person.sex") == "性別「bogus」はコード表にありません。"
    assert error_beside(r, "amend", "person.birth_date") == "生年月日が未来の日付になっています。"
    assert error_beside(r, "amend", "person.area") == "「東京」という圏域はありません。"
    assert (_person(sessions, case_id), case_version(sessions, case_id)) == before


def test_an_unchanged_form_writes_nothing(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    version = case_version(sessions, case_id)
    client = web(actors.livelihood)
    r = client.post(f"/cases/{case_id}/amend", _form(sessions, case_id))
    assert r.status_code == 303 and "変更された項目はありませんでした" in text_of(client.get(r.headers["Location"]))
    assert case_version(sessions, case_id) == version
    assert count(sessions, AuditEvent, AuditEvent.action == "case.amend") == 0


def test_a_stale_amend_form_is_refused(web, actors, case_in, sessions, make_user):
    case_id = case_in("assigned")
    old = _form(sessions, case_id, summary="一回目の訂正")
    colleague = web(make_user("staff", "livelihood", login="livelihood2"))
    assert colleague.post(f"/cases/{case_id}/amend", old).status_code == 303
    client = web(actors.livelihood)
    again = client.post(f"/cases/{case_id}/amend", {**old, "summary": "二回目の訂正", "person.phone": "0829-20-0000"})
    assert again.status_code == 409 and "画面が古くなっています" in text_of(again)
    assert _person(sessions, case_id)["summary"] == "一回目の訂正"
    # What was typed is not lost: the form comes back open with it and the current version, to be sent
    # again on purpose once the person has read what changed.
    assert "入力した内容はフォームに残しています" in text_of(again)
    assert input_value(again, "amend", "person.phone") == "0829-20-0000"
    assert "二回目の訂正" in again.get_data(as_text=True)
    version = int(re.search(r'id="event-amend".*?name="version" value="(\d+)"', again.get_data(as_text=True),
                            re.S).group(1))
    assert version == case_version(sessions, case_id)
    resent = client.post(f"/cases/{case_id}/amend", {**old, "version": version, "summary": "二回目の訂正"})
    assert resent.status_code == 303 and _person(sessions, case_id)["summary"] == "二回目の訂正"


def test_only_the_owner_or_case_fm_may_amend(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    before = _person(sessions, case_id)
    desk = web(actors.window)
    assert "相談内容・本人の情報を修正する" not in text_of(desk.get(f"/cases/{case_id}"))
    assert desk.post(f"/cases/{case_id}/amend", _form(sessions, case_id, summary="x")).status_code == 403
    assert web(actors.shakyo).post(f"/cases/{case_id}/amend", _form(sessions, case_id, summary="x")).status_code == 404
    r = web(actors.livelihood).post(f"/cases/{case_id}/amend", _form(sessions, case_id, summary="x"), csrf=False)
    assert r.status_code == 400
    assert _person(sessions, case_id) == before


def test_a_form_sent_twice_is_applied_once_and_does_not_come_back_filled(web, actors, case_in, sessions):
    """A double click sends the form twice with its one-time key: the second finds the key used; unlike a
    form shown before a change, it must not offer the typed values to be applied again."""
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    token = form_token(client.get(f"/cases/{case_id}"), f"/cases/{case_id}/amend")
    form = _form(sessions, case_id, summary="一回だけの訂正", submission_token=token)
    assert client.post(f"/cases/{case_id}/amend", form).status_code == 303
    again = client.post(f"/cases/{case_id}/amend", form)
    assert again.status_code == 409
    text = text_of(again)
    assert "この操作は既に記録されています" in text and "入力した内容はフォームに残しています" not in text
    assert 'id="event-amend" open' not in again.get_data(as_text=True)
    assert count(sessions, CaseHistory, CaseHistory.event == "amend") == 1


def test_the_same_person_in_two_tabs_gets_a_stale_form_back_filled(web, actors, case_in, sessions):
    """Stale by the person's own change in another tab, with a change of its own still to make: not a form
    sent twice. It comes back filled, as after a colleague's change."""
    case_id = case_in("assigned")
    first, second = web(actors.livelihood), web(actors.livelihood)
    old = _form(sessions, case_id)
    assert first.post(f"/cases/{case_id}/amend", {**old, "person.phone": "0829-20-1111"}).status_code == 303
    again = second.post(f"/cases/{case_id}/amend", {**old, "person.address": "廿日市市下平良一丁目"})
    assert again.status_code == 409
    text = text_of(again)
    assert "画面が古くなっています" in text and "既に記録されています" not in text
    assert input_value(again, "amend", "person.address") == "廿日市市下平良一丁目"
    with sessions() as s:
        person = s.get(Case, case_id).person
        assert (person.phone, person.address) == ("0829-20-1111", None)
