"""The access policy beyond the matrix: the SQL filter agrees with the Python rules on a varied set of cases;
支援会議 records never leave the meeting; consent scope narrows at once; the carry-over act; alerts."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import access, case_departments
from engine.alerts import alerts
from engine.cases import intake, joins, meetings, notes, reading, views
from engine.cases import lists as caselist
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.errors import GuardRefused, NotFound, PermissionDenied
from engine.models import Alert, ApiClient, AuditEvent, Case, ContactNote, Meeting, SharedFact, User
from tests import access_matrix as M
from tests.conftest import NOW, intake_fields

FUTURE = (NOW + timedelta(days=60)).date().isoformat()
CONSENT = {"given_by": "本人", "method": "written", "agencies": ["livelihood", "shakyo"]}
PLAN = {"goals": "「家賃を払えるようになりたい」", "main_department": "livelihood", "next_evaluation_date": FUTURE,
        "roles": [{"department": "livelihood", "role": "家計相談"}, {"department": "shakyo", "role": "居場所"}]}


def _members(*logins, ack=True):
    return {"members": [{"user": login, "acknowledged": ack} for login in logins]}


@pytest.fixture
def varied(sessions, make_user, actors, open_case, fire):
    """Cases in many relations to many people; returns (case ids, actors)."""
    extra = {
        "health": make_user("staff", "health", login="health"),
        "cw_staff": make_user("staff", "community_welfare", login="cw-staff"),
        "elderly2": make_user("staff", "elderly", login="elderly2"),
        "disability": make_user("staff", "disability", login="disability"),
        "inactive": make_user("staff", "livelihood", login="gone", active=False),
    }
    with unit_of_work(sessions) as s:
        client = ApiClient(name="partner-system", scopes=["referrals:write"])
        s.add(client)
        s.flush()
        client_id = client.id
    cases = []
    cases.append(open_case(categories=["other"]))                        # unrouted, desk
    cases.append(open_case(actor=actors.elderly, categories=["other"]))  # unrouted, recorded by 高齢介護課
    cases.append(open_case(categories=["poverty"]))                      # handoff sent to 生活福祉課
    assigned = open_case(categories=["poverty"])
    fire(actors.livelihood, assigned, "accept_handoff")
    cases.append(assigned)
    declined = open_case(categories=["poverty"])
    fire(actors.livelihood, declined, "decline_handoff", reason="所管外")
    cases.append(declined)
    joined = open_case(categories=["poverty"])
    fire(actors.livelihood, joined, "accept_handoff")
    with unit_of_work(sessions) as s:
        lv = s.get(User, actors.livelihood.id)
        for dept in ("health", "children", "disability"):
            joins.request_join(s, lv, joined, to_department=dept, reason="r", summary="s", now=NOW)
    with unit_of_work(sessions) as s:
        hs = {h.to_department.code: h.id for h in s.get(Case, joined).handoffs}
        joins.answer_join(s, s.get(User, actors.children.id), hs["children"], "accept", now=NOW)
        joins.answer_join(s, s.get(User, extra["disability"].id), hs["disability"], "decline", reason="対象外", now=NOW)
    cases.append(joined)
    # A partner outside the city joins a case the desk holds, on an emergency the desk chose.
    outside_joined = open_case(categories=["other"])
    with unit_of_work(sessions) as s:
        joins.request_join(s, s.get(User, actors.window.id), outside_joined, to_department="shakyo", reason="r",
                           summary="s", basis={"code": "emergency", "note": "本人が衰弱し連絡がとれない"}, now=NOW)
    with unit_of_work(sessions) as s:
        h = next(h for h in s.get(Case, outside_joined).handoffs if not h.primary)
        joins.answer_join(s, s.get(User, actors.shakyo.id), h.id, "accept", now=NOW)
    cases.append(outside_joined)
    meeting = open_case(categories=["poverty"])
    fire(actors.livelihood, meeting, "accept_handoff")
    fire(actors.fm, meeting, "convene_support_meeting", **_members("hikikomori"))
    with unit_of_work(sessions) as s:
        mid = s.scalar(select(Meeting.id).where(Meeting.case_id == meeting))
        meetings.add_meeting_member(s, s.get(User, actors.fm.id), mid, "elderly2", now=NOW)
    cases.append(meeting)
    consented = open_case(categories=["poverty"])
    fire(actors.livelihood, consented, "accept_handoff")
    fire(actors.livelihood, consented, "record_consent", **CONSENT)
    cases.append(consented)
    withdrawn = open_case(categories=["poverty"])
    fire(actors.livelihood, withdrawn, "accept_handoff")
    fire(actors.livelihood, withdrawn, "record_consent", **CONSENT)
    fire(actors.livelihood, withdrawn, "withdraw_consent", given_by="本人")
    cases.append(withdrawn)
    regiven = open_case(categories=["poverty"])
    fire(actors.livelihood, regiven, "accept_handoff")
    fire(actors.livelihood, regiven, "record_consent", **CONSENT)
    fire(actors.livelihood, regiven, "withdraw_consent", given_by="本人")
    fire(actors.livelihood, regiven, "record_consent", given_by="本人", method="oral", agencies=["children"])
    cases.append(regiven)
    closed = open_case(categories=["poverty"])
    fire(actors.livelihood, closed, "accept_handoff")
    fire(actors.livelihood, closed, "close", close_reason="goal_met")
    cases.append(closed)
    reopened = open_case(actor=actors.elderly, categories=["poverty"])
    fire(actors.livelihood, reopened, "accept_handoff")
    fire(actors.livelihood, reopened, "close", close_reason="goal_met")
    fire(actors.livelihood, reopened, "reopen", reason="再相談")  # held by 生活福祉課, 高齢介護課 and the desk
    cases.append(reopened)
    with unit_of_work(sessions) as s:
        referral = intake.open_case(s, None, intake_fields(categories=["poverty"], external_ref="X-1"),
                                      client=s.get(ApiClient, client_id), now=NOW)
        cases.append(referral.id)
    fm2_case = open_case(categories=["other"])
    fire(actors.fm2, fm2_case, "convene_support_meeting", **_members("shakyo"))
    cases.append(fm2_case)
    cw_owned = open_case(categories=["other"])
    fire(actors.window, cw_owned, "send_handoff", to_department="community_welfare", reason="r", summary="s")
    fire(extra["cw_staff"], cw_owned, "accept_handoff")
    cases.append(cw_owned)
    # A 支援会議 held on another case takes this one up too (engine.cases.discussed): its members, acknowledged
    # or not, relate to it as to the meeting's own case.
    with unit_of_work(sessions) as s:
        number = s.get(Case, cw_owned).case_number
    fire(actors.fm, meeting, "convene_support_meeting", **_members("health"), also_cases=[number])
    with unit_of_work(sessions) as s:
        second = s.scalar(select(func.max(Meeting.id)).where(Meeting.case_id == meeting))
        meetings.add_meeting_member(s, s.get(User, actors.fm.id), second, "disability", now=NOW)
    cases.append(open_case(categories=["elder_care", "hikikomori"]))  # 8050: 高齢介護課, the station is told
    people = [actors.window, actors.elderly, actors.livelihood, actors.hikikomori, actors.shakyo, actors.children,
              actors.fm, actors.fm2, actors.admin, *extra.values(), access.SYSTEM_ACTOR]
    return cases, people, client_id


def test_sql_filter_agrees_with_case_sight_for_every_actor_and_case(varied, sessions):
    cases, people, client_id = varied
    with sessions() as s:
        people = [*people, access.actor_for_client(s.get(ApiClient, client_id))]
        checked = 0
        seen_levels = set()
        for person in people:
            for level in (access.Sight.METADATA, access.Sight.CONTENT):
                in_sql = set(s.scalars(select(Case.id).where(access.visible_cases_filter(s, person, level))))
                in_python = {c for c in cases if access.case_sight(s, person, s.get(Case, c)) >= level}
                assert in_sql == in_python, (getattr(person, "login", person), level.name)
                checked += len(cases)
            for c in cases:
                seen_levels.add(access.case_sight(s, person, s.get(Case, c)))
        assert seen_levels == {access.Sight.NONE, access.Sight.METADATA, access.Sight.CONTENT}
        assert checked == len(people) * len(cases) * 2
        # The table the filter reads is the one the records give.
        assert case_departments.drift(s) == []


def test_fm_sees_handoff_metadata_of_every_case_and_content_only_as_member_or_owner(varied, sessions, actors):
    cases, _, _ = varied
    with sessions() as s:
        fm2 = s.get(User, actors.fm2.id)
        owned = 0
        for c in cases:
            view = views.case_view(s, fm2, s.get(Case, c), [])
            assert {"status", "handoffs", "history", "owning_department"} <= set(view)
            case = s.get(Case, c)
            owner_or_member = case.fm_id == fm2.id or case.owning_department_id == fm2.department_id
            assert ("person" in view) == owner_or_member, case.case_number
            owned += case.owning_department_id == fm2.department_id
            for h in view["handoffs"]:
                assert {"from_department", "to_department", "sent_at", "due_at", "state"} <= set(h)
                assert ("summary" in h) == owner_or_member
        assert owned == 1 and sum(s.get(Case, c).fm_id == fm2.id for c in cases) == 1
        s.rollback()


def test_inactive_user_and_client_tokens_see_nothing(varied, sessions):
    cases, people, client_id = varied
    with sessions() as s:
        gone = s.scalar(select(User).where(User.login == "gone"))
        assert not s.scalars(select(Case.id).where(access.visible_cases_filter(s, gone))).all()
        with pytest.raises(NotFound):
            reading.read_case(s, gone, cases[3])
        # A token acting as a user who is then disabled stops reaching anything.
        client = s.get(ApiClient, client_id)
        lv = s.scalar(select(User).where(User.login == "livelihood"))
        client.user_id, client.user = lv.id, lv
        assert reading.read_case(s, access.actor_for_client(client), cases[3]).view["access"] == "content"
        lv.active = False
        with pytest.raises(NotFound):
            reading.read_case(s, access.actor_for_client(client), cases[3])
        s.rollback()


# --- 支援会議 records ---------------------------------------------------------------------------------


@pytest.fixture
def world(sessions, make_user):
    return M.build_world(sessions, make_user, NOW)


def _user(s, world, role):
    return s.scalar(select(User).where(User.login == world.logins[role]))


def _everything_seen_by(s, actor, world) -> str:
    """All an actor gets from the read path, the referral view and search, as one text."""
    out = []
    try:
        out.append(reading.read_case(s, actor, world.case_id).view)
    except NotFound:
        pass
    case = s.get(Case, world.case_id)
    out.append(views.referral_view(s, case))
    for word in ("長男", "借金", "訪問", "廿日", "ハツカ", case.case_number):
        out.append([asdict(r) for r in caselist.search_cases(s, actor, caselist.CaseFilters(q=word)).rows])
    return json.dumps(out, ensure_ascii=False, default=str)


@pytest.mark.parametrize("stage", ["before_consent", "after_consent"])
def test_support_meeting_records_never_reach_anyone_outside_the_meeting(sessions, make_user, actors, open_case,
                                                                        fire, stage):
    """Minutes and a member's note, before and after consent: members read them, no one else does, in any view."""
    hikikomori = actors.hikikomori
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.fm, case_id, "convene_support_meeting", minutes="会議の記録：長男の借金", **_members("hikikomori"))
    with unit_of_work(sessions) as s:
        notes.add_contact_note(s, s.get(User, hikikomori.id), case_id,
                                  {"method": "home_visit", "body": "訪問して長男と面談"}, now=NOW)
    if stage == "after_consent":
        fire(actors.livelihood, case_id, "record_consent", **CONSENT)
        fire(actors.livelihood, case_id, "adopt_plan", **PLAN)
    secrets = ("会議の記録：長男の借金", "訪問して長男と面談")
    with sessions() as s:
        for who in (actors.window, actors.livelihood, actors.shakyo, actors.children, actors.fm2, actors.admin,
                    actors.elderly):
            seen = _everything_seen_by(s, s.get(User, who.id), type("W", (), {"case_id": case_id}))
            assert not any(x in seen for x in secrets), who.login
        for member in (actors.fm, actors.hikikomori):
            seen = _everything_seen_by(s, s.get(User, member.id), type("W", (), {"case_id": case_id}))
            assert all(x in seen for x in secrets), member.login
        # The plan and the 重層的支援会議 records never carry them either.
        plan = views.plan_view(s, access.SYSTEM_ACTOR, s.get(Case, case_id))
        assert plan is None or not any(x in json.dumps(plan, ensure_ascii=False) for x in secrets)
        s.rollback()


