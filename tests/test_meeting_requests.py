"""支援会議の開催の依頼: the owning or a joined department asks an FM to convene a 支援会議; the request waits on the
FM dashboard, its reason shown to those who may read the case, until an FM convenes the meeting."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.alerts import alerts
from engine.cases import meeting_requests
from engine.db import unit_of_work
from engine.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from engine.models import Alert, AuditEvent, Case, User
from engine.worklists import dashboard
from tests.conftest import NOW
from tests.pages_support import app, case_state, case_version, error_beside, text_of, web  # noqa: F401

REASON = "長男の就労と母の介護を、ひきこもり支援ステーションと一緒に話し合いたい。"


def _ask(sessions, who, case_id, reason=REASON):
    with unit_of_work(sessions) as s:
        return meeting_requests.ask(s, s.get(User, who.id), case_id, reason=reason, now=NOW).id


@pytest.fixture
def owned(open_case, fire, actors):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    return case_id


def test_the_owning_department_asks_and_the_request_waits_on_the_fm_dashboard(sessions, actors, owned):
    alert_id = _ask(sessions, actors.livelihood, owned)
    with unit_of_work(sessions) as s:
        alert = s.get(Alert, alert_id)
        assert (alert.kind, alert.status, alert.department_id) == ("meeting_requested", "open", None)
        sections = {sec.key: sec for sec in dashboard.fm_dashboard(s, s.get(User, actors.fm.id), now=NOW)}
        (item,) = sections["meeting_request"].items
        assert item.case_id == owned and item.kind_label == "支援会議の開催の依頼"
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "meeting.request",
                                                    AuditEvent.case_id == owned)) is not None


def test_the_reason_is_shown_only_to_those_who_read_the_case(sessions, actors, owned):
    alert_id = _ask(sessions, actors.livelihood, owned)
    with unit_of_work(sessions) as s:
        alert = s.get(Alert, alert_id)
        mine = alerts.readable_messages(s, s.get(User, actors.livelihood.id), [alert])[alert_id]
        fms = alerts.readable_messages(s, s.get(User, actors.fm.id), [alert])[alert_id]
    assert REASON in mine
    assert REASON not in fms and "支援会議の開催の依頼があります" in fms and "livelihood" in fms


def test_one_request_at_a_time_and_a_reason_is_needed(sessions, actors, owned):
    with pytest.raises(ValidationFailed) as refused:
        _ask(sessions, actors.livelihood, owned, reason="  ")
    assert "reason" in refused.value.errors
    _ask(sessions, actors.livelihood, owned)
    with pytest.raises(Conflict, match="既にFMに支援会議の開催を依頼しています"):
        _ask(sessions, actors.livelihood, owned)


def test_only_those_working_on_the_case_may_ask_and_an_fm_convenes_instead(sessions, actors, owned, open_case):
    with pytest.raises(NotFound):  # a department that does not know of the case
        _ask(sessions, actors.children, owned)
    for who in (actors.fm, actors.admin):
        with pytest.raises(PermissionDenied):
            _ask(sessions, who, owned)
    waiting = open_case(categories=["poverty"])  # a sheet on its way: nobody owns it yet
    with pytest.raises(PermissionDenied):
        _ask(sessions, actors.livelihood, waiting)


def test_convening_the_meeting_resolves_the_request(sessions, actors, owned, fire):
    alert_id = _ask(sessions, actors.livelihood, owned)
    fire(actors.fm, owned, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}],
         minutes="話し合った。")
    with sessions() as s:
        alert = s.get(Alert, alert_id)
        assert (alert.status, alert.resolution_note) == ("resolved", "支援会議の開催により解決")


def test_the_case_page_asks_from_a_form_and_then_says_it_was_asked(web, actors, owned, sessions):
    client = web(actors.livelihood)
    page = text_of(client.get(f"/cases/{owned}"))
    assert "FMに支援会議の開催を依頼する" in page
    empty = client.post(f"/cases/{owned}/ask-meeting", {"reason": "", "version": case_version(sessions, owned)})
    assert empty.status_code == 422 and error_beside(empty, "ask", "reason")
    sent = client.post(f"/cases/{owned}/ask-meeting", {"reason": REASON, "version": case_version(sessions, owned)})
    assert sent.status_code == 303
    after = text_of(client.get(f"/cases/{owned}"))
    assert "FMに支援会議の開催を依頼しました" in after and "FMの対応待ち" in after
    assert "FMに支援会議の開催を依頼する" not in after.split("FMの対応待ち")[1]  # the form is gone meanwhile
    assert "支援会議の開催の依頼" in text_of(web(actors.fm).get("/dashboard"))
    with sessions() as s:
        assert s.get(Case, owned).state == "assigned"
