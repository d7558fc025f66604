"""Each text input says its limit beside it before anything is sent (the limit the server checks, from the
form it is sent with) and takes no more; a long text is shown folded, its first lines and 全文を表示."""
from __future__ import annotations

import re

import pytest

from engine.users import accounts
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    form_token,
    text_of,
    web,
)
from web import forms, limits
from web.folding import HEAD_CHARS, text_head


def _control(body: str, prefix: str, name: str) -> tuple[str | None, str | None]:
    """(maxlength, the hint's text) of the input `name` of form `prefix` on a page."""
    fid = f"{prefix}-{name.replace('.', '-')}"
    tag = re.search(rf'<(?:input|textarea) id="{re.escape(fid)}"[^>]*>', body)
    assert tag, fid
    maxlength = re.search(r'maxlength="(\d+)"', tag.group(0))
    hint = re.search(rf'<span class="hint" id="{re.escape(fid)}-hint">([^<]*)</span>', body)
    return (maxlength.group(1) if maxlength else None), (hint.group(1) if hint else None)


def test_the_intake_form_says_each_limit_beside_its_input(web, actors):
    body = web(actors.window).get("/intake").get_data(as_text=True)
    assert _control(body, "in", "person.name") == ("100", "100文字まで")
    assert _control(body, "in", "person.name_kana")[0] == "100"
    assert _control(body, "in", "summary") == ("4000", "つなぐシートに載ります。本人の言葉や困りごとを具体的に（4,000文字まで）")
    assert _control(body, "in", "person.address")[0] == "300"
    # A row of the household table takes no more either; a date has no limit to say.
    assert _control(body, "in", "household.0.name")[0] == "100"
    assert _control(body, "in", "person.birth_date")[0] is None
    assert "文字まで" not in (_control(body, "in", "person.birth_date")[1] or "")


def test_the_forms_for_users_and_passwords_say_theirs(web, actors):
    body = web(actors.admin).get("/admin/").get_data(as_text=True)
    assert _control(body, "user", "login") == ("64", "半角英数字と - _ .（64文字まで）")
    assert _control(body, "user", "name") == ("100", "100文字まで")
    body = web(actors.window).get("/account/password").get_data(as_text=True)
    assert _control(body, "pw", "new_password") == ("256", "10文字以上。ログインIDと同じものは使えません（256文字まで）")
    assert _control(body, "pw", "confirm_password")[0] == "256"


def test_the_limits_are_the_ones_the_forms_check():
    assert limits.field_limit("in", "person.name") == forms.PersonSchema().fields["name"].validators[0].max
    assert limits.field_limit("ev-send_handoff", "reason") == 20000  # from the event's declaration
    assert limits.field_limit("ev-adopt_plan", "roles.3.role") == 2000
    assert (limits.field_limit("user", "login"), limits.field_limit("user", "name")) == (
        accounts.MAX_LOGIN, accounts.MAX_DISPLAY_NAME)
    assert limits.field_limit("a17", "reason") == 2000 and limits.field_limit("hh4", "name") == 100
    assert limits.field_limit("in", "categories") is None and limits.field_limit("nowhere", "x") is None
    assert limits.with_limit("例: 長男", 50) == "例: 長男（50文字まで）" and limits.with_limit(None, None) is None


def test_an_event_form_and_the_contact_note_say_theirs(web, actors, case_in):
    case_id = case_in("assigned")
    body = web(actors.livelihood).get(f"/cases/{case_id}").get_data(as_text=True)
    assert _control(body, "note", "body") == ("20000", "20,000文字まで")
    assert _control(body, "ev-record_consent", "given_by") == ("100", "代理人の場合は氏名と続柄（100文字まで）")


@pytest.mark.parametrize("text, folded", [("短いメモ。", False), ("行\n" * 8, False), ("行\n" * 9 + "行", True),
                                          ("あ" * 400, False), ("あ" * 401, True)])
def test_what_is_folded(text, folded):
    assert (text_head(text) is not None) == folded


def test_a_long_contact_note_shows_its_first_lines_and_opens_whole(web, actors, case_in):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    token = form_token(page, f"/cases/{case_id}/notes")
    long_note = "本人宅を訪問し、家計の状況を聞き取った。" * 500  # 10,000 characters, one paragraph
    assert client.post(f"/cases/{case_id}/notes", {"submission_token": token, "contact_on": "令和8年11月27日",
                                                     "method": "home_visit", "body": long_note}).status_code == 303
    body = client.get(f"/cases/{case_id}").get_data(as_text=True)
    note = re.search(r'<ol class="notes">.*?</ol>', body, re.S).group(0)
    assert "<details><summary>全文を表示（10,000文字）</summary>" in note
    head = re.search(r'<span class="head">([^<]*)…</span>', note).group(1)
    assert long_note.startswith(head) and len(head) == HEAD_CHARS
    assert long_note in note  # the whole, inside the fold
    assert "全文を表示" not in text_of(client.get(f"/cases/{case_id}")).split("支援経過")[0]  # short texts whole
