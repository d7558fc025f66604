"""Meetings that discuss several cases (engine.cases.discussed): a 支援会議 on the mother's case that takes up her
son's case opens the son's case to its acknowledged members as the mother's; a 重層的支援会議 that takes it up
opens nothing of it beyond the son's own consent. The discussed cases are named by number, each checked; the
son's 開示請求 answer shows the reads of the meeting; retention clears its records only with the last case; the
yearly report counts each discussed case."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import access
from engine.cases import meetings, reading, views
from engine.db import unit_of_work
from engine.errors import GuardRefused, ValidationFailed
from engine.models import AuditEvent, Case, Meeting, MeetingCase, Provision, User
from engine.privacy import disclosure, retention
from engine.reports import yearly as reports
from tests.conftest import NOW
from tests.household_support import household  # noqa: F401  (fixture)

FUTURE = (NOW + timedelta(days=60)).date().isoformat()
MOTHER_CONSENT = {"given_by": "本人", "method": "written", "agencies": ["elderly", "shakyo"]}


def _members(*logins):
    return [{"user": u, "acknowledged": True} for u in logins]


def _meeting_of(sessions, case_id, kind="support_meeting") -> int:
    with sessions() as s:
        return s.scalar(select(Meeting.id).where(Meeting.case_id == case_id, Meeting.kind == kind)
                        .order_by(Meeting.id.desc()))


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def _sight(sessions, user, case_id) -> access.Sight:
    with sessions() as s:
        return access.case_sight(s, s.get(User, user.id), s.get(Case, case_id))


def _in_sql(sessions, user, case_id, level) -> bool:
    with sessions() as s:
        found = s.scalar(select(Case.id).where(Case.id == case_id,
                                               access.visible_cases_filter(s, s.get(User, user.id), level)))
        return found is not None


@pytest.fixture
def discussed(household, fire, actors, sessions):
    """The FM convenes a 支援会議 on the mother's case that takes up the son's: 生活福祉課 and 社協 (a partner
    outside the city) acknowledged, 健康推進課 invited but not yet bound by the 守秘義務."""
    fire(actors.fm, household.mother, "convene_support_meeting", members=_members("livelihood", "shakyo"),
         minutes="母と長男の状況を共有した。", also_cases=[household.son_number])
    meeting_id = _meeting_of(sessions, household.mother)
    with unit_of_work(sessions) as s:
        meetings.add_meeting_member(s, s.get(User, actors.fm.id), meeting_id, "health-staff", now=NOW)
    return household, meeting_id


def test_the_meeting_records_each_case_it_discussed(discussed, sessions):
    household, meeting_id = discussed
    with sessions() as s:
        assert set(s.scalars(select(MeetingCase.case_id).where(MeetingCase.meeting_id == meeting_id))) == {
            household.mother, household.son}
        # Nothing of the son's case itself changed: it stays where its own work has it.
        son = s.get(Case, household.son)
        assert son.state == "layered_meeting" and son.fm_id is None
        # The son's person will read that his case was taken up, and by whom.
        row = s.scalars(select(AuditEvent).where(AuditEvent.action == "meeting.discuss_case")).one()
        assert (row.case_id, row.object_id, row.actor_label) == (household.son, str(meeting_id), "fm")
        assert disclosure.action_label("meeting.discuss_case") != "meeting.discuss_case"


def test_an_acknowledged_member_reads_the_discussed_case_as_the_meetings_own(discussed, sessions, actors):
    household, meeting_id = discussed
    for user in (actors.livelihood, actors.shakyo):
        assert _sight(sessions, user, household.son) == access.Sight.CONTENT
        assert _sight(sessions, user, household.mother) == access.Sight.CONTENT
        assert _in_sql(sessions, user, household.son, access.Sight.CONTENT)
    with sessions() as s:
        lv = s.get(User, actors.livelihood.id)
        assert access.CASE_MEMBER in access.relations(s, lv, s.get(Case, household.son))
        assert access.member_meeting_ids(s, lv, household.son) == [meeting_id]
        # The son's page lists the meeting held on his mother's case, with its records for the member.
        file = reading.read_case(s, lv, household.son)
        listed = [m for m in file.view["meetings"] if m["id"] == meeting_id]
        assert listed and listed[0]["case_number"] == household.mother_number and listed[0]["readable"]
        assert "長男SECRET" in file.view["summary"]
    # The invited member who has not acknowledged knows both cases exist, and reads neither.
    for case_id in (household.mother, household.son):
        assert _sight(sessions, actors.health, case_id) == access.Sight.METADATA
        assert _in_sql(sessions, actors.health, case_id, access.Sight.METADATA)
        assert not _in_sql(sessions, actors.health, case_id, access.Sight.CONTENT)
    # Someone outside the meeting knows nothing of the son's case.
    assert _sight(sessions, actors.children, household.son) == access.Sight.NONE
    assert not _in_sql(sessions, actors.children, household.son, access.Sight.METADATA)


def test_a_body_outside_the_city_among_the_members_receives_each_case_on_the_meeting(discussed, sessions, actors):
    household, meeting_id = discussed
    with sessions() as s:
        rows = s.execute(select(Provision.case_id, Provision.what, Provision.basis, Provision.meeting_id)
                         .where(Provision.meeting_id == meeting_id).order_by(Provision.case_id)).all()
        assert rows == [(household.mother, "meeting", "support_meeting", meeting_id),
                        (household.son, "meeting", "support_meeting", meeting_id)]


def test_a_member_added_later_reads_both_once_acknowledged(discussed, sessions, actors, make_user):
    household, meeting_id = discussed
    added = make_user("staff", "children", login="children2")
    assert _sight(sessions, added, household.son) == access.Sight.NONE
    with unit_of_work(sessions) as s:
        meetings.add_meeting_member(s, s.get(User, actors.fm.id), meeting_id, "children2", now=NOW)
    assert _sight(sessions, added, household.son) == access.Sight.METADATA
    with unit_of_work(sessions) as s:
        meetings.acknowledge_secrecy(s, s.get(User, added.id), meeting_id, now=NOW)
    assert _sight(sessions, added, household.son) == access.Sight.CONTENT
    assert _in_sql(sessions, added, household.son, access.Sight.CONTENT)


@pytest.mark.parametrize("numbers, message", [
    (["R8-999999"], "ケース「R8-999999」は見つかりません。"),
    (["mother"], "はこの会議のケースです"),
    (["son", " son "], "が2回以上指定されています"),
    ([f"R8-{i:06d}" for i in range(21)], "20件までです"),
])
def test_a_bad_number_is_refused_by_name_and_nothing_is_written(household, sessions, actors, fire, numbers, message):
    given = [{"mother": household.mother_number, "son": household.son_number}.get(n.strip(), n) for n in numbers]
    before = _count(sessions, Meeting)
    with pytest.raises(ValidationFailed) as err:
        fire(actors.fm, household.mother, "convene_support_meeting", members=_members("livelihood"),
             also_cases=given)
    assert any(message in m for m in err.value.errors["also_cases"]), err.value.errors
    assert _count(sessions, Meeting) == before


def test_only_a_case_the_actor_reads_may_be_brought_in(household, sessions, actors, fire, open_case):
    # The FM sees every case's metadata, never its content by that alone: a case it does not read stays out,
    # or the meeting's members would read what the FM itself may not.
    other = open_case(categories=["poverty"])
    fire(actors.livelihood, other, "accept_handoff")
    with sessions() as s:
        number = s.get(Case, other).case_number
    with pytest.raises(ValidationFailed) as err:
        fire(actors.fm, household.mother, "convene_support_meeting", members=_members("livelihood"),
             also_cases=[number])
    assert err.value.errors["also_cases"] == [f"「{number}」は内容を閲覧できないケースのため、会議で検討するケースに加えられません。"]
    # Typed as staff type it (full width, lower case): the same case.
    fire(actors.fm, household.mother, "convene_support_meeting", members=_members("livelihood"),
         also_cases=["ｒ" + household.son_number[1:].translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))])
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(MeetingCase)
                        .where(MeetingCase.case_id == household.son)) == 1


# --- 重層的支援会議: consent stays per person --------------------------------------------------------------


@pytest.fixture
def layered(household, fire, actors, sessions):
    """The mother consents for 高齢介護課 and 社協; 高齢介護課 adopts her plan in a 重層的支援会議 that takes up
    her son's case (his consent names 高齢介護課, not 社協)."""
    fire(actors.elderly, household.mother, "record_consent", **MOTHER_CONSENT)
    fire(actors.elderly, household.mother, "adopt_plan", goals="「家で暮らし続けたい」", main_department="elderly",
         next_evaluation_date=FUTURE, roles=[{"department": "elderly", "role": "介護サービスの調整"}],
         minutes="重層MARK-長男の通所の希望も聞いた。", also_cases=[household.son_number])
    return household, _meeting_of(sessions, household.mother, "layered_meeting")


