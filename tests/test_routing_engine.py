"""Routing in the engine: opening a case routes it by the rules in force, on the business calendar;
no match, 多機関協働 candidates, rule versions, and staff overriding a proposal — on a real database."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from sqlalchemy import func, select

from engine.calendar import JST
from engine.cases import intake, redirect
from engine.db import unit_of_work
from engine.errors import GuardRefused, MissingField, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Alert, AuditEvent, Case, CaseHistory, Department, Handoff, RoutingRuleVersion
from engine.rules import parser as rules_file
from engine.rules import ruleset as rules_data
from engine.rules import store as rules
from tests.conftest import CONFIG_DIR, NOW, intake_fields


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=JST).astimezone(timezone.utc)


def dept_id(session, code: str) -> int:
    return session.scalar(select(Department.id).where(Department.code == code))


def alerts_of(session, case_id: int) -> list[tuple[str, int | None]]:
    return [(a.kind, a.department_id) for a in
            session.scalars(select(Alert).where(Alert.case_id == case_id).order_by(Alert.id))]


def test_opening_a_case_routes_it_and_starts_the_stall_timers(open_case, sessions):
    case_id = open_case(categories=["poverty", "debt"])  # NOW: Monday 2026-11-30 10:00 JST
    with sessions() as s:
        case = s.get(Case, case_id)
        ruleset = rules_file.parse_rules_file(CONFIG_DIR / "routing.yaml", CONFIG_DIR)
        assert case.state == "handoff"
        assert case.routing_rule_name == "生活困窮・住まい"
        assert case.routing_reason == ruleset.rule("生活困窮・住まい").reason
        assert case.routing_rule_version == s.scalar(select(RoutingRuleVersion.number)) == 1
        assert case.proposed_department_id == dept_id(s, "livelihood")
        assert case.override_reason is None
        [handoff] = case.handoffs
        assert (handoff.state, handoff.primary, handoff.to_department_id) == ("sent", True, dept_id(s, "livelihood"))
        assert handoff.reason == case.routing_reason
        # 2 business days: Wednesday's close of office; escalation after 5: the next Monday's.
        assert handoff.due_at == jst(2026, 12, 2, 17, 15)
        assert handoff.escalate_at == jst(2026, 12, 7, 17, 15)
        assert [h.event for h in case.history] == ["open", "send_handoff"]
        assert alerts_of(s, case_id) == []


def test_urgent_case_is_due_after_four_office_hours(open_case, sessions):
    case_id = open_case(categories=["poverty"], urgency="urgent")
    with sessions() as s:
        [handoff] = s.get(Case, case_id).handoffs
        assert handoff.due_at == jst(2026, 11, 30, 14, 0)
        assert handoff.escalate_at == jst(2026, 12, 7, 17, 15)


def test_no_match_stays_in_intake_and_alerts_the_desk(open_case, sessions):
    case_id = open_case(categories=["other"])
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.state == "intake"
        assert case.handoffs == []
        assert (case.routing_rule_name, case.proposed_department_id) == (None, None)
        assert case.routing_reason == rules_data.NO_MATCH_REASON
        assert case.routing_rule_version == 1
        assert alerts_of(s, case_id) == [("unrouted", dept_id(s, "desk"))]


def test_multi_agency_combination_flags_the_case_and_alerts_the_fm(open_case, sessions):
    case_id = open_case(categories=["elder_care", "hikikomori"],
                        person={"name": "廿日 花子", "birth_date": "1946-05-01", "area": "大野"})
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.multi_agency_candidate is True
        assert case.routing_rule_name == "8050世帯"
        assert case.handoffs[0].to_department_id == dept_id(s, "elderly")
        assert case.history[-1].detail["notify"] == ["hikikomori_station"]
        [alert] = s.scalars(select(Alert).where(Alert.case_id == case_id))
        assert (alert.kind, alert.department_id, alert.status) == ("multi_agency_candidate", None, "open")
        assert "8050" in alert.message
    single = open_case(categories=["elder_care"], person={"name": "宮島 一", "birth_date": "1946-05-01"})
    with sessions() as s:
        assert s.get(Case, single).multi_agency_candidate is False
        assert alerts_of(s, single) == []


def test_a_decision_keeps_the_rules_version_that_made_it(open_case, sessions, tmp_path):
    before = open_case(categories=["poverty"])
    changed = tmp_path / "routing.yaml"
    changed.write_text((CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8").replace(
        "owner: livelihood", "owner: health"), encoding="utf-8")
    with unit_of_work(sessions) as s:
        row, added = rules.install_rules(s, changed, loaded_by="tests", config_dir=CONFIG_DIR)
        assert (row.number, added) == (2, True)
    after = open_case(categories=["poverty"])
    with sessions() as s:
        old, new = s.get(Case, before), s.get(Case, after)
        assert (old.routing_rule_version, old.handoffs[0].to_department_id) == (1, dept_id(s, "livelihood"))
        assert (new.routing_rule_version, new.handoffs[0].to_department_id) == (2, dept_id(s, "health"))
        assert old.proposed_department_id == dept_id(s, "livelihood")


def test_a_proposal_to_a_closed_department_leaves_the_case_with_the_desk(open_case, sessions):
    with unit_of_work(sessions) as s:
        s.scalar(select(Department).where(Department.code == "livelihood")).active = False
    case_id = open_case(categories=["poverty"])
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.state == "intake"
        assert case.routing_rule_name == "生活困窮・住まい"
        assert case.proposed_department_id == dept_id(s, "livelihood")
        assert "受け付けていない" in case.routing_reason
        assert alerts_of(s, case_id) == [("unrouted", dept_id(s, "desk"))]


def test_rules_that_no_longer_fit_the_config_never_block_an_intake(open_case, sessions, tmp_path, monkeypatch):
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    deps = yaml.safe_load((config / "departments.yaml").read_text(encoding="utf-8"))
    deps["departments"] = [d for d in deps["departments"] if d["code"] != "health"]
    (config / "departments.yaml").write_text(yaml.safe_dump(deps, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("TSUNAGU_CONFIG_DIR", str(config))
    case_id = open_case(categories=["poverty"])
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.state == "intake"
        assert "設定と合わない" in case.routing_reason
        assert alerts_of(s, case_id) == [("unrouted", dept_id(s, "desk"))]


# --- staff override of the proposal ---------------------------------------------------------------


def _declined(open_case, fire, actors) -> int:
    """A poverty case the rules sent to 生活福祉課, declined back to intake."""
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "decline_handoff", reason="住まいの相談が中心のため")
    return case_id


def test_sending_elsewhere_than_the_proposal_needs_a_reason(open_case, fire, actors, sessions):
    case_id = _declined(open_case, fire, actors)
    sheet = {"to_department": "health", "reason": "居場所づくりが中心", "summary": "家賃滞納"}
    with pytest.raises(MissingField) as err:  # a つなぐ理由 of spaces is none, and cannot stand for the override's
        fire(actors.window, case_id, "send_handoff", **{**sheet, "reason": " "})
    assert set(err.value.errors) == {"reason"}
    assert fire(actors.window, case_id, "send_handoff", override_reason="生活福祉課から返送されたため",
                **sheet) == "handoff"
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.override_reason == "生活福祉課から返送されたため"
        assert case.proposed_department_id == dept_id(s, "livelihood")
        assert case.routing_rule_name == "生活困窮・住まい"
        assert case.history[-1].detail["override_reason"] == "生活福祉課から返送されたため"
        assert case.history[-1].detail["proposed_department"] == "livelihood"
        [audit_row] = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.routing_override"))
        assert audit_row.detail == {"proposed": "livelihood", "to": "health"}
        assert audit_row.actor_id == actors.window.id
    # Back to the proposal: no reason needed, nothing recorded as an override.
    fire(actors.health, case_id, "decline_handoff", reason="所管外")
    fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="再送", summary="家賃滞納")


def test_without_an_override_reason_the_sheets_reason_serves(open_case, fire, actors, sessions):
    """API.md names send_handoff's fields as to_department, reason, summary: those alone can send elsewhere."""
    case_id = _declined(open_case, fire, actors)
    assert fire(actors.window, case_id, "send_handoff", to_department="health", reason="居場所づくりが中心",
                summary="家賃滞納") == "handoff"
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.override_reason == "居場所づくりが中心"
        assert case.history[-1].detail["override_reason"] == "居場所づくりが中心"
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "case.routing_override")) == 1


