"""FM dashboard: alerts by section, oldest first; 確認, 解決 with a note, 振り替え — from the list."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.alerts import alerts
from engine.cases import joins
from engine.db import unit_of_work
from engine.errors import GuardRefused
from engine.models import Alert, AuditEvent, Case, CaseHistory, Handoff, User
from engine.worklists import dashboard
from tests.conftest import NOW
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_state,
    case_version,
    count,
    error_beside,
    form_token,
    text_of,
    web,
)


def _stalled(sessions, case_id, kind="handoff_stalled") -> int:
    with unit_of_work(sessions) as s:
        h = s.scalars(select(Handoff).where(Handoff.case_id == case_id)).one()
        return alerts.raise_alert(s, kind=kind, case_id=case_id, handoff_id=h.id,
                                  department_id=h.to_department_id, due_at=h.due_at,
                                  message="つなぐシートが期限までに受理されていません。")


def _alert(sessions, alert_id) -> Alert:
    with unit_of_work(sessions) as s:
        return s.get(Alert, alert_id)


def test_stalled_sheets_are_listed_oldest_first_with_business_days_waited(web, actors, open_case, sessions):
    newer = open_case(categories=["poverty"], now=NOW - timedelta(days=8), person={"name": "新しい 人"})
    older = open_case(categories=["hikikomori"], now=NOW - timedelta(days=20), person={"name": "古い 人"})
    _stalled(sessions, newer)
    _stalled(sessions, older, kind="handoff_escalated")
    r = web(actors.fm).get("/dashboard")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    stalled = body.split('id="stalled"')[1].split("</section>")[0]
    with unit_of_work(sessions) as s:
        numbers = [s.get(Case, i).case_number for i in (older, newer)]
    assert stalled.index(numbers[0]) < stalled.index(numbers[1])
    assert "営業日" in stalled and "はつかいちひきこもり支援ステーション" in stalled
    assert "新しい 人" not in body and "古い 人" not in body  # metadata only


def test_acknowledging_from_the_list(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.fm)
    client.get("/dashboard")
    r = client.post(f"/dashboard/alerts/{alert_id}/acknowledge")
    assert r.status_code == 303
    page = client.get("/dashboard")
    assert "アラートを確認しました" in text_of(page)
    assert _alert(sessions, alert_id).status == "acknowledged"
    assert f"/dashboard/alerts/{alert_id}/acknowledge" not in page.get_data(as_text=True)
    again = client.post(f"/dashboard/alerts/{alert_id}/acknowledge")
    assert again.status_code == 409


def test_resolving_needs_a_note(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.fm)
    r = client.post(f"/dashboard/alerts/{alert_id}/resolve", {"note": ""})
    assert r.status_code == 422
    assert error_beside(r, f"a{alert_id}", "note") == "何をしたか（解決の内容）を入力してください。"
    r = client.post(f"/dashboard/alerts/{alert_id}/resolve", {"note": "電話で催促し、明日受理の予定。"})
    assert r.status_code == 303
    alert = _alert(sessions, alert_id)
    assert (alert.status, alert.resolution_note) == ("resolved", "電話で催促し、明日受理の予定。")


def test_reassigning_a_stalled_sheet_sends_a_new_one_and_resolves_the_alert(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    alert_id = _stalled(sessions, case_id)
    client = web(actors.fm)
    bad = client.post(f"/dashboard/alerts/{alert_id}/reassign", {})
    assert bad.status_code == 422
    assert error_beside(bad, f"a{alert_id}", "to_department") == "必須項目です。"
    assert error_beside(bad, f"a{alert_id}", "reason") == "必須項目です。"
    same = client.post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "livelihood", "reason": "再送"})
    assert same.status_code == 422 and error_beside(same, f"a{alert_id}", "to_department") == "今の送付先と同じ部署です。"
    r = client.post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "health", "reason": "家計改善支援は健康推進課が担うため"})
    assert r.status_code == 303
    with unit_of_work(sessions) as s:
        case = s.get(Case, case_id)
        assert case.state == "handoff"
        assert [(h.to_department.code, h.state) for h in case.handoffs] == [("livelihood", "withdrawn"), ("health", "sent")]
        assert case.open_primary_handoff.reason == "家計改善支援は健康推進課が担うため"
        assert s.scalar(select(CaseHistory.event).order_by(CaseHistory.id.desc()).limit(1)) == "handoff.reassign"
    assert _alert(sessions, alert_id).status == "resolved"
    assert "廿日 太郎" in text_of(web(actors.health).get("/inbox"))
    twice = client.post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "health", "reason": "再度"})
    assert twice.status_code == 409


def test_reassigning_an_unrouted_case_sends_its_first_sheet(web, actors, case_in, sessions):
    case_id = case_in("intake")
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "unrouted"))
    r = web(actors.fm).post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "health", "reason": "見守りが必要"})
    assert r.status_code == 303
    assert case_state(sessions, case_id) == "handoff"
    assert _alert(sessions, alert_id).status == "resolved"


def test_staff_may_not_use_the_dashboard(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.livelihood)
    assert client.get("/dashboard").status_code == 403
    assert client.post(f"/dashboard/alerts/{alert_id}/acknowledge").status_code == 403
    assert _alert(sessions, alert_id).status == "open"


def test_an_administrator_sees_the_dashboard_without_actions(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.admin)
    r = client.get("/dashboard")
    assert r.status_code == 200 and "/dashboard/alerts/" not in r.get_data(as_text=True)
    assert client.post(f"/dashboard/alerts/{alert_id}/acknowledge").status_code == 403


def test_an_unknown_action_or_alert_is_not_found(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.fm)
    assert client.post(f"/dashboard/alerts/{alert_id}/explode").status_code == 404
    assert client.post("/dashboard/alerts/999999/acknowledge").status_code == 404


def test_a_stale_or_repeated_action_names_it_in_japanese(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.fm)
    assert client.post(f"/dashboard/alerts/{alert_id}/acknowledge").status_code == 303
    again = text_of(client.post(f"/dashboard/alerts/{alert_id}/acknowledge"))
    assert "現在の状態（確認済み）では「確認済みにする」はできません。できる操作: 解決にする" in again
    assert "acknowledge" not in again
    assert client.post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "health", "reason": "健康推進課へ"}
                       ).status_code == 303
    for action, label, data in [("reassign", "振り替える", {"to_department": "health", "reason": "再度"}),
                                ("resolve", "解決にする", {"note": "二度目"})]:
        r = client.post(f"/dashboard/alerts/{alert_id}/{action}", data)
        assert r.status_code == 409
        assert f"現在の状態（解決済み）では「{label}」はできません" in text_of(r) and action not in text_of(r)


def test_a_returned_join_request_is_listed_but_not_offered_for_reassignment(actors, open_case, fire, sessions):

    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    with unit_of_work(sessions) as s:
        joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="children",
                              reason="子育ての支援", summary="s", now=NOW)
    with unit_of_work(sessions) as s:
        join = s.scalar(select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False)))
        joins.answer_join(s, s.get(User, actors.children.id), join.id, "decline", reason="対象外", now=NOW)
    with sessions() as s:
        sections = {sec.key: sec for sec in dashboard.fm_dashboard(s, s.get(User, actors.fm.id), now=NOW)}
        [item] = [i for i in sections["unrouted"].items if i.case_id == case_id]
        assert item.kind == "handoff_declined" and item.reassignable is False
    # … and the engine refuses it too (the list and the action agree).
    with pytest.raises(GuardRefused), unit_of_work(sessions) as s:
        dashboard.reassign(s, s.get(User, actors.fm.id), item.alert_id, to_department="health", reason="r", now=NOW)


def test_sending_a_case_on_resolves_what_said_it_waited(actors, open_case, fire, sessions):
    """A reopened case's 未振り分け alert ends once its sheet is sent (from the case page, not only by an
    FM's 振り替え): the case is on its way, and a sheet that waits in turn has alerts of its own."""

    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "close", close_reason="consultation_ended")
    fire(actors.livelihood, case_id, "reopen", reason="再び相談があった")
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "unrouted",
                                                   Alert.status == "open"))
    fire(actors.livelihood, case_id, "send_handoff", to_department="health", reason="見守り", summary="s")
    assert _alert(sessions, alert_id).status == "resolved"
    with sessions() as s:
        sections = {sec.key: sec for sec in dashboard.fm_dashboard(s, s.get(User, actors.fm.id), now=NOW)}
        assert [i for i in sections["unrouted"].items if i.case_id == case_id] == []