def _search(s, actor, text):
    return caselist.search_cases(s, actor, caselist.CaseFilters(q=text)).rows


def test_search_matches_names_only_where_content_is_seen_and_never_notes(world, sessions):
    content_roles = set()
    with unit_of_work(sessions) as s:
        for role in M.ROLES:
            if role == "referral_client":
                continue
            actor = _user(s, world, role)
            hits = _search(s, actor, "はつか　たろう")  # kana and width folded
            sees_content = M.EXPECTED[(role, "case_content", "read")] == M.ALLOW
            content_roles |= {world.logins[role]} if sees_content else set()
            assert [h.id for h in hits] == ([world.case_id] if sees_content else []), role
            assert _search(s, actor, M.MARKERS["support_meeting"][:6]) == []
            assert _search(s, actor, M.MARKERS["case_content"][:6]) == []
            number = s.get(Case, world.case_id).case_number
            by_number = _search(s, actor, number.lower())
            sees_case = M.EXPECTED[(role, "case_metadata", "read")] == M.ALLOW
            assert [h.id for h in by_number] == ([world.case_id] if sees_case else []), role
            assert all((h.person_name is not None) == sees_content for h in by_number)
    with sessions() as s:
        found = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.found")).all()
        # Each search that showed the person's name is in the trail (twice per role: by name, by number).
        assert sorted(r.actor_label for r in found) == sorted([*content_roles, *content_roles])
        assert all(r.case_id == world.case_id for r in found)


