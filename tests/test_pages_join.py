"""参加依頼 from the case page: the owning department or the case FM asks another department to join; the
request reaches that department's inbox, can be withdrawn while unanswered, and refuses bad or stale forms."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import case_departments
from engine.cases import joins
from engine.db import unit_of_work
from engine.errors import EventNotAllowed, StaleVersion
from engine.models import AuditEvent, Case, CaseHistory, Department, Handoff, Plan, User
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    case_state,
    case_version,
    count,
    error_beside,
    input_value,
    text_of,
    web,
)

JOIN = {"to_department": "health", "reason": "通院の支援をお願いしたい", "summary": "就労前に通院の支援が必要。"}
# 社協 is a partner outside the city: asked to join only under a consent that names it.
JOIN_SHAKYO = {"to_department": "shakyo", "reason": "居場所づくりの支援をお願いしたい", "summary": "就労前に日中の居場所が必要。"}


def _joins(sessions, case_id):
    with sessions() as s:
        return [(h.to_department.code, h.state) for h in s.scalars(
            select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False)).order_by(Handoff.id))]


def test_the_owner_asks_another_department_to_join_and_it_reaches_their_inbox(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    owner = web(actors.livelihood)
    page = owner.get(f"/cases/{case_id}")
    assert "他部署に参加を依頼する" in text_of(page)
    version = case_version(sessions, case_id)
    r = owner.post(f"/cases/{case_id}/join", {**JOIN, "version": version})
    assert r.status_code == 303
    with sessions() as s:
        health = s.scalar(select(Department.name).where(Department.code == "health"))
    assert f"{health}に参加を依頼しました" in text_of(owner.get(r.headers["Location"]))
    assert _joins(sessions, case_id) == [("health", "sent")]
    # The case does not move, but its version does (a form shown before is now stale).
    assert case_state(sessions, case_id) == "assigned" and case_version(sessions, case_id) == version + 1
    inbox = text_of(web(actors.health).get("/inbox"))
    assert "参加依頼" in inbox
    # The invited department now finds the case in its list and reads it.
    assert web(actors.health).get(f"/cases/{case_id}").status_code == 200
    with sessions() as s:
        assert case_departments.drift(s) == []
    assert count(sessions, AuditEvent, AuditEvent.action == "handoff.request_join",
                 AuditEvent.case_id == case_id) == 1


def test_a_join_request_without_a_reason_or_department_is_marked_beside_each_field(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    r = web(actors.livelihood).post(f"/cases/{case_id}/join", {"version": case_version(sessions, case_id),
                                                                "to_department": "", "reason": " ",
                                                                "summary": "日中の居場所"})
    assert r.status_code == 422
    assert error_beside(r, "join", "to_department") == "必須項目です。"
    assert error_beside(r, "join", "reason") == "必須項目です。"
    assert input_value(r, "join", "summary") == "日中の居場所"  # what was typed is kept
    assert '<details class="event" id="event-request_join" open>' in r.get_data(as_text=True)
    assert _joins(sessions, case_id) == []


def test_a_department_already_on_the_case_or_unknown_is_refused_beside_the_field(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    r = client.post(f"/cases/{case_id}/join", {**JOIN, "to_department": "livelihood",
                                               "version": case_version(sessions, case_id)})
    assert r.status_code == 422 and "既にこのケースに関わっています" in error_beside(r, "join", "to_department")
    r = client.post(f"/cases/{case_id}/join", {**JOIN, "to_department": "nowhere",
                                               "version": case_version(sessions, case_id)})
    assert r.status_code == 422 and "という部署はありません" in error_beside(r, "join", "to_department")
    assert _joins(sessions, case_id) == []


def test_a_stale_join_form_is_refused_and_applies_nothing(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    version = case_version(sessions, case_id)
    client = web(actors.livelihood)
    assert client.post(f"/cases/{case_id}/join", {**JOIN, "version": version}).status_code == 303
    again = client.post(f"/cases/{case_id}/join", {**JOIN, "to_department": "children", "version": version})
    assert again.status_code == 409 and "画面が古くなっています" in text_of(again)
    assert _joins(sessions, case_id) == [("health", "sent")]


def test_only_the_owner_or_the_case_fm_may_ask_and_a_refusal_is_audited(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    version = case_version(sessions, case_id)
    # The desk recorded the case: it sees it, but may not drive it once another department owns it.
    desk_page = web(actors.window).get(f"/cases/{case_id}")
    assert desk_page.status_code == 200 and "他部署に参加を依頼する" not in text_of(desk_page)
    r = web(actors.window).post(f"/cases/{case_id}/join", {**JOIN, "version": version})
    assert r.status_code == 403
    assert web(actors.health).post(f"/cases/{case_id}/join", {**JOIN, "version": version}).status_code == 404
    assert _joins(sessions, case_id) == []
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused", AuditEvent.case_id == case_id) >= 1


def test_the_join_form_needs_its_csrf_token(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    r = web(actors.livelihood).post(f"/cases/{case_id}/join", {**JOIN, "version": case_version(sessions, case_id)},
                                    csrf=False)
    assert r.status_code == 400
    assert _joins(sessions, case_id) == []


def test_a_closed_case_offers_no_join_form(web, actors, case_in):
    case_id = case_in("closed")
    assert "他部署に参加を依頼する" not in text_of(web(actors.livelihood).get(f"/cases/{case_id}"))


def test_the_sender_withdraws_an_unanswered_request_once(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    owner = web(actors.livelihood)
    owner.post(f"/cases/{case_id}/join", {**JOIN, "version": case_version(sessions, case_id)})
    page = owner.get(f"/cases/{case_id}")
    assert "参加依頼を取り下げる" in text_of(page)
    with sessions() as s:
        handoff = s.scalar(select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False)))
        hid, hv = handoff.id, handoff.version
    # Someone outside the sending department may not withdraw it: the invited department, nor an FM who
    # does not drive this case (any FM sees every case's metadata, and nothing of it is theirs to change).
    assert web(actors.health).post(f"/cases/{case_id}/join/{hid}/withdraw", {"version": hv}).status_code == 403
    other_fm = web(actors.fm2)
    assert "参加依頼を取り下げる" not in text_of(other_fm.get(f"/cases/{case_id}"))
    assert other_fm.post(f"/cases/{case_id}/join/{hid}/withdraw", {"version": hv}).status_code == 403
    assert _joins(sessions, case_id) == [("health", "sent")]
    r = owner.post(f"/cases/{case_id}/join/{hid}/withdraw", {"version": hv})
    assert r.status_code == 303 and "参加依頼を取り下げました" in text_of(owner.get(r.headers["Location"]))
    assert _joins(sessions, case_id) == [("health", "withdrawn")]
    again = owner.post(f"/cases/{case_id}/join/{hid}/withdraw", {"version": hv})
    assert again.status_code == 409
    assert _joins(sessions, case_id) == [("health", "withdrawn")]
    # The primary sheet is not a join request: it cannot be withdrawn here.
    with sessions() as s:
        primary = s.scalar(select(Handoff.id).where(Handoff.case_id == case_id, Handoff.primary.is_(True)))
    assert owner.post(f"/cases/{case_id}/join/{primary}/withdraw", {"version": 1}).status_code == 404
    with sessions() as s:
        assert case_departments.drift(s) == []


def test_the_case_fm_may_withdraw_a_join_request(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")  # the FM who convened it drives the case with the owner
    web(actors.livelihood).post(f"/cases/{case_id}/join", {**JOIN, "version": case_version(sessions, case_id)})
    with sessions() as s:
        handoff = s.scalar(select(Handoff).where(Handoff.case_id == case_id, Handoff.primary.is_(False)))
        hid, hv = handoff.id, handoff.version
    assert web(actors.fm2).post(f"/cases/{case_id}/join/{hid}/withdraw", {"version": hv}).status_code == 403
    case_fm = web(actors.fm)
    assert "参加依頼を取り下げる" in text_of(case_fm.get(f"/cases/{case_id}"))
    assert case_fm.post(f"/cases/{case_id}/join/{hid}/withdraw", {"version": hv}).status_code == 303
    assert _joins(sessions, case_id) == [("health", "withdrawn")]


def test_two_answers_to_one_join_request_at_once_one_wins_the_other_is_refused(actors, case_in, sessions):
    """Accept and decline sent at the same moment: one applies, the other is a conflict (409), never a 500."""
    import threading

    for _ in range(6):
        case_id = case_in("assigned")
        with unit_of_work(sessions) as s:
            handoff = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, **JOIN)
            hid, version = handoff.id, handoff.version
        gate, outcomes = threading.Barrier(2), []

        def answer(event):
            try:
                with unit_of_work(sessions) as s:
                    me = s.get(User, actors.health.id)
                    gate.wait(10)
                    joins.answer_join(s, me, hid, event, version=version, reason="所管外")
                outcomes.append("applied")
            except (StaleVersion, EventNotAllowed) as exc:
                outcomes.append(type(exc).__name__)
            except Exception as exc:  # anything else would be a 500
                outcomes.append(repr(exc))

        threads = [threading.Thread(target=answer, args=(e,)) for e in ("accept", "decline")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcomes.count("applied") == 1, outcomes
        assert all(o in ("applied", "StaleVersion", "EventNotAllowed") for o in outcomes), outcomes
        assert _joins(sessions, case_id)[0][1] in ("accepted", "declined")


def test_answering_a_join_request_a_colleague_just_answered_is_a_conflict_not_missing(actors, case_in, sessions):
    """Declined by one colleague, the sheet is out of the department's sight; the second answer is a 409."""
    case_id = case_in("assigned")
    with unit_of_work(sessions) as s:
        handoff = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, **JOIN)
        hid, version = handoff.id, handoff.version
    with unit_of_work(sessions) as s:
        joins.answer_join(s, s.get(User, actors.health.id), hid, "decline", version=version, reason="所管外")
    with pytest.raises(StaleVersion), unit_of_work(sessions) as s:
        joins.answer_join(s, s.get(User, actors.health.id), hid, "accept", version=version)