def test_reassigning_a_join_request_to_a_department_already_in_the_case_is_refused(web, actors, case_in, sessions):

    case_id = case_in("layered_meeting")  # owner 生活福祉課; consent covers 生活福祉課 and 社協
    with unit_of_work(sessions) as s:
        h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="shakyo",
                                  reason="居場所の紹介", summary="要約")
        alert_id = alerts.raise_alert(s, kind="handoff_escalated", case_id=case_id, handoff_id=h.id,
                                      department_id=None, due_at=h.escalate_at, message="未受理")
    r = web(actors.fm).post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "livelihood", "reason": "r"})
    assert r.status_code == 422 and "既にこのケースに関わっています" in text_of(r)
    with unit_of_work(sessions) as s:
        assert [(x.to_department.code, x.state) for x in s.scalars(
            select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False)))] == [("shakyo", "sent")]


def test_reassigning_a_join_request_keeps_to_the_persons_consent(web, actors, case_in, sessions):

    case_id = case_in("layered_meeting")  # consent covers 生活福祉課 and 社協
    with unit_of_work(sessions) as s:
        h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="shakyo",
                                  reason="居場所の紹介", summary="要約")
        hid = h.id
        alert_id = alerts.raise_alert(s, kind="handoff_escalated", case_id=case_id, handoff_id=hid,
                                      department_id=None, due_at=h.escalate_at, message="未受理")
    client = web(actors.fm)
    r = client.post(f"/dashboard/alerts/{alert_id}/reassign", {"to_department": "children", "reason": "子育ての支援"})
    assert r.status_code == 409
    assert "こども家庭課は本人の同意の範囲に含まれていないため" in text_of(r)
    with unit_of_work(sessions) as s:
        assert [(x.to_department.code, x.state) for x in s.scalars(
            select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False)))] == [("shakyo", "sent")]
    assert _alert(sessions, alert_id).status == "open"
    assert web(actors.children).get(f"/cases/{case_id}").status_code == 404