def test_contact_note_tracks(world, sessions):
    """The owner and covered agencies write into the consented track; a member's note stays with the meeting."""
    with sessions() as s:
        tracks = {n.body: n.meeting_id for n in s.scalars(select(ContactNote))}
        assert tracks[M.MARKERS["support_meeting_note"]] == world.meeting_id
        assert tracks[M.MARKERS["contact_notes"]] is None
        assert tracks[M.MARKERS["contact_notes_partner"]] is None
        fm = _user(s, world, "fm_member")
        note = notes.add_contact_note(s, fm, world.case_id, {"method": "phone", "body": "FMの記録"}, now=NOW)
        assert note.meeting_id == world.meeting_id  # the case FM is not covered: a 支援会議 record
        owner = _user(s, world, "receiving")
        with pytest.raises(Exception) as err:
            notes.add_contact_note(s, owner, world.case_id,
                                      {"method": "phone", "body": "x", "meeting_id": world.meeting_id}, now=NOW)
        assert err.value.code == "validation_error"
        s.rollback()


def test_pending_member_reads_after_acknowledging(world, sessions):
    with unit_of_work(sessions) as s:
        pending = _user(s, world, "member_pending")
        assert reading.read_meeting(s, pending, world.meeting_id).must_acknowledge
        assert "person" not in reading.read_case(s, pending, world.case_id).view
        meetings.acknowledge_secrecy(s, pending, world.meeting_id, now=NOW)
    with unit_of_work(sessions) as s:
        pending = _user(s, world, "member_pending")
        view = reading.read_meeting(s, pending, world.meeting_id).summary
        assert view["minutes"] == M.MARKERS["support_meeting"]
        assert [n["body"] for n in view["contact_notes"]] == [M.MARKERS["support_meeting_note"]]
    with sessions() as s:
        actions = [a for (a,) in s.execute(select(AuditEvent.action).where(AuditEvent.actor_label == "m-pending"))]
        assert actions == ["meeting.acknowledge_secrecy", "meeting.read"]  # a metadata view is no read of content