def test_a_layered_meeting_opens_nothing_of_the_son_beyond_his_own_consent(layered, sessions, actors):
    household, meeting_id = layered
    # 社協 reads the mother's case on her consent, and nothing of the son's: not even through the meeting.
    assert _sight(sessions, actors.shakyo, household.mother) == access.Sight.CONTENT
    assert _sight(sessions, actors.shakyo, household.son) == access.Sight.NONE
    with sessions() as s:
        shakyo = s.get(User, actors.shakyo.id)
        meeting = s.get(Meeting, meeting_id)
        assert not views.meeting_readable(s, shakyo, meeting)
        page = reading.read_case(s, shakyo, household.mother).view
        held = next(m for m in page["meetings"] if m["id"] == meeting_id)
        assert held["readable"] is False and "minutes" not in held
        assert held["discussed_cases"] == []  # the son's case is not even named to 社協
        # 高齢介護課, which both consents name, reads it.
        elderly = s.get(User, actors.elderly.id)
        assert views.meeting_readable(s, elderly, meeting)
        page = reading.read_case(s, elderly, household.son).view
        held = next(m for m in page["meetings"] if m["id"] == meeting_id)
        assert held["minutes"] == "重層MARK-長男の通所の希望も聞いた。"
        assert held["case_number"] == household.mother_number
        # The station, the son's owner, may not know of the mother's case: it is not shown the meeting.
        station = s.get(User, actors.hikikomori.id)
        page = reading.read_case(s, station, household.son).view
        assert meeting_id not in [m["id"] for m in page["meetings"]]