def test_a_case_whose_routing_alert_was_resolved_by_hand_stays_on_the_dashboard(web, actors, case_in, sessions):
    """Resolving the 未振り分け alert does not send the case anywhere: it must not drop off every list."""
    case_id = case_in("intake")
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "unrouted"))
        number = s.get(Case, case_id).case_number
    client = web(actors.fm)
    waiting = lambda: text_of(client.get("/dashboard")).split("担当が決まらないまま止まっているケース", 2)[2]  # noqa: E731
    assert number not in waiting()  # its alert still says so
    assert client.post(f"/dashboard/alerts/{alert_id}/resolve", {"note": "窓口に電話で確認した"}).status_code == 303
    listed = waiting()
    assert number in listed and "相談まるごとサポートデスク" in listed  # and who holds it meanwhile
    # Once a sheet is on its way, the case is no longer waiting.
    r = client.post(f"/cases/{case_id}/events/send_handoff", {"version": case_version(sessions, case_id),
                                                               "to_department": "livelihood", "reason": "生活の相談"})
    assert r.status_code == 303
    assert number not in waiting()


def test_a_support_meeting_held_from_intake_keeps_its_case_on_the_dashboard(web, actors, open_case, fire, sessions):
    """An FM convenes a 支援会議 on a case no rule routed and the 未振り分け alert is resolved: the case
    has no owner, no sheet and no alert, and is listed until the meeting's choice takes it."""
    case_id = open_case(categories=["other"])
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "unrouted"))
        number = s.get(Case, case_id).case_number
    client = web(actors.fm)
    waiting = lambda: text_of(client.get("/dashboard")).split("担当が決まらないまま止まっているケース", 2)[2]  # noqa: E731
    assert client.post(f"/dashboard/alerts/{alert_id}/resolve", {"note": "支援会議で協議中"}).status_code == 303
    assert number in waiting() and "支援会議" in waiting()
    fire(actors.fm, case_id, "send_handoff", to_department="livelihood", reason="支援会議で決めた", summary="s")
    assert number not in waiting()