def test_minutes_stay_with_the_members_after_consent_and_after_withdrawal(world, sessions):
    with unit_of_work(sessions) as s:
        outside = _user(s, world, "member_outside")
        assert reading.read_meeting(s, outside, world.meeting_id).summary["minutes"] == M.MARKERS["support_meeting"]
        assert "minutes" not in reading.read_meeting(s, _user(s, world, "receiving"), world.meeting_id).summary
        case = s.get(Case, world.case_id)
        firing.fire_event(s, _user(s, world, "receiving"), world.case_id, "withdraw_consent",
                            version=case.version, fields={"given_by": "本人"}, now=NOW)
    with sessions() as s:
        assert reading.read_meeting(s, _user(s, world, "member_outside"),
                                    world.meeting_id).summary["minutes"] == M.MARKERS["support_meeting"]
        s.rollback()


# --- consent scope and the carry-over ----------------------------------------------------------------


def test_withdrawing_consent_refuses_the_next_read_of_a_covered_agency(world, sessions):
    with sessions() as s:
        partner = _user(s, world, "covered_partner")
        view = reading.read_case(s, partner, world.case_id).view
        assert view["plan"]["goals"] == M.MARKERS["plan"]
        assert [f["text"] for f in view["shared_facts"]] == [M.MARKERS["shared_facts"]]
        s.commit()
    with unit_of_work(sessions) as s:
        case = s.get(Case, world.case_id)
        firing.fire_event(s, _user(s, world, "receiving"), world.case_id, "withdraw_consent",
                            version=case.version, fields={"given_by": "本人"}, now=NOW)
    with sessions() as s:
        partner = _user(s, world, "covered_partner")
        with pytest.raises(NotFound):
            reading.read_case(s, partner, world.case_id)
        assert s.scalars(select(Case.id).where(access.visible_cases_filter(s, partner))).all() == []
        # The owner keeps its own records but no longer the carried fact: that reached it through consent.
        owner = _user(s, world, "receiving")
        view = reading.read_case(s, owner, world.case_id).view
        assert view["contact_notes"]
        assert "shared_facts" not in view
        # The meeting's members still know what they shared.
        outside = _user(s, world, "member_outside")
        assert [f["text"] for f in reading.read_case(s, outside, world.case_id).view["shared_facts"]] == [
            M.MARKERS["shared_facts"]]
        s.rollback()


