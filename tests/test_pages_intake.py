"""相談受付: the form, the routing preview, and the three ways to confirm — through the test client."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, FormSubmission, Handoff, HouseholdMember
from engine.rules import store as rules
from tests.conftest import CONFIG_DIR
from tests.pages_support import app, count, error_beside, form_token, input_value, text_of, used_keys, web  # noqa: F401

VALID = {
    "person.name": "廿日 太郎", "person.name_kana": "ハツカ タロウ", "person.birth_date": "昭和35年5月1日",
    "person.area": "廿日市", "household.0.relationship": "妻", "household.0.birth_year": "1962",
    "categories": ["poverty", "debt"], "primary_category": "poverty",
    "summary": "失職して家賃を滞納している。", "source": "window", "urgency": "normal",
}


def _preview(client, **over):
    data = {**VALID, **over, "action": "preview"}
    return client.post("/intake", {k: v for k, v in data.items() if v is not None})


def _hidden(response) -> dict:
    """The preview's first form (follow the proposal) as the browser would send it."""
    body = response.get_data(as_text=True)
    form = body.split('<form method="post" action="/intake" class="option">')[1].split("</form>")[0]
    pairs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)
    out: dict = {}
    for k, v in pairs:
        out.setdefault(k, []).append(html.unescape(v))
    return {k: v if len(v) > 1 else v[0] for k, v in out.items() if k != "csrf_token"}


def test_the_form_offers_every_input(web, actors):
    r = web(actors.window).get("/intake")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    for name in ("person.name", "person.name_kana", "person.birth_date", "person.area", "household.2.note",
                 "categories", "primary_category", "summary", "source", "urgency", "consent.given_by",
                 "consent.method", "consent.obtained_on", "consent.agencies"):
        assert f'name="{name}"' in body, name
    assert "ヤングケアラー" in text_of(r)


def test_preview_shows_the_proposal_and_its_reason_and_writes_nothing(web, actors, sessions):
    r = _preview(web(actors.window))
    assert r.status_code == 200
    page = text_of(r)
    assert "送付先: 生活福祉課（生活困窮者自立相談支援）" in page
    assert "生活困窮・借金・仕事・住まいの相談のため" in page
    assert "昭和35年5月1日" in page  # the 和暦 date typed was understood
    assert count(sessions, Case) == 0


def test_preview_flags_a_multi_agency_candidate(web, actors):
    r = _preview(web(actors.window), categories=["elder_care", "hikikomori"], primary_category="elder_care")
    page = text_of(r)
    assert "送付先: 高齢介護課" in page and "多機関協働の候補" in page and "8050" in page
    assert "はつかいちひきこもり支援ステーション" in page  # notified too


def test_a_blank_form_marks_each_required_field_and_keeps_what_was_typed(web, actors, sessions):
    r = web(actors.window).post("/intake", {"action": "preview", "person.name_kana": "ハツカ", "summary": "",
                                            "household.1.note": "長男"})
    assert r.status_code == 422
    assert error_beside(r, "in", "person.name") == "必須項目です。"
    assert error_beside(r, "in", "categories") == "課題の分類を1つ以上選んでください。"
    assert error_beside(r, "in", "summary") == "必須項目です。"
    assert error_beside(r, "in", "source") == "必須項目です。"
    assert input_value(r, "in", "person.name_kana") == "ハツカ"
    assert input_value(r, "in", "household.1.note") == "長男"
    assert count(sessions, Case) == 0


def test_a_date_that_is_no_date_is_marked_beside_the_birth_date(web, actors):
    r = _preview(web(actors.window), **{"person.birth_date": "昭和35年13月1日"})
    assert r.status_code == 422
    assert "13月1日という日付はありません" in error_beside(r, "in", "person.birth_date")
    assert input_value(r, "in", "person.birth_date") == "昭和35年13月1日"


def test_a_future_birth_date_is_refused_by_the_engine_beside_its_field(web, actors):
    r = _preview(web(actors.window), **{"person.birth_date": "2099-01-01"})
    assert r.status_code == 422
    assert error_beside(r, "in", "person.birth_date") == "生年月日が未来の日付になっています。"


def test_a_bad_household_row_is_marked_on_its_own_row(web, actors):
    # The first row is left blank: the error must land on the second row, where it was typed.
    r = _preview(web(actors.window), **{"household.0.relationship": "", "household.0.birth_year": "",
                                        "household.1.relationship": "長男", "household.1.birth_year": "昭和"})
    assert r.status_code == 422
    assert error_beside(r, "in", "household.1.birth_year") == "年は 1974 または 昭和49年 の形で入力してください。"
    assert error_beside(r, "in", "household.0.birth_year") is None