def test_a_layered_meeting_adds_members_only_from_agencies_every_consent_names(layered, sessions, actors, make_user):
    household, meeting_id = layered
    make_user("staff", "elderly", login="elderly-2")
    with unit_of_work(sessions) as s:
        elderly = s.get(User, actors.elderly.id)
        for login in ("shakyo", "hikikomori"):  # named by one consent only
            with pytest.raises(GuardRefused) as err:
                meetings.add_meeting_member(s, elderly, meeting_id, login, now=NOW)
            assert err.value.extra["guard"] == "member_within_consent"
        meetings.add_meeting_member(s, elderly, meeting_id, "elderly-2", now=NOW)


def test_a_case_without_a_consent_in_force_is_not_taken_up_in_a_layered_meeting(household, sessions, actors, fire,
                                                                              open_case):
    fire(actors.elderly, household.mother, "record_consent", **MOTHER_CONSENT)
    other = open_case(person={"name": "廿日 次郎", "birth_date": None, "area": "廿日市"}, categories=["elder_care"])
    fire(actors.elderly, other, "accept_handoff")
    with sessions() as s:
        number = s.get(Case, other).case_number
    with pytest.raises(ValidationFailed) as err:
        fire(actors.elderly, household.mother, "adopt_plan", goals="g", main_department="elderly",
             next_evaluation_date=FUTURE, roles=[{"department": "elderly", "role": "r"}], also_cases=[number])
    assert err.value.errors == {"also_cases": [
        f"「{number}」の本人の同意が記録されていないため、重層的支援会議では検討できません（支援会議で検討してください）。"]}
    assert _count(sessions, Meeting) == 0


