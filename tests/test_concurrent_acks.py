"""Two people marking the same notice or alert at the same moment: one does it, the other is told it is done.

Nothing is recorded twice (history, audit trail) and no one's note is silently replaced. On PostgreSQL a
row lock orders them; on SQLite the UPDATE's own condition must.
"""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from engine.alerts import alerts, notices
from engine.cases import meetings
from engine.db import unit_of_work
from engine.errors import EngineError
from engine.models import Alert, AuditEvent, CaseHistory, CaseNotice, Meeting, MeetingMember, User

ROUNDS = 6


def _race(sessions, work_a, work_b) -> list[str]:
    """Run two units of work released together; return each one's outcome."""
    gate, outcomes = threading.Barrier(2), []

    def run(work):
        try:
            with unit_of_work(sessions) as s:
                gate.wait(10)
                work(s)
            outcomes.append("done")
        except EngineError as exc:
            outcomes.append(exc.code)
        except Exception as exc:  # anything else would be a 500
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=run, args=(w,)) for w in (work_a, work_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def _count(sessions, model, *where) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_notice_is_acknowledged_once(sessions, actors, open_case, make_user):
    colleague = make_user("staff", "hikikomori_station", login="station-2")
    for _ in range(ROUNDS):
        case_id = open_case(categories=["elder_care", "hikikomori"])  # the station is told
        with sessions() as s:
            notice_id = s.scalar(select(CaseNotice.id).where(CaseNotice.case_id == case_id))
        outcomes = _race(sessions, *[
            (lambda s, who=who: notices.acknowledge(s, s.get(User, who.id), notice_id))
            for who in (actors.hikikomori, colleague)])
        assert sorted(outcomes) == ["already_acknowledged", "done"], outcomes
        assert _count(sessions, CaseHistory, CaseHistory.case_id == case_id,
                      CaseHistory.event == "notice.acknowledge") == 1
        assert _count(sessions, AuditEvent, AuditEvent.case_id == case_id,
                      AuditEvent.action == "notice.acknowledge") == 1


def test_an_alert_is_acknowledged_once_and_resolved_once(sessions, actors, open_case):
    for _ in range(ROUNDS):
        case_id = open_case(categories=["other"])  # unrouted: an alert to the desk
        with sessions() as s:
            alert_id = s.scalar(select(Alert.id).where(Alert.case_id == case_id))
        ack = _race(sessions, *[(lambda s, who=who: alerts.acknowledge(s, s.get(User, who.id), alert_id))
                                for who in (actors.fm, actors.fm2)])
        assert sorted(ack) == ["done", "event_not_allowed"], ack
        res = _race(sessions, *[(lambda s, who=who, note=note: alerts.resolve(s, s.get(User, who.id), alert_id,
                                                                               note=note))
                                for who, note in ((actors.fm, "a"), (actors.fm2, "b"))])
        assert sorted(res) == ["done", "event_not_allowed"], res
        with sessions() as s:
            alert = s.get(Alert, alert_id)
            winner = s.get(User, alert.resolved_by_id).login
        assert alert.resolution_note == {"fm": "a", "fm2": "b"}[winner]  # the note kept is the resolver's
        for action in ("alert.acknowledge", "alert.resolve"):
            assert _count(sessions, AuditEvent, AuditEvent.object_id == str(alert_id),
                          AuditEvent.action == action) == 1


def test_the_secrecy_of_a_meeting_is_acknowledged_once(sessions, actors, open_case, fire):
    """Two tabs of one member acknowledge the 守秘義務 at once: one row in the trail, one time kept."""
    for _ in range(ROUNDS):
        case_id = open_case(categories=["other"])
        fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "children", "acknowledged": True}])
        with unit_of_work(sessions) as s:  # added afterwards: a member who has yet to acknowledge
            meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
            meetings.add_meeting_member(s, s.get(User, actors.fm.id), meeting_id, "elderly")
        outcomes = _race(sessions, *[(lambda s: meetings.acknowledge_secrecy(s, s.get(User, actors.elderly.id),
                                                                            meeting_id))] * 2)
        assert outcomes == ["done", "done"], outcomes
        assert _count(sessions, AuditEvent, AuditEvent.action == "meeting.acknowledge_secrecy",
                      AuditEvent.object_id == str(meeting_id)) == 1
        assert _count(sessions, MeetingMember, MeetingMember.meeting_id == meeting_id,
                      MeetingMember.acknowledged_at.is_not(None)) == 3