def test_override_routing_redirects_a_waiting_handoff(open_case, actors, sessions):
    case_id = open_case(categories=["poverty"])
    later = NOW + timedelta(days=1)  # Tuesday 10:00 JST
    with unit_of_work(sessions) as s:
        version = s.get(Case, case_id).version
        case = redirect.override_routing(s, actors.window, case_id, to_department="health",
                                                 reason="本人が社協の居場所を希望", version=version, now=later)
        assert case.state == "handoff"
    with sessions() as s:
        case = s.get(Case, case_id)
        old, new = case.handoffs
        assert (old.state, old.withdrawn_at) == ("withdrawn", later)
        assert (new.state, new.to_department_id, new.primary) == ("sent", dept_id(s, "health"), True)
        assert (new.due_at, new.escalate_at) == (jst(2026, 12, 3, 17, 15), jst(2026, 12, 8, 17, 15))
        assert case.open_primary_handoff is new
        assert case.override_reason == "本人が社協の居場所を希望"
        assert case.proposed_department_id == dept_id(s, "livelihood")
        assert [h.event for h in case.history][-2:] == ["handoff.redirect", "routing_override"]
        assert case.history[-1].detail["withdrawn_from"] == "livelihood"
        [audit_row] = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.routing_override"))
        assert audit_row.detail == {"proposed": "livelihood", "to": "health", "withdrawn_from": "livelihood"}
        assert s.scalars(select(Handoff).where(Handoff.case_id == case_id, Handoff.state == "sent")).all() == [new]