@pytest.mark.parametrize("typed, year", [("1974", 1974), ("昭和49", 1974), ("昭和49年", 1974), ("Ｓ４９", 1974),
                                         ("令和元年", 2019), ("1974年", 1974)])
def test_a_household_birth_year_may_be_typed_in_wareki(web, actors, typed, year):
    r = _preview(web(actors.window), **{"household.0.relationship": "長男", "household.0.birth_year": typed})
    assert r.status_code == 200, text_of(r)
    assert f"（{year}年）生まれ" in text_of(r)


def test_a_wareki_year_its_era_never_had_is_named(web, actors):
    r = _preview(web(actors.window), **{"household.0.relationship": "長男", "household.0.birth_year": "昭和65"})
    assert r.status_code == 422 and error_beside(r, "in", "household.0.birth_year") == "昭和65年という年はありません。"


def test_a_primary_category_outside_the_chosen_ones_is_marked(web, actors):
    r = _preview(web(actors.window), primary_category="housing")
    assert r.status_code == 422
    assert error_beside(r, "in", "primary_category") == "主な分類は選んだ分類の中から選んでください。"


def test_confirming_the_proposal_opens_and_sends_the_case(web, actors, sessions):
    client = web(actors.window)
    preview = _preview(client)
    r = client.post("/intake", {**_hidden(preview), "action": "confirm"})
    assert r.status_code == 303
    case_id = int(r.headers["Location"].rsplit("/", 1)[1])
    page = client.get(r.headers["Location"])
    assert "相談を受け付けました" in text_of(page)
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        assert case.state == "handoff"
        assert case.open_primary_handoff.to_department.code == "livelihood"
        listed = s.scalars(select(HouseholdMember).where(HouseholdMember.recorded_with_case_id == case_id)).all()
        assert [(m.relationship_label, m.relative_to_id) for m in listed] == [("妻", case.person_id)]
        assert case.person.birth_date.isoformat() == "1960-05-01"


def test_a_consultation_sent_again_from_history_opens_one_case(web, actors, sessions):
    """The form's key goes through the preview; the form shown again from history offers it back (the
    browser restores it with what was typed), and the preview sent again carries it: one case, and a
    message that links to it."""
    client = web(actors.window)
    token = form_token(client.get("/intake"), "/intake")
    preview = _preview(client, submission_token=token)
    assert _hidden(preview)["submission_token"] == token
    assert 'name="submission_token" value="%s"' % token in \
        preview.get_data(as_text=True).split('class="back"')[1]  # 入力画面に戻って直す keeps it too
    first = client.post("/intake", {**_hidden(preview), "action": "confirm"})
    assert first.status_code == 303
    page = client.get("/intake")
    assert form_token(page, "/intake") != token and token in used_keys(page, "/intake")

    # The form shown again from history, sent to the preview: it says the form went, and where.
    shown_again = _preview(client, submission_token=token)
    assert "既に送信して受け付けています" in text_of(shown_again)
    assert f'<a href="{first.headers["Location"]}">受け付けたケースを開く</a>' in shown_again.get_data(as_text=True)
    # The preview it had made before is sent again (a reload of it, a double click): one case.
    again = client.post("/intake", {**_hidden(preview), "action": "confirm"})
    assert again.status_code == 303 and again.headers["Location"] == first.headers["Location"]
    body = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "この相談は既に記録されています" in body
    assert f'<a href="{first.headers["Location"]}">受け付けたケースを開く</a>' in body
    assert count(sessions, Case) == 1
    # Sent on purpose from that preview (another consultation typed into the old form), it is a new case.
    other = client.post("/intake", {**_hidden(shown_again), "person.name": "廿日 次郎", "action": "confirm"})
    assert other.status_code == 303 and other.headers["Location"] != first.headers["Location"]
    assert count(sessions, Case) == 2


def test_the_same_confirmation_sent_twice_opens_one_case(web, actors, sessions):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm"}
    first = client.post("/intake", form)
    second = client.post("/intake", form)
    assert first.status_code == 303 and second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    assert "この相談は既に記録されています" in text_of(client.get(second.headers["Location"]))
    assert count(sessions, Case) == 1
    assert count(sessions, FormSubmission) == 1


def test_a_confirmation_without_its_form_key_is_refused(web, actors, sessions):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm", "submission_token": ""}
    r = client.post("/intake", form)
    assert r.status_code == 422 and count(sessions, Case) == 0


