"""The case machine: every event from every state it is allowed in, refused from every other state,
every guard both ways — through the real services on a real database."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import states
from engine.cases import joins
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.errors import EventNotAllowed, GuardRefused, MissingField, PermissionDenied, ValidationFailed
from engine.models import Alert, Case, CaseHistory, Department, Plan
from tests.conftest import NOW

FUTURE = (NOW + timedelta(days=60)).date().isoformat()
PAST = (NOW - timedelta(days=1)).date().isoformat()

CONSENT = {"given_by": "本人", "method": "written", "agencies": ["livelihood", "shakyo"]}
PLAN = {"goals": "「家賃を払えるようになりたい」", "main_department": "livelihood", "next_evaluation_date": FUTURE,
        "roles": [{"department": "livelihood", "role": "家計相談"}, {"department": "shakyo", "role": "居場所の紹介"}]}


@pytest.fixture
def drive(open_case, fire, actors):
    """drive(state) → the id of a fresh case brought to `state` by firing the real events in order."""
    members = {"members": [{"user": "livelihood", "acknowledged": True}]}

    def to(state: str) -> int:
        if state == "intake":
            return open_case(categories=["other"])  # no rule matches: stays in intake
        case_id = open_case(categories=["poverty"])  # routed to 生活福祉課
        path = {
            "handoff": [],
            "assigned": [("livelihood", "accept_handoff", {})],
            "support_meeting": [("livelihood", "accept_handoff", {}), ("fm", "convene_support_meeting", members)],
            "consent": [("livelihood", "accept_handoff", {}), ("fm", "convene_support_meeting", members),
                        ("fm", "seek_consent", {})],
            "layered_meeting": [("livelihood", "accept_handoff", {}), ("livelihood", "record_consent", CONSENT)],
            "accompaniment": [("livelihood", "accept_handoff", {}), ("livelihood", "record_consent", CONSENT),
                              ("livelihood", "adopt_plan", PLAN)],
            "suspended": [("livelihood", "accept_handoff", {}), ("livelihood", "record_consent", CONSENT),
                          ("livelihood", "adopt_plan", PLAN),
                          ("livelihood", "evaluate", {"goals_met": "partly", "decision": "suspend"})],
            "closed": [("livelihood", "accept_handoff", {}), ("livelihood", "close", {"close_reason": "goal_met"})],
        }[state]
        for who, event, fields in path:
            fire(getattr(actors, who), case_id, event, **fields)
        return case_id

    return to


# event, source, expected destination, who fires, fields. The FM acts where it is the case's FM (after it
# convened the 支援会議) or where any FM may (convene, reopen); otherwise the owning department acts.
OWNER_BY_STATE = {"intake": "window", "handoff": "window"}
VALID = [
    ("send_handoff", "intake", "handoff", "window",
     {"to_department": "livelihood", "reason": "生活困窮のため", "summary": "家賃滞納"}),
    ("accept_handoff", "handoff", "assigned", "livelihood", {}),
    ("decline_handoff", "handoff", "intake", "livelihood", {"reason": "所管外のため"}),
    *[("convene_support_meeting", s, "support_meeting", "fm",
       {"members": [{"user": "livelihood", "acknowledged": True}]})
      for s in ("intake", "assigned", "support_meeting", "accompaniment", "suspended")],
    ("seek_consent", "support_meeting", "consent", "fm", {}),
    *[("record_consent", s, "layered_meeting", "livelihood", CONSENT) for s in ("assigned", "support_meeting", "consent")],
    ("refuse_consent", "consent", "support_meeting", "fm", {"given_by": "本人"}),
    ("adopt_plan", "layered_meeting", "accompaniment", "livelihood", PLAN),
    ("evaluate", "accompaniment", "accompaniment", "livelihood",
     {"goals_met": "partly", "decision": "continue", "next_evaluation_date": FUTURE}),
    ("evaluate", "accompaniment", "layered_meeting", "livelihood", {"goals_met": "not_met", "decision": "replan"}),
    ("evaluate", "accompaniment", "suspended", "livelihood", {"goals_met": "not_met", "decision": "suspend"}),
    ("evaluate", "accompaniment", "closed", "livelihood",
     {"goals_met": "met", "decision": "close", "close_reason": "goal_met"}),
    ("resume", "suspended", "accompaniment", "livelihood", {}),
    *[("withdraw_consent", s, "support_meeting", "livelihood", {"given_by": "本人"})
      for s in ("layered_meeting", "accompaniment", "suspended")],
    *[("close", s, "closed", OWNER_BY_STATE.get(s, "livelihood"), {"close_reason": "person_declined"})
      for s in states.OPEN_STATES],
    ("reopen", "closed", "intake", "fm", {"reason": "再度の相談"}),
]


# A 支援会議 held from 受付 leaves the case without an owner: it is sent on from there.
WITHOUT_OWNER = [("send_handoff", s, "handoff", "fm", {"to_department": "livelihood", "reason": "支援会議で決めた",
                                                        "summary": "家賃滞納"}) for s in ("support_meeting", "consent")]


@pytest.mark.parametrize("event,source,dest,who,fields", WITHOUT_OWNER, ids=[f"{v[0]}:{v[1]}" for v in WITHOUT_OWNER])
def test_a_case_without_an_owner_is_sent_on_from_its_support_meeting(open_case, fire, actors, sessions, event,
                                                                     source, dest, who, fields):
    case_id = open_case(categories=["other"])  # no rule matches: 受付, no owner
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    if source == "consent":
        fire(actors.fm, case_id, "seek_consent")
    with sessions() as s:
        assert event in firing.allowed_events(s, s.get(type(actors.fm), actors.fm.id), s.get(Case, case_id))
    assert fire(getattr(actors, who), case_id, event, **fields) == dest
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.livelihood, case_id, "record_consent", **CONSENT)  # now it has an owner, consent may follow


def test_a_case_with_an_owner_is_not_sent_from_its_support_meeting(drive, fire, actors, sessions):
    case_id = drive("support_meeting")  # owned by 生活福祉課
    with sessions() as s:
        assert "send_handoff" not in firing.allowed_events(s, s.get(type(actors.fm), actors.fm.id), s.get(Case, case_id))
    with pytest.raises(GuardRefused):
        fire(actors.fm, case_id, "send_handoff", to_department="shakyo", reason="r", summary="s")


def test_table_covers_every_transition_of_the_machine():
    covered = {(e, s) for e, s, *_ in VALID + WITHOUT_OWNER}
    declared = {(t["trigger"], s) for t in states.CASE_TRANSITIONS for s in t["source"]}
    assert declared == covered


@pytest.mark.parametrize("event,source,dest,who,fields", VALID,
                         ids=[f"{v[0]}:{v[1]}->{v[2]}" for v in VALID])
def test_event_fires_from_allowed_state(drive, fire, actors, sessions, event, source, dest, who, fields):
    case_id = drive(source)
    assert fire(getattr(actors, who), case_id, event, **fields) == dest
    with sessions() as s:
        last = s.scalars(select(CaseHistory).where(CaseHistory.case_id == case_id,
                                                   ~CaseHistory.event.like("handoff.%"))
                         .order_by(CaseHistory.id.desc())).first()
        assert (last.event, last.from_state, last.to_state) == (event, source, dest)
        assert s.get(Case, case_id).state == dest


REFUSED = [(e, s) for e in states.CASE_EVENTS for s in states.CASE_STATE_LABELS if e not in states.events_from(s)]


@pytest.mark.parametrize("event,state", REFUSED, ids=[f"{e}@{s}" for e, s in REFUSED])
def test_event_refused_from_other_states_with_allowed_list(drive, fire, actors, sessions, event, state):
    case_id = drive(state)
    with sessions() as s:
        before = (s.get(Case, case_id).version, s.scalar(select(func.count()).select_from(CaseHistory)))
    with pytest.raises(EventNotAllowed) as err:
        fire(actors.fm, case_id, event)
    assert err.value.allowed_events == states.events_from(state)
    assert err.value.code == "event_not_allowed"
    assert states.CASE_STATE_LABELS[state] in err.value.message
    with sessions() as s:
        assert (s.get(Case, case_id).version, s.scalar(select(func.count()).select_from(CaseHistory))) == before


# --- guards, both ways ---------------------------------------------------------------------------


def test_actor_may_send_guard(drive, fire, actors):
    case_id = drive("intake")
    fields = {"to_department": "livelihood", "reason": "r", "summary": "s"}
    with pytest.raises(PermissionDenied):
        fire(actors.admin, case_id, "send_handoff", **fields)
    assert fire(actors.window, case_id, "send_handoff", **fields) == "handoff"


def test_target_department_must_be_active(drive, fire, actors, sessions):
    case_id = drive("intake")
    with unit_of_work(sessions) as s:
        s.scalar(select(Department).where(Department.code == "livelihood")).active = False
    with pytest.raises(GuardRefused) as err:
        fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="r", summary="s")
    assert err.value.extra["guard"] == "target_is_other_department"
    assert fire(actors.window, case_id, "send_handoff", to_department="elderly", reason="r", summary="s") == "handoff"


@pytest.mark.parametrize("event,fields", [("accept_handoff", {}), ("decline_handoff", {"reason": "所管外"})])
def test_only_the_receiving_department_answers_a_handoff(drive, fire, actors, event, fields):
    case_id = drive("handoff")
    with pytest.raises(PermissionDenied) as err:
        fire(actors.window, case_id, event, **fields)
    assert err.value.extra["guard"] == "actor_in_receiving_department"
    assert fire(actors.livelihood, case_id, event, **fields) in ("assigned", "intake")


def test_only_an_fm_convenes_a_support_meeting(drive, fire, actors):
    case_id = drive("assigned")
    members = [{"user": "elderly", "acknowledged": True}]
    with pytest.raises(PermissionDenied):
        fire(actors.livelihood, case_id, "convene_support_meeting", members=members)
    assert fire(actors.fm, case_id, "convene_support_meeting", members=members) == "support_meeting"


def test_every_member_must_acknowledge_secrecy(drive, fire, actors):
    case_id = drive("assigned")
    with pytest.raises(GuardRefused) as err:
        fire(actors.fm, case_id, "convene_support_meeting",
             members=[{"user": "elderly", "acknowledged": True}, {"user": "hikikomori", "acknowledged": False}])
    assert "守秘義務" in err.value.message and "hikikomori" in err.value.message
    with pytest.raises(GuardRefused):
        fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "fm", "acknowledged": True}])
    assert fire(actors.fm, case_id, "convene_support_meeting",
                members=[{"user": "elderly", "acknowledged": True}, {"user": "hikikomori", "acknowledged": True}]
                ) == "support_meeting"


def test_seek_consent_needs_a_member_or_fm(drive, fire, actors):
    case_id = drive("support_meeting")  # livelihood is a member, the window is not
    with pytest.raises(PermissionDenied):
        fire(actors.window, case_id, "seek_consent")
    assert fire(actors.livelihood, case_id, "seek_consent") == "consent"


def test_only_those_working_on_the_case_record_consent(drive, fire, actors):
    case_id = drive("assigned")
    with pytest.raises(PermissionDenied):
        fire(actors.window, case_id, "record_consent", **CONSENT)
    assert fire(actors.livelihood, case_id, "record_consent", **CONSENT) == "layered_meeting"


def test_consent_must_cover_an_agency(drive, fire, actors):
    case_id = drive("assigned")
    with pytest.raises(MissingField) as err:
        fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="oral", agencies=[])
    assert set(err.value.errors) == {"agencies"}
    assert fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="oral",
                agencies=["livelihood"]) == "layered_meeting"


def test_consent_and_evaluation_dates_cannot_be_in_the_future(drive, fire, actors, sessions):
    """A consent obtained, or a plan evaluated, on a day still to come has not happened: 422 on the date."""
    case_id = drive("assigned")
    with pytest.raises(ValidationFailed) as err:
        fire(actors.livelihood, case_id, "record_consent", **CONSENT, obtained_on=FUTURE)
    assert err.value.extra["errors"] == {"obtained_on": ["未来の日付は記録できません。"]}
    assert fire(actors.livelihood, case_id, "record_consent", **CONSENT, obtained_on=PAST) == "layered_meeting"
    assert fire(actors.livelihood, case_id, "adopt_plan", **PLAN) == "accompaniment"
    with pytest.raises(ValidationFailed) as err:
        fire(actors.livelihood, case_id, "evaluate", decision="continue", goals_met="partly",
             next_evaluation_date=FUTURE, evaluated_on=FUTURE)
    assert err.value.extra["errors"] == {"evaluated_on": ["未来の日付は記録できません。"]}
    with unit_of_work(sessions) as s:
        assert s.get(Case, case_id).state == "accompaniment"


def test_a_consent_date_lies_within_this_consultation(drive, fire, actors, sessions):
    """A consent is about this consultation: up to 30 days before it was recorded (the referrer may have
    asked first), not a mistyped year; a withdrawal is not dated before the consent it ends."""
    case_id = drive("assigned")
    too_early = (NOW - timedelta(days=31)).date().isoformat()
    with pytest.raises(ValidationFailed) as err:
        fire(actors.livelihood, case_id, "record_consent", **CONSENT, obtained_on=too_early)
    assert err.value.extra["errors"] == {
        "obtained_on": ["同意日は相談を受け付けた日（令和8年11月30日）の30日前（令和8年10月31日）以降の日付にしてください。"]}
    with pytest.raises(ValidationFailed):
        fire(actors.livelihood, case_id, "record_consent", **CONSENT, obtained_on="1900-01-01")
    with unit_of_work(sessions) as s:
        assert s.get(Case, case_id).state == "assigned"
    assert fire(actors.livelihood, case_id, "record_consent", **CONSENT,
                obtained_on=(NOW - timedelta(days=30)).date().isoformat()) == "layered_meeting"

    other = drive("assigned")
    assert fire(actors.livelihood, other, "record_consent", **CONSENT,
                obtained_on=(NOW - timedelta(days=10)).date().isoformat()) == "layered_meeting"
    with pytest.raises(ValidationFailed) as err:
        fire(actors.livelihood, other, "withdraw_consent", given_by="本人",
             obtained_on=(NOW - timedelta(days=20)).date().isoformat())
    assert err.value.extra["errors"] == {
        "obtained_on": ["確認日は、いまの同意の同意日（令和8年11月20日）以降の日付にしてください。"]}
    assert fire(actors.livelihood, other, "withdraw_consent", given_by="本人",
                obtained_on=(NOW - timedelta(days=10)).date().isoformat()) == "support_meeting"


def test_main_department_must_have_a_role(drive, fire, actors):
    case_id = drive("layered_meeting")
    with pytest.raises(GuardRefused) as err:
        fire(actors.livelihood, case_id, "adopt_plan", **{**PLAN, "main_department": "shakyo",
                                                  "roles": [{"department": "livelihood", "role": "家計相談"}]})
    assert err.value.extra["guard"] == "main_department_has_role"
    assert fire(actors.livelihood, case_id, "adopt_plan", **PLAN) == "accompaniment"


def test_plan_roles_stay_within_consent(drive, fire, actors):
    case_id = drive("layered_meeting")  # consent covers livelihood and shakyo
    with pytest.raises(GuardRefused) as err:
        fire(actors.livelihood, case_id, "adopt_plan",
             **{**PLAN, "roles": [*PLAN["roles"], {"department": "children", "role": "子の見守り"}]})
    assert "こども家庭課" in err.value.message
    assert fire(actors.livelihood, case_id, "adopt_plan", **PLAN) == "accompaniment"


def test_next_evaluation_date_must_be_in_the_future(drive, fire, actors):
    case_id = drive("layered_meeting")
    with pytest.raises(GuardRefused) as err:
        fire(actors.livelihood, case_id, "adopt_plan", **{**PLAN, "next_evaluation_date": PAST})
    assert err.value.extra["guard"] == "evaluation_date_in_future"
    assert fire(actors.livelihood, case_id, "adopt_plan", **PLAN) == "accompaniment"


def test_evaluation_needs_an_active_plan(drive, fire, actors, sessions):
    case_id = drive("accompaniment")
    with unit_of_work(sessions) as s:
        s.scalar(select(Plan).where(Plan.case_id == case_id)).status = "ended"
    with pytest.raises(GuardRefused) as err:
        fire(actors.livelihood, case_id, "evaluate", goals_met="met", decision="suspend")
    assert err.value.extra["guard"] == "case_has_active_plan"
    with unit_of_work(sessions) as s:
        s.scalar(select(Plan).where(Plan.case_id == case_id)).status = "active"
    assert fire(actors.livelihood, case_id, "evaluate", goals_met="met", decision="suspend") == "suspended"


def test_works_on_case_guard_for_close(drive, fire, actors):
    case_id = drive("assigned")
    with pytest.raises(PermissionDenied):
        fire(actors.window, case_id, "close", close_reason="goal_met")
    assert fire(actors.livelihood, case_id, "close", close_reason="goal_met") == "closed"


def test_reopen_guard(drive, fire, actors):
    case_id = drive("closed")
    with pytest.raises(PermissionDenied):
        fire(actors.window, case_id, "reopen", reason="再相談")
    assert fire(actors.livelihood, case_id, "reopen", reason="再相談") == "intake"


def test_the_department_that_reopens_a_case_holds_it_until_another_accepts_it(drive, fire, actors, sessions):
    """Reopened by its last owner (not the window that recorded it), the case is that department's to send on
    or close again; once another department accepts it, the reopening department keeps no hold on it."""
    case_id = drive("closed")
    fire(actors.livelihood, case_id, "reopen", reason="再相談")
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.owning_department_id is None and case.accepted_at is None
        assert firing.allowed_events(s, actors.livelihood, case) == ["send_handoff", "close"]
        assert firing.allowed_events(s, actors.elderly, case) == []
        # The department holding it is told, until a department accepts it.
        [alert] = s.scalars(select(Alert).where(Alert.case_id == case_id, Alert.kind == "unrouted"))
        assert (alert.status, alert.department_id) == ("open", actors.livelihood.department_id)
        assert "再相談" not in alert.message
    fire(actors.livelihood, case_id, "send_handoff", to_department="elderly", reason="介護保険の申請", summary="再相談")
    fire(actors.elderly, case_id, "accept_handoff")
    with sessions() as s:
        case = s.get(Case, case_id)
        assert firing.allowed_events(s, actors.livelihood, case) == []
        assert "close" in firing.allowed_events(s, actors.elderly, case)
        assert case.accepted_at is not None
        assert s.scalar(select(Alert.status).where(Alert.case_id == case_id, Alert.kind == "unrouted")) == "resolved"


def test_the_department_that_reopens_a_case_may_take_it_back_itself(drive, fire, actors, sessions):
    case_id = drive("closed")
    fire(actors.livelihood, case_id, "reopen", reason="再相談")
    fire(actors.livelihood, case_id, "send_handoff", to_department="livelihood", reason="再開", summary="再相談")
    assert fire(actors.livelihood, case_id, "accept_handoff") == "assigned"


def test_a_reopen_by_an_fm_gives_no_department_a_hold(drive, fire, actors, sessions):
    case_id = drive("closed")
    fire(actors.fm, case_id, "reopen", reason="再相談")
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.reopened_department_id is None
        assert firing.allowed_events(s, actors.livelihood, case) == []
        assert "send_handoff" in firing.allowed_events(s, actors.fm, case)
        desk = s.scalar(select(Department.id).where(Department.code == "desk"))
        assert s.scalar(select(Alert.department_id).where(Alert.case_id == case_id, Alert.kind == "unrouted")) == desk


def test_allowed_events_for_an_actor_apply_actor_guards(drive, actors, sessions):
    case_id = drive("handoff")
    with sessions() as s:
        case = s.get(Case, case_id)
        assert firing.allowed_events(s, actors.livelihood, case) == ["accept_handoff", "decline_handoff"]
        assert firing.allowed_events(s, actors.window, case) == ["close"]
        assert firing.allowed_events(s, actors.fm, case) == []  # not the case's FM: metadata only
        assert firing.allowed_events(s, actors.admin, case) == []


def test_convening_a_support_meeting_resolves_the_multi_agency_alert(open_case, fire, actors, sessions):
    case_id = open_case(categories=["elder_care", "hikikomori"],
                        person={"name": "大野 花子", "birth_date": "1944-05-01", "area": "大野"})
    with sessions() as s:
        alert = s.scalar(select(Alert).where(Alert.case_id == case_id, Alert.kind == "multi_agency_candidate"))
        assert alert.status == "open"
        # The demo rules send an 8050 household to 高齢介護課.
        assert s.get(Case, case_id).proposed_department_id == actors.elderly.department_id
    fire(actors.elderly, case_id, "accept_handoff")
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "elderly", "acknowledged": True}])
    with sessions() as s:
        alert = s.get(Alert, alert.id)
        assert alert.status == "resolved" and alert.open_key is None


def test_a_sheet_an_fm_sent_comes_back_to_the_department_holding_the_case(open_case, fire, actors, sessions):
    case_id = open_case(actor=actors.elderly, categories=["other"])  # unrouted, recorded by 高齢介護課
    fire(actors.fm, case_id, "send_handoff", to_department="livelihood", reason="家計の相談", summary="s")
    fire(actors.livelihood, case_id, "decline_handoff", reason="所管外")
    with sessions() as s:
        alert = s.scalar(select(Alert).where(Alert.case_id == case_id, Alert.kind == "handoff_declined"))
        # Not the FM's own department, which holds nothing of the case: the window that recorded it.
        assert alert.department_id == actors.elderly.department_id != actors.fm.department_id
        case = s.get(Case, case_id)
        assert "send_handoff" in firing.allowed_events(s, actors.elderly, case)


def test_a_sheet_is_not_sent_to_a_department_a_join_request_waits_for(open_case, fire, actors, sessions):
    """One department, one sheet to answer at a time."""
    case_id = open_case(categories=["other"])  # 受付, no owner
    with unit_of_work(sessions) as s:
        joins.request_join(s, s.get(type(actors.window), actors.window.id), case_id, to_department="health",
                              reason="健康面", summary="s")
    with pytest.raises(ValidationFailed) as err:
        fire(actors.window, case_id, "send_handoff", to_department="health", reason="r", summary="s")
    assert "参加依頼を送付中" in err.value.errors["to_department"][0]