def test_with_consent_in_force_only_a_covered_agency_may_be_asked_to_join(web, actors, case_in, sessions):
    case_id = case_in("layered_meeting")  # consent covers 生活福祉課 and 社協
    client = web(actors.livelihood)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    form = page.split('id="event-request_join"', 1)[1].split("</form>", 1)[0]
    assert 'value="shakyo"' in form and 'value="health"' not in form  # the form offers what it may send
    assert 'value="livelihood"' not in form  # nor the owner itself
    assert "本人の同意はまだありません" not in form
    before = web(actors.livelihood).get(f"/cases/{case_in('assigned')}").get_data(as_text=True)
    assert "本人の同意はまだありません。市の外の機関" in before.split('id="event-request_join"', 1)[1].split("</form>")[0]
    with unit_of_work(sessions) as s:
        version = s.get(Case, case_id).version
    r = client.post(f"/cases/{case_id}/join", data={"version": version, "to_department": "health",
                                                   "reason": "通院の支援", "summary": "要約"})
    assert r.status_code == 409
    assert "健康推進課は本人の同意の範囲に含まれていないため" in error_beside(r, "join", "to_department")
    summary = r.get_data(as_text=True).split('id="refusal"', 1)[1].split("</div>", 1)[0]
    assert summary.count("健康推進課は本人の同意の範囲に含まれていないため") == 1  # once at the top, linked
    assert _joins(sessions, case_id) == []
    r = client.post(f"/cases/{case_id}/join", data={"version": version, "to_department": "shakyo",
                                                   "reason": "居場所の紹介", "summary": "要約"})
    assert r.status_code == 303 and [code for code, _ in _joins(sessions, case_id)] == ["shakyo"]


