"""The 重層的支援会議 as a record of its own: when it was held, the agencies that attended, the plan it decided."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from engine import calendar
from engine.cases import reading
from engine.db import unit_of_work
from engine.errors import ValidationFailed
from engine.models import AuditEvent, Meeting, Plan, Provision
from tests.conftest import NOW
from tests.pages_support import FUTURE, PLAN, case_in  # noqa: F401  (fixture)

HELD = datetime(2026, 12, 2, 5, 30, tzinfo=timezone.utc)  # 令和8年12月2日 14:30 JST
LATER = NOW + timedelta(days=3)  # when the meeting is recorded


def _layered(sessions, case_id) -> Meeting:
    s = sessions()
    return s.scalars(select(Meeting).where(Meeting.case_id == case_id, Meeting.kind == "layered_meeting")).one()


def test_the_meeting_is_recorded_with_its_time_its_agencies_and_its_plan(actors, case_in, fire, sessions):
    case_id = case_in("layered_meeting")
    fire(actors.livelihood, case_id, "adopt_plan", now=LATER, **PLAN, held_at=HELD.isoformat(),
         attendees=["shakyo", "livelihood"])
    with sessions() as s:
        meeting = s.scalars(select(Meeting).where(Meeting.case_id == case_id)).one()
        assert meeting.held_at == HELD
        assert [a.department.code for a in meeting.attendees] == ["livelihood", "shakyo"]  # by department id
        plan = s.scalars(select(Plan).where(Plan.case_id == case_id)).one()
        assert plan.meeting_id == meeting.id
        assert plan.decided_on.isoformat() == "2026-12-02"  # the day it was held is the 支援決定日
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "meeting.record_layered")).one()
        assert (audit.object_id, audit.case_id) == (str(meeting.id), case_id)
        assert audit.detail == {"held_at": HELD.isoformat(), "attendees": ["livelihood", "shakyo"],
                                "plan_id": plan.id, "plan_number": 1}
        # 社協 is a body outside the city: it attended on the consent that names it, and that is on record.
        given = s.scalars(select(Provision).where(Provision.case_id == case_id, Provision.what == "meeting")).all()
        assert [(p.meeting_id, p.basis, p.department.code) for p in given] == [(meeting.id, "consent", "shakyo")]


def test_the_case_view_names_the_agencies_and_the_plan(actors, case_in, fire, sessions):
    case_id = case_in("layered_meeting")
    fire(actors.livelihood, case_id, "adopt_plan", now=LATER, **PLAN, held_at=HELD.isoformat(), attendees=["shakyo"])
    with unit_of_work(sessions) as s:
        view = reading.read_case(s, actors.livelihood, case_id).view
    (m,) = view["meetings"]
    assert m["held_at"] == HELD.isoformat() and m["plan_number"] == 1
    assert [a["code"] for a in m["attendees"]] == ["livelihood", "shakyo"]


def test_without_attendees_the_recorder_and_the_agencies_with_a_role_are_recorded(actors, case_in, fire, sessions):
    case_id = case_in("layered_meeting")
    fire(actors.livelihood, case_id, "adopt_plan", **PLAN)  # as callers of the API did before
    meeting = _layered(sessions, case_id)
    assert meeting.held_at == NOW  # no time given: the time it was recorded, as before
    assert sorted(a.department.code for a in meeting.attendees) == ["livelihood", "shakyo"]


@pytest.mark.parametrize(("fields", "errors"), [
    ({"attendees": ["elderly"]},
     {"attendees": ["本人の同意の範囲に含まれない機関は、重層的支援会議の出席機関にできません: 高齢介護課"]}),
    ({"attendees": ["nowhere", "shakyo", "shakyo"]},
     {"attendees": ["「nowhere」という機関はありません。", "「shakyo」が2回以上指定されています。"]}),
    ({"held_at": (LATER + timedelta(hours=1)).isoformat()}, {"held_at": ["未来の日時は記録できません。"]}),
    ({"held_at": "2026-12-02T14:30"}, {"held_at": ["日時はタイムゾーン付きの ISO 8601 で指定してください。"]}),
    ({"held_at": HELD.isoformat(), "decided_on": "2026-12-01"},
     {"decided_on": ["支援決定日は重層的支援会議を開いた日（令和8年12月2日）にしてください。"]}),
])
def test_what_cannot_be_the_meeting_is_refused_by_field(actors, case_in, fire, sessions, fields, errors):
    case_id = case_in("layered_meeting")
    with pytest.raises(ValidationFailed) as refused:
        fire(actors.livelihood, case_id, "adopt_plan", now=LATER, **(PLAN | fields))
    assert refused.value.errors == errors


def test_a_held_at_and_its_decided_on_of_the_same_day_agree(actors, case_in, fire, sessions):
    case_id = case_in("layered_meeting")
    fire(actors.livelihood, case_id, "adopt_plan", now=LATER, **PLAN, held_at=HELD.isoformat(), decided_on="2026-12-02")
    assert calendar.wareki_datetime(_layered(sessions, case_id).held_at) == "令和8年12月2日 14:30"
    assert FUTURE  # the plan's evaluation date lies ahead of both