def test_carry_fact_needs_membership_acknowledgement_and_a_current_consent(sessions, actors, open_case, fire):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    fire(actors.fm, case_id, "convene_support_meeting", minutes="記録", **_members("hikikomori"))
    with sessions() as s:
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
        fm = s.get(User, actors.fm.id)
        with pytest.raises(GuardRefused) as err:
            meetings.carry_fact(s, fm, meeting_id, "長男は日中在宅", now=NOW)
        assert err.value.extra["guard"] == "consent_given"
        with pytest.raises(PermissionDenied):
            meetings.carry_fact(s, s.get(User, actors.livelihood.id), meeting_id, "x", now=NOW)
        with pytest.raises(NotFound):
            meetings.carry_fact(s, s.get(User, actors.children.id), meeting_id, "x", now=NOW)
        s.rollback()
    fire(actors.livelihood, case_id, "record_consent", given_by="本人", method="oral", agencies=["shakyo"])
    with unit_of_work(sessions) as s:
        fact = meetings.carry_fact(s, s.get(User, actors.hikikomori.id), meeting_id, "長男は日中在宅",
                                       now=NOW)
        fact_id = fact.id
    with sessions() as s:
        shakyo, owner = s.get(User, actors.shakyo.id), s.get(User, actors.livelihood.id)
        assert [f["text"] for f in reading.read_case(s, shakyo, case_id).view["shared_facts"]] == ["長男は日中在宅"]
        # The owner is not covered by this consent: the fact does not reach it.
        assert "長男は日中在宅" not in json.dumps(reading.read_case(s, owner, case_id).view, ensure_ascii=False)
        row = s.scalar(select(AuditEvent).where(AuditEvent.action == "shared_fact.carry"))
        assert row.object_id == str(fact_id) and row.detail == {"meeting_id": meeting_id,
                                                                 "consent_id": s.get(SharedFact, fact_id).consent_id}
        s.rollback()


# --- alerts --------------------------------------------------------------------------------------


def test_alerts_follow_case_visibility_and_hide_quoted_content(sessions, actors, open_case, fire):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "decline_handoff", reason="所管外：住宅の相談")
    with sessions() as s:
        alert = s.scalar(select(Alert).where(Alert.kind == "handoff_declined"))
        window, fm2 = s.get(User, actors.window.id), s.get(User, actors.fm2.id)
        assert "所管外：住宅の相談" in alerts.readable_messages(s, window, [alert])[alert.id]
        assert "所管外" not in alerts.readable_messages(s, fm2, [alert])[alert.id]  # the FM sees the metadata only
        assert alert.id in [a.id for a in s.scalars(alerts.visible_alerts_query(s, window))]
        assert alert.id not in [a.id for a in s.scalars(alerts.visible_alerts_query(s, s.get(User, actors.children.id)))]
        s.rollback()