def test_withdrawing_the_consent_ends_the_joins_made_under_it(web, actors, case_in, fire, sessions):
    """Sharing narrows again: a department asked to join under the consent leaves the case with it; one
    that joined before the consent stays, as it was before."""
    from datetime import timedelta

    from tests.conftest import NOW

    case_id = case_in("assigned")
    with unit_of_work(sessions) as s:  # before any consent
        h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="health",
                                  reason="通院の支援", summary="日中の居場所が必要。", now=NOW - timedelta(hours=1))
        joins.answer_join(s, s.get(User, actors.health.id), h.id, "accept", now=NOW - timedelta(hours=1))
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "shakyo", "children"])  # at NOW
    later = NOW + timedelta(minutes=5)
    with unit_of_work(sessions) as s:  # under the consent: one accepted, one still waiting
        h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, **JOIN_SHAKYO, now=later)
        joins.answer_join(s, s.get(User, actors.shakyo.id), h.id, "accept", now=later)
        joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="children",
                              reason="子の支援", summary="要約", now=later)
    assert web(actors.shakyo).get(f"/cases/{case_id}").status_code == 200
    fire(actors.livelihood, case_id, "withdraw_consent", given_by="本人")
    assert _joins(sessions, case_id) == [("health", "accepted"), ("shakyo", "withdrawn"),
                                         ("children", "withdrawn")]
    # Those asked under the consent drop to the case's metadata (they took part: they know it exists).
    for who in (actors.shakyo, actors.children):
        page = web(who).get(f"/cases/{case_id}")
        assert page.status_code == 200 and "廿日 太郎" not in text_of(page)
    assert "廿日 太郎" in text_of(web(actors.health).get(f"/cases/{case_id}"))  # content, as before
    with unit_of_work(sessions) as s:
        assert case_departments.drift(s) == []
        assert s.scalars(select(CaseHistory.event).where(CaseHistory.case_id == case_id,
                                                         CaseHistory.event == "handoff.lapse")).all() == ["handoff.lapse"] * 2
    assert "参加の終了（同意の撤回・変更に伴う）" in text_of(web(actors.livelihood).get(f"/cases/{case_id}"))