def test_a_refused_form_keeps_the_audit_row_of_what_the_page_shows_again(web, actors, open_case, fire, sessions):
    """An FM who sits in the case's 支援会議 reads the reason a sheet came back; the page shown again after a
    refused 解決 shows it too, and that read is recorded although nothing else of the request is."""
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "decline_handoff", reason="住まいの相談で、住宅課の所管です")
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "elderly", "acknowledged": True}])
    with unit_of_work(sessions) as s:
        alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id, Alert.kind == "handoff_declined"))

    def reads() -> int:
        with sessions() as s:
            return len(s.scalars(select(AuditEvent.id).where(AuditEvent.action == "alert.read",
                                                             AuditEvent.object_id == str(alert_id))).all())

    before = reads()
    r = web(actors.fm).post(f"/dashboard/alerts/{alert_id}/resolve", {"note": ""})
    assert r.status_code == 422 and "住宅課の所管です" in text_of(r)
    assert reads() == before + 1
    assert _alert(sessions, alert_id).status == "open"


def test_a_reassignment_sent_twice_is_applied_once_and_said_so(web, actors, case_in, sessions):
    alert_id = _stalled(sessions, case_in("handoff"))
    client = web(actors.fm)
    action = f"/dashboard/alerts/{alert_id}/reassign"
    key = form_token(client.get("/dashboard"), action)
    data = {"to_department": "health", "reason": "家計改善支援は健康推進課が担うため", "submission_token": key}
    assert client.post(action, data).status_code == 303
    again = client.post(action, data)
    assert again.status_code == 409
    page = text_of(again)
    assert "この振り替えは既に記録されています（同じ内容が2回送信されました）。" in page
    assert "2回目の送信は行っていません。" in page and "入力した内容を残しておきます" not in page


def test_a_reassignment_from_a_page_out_of_date_keeps_what_was_typed(web, actors, case_in, sessions):
    case_id = case_in("handoff")
    alert_id = _stalled(sessions, case_id)
    client = web(actors.fm)
    action = f"/dashboard/alerts/{alert_id}/reassign"
    key = form_token(client.get("/dashboard"), action)
    # Meanwhile, in another tab, the receiving department accepts the sheet: nothing is left to reassign.
    with unit_of_work(sessions) as s:
        handoff_id = s.get(Case, case_id).open_primary_handoff.id
    inbox = web(actors.livelihood)
    listed = inbox.get("/inbox").get_data(as_text=True)
    version = re.search(rf'action="/inbox/{handoff_id}">.*?name="version" value="(\d+)"', listed, re.S).group(1)
    assert inbox.post(f"/inbox/{handoff_id}", {"decision": "accept", "version": version}).status_code == 303
    typed = "家計改善支援は健康推進課が担うため、送り直します。"
    r = client.post(action, {"to_department": "health", "reason": typed, "submission_token": key})
    assert r.status_code == 409
    page = text_of(r)
    assert "現在の状態（解決済み）では「振り替える」はできません" in page
    assert "操作は行われていません。一覧を最新の状態にしました。" in page
    assert "入力した内容を残しておきます" in page and typed in page
    with unit_of_work(sessions) as s:
        assert s.get(Case, case_id).state == "assigned"
