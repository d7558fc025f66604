"""The engine parts behind the pages: routing proposals, the content filter, one-time form keys."""
from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from engine import access, routing
from engine.cases import intake, submissions, window
from engine.cases import lists as caselist
from engine.db import unit_of_work
from engine.errors import PermissionDenied, ValidationFailed
from engine.models import Alert, AuditEvent, Case, FormSubmission, Meeting, MeetingMember, User
from engine.rules import ruleset
from engine.rules import store as rules
from engine.worklists.inbox import business_age
from tests.conftest import NOW, intake_fields
from tests.pages_support import case_in  # noqa: F401  (fixture)


@pytest.mark.parametrize("cats,owner", [
    (["poverty"], "livelihood"),
    (["elder_care", "hikikomori"], "elderly"),
    (["other"], None),
])
def test_a_proposal_is_what_routing_would_do_and_writes_nothing(sessions, actors, cats, owner):
    facts = ruleset.RoutingFacts(categories=tuple(cats), primary_category=cats[0], area="廿日市",
                                 birth_date=date(1960, 5, 1), source="window", urgency="normal", on=NOW.date())
    with unit_of_work(sessions) as s:
        before = [s.scalar(select(func.count()).select_from(m)) for m in (Case, Alert, AuditEvent)]
        proposal = routing.propose(s, facts)
        assert [s.scalar(select(func.count()).select_from(m)) for m in (Case, Alert, AuditEvent)] == before
        assert not s.new and not s.dirty
        assert proposal.rule_version == 1
        assert (proposal.owner.code if proposal.owner else None) == owner

        case = intake.open_case(s, actors.window, intake_fields(categories=cats), now=NOW)
        assert case.routing_reason == proposal.decision.reason
        assert case.proposed_department_id == (proposal.owner.id if proposal.owner else None)


def test_preview_refuses_what_open_case_would_refuse(sessions, actors):
    with unit_of_work(sessions) as s:
        with pytest.raises(ValidationFailed) as exc:
            window.preview(s, actors.window, intake_fields(categories=[], summary=""), now=NOW)
        assert set(exc.value.errors) == {"categories", "summary"}
        with pytest.raises(PermissionDenied):
            window.preview(s, actors.admin, intake_fields(), now=NOW)


def test_the_content_filter_agrees_with_case_sight(sessions, actors, case_in):
    ids = [case_in(state) for state in ("intake", "handoff", "assigned", "support_meeting", "layered_meeting",
                                        "accompaniment", "closed")]
    with unit_of_work(sessions) as s:
        # An FM who is only an invited (not yet acknowledged) member must not read content.
        meeting = s.scalars(select(Meeting)).first()
        s.add(MeetingMember(meeting_id=meeting.id, user_id=actors.fm2.id, department_id=actors.fm2.department_id))
    people = [actors.window, actors.elderly, actors.livelihood, actors.hikikomori, actors.shakyo, actors.fm,
              actors.fm2, actors.admin]
    with unit_of_work(sessions) as s:
        for person in people:
            user = s.get(User, person.id)
            by_filter = set(s.scalars(select(Case.id).where(access.content_cases_filter(s, user))))
            visible = set(s.scalars(select(Case.id).where(access.visible_cases_filter(s, user))))
            by_sight = {i for i in ids if access.case_sight(s, user, s.get(Case, i)) >= access.Sight.CONTENT}
            assert by_filter == by_sight, user.login
            assert by_filter <= visible, user.login


def test_a_form_key_is_claimed_once_even_by_two_requests_at_the_same_time(sessions, actors, case_in):
    case_id = case_in("assigned")
    token = submissions.new_token()
    first = sessions()
    claim = submissions.claim(first, actors.livelihood, token, "contact_note")
    outcome = {}

    def second():
        with sessions() as s:
            try:
                submissions.claim(s, actors.livelihood, token, "contact_note")
                outcome["second"] = "claimed"
                s.commit()
            except submissions.AlreadySubmitted as exc:
                outcome["second"] = exc.case_id
                s.rollback()

    t = threading.Thread(target=second)
    t.start()
    t.join(0.5)
    assert t.is_alive()  # waits for the first request's transaction to end
    submissions.settle(first, claim, case_id)
    first.commit()
    first.close()
    t.join(20)
    assert outcome == {"second": case_id}
    with unit_of_work(sessions) as s:
        assert s.scalar(select(func.count()).select_from(FormSubmission)) == 1


def test_a_rolled_back_claim_frees_the_key(sessions, actors):
    token = submissions.new_token()
    with sessions() as s:
        submissions.claim(s, actors.window, token, "intake")
        s.rollback()
    with unit_of_work(sessions) as s:
        submissions.claim(s, actors.window, token, "intake")
    with unit_of_work(sessions) as s:
        with pytest.raises(submissions.AlreadySubmitted):
            submissions.claim(s, actors.window, token, "intake")
        # The same key is another person's own.
        submissions.claim(s, actors.fm, token, "intake")


def test_both_ways_of_gathering_a_list_page_agree(sessions, actors, open_case, monkeypatch):

    for i in range(5):
        open_case(categories=["poverty"], now=NOW if i % 2 else NOW - timedelta(days=i))
    with unit_of_work(sessions) as s:
        user = s.get(User, actors.livelihood.id)
        for flt in (caselist.CaseFilters(), caselist.CaseFilters(state="handoff"), caselist.CaseFilters(q="はつか")):
            seen = {}
            for limit in (0, 10 ** 6):  # always walk the updated_at index / always gather first
                monkeypatch.setattr(caselist, "FILTER_FIRST", limit)
                pages = [caselist.search_cases(s, user, flt, page=p, per_page=2) for p in (1, 2, 3)]
                seen[limit] = ([[r.id for r in pg.rows] for pg in pages], pages[0].total)
            assert seen[0] == seen[10 ** 6], flt
            assert sum(len(p) for p in seen[0][0]) == 5 and seen[0][1] == 5


def test_the_inbox_counts_business_days_as_the_calendar_does():
    from datetime import datetime, timezone

    cal = rules.business_calendar()
    now = datetime(2027, 1, 6, 3, 0, tzinfo=timezone.utc)  # past the 12/29–1/3 closure and New Year's Day
    starts = [now - timedelta(days=d, hours=h) for d in range(0, 45, 2) for h in (0, 5, 16)]
    starts.append(now + timedelta(hours=1))
    age = business_age(starts, now)
    assert [age(s) for s in starts] == [cal.business_days_between(s, now) for s in starts]
    assert business_age([], now) is not None


def test_a_persons_form_keys_past_a_day_go_when_they_next_claim_one(sessions, actors):
    with unit_of_work(sessions) as s:
        submissions.claim(s, actors.window, "old-key", "intake", now=NOW - timedelta(days=2))
        submissions.claim(s, actors.window, "recent-key", "intake", now=NOW - timedelta(hours=3))
        submissions.claim(s, actors.fm, "someone-elses-old-key", "intake", now=NOW - timedelta(days=2))
    with unit_of_work(sessions) as s:
        submissions.claim(s, actors.window, "new-key", "intake", now=NOW)
    with sessions() as s:
        kept = set(s.scalars(select(FormSubmission.token)))
    assert kept == {"recent-key", "new-key", "someone-elses-old-key"}
    # A key still kept is still refused a second time.
    with unit_of_work(sessions) as s:
        with pytest.raises(submissions.AlreadySubmitted):
            submissions.claim(s, actors.window, "recent-key", "intake", now=NOW)
