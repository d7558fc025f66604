"""参加支援: matches to a 協力事業者 recorded and ended by those who drive the plan, read with the plan,
counted by host in the yearly figures; ended when the case closes."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.cases import participation, views
from engine.db import unit_of_work
from engine.errors import GuardRefused, NotFound, PermissionDenied, ValidationFailed
from engine.models import AuditEvent, Case, ParticipationMatch
from engine.reports import yearly as reports
from tests.conftest import NOW
from tests.pages_support import app, count, error_beside, form_token, text_of, web  # noqa: F401  (fixtures)


@pytest.fixture
def accompanied(open_case, fire, actors):
    case_id = open_case(categories=["hikikomori"], person={"name": "参加 花子"}, now=NOW - timedelta(days=60))
    fire(actors.hikikomori, case_id, "accept_handoff")
    fire(actors.hikikomori, case_id, "record_consent", given_by="本人", method="written",
         agencies=["hikikomori_station", "shakyo"])
    fire(actors.hikikomori, case_id, "adopt_plan", goals="「週に一度は外に出たい」", main_department="hikikomori_station",
         next_evaluation_date="2027-03-01", roles=[{"department": "hikikomori_station", "role": "伴走"}])
    return case_id


def add(sessions, actor, case_id, **fields):
    with unit_of_work(sessions) as s:
        return participation.add_match(s, s.merge(actor), case_id, fields, now=NOW).id


def test_the_owner_records_and_ends_a_match_and_the_covered_agency_reads_it(accompanied, sessions, actors, fire):
    match_id = add(sessions, actors.hikikomori, accompanied, host="community_salon", activity="サロンの受付を手伝う",
                   started_on="2026-11-20")
    with sessions() as s:
        case = s.get(Case, accompanied)
        assert "participation" in case.business_categories

        shakyo = views.case_view(s, s.merge(actors.shakyo), case, [])
        assert [(m["host_name"], m["started_on"], m["ended_on"]) for m in shakyo["participation"]] == [
            ("地域の居場所・サロン", "2026-11-20", None)]
    with pytest.raises(PermissionDenied), unit_of_work(sessions) as s:  # reads it, but does not drive the plan
        participation.add_match(s, s.merge(actors.shakyo), accompanied, {"host": "other", "activity": "x"}, now=NOW)
    with unit_of_work(sessions) as s:
        participation.end_match(s, s.merge(actors.hikikomori), accompanied, match_id, "2026-11-29", now=NOW)
    with pytest.raises(GuardRefused), unit_of_work(sessions) as s:
        participation.end_match(s, s.merge(actors.hikikomori), accompanied, match_id, None, now=NOW)
    with sessions() as s:
        assert list(s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("participation.%"))
                              .order_by(AuditEvent.seq))) == [
            "participation.add", "participation.end"]
        figures = {(t, label): n for t, label, n in reports.yearly(s, s.merge(actors.fm), 2026).csv_rows()}
    assert figures[("参加支援", "マッチング 計")] == 1
    assert figures[("参加支援", "協力事業者: 地域の居場所・サロン")] == 1


def test_a_match_is_checked_field_by_field_and_writes_nothing_when_refused(accompanied, sessions, actors):
    with pytest.raises(ValidationFailed) as err, unit_of_work(sessions) as s:
        participation.add_match(s, s.merge(actors.hikikomori), accompanied,
                                {"host": "casino", "activity": " ", "started_on": "2026-11-25",
                                 "ended_on": "2026-11-01"}, now=NOW)
    assert err.value.errors == {"host": ["「casino」という協力事業者はコード表にありません。"],
                                "activity": ["必須項目です。"], "ended_on": ["終了日は開始日以降の日付にしてください。"]}
    with pytest.raises(ValidationFailed) as err, unit_of_work(sessions) as s:
        participation.add_match(s, s.merge(actors.hikikomori), accompanied,
                                {"host": "other", "activity": "a", "started_on": "2027-01-01"}, now=NOW)
    assert err.value.errors == {"started_on": ["未来の日付は記録できません。"]}
    assert count(sessions, ParticipationMatch) == 0


def test_only_in_accompaniment_and_a_closure_ends_the_matches(accompanied, open_case, sessions, actors, fire):
    other = open_case(categories=["poverty"])
    fire(actors.livelihood, other, "accept_handoff")
    with pytest.raises(GuardRefused), unit_of_work(sessions) as s:
        participation.add_match(s, s.merge(actors.livelihood), other, {"host": "other", "activity": "a"}, now=NOW)
    with pytest.raises(NotFound), unit_of_work(sessions) as s:  # a case out of sight
        participation.add_match(s, s.merge(actors.children), accompanied, {"host": "other", "activity": "a"}, now=NOW)
    add(sessions, actors.hikikomori, accompanied, host="nagasuta", activity="居場所に通う")
    fire(actors.hikikomori, accompanied, "close", close_reason="goal_met")
    with sessions() as s:
        assert [m.ended_on for m in s.scalars(select(ParticipationMatch))] == [NOW.date()]


def test_the_case_page_records_a_match_once_and_marks_a_mistake_beside_its_input(accompanied, web, actors, sessions):
    client = web(actors.hikikomori)
    page = client.get(f"/cases/{accompanied}")
    assert "参加支援を記録する" in text_of(page)
    token = form_token(page, f"/cases/{accompanied}/participation")
    bad = client.post(f"/cases/{accompanied}/participation", {"host": "", "activity": "畑の作業", "submission_token": token})
    assert bad.status_code == 422 and error_beside(bad, "match", "host") == "必須項目です。"
    form = {"host": "partner_farm", "activity": "畑の作業", "started_on": "令和8年11月27日", "submission_token": token}
    assert client.post(f"/cases/{accompanied}/participation", form).status_code == 303
    again = client.post(f"/cases/{accompanied}/participation", form)
    assert again.status_code == 303 and count(sessions, ParticipationMatch) == 1
    shown = text_of(client.get(f"/cases/{accompanied}"))
    assert "協力農園" in shown and "令和8年11月27日〜（継続中）" in shown
    assert "参加支援を記録する" not in text_of(web(actors.shakyo).get(f"/cases/{accompanied}"))


def test_a_match_cannot_start_before_the_case_was_opened(accompanied, sessions, actors):
    with pytest.raises(ValidationFailed) as err, unit_of_work(sessions) as s:
        participation.add_match(s, s.merge(actors.hikikomori), accompanied,
                                {"host": "other", "activity": "a", "started_on": "2020-01-01"}, now=NOW)
    assert err.value.errors == {"started_on": ["開始日は相談を受け付けた日（令和8年10月1日）以降の日付にしてください。"]}


def test_someone_who_may_not_record_is_refused_whatever_the_form_holds(accompanied, web, actors, sessions):
    """The permission comes first: a covered agency reads the matches but a form of its own, good or bad, is
    403 and recorded as a refusal; a department out of sight gets 404."""
    before = count(sessions, AuditEvent, AuditEvent.outcome == "refused")
    shakyo = web(actors.shakyo)
    assert shakyo.post(f"/cases/{accompanied}/participation", {"host": ""}).status_code == 403
    assert shakyo.post(f"/cases/{accompanied}/participation/1/end", {"ended_on": "bad"}).status_code == 403
    assert web(actors.children).post(f"/cases/{accompanied}/participation", {"host": ""}).status_code == 404
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused") == before + 3
    assert count(sessions, ParticipationMatch) == 0


def test_the_error_summary_of_the_match_forms_links_to_their_inputs(accompanied, web, actors, sessions):
    """Each line of the summary at the top goes to the input it is about and is named by its label: the
    match form's inputs are match-*, a match's end form's end<id>-*."""
    from tests.test_pages_forms import _summary

    client = web(actors.hikikomori)
    r = client.post(f"/cases/{accompanied}/participation", {"host": "", "activity": "畑の作業",
                                                            "submission_token": "t" * 20})
    assert r.status_code == 422
    assert _summary(r) == [("match-host", "協力事業者: 必須項目です。")]
    assert 'id="match-host"' in r.get_data(as_text=True)
    match_id = add(sessions, actors.hikikomori, accompanied, host="partner_farm", activity="畑の作業")
    r = client.post(f"/cases/{accompanied}/participation/{match_id}/end", {"ended_on": "いつか"})
    assert r.status_code == 422
    [(target, line)] = _summary(r)
    assert target == f"end{match_id}-ended_on" and line.startswith("終了日: ")
    assert f'id="end{match_id}-ended_on"' in r.get_data(as_text=True)