# --- 開示請求, retention, the yearly count ------------------------------------------------------------------


def test_the_sons_trail_shows_the_reads_of_the_meeting_held_on_his_mothers_case(discussed, sessions, actors):
    household, meeting_id = discussed
    with unit_of_work(sessions) as s:
        lv = s.get(User, actors.livelihood.id)
        reading.read_meeting(s, lv, meeting_id)            # the meeting's page
        reading.read_case(s, lv, household.mother)          # the mother's page, which shows its records
        reading.read_case(s, s.get(User, actors.elderly.id), household.mother)  # the owner: no meeting records
    with unit_of_work(sessions) as s:
        cases, rows = disclosure.person_trail(s, household.son_number)
    assert [c.id for c in cases] == [household.son]
    via = [r for r in rows if r.case_number == ""]
    assert [(r.action, r.actor) for r in via] == [("meeting.read", "livelihood"), ("case.read", "livelihood")]
    assert all(r.action_label.endswith(disclosure.VIA_MEETING) for r in via)
    # Nothing else of the mother's case reaches the son's answer: not her owner's read, not her case number.
    assert household.mother_number not in {r.case_number for r in rows}
    assert ("case.read", "elderly") not in [(r.action, r.actor) for r in rows]
    assert ("meeting.discuss_case", household.son_number) in [(r.action, r.case_number) for r in rows]


def test_minutes_stay_until_the_last_discussed_case_is_anonymised(discussed, sessions, actors, fire):
    household, meeting_id = discussed
    fire(actors.elderly, household.mother, "close", close_reason="goal_met")
    later = NOW + timedelta(days=400)
    fire(actors.hikikomori, household.son, "close", close_reason="goal_met", now=later)
    cases_before = _count(sessions, Case)
    with unit_of_work(sessions) as s:
        report = retention.apply(s, years=5, now=NOW + timedelta(days=5 * 366 + 200))
        assert [c[0] for c in report.cases] == [household.mother]
    with sessions() as s:
        meeting = s.get(Meeting, meeting_id)
        assert meeting.minutes == "母と長男の状況を共有した。"  # the son's case still needs them
        assert s.get(Case, household.mother).summary == retention.MARKER
    with unit_of_work(sessions) as s:
        report = retention.apply(s, years=5, now=later + timedelta(days=5 * 366 + 1))
        assert [c[0] for c in report.cases] == [household.son]
    with sessions() as s:
        meeting = s.get(Meeting, meeting_id)
        assert meeting.minutes == retention.MARKER
        # Nothing was deleted: the cases and the meeting, with what it discussed, are all there.
        assert s.scalar(select(func.count()).select_from(MeetingCase).where(MeetingCase.meeting_id == meeting_id)) == 2
    assert _count(sessions, Case) == cases_before


def test_the_yearly_report_counts_each_case_a_meeting_discussed(layered, sessions, actors, fire):
    household, _ = layered
    fire(actors.fm, household.mother, "convene_support_meeting", members=_members("livelihood"),
         also_cases=[household.son_number])
    with unit_of_work(sessions) as s:
        report = reports.yearly(s, s.get(User, actors.fm.id), 2026, today=NOW.date())
        got = {(title, label): n for title, label, n in report.csv_rows()}
    assert got[("会議", "支援会議 開催")] == 1 and got[("会議", "支援会議 検討したケース")] == 2
    assert got[("会議", "重層的支援会議 開催")] == 1 and got[("会議", "重層的支援会議 検討したケース")] == 2
