"""部署の受信箱: waiting sheets with their age in business days and deadline; 受理 and 返送 from the list."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from engine import calendar
from engine.cases import joins
from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, Handoff, utcnow
from engine.rules import store as rules
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_state,
    case_version,
    count,
    error_beside,
    text_of,
    web,
)


def _handoff(sessions, case_id, primary=True) -> Handoff:
    with unit_of_work(sessions) as s:
        return s.scalars(select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(primary))).one()


def test_the_inbox_lists_waiting_sheets_with_age_and_deadline(web, actors, open_case, sessions):
    # The page counts to the present moment; the sheet is sent far enough back for five business days to
    # have passed whatever the season (Golden Week and the New Year hold long runs of closed days).
    cal = rules.business_calendar()
    sent = utcnow() - timedelta(days=7)
    while cal.business_days_between(sent, utcnow()) < 5:
        sent -= timedelta(days=1)
    case_id = open_case(categories=["poverty"], now=sent, urgency="urgent")
    h = _handoff(sessions, case_id)
    r = web(actors.livelihood).get("/inbox")
    assert r.status_code == 200
    page = text_of(r)
    age = cal.business_days_between(h.sent_at, utcnow())
    assert age >= 5
    assert f"（{age}営業日経過）" in page
    assert calendar.wareki_datetime(h.due_at) in page and "受理期限超過" in page and "緊急" in page
    assert "廿日 太郎" in page and "失職して家賃を滞納している。" in page
    assert "受理を待っているつなぐシートはありません" in text_of(web(actors.hikikomori).get("/inbox"))


def test_accepting_from_the_inbox(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    h = _handoff(sessions, case_id)
    client = web(actors.livelihood)
    client.get("/inbox")
    r = client.post(f"/inbox/{h.id}", {"decision": "accept", "version": case_version(sessions, case_id)})
    assert r.status_code == 303
    body = client.get("/inbox").get_data(as_text=True)
    flash = re.search(r'<p class="flash flash-success"[^>]*>(.*?)</p>', body, flags=re.S).group(1)
    with unit_of_work(sessions) as s:
        number = s.get(Case, case_id).case_number
    assert text_of(flash).split() == ["つなぐシートを受理しました。", "ケース", number, "を開く"]
    # The message leads to the case that is now the department's to work on.
    assert f'<a href="/cases/{case_id}">' in flash
    assert case_state(sessions, case_id) == "assigned"


def test_sending_back_needs_a_reason_beside_that_sheet(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    h = _handoff(sessions, case_id)
    client = web(actors.livelihood)
    reads = count(sessions, AuditEvent, AuditEvent.action == "handoff_sheet.read", AuditEvent.case_id == case_id)
    r = client.post(f"/inbox/{h.id}", {"decision": "decline", "version": case_version(sessions, case_id)})
    assert r.status_code == 422
    assert error_beside(r, f"h{h.id}", "reason") == "返送の理由を入力してください。"
    # The page shown again reads the sheets as the list does: that read is recorded though the answer was not.
    assert count(sessions, AuditEvent, AuditEvent.action == "handoff_sheet.read",
                 AuditEvent.case_id == case_id) == reads + 1
    r = client.post(f"/inbox/{h.id}", {"decision": "decline", "version": case_version(sessions, case_id),
                                       "reason": "住宅課の所管のため"})
    assert r.status_code == 303 and case_state(sessions, case_id) == "intake"
    # The sender's department is told, on its own inbox page.
    assert "住宅課の所管のため" in text_of(web(actors.window).get("/inbox"))


def test_a_second_answer_from_a_stale_list_is_refused(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    h = _handoff(sessions, case_id)
    version = case_version(sessions, case_id)
    first, second = web(actors.livelihood), web(actors.livelihood)
    assert first.post(f"/inbox/{h.id}", {"decision": "accept", "version": version}).status_code == 303
    r = second.post(f"/inbox/{h.id}", {"decision": "decline", "version": version, "reason": "所管外"})
    assert r.status_code == 409 and "画面が古くなっています" in text_of(r)
    assert "所管外" in text_of(r)  # what was typed, to copy: the sheet has left the list
    assert case_state(sessions, case_id) == "assigned"


def test_another_departments_sheet_is_not_found(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    h = _handoff(sessions, case_id)
    r = web(actors.hikikomori).post(f"/inbox/{h.id}", {"decision": "accept", "version": case_version(sessions, case_id)})
    assert r.status_code == 404 and case_state(sessions, case_id) == "handoff"
    assert web(actors.livelihood).post("/inbox/999999", {"decision": "accept", "version": 1}).status_code == 404


def test_a_department_in_sight_but_not_receiving_is_refused(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    h = _handoff(sessions, case_id)
    r = web(actors.window).post(f"/inbox/{h.id}", {"decision": "accept", "version": case_version(sessions, case_id)})
    assert r.status_code == 403 and case_state(sessions, case_id) == "handoff"


def test_a_join_request_is_answered_from_the_inbox(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    with unit_of_work(sessions) as s:
        joins.request_join(s, actors.livelihood, case_id, to_department="health", reason="居場所の紹介",
                              summary="家計相談と並行して")
    join = _handoff(sessions, case_id, primary=False)
    client = web(actors.health)
    page = text_of(client.get("/inbox"))
    assert "参加依頼" in page and "居場所の紹介" in page
    r = client.post(f"/inbox/{join.id}", {"decision": "accept", "version": join.version})
    assert r.status_code == 303
    assert _handoff(sessions, case_id, primary=False).state == "accepted"
    assert case_state(sessions, case_id) == "assigned"


def test_the_answer_form_must_be_complete(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    h = _handoff(sessions, case_id)
    r = web(actors.livelihood).post(f"/inbox/{h.id}", {"decision": "accept"})
    assert r.status_code == 422 and "画面を読み込み直してください" in text_of(r)


def test_administrators_have_no_inbox(web, actors):
    assert web(actors.admin).get("/inbox").status_code == 403


def test_a_department_acknowledges_and_resolves_its_alerts_from_the_inbox(web, actors, open_case, fire, sessions):
    case_id = open_case(categories=["poverty"])  # the desk's window sent it to 生活福祉課
    fire(actors.livelihood, case_id, "decline_handoff", reason="住まいの相談が中心のため")
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "handoff_declined"))
        number = s.get(Case, case_id).case_number
    desk = web(actors.window)
    page = text_of(desk.get("/inbox"))
    assert number in page and "確認済みにする" in page
    # Another department can do nothing with it.
    assert web(actors.elderly).post(f"/inbox/alerts/{alert_id}/acknowledge").status_code == 404
    assert desk.post(f"/inbox/alerts/{alert_id}/acknowledge").status_code == 303
    # 確認済み says who and when, for the colleague who opens the inbox next.
    with unit_of_work(sessions) as s:
        seen_at = s.get(Alert, alert_id).acknowledged_at
    page = text_of(desk.get("/inbox"))
    assert f"確認済み {actors.window.display_name}・{calendar.wareki_datetime(seen_at)}" in page
    missing = desk.post(f"/inbox/alerts/{alert_id}/resolve", data={"note": " "})
    assert missing.status_code == 422 and "対応の内容: 何をしたか" in missing.get_data(as_text=True)
    assert desk.post(f"/inbox/alerts/{alert_id}/resolve", data={"note": "健康推進課へ送り直す"}).status_code == 303
    with unit_of_work(sessions) as s:
        alert = s.get(Alert, alert_id)
        assert (alert.status, alert.resolution_note, alert.resolved_by_id) == ("resolved", "健康推進課へ送り直す", actors.window.id)
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "alert.resolve")) is not None
    assert number not in text_of(desk.get("/inbox"))
    again = desk.post(f"/inbox/alerts/{alert_id}/resolve", data={"note": "二度目"})
    assert again.status_code == 409 and "解決にする" in text_of(again)