def test_an_override_needs_a_reason_and_keeps_the_choice(web, actors, sessions):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm", "mode": "override", "to_department": "shakyo"}
    r = client.post("/intake", form)
    assert r.status_code == 422
    assert error_beside(r, "ovr", "override_reason") == "提案と違う部署に送る理由を入力してください。"
    assert 'value="shakyo" selected' in r.get_data(as_text=True)
    assert "送付先: 生活福祉課" in text_of(r)  # still on the preview
    assert count(sessions, Case) == 0


def test_an_override_to_the_proposed_department_is_marked(web, actors):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm", "mode": "override", "to_department": "livelihood",
            "override_reason": "念のため"}
    r = client.post("/intake", form)
    assert r.status_code == 422
    message = error_beside(r, "ovr", "to_department")
    assert "提案と同じ部署です" in message
    # It names the button as the preview shows it, under its heading.
    button = re.search(r'<button type="submit" name="action" value="confirm">([^<]+)</button>',
                       r.get_data(as_text=True)).group(1)
    assert button == "生活福祉課（生活困窮者自立相談支援）へ送る"
    assert f"「提案どおりにする」の「{button}」" in message and "提案どおり送る" not in message
    assert input_value(r, "ovr", "override_reason") == "念のため"


def test_an_override_sends_to_the_chosen_department_and_keeps_the_proposal(web, actors, sessions):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm", "mode": "override", "to_department": "health",
            "override_reason": "本人が通院の相談を希望したため"}
    r = client.post("/intake", form)
    assert r.status_code == 303
    case_id = int(r.headers["Location"].rsplit("/", 1)[1])
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        assert case.state == "handoff"
        assert case.open_primary_handoff.to_department.code == "health"
        assert case.override_reason == "本人が通院の相談を希望したため"
        assert case.proposed_department.code == "livelihood"
        assert case.routing_rule_name == "生活困窮・住まい"
        assert s.scalar(select(Handoff.reason).where(Handoff.case_id == case_id)) == case.override_reason
    page = text_of(client.get(f"/cases/{case_id}"))
    assert "提案と違う送付先の理由" in page and "（提案: 生活福祉課" in page


def test_resolving_at_the_window_opens_and_closes_the_case(web, actors, sessions):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm", "mode": "resolve",
            "note": "制度の案内で解決した。"}
    r = client.post("/intake", form)
    assert r.status_code == 303
    case_id = int(r.headers["Location"].rsplit("/", 1)[1])
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        assert (case.state, case.close_reason, case.close_note) == ("closed", "consultation_ended", "制度の案内で解決した。")
        assert case.handoffs == []
        assert case.proposed_department.code == "livelihood"


def test_resolving_at_the_window_needs_what_was_done(web, actors, sessions):
    client = web(actors.window)
    for note in (None, "　 "):
        form = {**_hidden(_preview(client)), "action": "confirm", "mode": "resolve"}
        if note is not None:
            form["note"] = note
        r = client.post("/intake", form)
        assert r.status_code == 422
        assert error_beside(r, "res", "note") == "窓口で行った対応の内容を入力してください。"
        assert "送付先: 生活福祉課" in text_of(r)  # still on the preview, with what was typed
        assert 'name="person.name" value="廿日 太郎"' in r.get_data(as_text=True)
        assert count(sessions, Case) == 0
    # What was typed beside it comes back as it was.
    form = {**_hidden(_preview(client)), "action": "confirm", "mode": "resolve", "note": "　 ",
            "to_department": "health", "override_reason": "別の欄"}
    r = client.post("/intake", form)
    assert r.status_code == 422 and input_value(r, "ovr", "override_reason") == "別の欄"


def test_an_unmatched_consultation_is_taken_in_undecided(web, actors, sessions):
    client = web(actors.window)
    preview = _preview(client, categories=["other"], primary_category="other")
    assert "提案なし（担当未決定）" in text_of(preview)
    r = client.post("/intake", {**_hidden(preview), "action": "confirm"})
    assert r.status_code == 303
    with unit_of_work(sessions) as s:
        case = s.scalars(select(Case)).one()
        assert case.state == "intake"
        assert s.scalar(select(Alert.kind).where(Alert.case_id == case.id)) == "unrouted"