def test_a_refusal_after_a_given_consent_ends_it_as_a_withdrawal_does(web, actors, case_in, fire, sessions):
    """A 支援会議 meets again from 伴走支援 and the person now refuses: the consent in force ends, and with
    it the plan and the joins made under it."""
    from datetime import timedelta

    from tests.conftest import NOW

    case_id = case_in("accompaniment")  # consent (at NOW): 生活福祉課, 社協
    later = NOW + timedelta(minutes=5)
    with unit_of_work(sessions) as s:
        h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, **JOIN_SHAKYO, now=later)
        joins.answer_join(s, s.get(User, actors.shakyo.id), h.id, "accept", now=later)
    fire(actors.fm, case_id, "convene_support_meeting",
         members=[{"user": "livelihood", "acknowledged": True}, {"user": "fm", "acknowledged": True}])
    fire(actors.fm, case_id, "seek_consent")
    fire(actors.livelihood, case_id, "refuse_consent", given_by="本人")
    assert _joins(sessions, case_id) == [("shakyo", "withdrawn")]
    page = web(actors.shakyo).get(f"/cases/{case_id}")
    assert page.status_code == 200 and "廿日 太郎" not in text_of(page)  # metadata only
    with unit_of_work(sessions) as s:
        assert [p.status for p in s.scalars(select(Plan).where(Plan.case_id == case_id))] == ["ended"]


def test_a_consent_recorded_anew_without_a_department_ends_its_join_under_the_old_one(web, actors, case_in, fire,
                                                                                      sessions):
    from datetime import timedelta

    from tests.conftest import NOW
    from tests.pages_support import PLAN

    case_id = case_in("assigned")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "shakyo", "children"])  # at NOW
    later = NOW + timedelta(minutes=5)
    with unit_of_work(sessions) as s:
        for code, who in (("shakyo", actors.shakyo), ("children", actors.children)):
            h = joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department=code,
                                      reason="r", summary="s", now=later)
            joins.answer_join(s, s.get(User, who.id), h.id, "accept", now=later)
    fire(actors.livelihood, case_id, "adopt_plan", **PLAN)
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    fire(actors.fm, case_id, "seek_consent")
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="written",
         agencies=["livelihood", "shakyo"])  # children left out now
    assert _joins(sessions, case_id) == [("shakyo", "accepted"), ("children", "withdrawn")]
    page = web(actors.children).get(f"/cases/{case_id}")
    assert page.status_code == 200 and "廿日 太郎" not in text_of(page)  # metadata only
    assert "廿日 太郎" in text_of(web(actors.shakyo).get(f"/cases/{case_id}"))