def test_override_routing_from_intake_fires_send_handoff(open_case, fire, actors, sessions):
    case_id = _declined(open_case, fire, actors)
    with unit_of_work(sessions) as s:
        version = s.get(Case, case_id).version
        redirect.override_routing(s, actors.fm, case_id, to_department="health", reason="FM判断",
                                          version=version, now=NOW)
    with sessions() as s:
        case = s.get(Case, case_id)
        assert (case.state, case.override_reason) == ("handoff", "FM判断")
        assert case.history[-1].event == "send_handoff"


@pytest.mark.parametrize("who,kwargs,error", [
    ("livelihood", {}, PermissionDenied),  # the receiving department declines instead
    ("admin", {}, PermissionDenied),
    ("window", {"reason": "  "}, MissingField),
    ("window", {"to_department": "livelihood"}, ValidationFailed),  # that is the proposal
    ("window", {"to_department": "nowhere"}, ValidationFailed),
    ("window", {"version": 0}, StaleVersion),
])
def test_override_routing_refusals(open_case, actors, sessions, who, kwargs, error):
    case_id = open_case(categories=["poverty"])
    with sessions() as s:
        before = s.get(Case, case_id).version
    args = {"to_department": "health", "reason": "理由", "version": before, **kwargs}
    with pytest.raises(error), unit_of_work(sessions) as s:
        redirect.override_routing(s, getattr(actors, who), case_id, now=NOW, **args)
    with sessions() as s:
        assert s.get(Case, case_id).version == before


def test_no_override_once_a_department_accepted(open_case, fire, actors, sessions):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    with pytest.raises(GuardRefused), unit_of_work(sessions) as s:
        redirect.override_routing(s, actors.fm, case_id, to_department="health", reason="r",
                                          version=s.get(Case, case_id).version, now=NOW)


def test_a_sheet_sent_by_another_department_is_withdrawn_only_by_it_or_an_fm(sessions, actors):
    with unit_of_work(sessions) as s:  # taken at 生活福祉課's own window
        case_id = intake.open_case(s, actors.livelihood, intake_fields(categories=["hikikomori"]), now=NOW).id
    with pytest.raises(PermissionDenied), unit_of_work(sessions) as s:
        redirect.override_routing(s, actors.window, case_id, to_department="health", reason="r",
                                          version=s.get(Case, case_id).version, now=NOW)
    with unit_of_work(sessions) as s:
        redirect.override_routing(s, actors.livelihood, case_id, to_department="health", reason="r",
                                          version=s.get(Case, case_id).version, now=NOW)
        assert s.scalar(select(CaseHistory.event).where(CaseHistory.case_id == case_id)
                        .order_by(CaseHistory.id.desc()).limit(1)) == "routing_override"