def test_rules_changed_since_the_preview_are_shown_before_anything_is_sent(web, actors, sessions, tmp_path):
    client = web(actors.window)
    form = {**_hidden(_preview(client)), "action": "confirm"}
    changed = tmp_path / "routing.yaml"
    changed.write_text((CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8") + "\n# 改訂\n", encoding="utf-8")
    with unit_of_work(sessions) as s:
        rules.install_rules(s, changed, loaded_by="tests")
    r = client.post("/intake", form)
    assert r.status_code == 409
    assert "振り分けルールが更新されました" in text_of(r)
    assert "（第2版）" in text_of(r)
    assert count(sessions, Case) == 0
    again = client.post("/intake", {**_hidden(r), "action": "confirm"})
    assert again.status_code == 303 and count(sessions, Case) == 1


def test_back_to_the_form_keeps_everything(web, actors):
    client = web(actors.window)
    r = client.post("/intake", {**_hidden(_preview(client)), "action": "edit"})
    assert r.status_code == 200
    assert input_value(r, "in", "person.name") == "廿日 太郎"
    assert input_value(r, "in", "household.0.birth_year") == "1962"
    assert 'value="debt" checked' in r.get_data(as_text=True)


def test_an_administrator_may_not_take_consultations(web, actors, sessions):
    form = web(actors.admin).get("/intake")  # not shown a form it could not send
    assert form.status_code == 403 and "相談を受け付けられるのは職員だけです" in text_of(form)
    r = _preview(web(actors.admin))
    assert r.status_code == 403 and "相談を受け付けられるのは職員だけです" in text_of(r)
    assert count(sessions, Case) == 0


def test_sign_in_is_needed(web, departments):
    r = web().get("/intake")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_the_preview_names_earlier_cases_of_the_same_person_its_reader_may_read(web, actors, open_case, sessions):
    first = open_case(categories=["poverty"])  # 廿日 太郎 / ハツカ タロウ, 昭和35年5月1日 → 生活福祉課
    other = open_case(categories=["poverty"], person={"name": "佐伯 一郎", "name_kana": "サエキ イチロウ"})
    with unit_of_work(sessions) as s:
        number = s.get(Case, first).case_number
        other_number = s.get(Case, other).case_number
    # Width and kana of the name typed differently: the same person.
    r = _preview(web(actors.livelihood), **{"person.name": "廿日　太郎", "person.name_kana": "ﾊﾂｶ ﾀﾛｳ"})
    assert r.status_code == 200
    earlier = text_of(r).split("同じ方のケースがあるかもしれません", 1)[1].split("入力した内容", 1)[0]
    assert number in earlier and other_number not in earlier
    assert count(sessions, AuditEvent, AuditEvent.action == "case.found", AuditEvent.case_id == first) == 1
    # Without the kana, or with the name written otherwise but the same kana, still the same birth date.
    for typed in ({"person.name_kana": ""}, {"person.name": "二十日 太郎"}):
        shown = text_of(_preview(web(actors.livelihood), **typed))
        assert "同じ方のケースがあるかもしれません" in shown and number in shown, typed
    # Another birth date is another person; and a department that may not read the case is shown nothing.
    assert "同じ方のケース" not in text_of(_preview(web(actors.livelihood), **{"person.birth_date": "昭和36年5月1日"}))
    assert "同じ方のケース" not in text_of(_preview(web(actors.children)))
    assert count(sessions, AuditEvent, AuditEvent.action == "case.found", AuditEvent.case_id == first) == 3
    assert count(sessions, AuditEvent, AuditEvent.action == "case.found", AuditEvent.case_id == other) == 0


SHAKYO_CONSENT = {"consent.given_by": "本人", "consent.method": "oral", "consent.agencies": ["shakyo"]}


@pytest.mark.parametrize("categories, area, consent, owner, warned", [
    # 社協, a partner, has no commission: without a consent naming it, nothing would be sent.
    (["isolation"], "廿日市", {}, "廿日市市社会福祉協議会", True),
    (["isolation"], "廿日市", SHAKYO_CONSENT, "廿日市市社会福祉協議会", False),
    # The 地域包括支援センター's commission covers elder care in its area: no consent is needed.
    (["elder_care"], "大野", {}, "大野地域包括支援センター", False),
])
def test_a_proposal_to_a_body_outside_the_city_says_whether_it_can_be_sent(web, actors, categories, area, consent,
                                                                          owner, warned):
    """The rules may propose a body outside the city: the preview says, before anything is sent, when no basis
    (its commission, the consent taken here) covers it and the desk would hold the case instead."""
    r = _preview(web(actors.window), **{"categories": categories, "primary_category": categories[0],
                                        "person.area": area, **consent})
    assert r.status_code == 200 and owner in text_of(r)
    assert ("つなぐシートは送らず、サポートデスクがケースを預かります" in text_of(r)) is warned


def test_a_proposal_to_a_city_section_says_nothing_of_consent(web, actors):
    r = _preview(web(actors.window))
    assert r.status_code == 200 and "市の外の機関" not in text_of(r).split("入力した内容")[0]
