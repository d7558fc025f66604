"""A 返送 alert quotes the reason the receiving department typed: only those who read the case's content read it.

The case page hides a handoff's 返送理由 below content sight; the alert that tells the sender and the FM of
the 返送 must not carry it further. Those with content sight read it whole, and the reading is audited.
"""
from __future__ import annotations

from sqlalchemy import func, select

from engine.alerts import alerts
from engine.alerts import listing as alert_views
from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, User
from engine.worklists import dashboard
from tests.pages_support import app, text_of, web  # noqa: F401  (fixtures)

REASON = "長男の借金の事情は当課では扱えないため返送します"


def _declined(open_case, fire, actors, sessions) -> tuple[int, int]:
    case_id = open_case(categories=["poverty"])  # the demo rules send it to 生活福祉課
    fire(actors.livelihood, case_id, "decline_handoff", reason=REASON)
    with unit_of_work(sessions) as s:
        alert = s.scalars(select(Alert).where(Alert.case_id == case_id, Alert.kind == "handoff_declined")).one()
        assert REASON in alert.message  # kept whole, for those who may read it
        return case_id, alert.id


def _reads(sessions, alert_id: int) -> int:
    with unit_of_work(sessions) as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "alert.read", AuditEvent.object_id == str(alert_id)))


def test_the_reason_reaches_only_those_with_content_sight(open_case, fire, actors, sessions):
    case_id, alert_id = _declined(open_case, fire, actors, sessions)
    with unit_of_work(sessions) as s:
        alert = s.get(Alert, alert_id)
        sender = alerts.readable_messages(s, s.get(User, actors.window.id), [alert])[alert_id]
    assert REASON in sender
    assert _reads(sessions, alert_id) == 1
    with unit_of_work(sessions) as s:
        alert = s.get(Alert, alert_id)
        fm = alerts.readable_messages(s, s.get(User, actors.fm.id), [alert])[alert_id]
    assert REASON not in fm
    assert fm.startswith("生活福祉課（生活困窮者自立相談支援）がつなぐシートを返送しました。") and "記録を読める職員" in fm
    assert _reads(sessions, alert_id) == 1  # nothing was read
    with unit_of_work(sessions) as s:  # the dashboard the FM acts from says the same
        items = [i for sec in dashboard.fm_dashboard(s, s.get(User, actors.fm.id)) for i in sec.items
                 if i.alert_id == alert_id]
        assert [i.message for i in items] == [fm]
        assert s.get(Case, case_id).state == "intake"


def test_other_alerts_read_the_same_for_everyone(open_case, actors, sessions):
    open_case(categories=["other"])  # no rule: an `unrouted` alert to the desk, composed from the rules
    with unit_of_work(sessions) as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "unrouted")).one()
        for who in (actors.window, actors.fm):
            assert alerts.readable_messages(s, s.get(User, who.id), [alert]) == {alert.id: alert.message}
        page, _ = alert_views.page(s, s.get(User, actors.fm.id))
        assert [a["message"] for a in page] == [alert.message]
    assert _reads(sessions, alert.id) == 0


def test_pages(web, open_case, fire, actors, sessions):
    _, alert_id = _declined(open_case, fire, actors, sessions)
    board = text_of(web(actors.fm).get("/dashboard"))
    assert "生活福祉課（生活困窮者自立相談支援）がつなぐシートを返送しました" in board and REASON not in board
    assert _reads(sessions, alert_id) == 0
    inbox = text_of(web(actors.window).get("/inbox"))
    assert REASON in inbox
    assert _reads(sessions, alert_id) == 1


def test_the_categories_behind_a_multi_agency_alert_are_read_only_with_the_case(open_case, fire, actors, sessions):
    """The combination (ヤングケアラー, DV と子育て …) is case content, as GET /cases/{id} treats categories:
    an FM who sees only the case's metadata, and the administrator, read that the case is a candidate."""
    case_id = open_case(categories=["young_carer"])
    with unit_of_work(sessions) as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "multi_agency_candidate")).one()
        assert "ヤングケアラー" in alert.message
        fm = alerts.readable_messages(s, s.get(User, actors.fm.id), [alert])[alert.id]
        admin = alerts.readable_messages(s, s.get(User, actors.admin.id), [alert])[alert.id]
    assert fm == admin == alerts.CANDIDATE_WITHHELD
    assert _reads(sessions, alert.id) == 0
    fire(actors.children, case_id, "accept_handoff")
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "children", "acknowledged": True}])
    with unit_of_work(sessions) as s:  # a member of the case's 支援会議 reads it, and that is recorded
        fm = alerts.readable_messages(s, s.get(User, actors.fm.id), [s.get(Alert, alert.id)])[alert.id]
    assert "ヤングケアラー" in fm
    assert _reads(sessions, alert.id) == 1
