"""The access matrix (tests/access_matrix.py), asserted through the engine's read models and services.

For each role, every (record kind, read/write) cell is tried in its own transaction. Reads go through the
one read path the pages and the API use (engine.cases.reading): a kind the role may not read is missing from
what it is shown (FORBIDDEN), a case it may not know of raises NotFound. A refused write raises the
expected error, leaves the database exactly as it was, and is then recorded by refusals.record_refusal as
the web layer does. The role's whole case view is checked too: a
planted word of a record kind appears in it only where the matrix lets the role read that kind.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import access
from engine.audit import refusals, trail
from engine.cases import amend, joins, meetings, notes, reading
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.errors import NotFound, PermissionDenied, SecrecyNotAcknowledged
from engine.models import ApiClient, AuditEvent, AuditHead, Base, Case, User
from engine.referrals import intake as referrals
from tests import access_matrix as M
from tests.conftest import NOW

FUTURE = (NOW + timedelta(days=90)).date().isoformat()


@pytest.fixture
def world(sessions, make_user):
    return M.build_world(sessions, make_user, NOW)


def actor_for(s, world: M.World, role: str):
    if role == "referral_client":
        return access.actor_for_client(s.get(ApiClient, world.client_id))
    return s.scalar(select(User).where(User.login == world.logins[role]))


def _version(s, case_id):
    return s.get(Case, case_id).version


def _referral(s, a, w):
    """The referrer's own read of its referral (status and owner)."""
    return referrals.get(s, a.client, w.case_id)


def _part(part: str):
    """A record kind as the one read path shows it: reading.read_case's view holds the part or not."""
    def read(s, a, w):
        if part == "case_metadata" and isinstance(a, access.ClientActor):
            return _referral(s, a, w)
        file = reading.read_case(s, a, w.case_id)
        shown = {"case_metadata": True, "case_content": file.content}.get(part, part in file.view)
        return file.view if shown else NOT_SHOWN
    return read


def _meeting(s, a, w):
    record = reading.read_meeting(s, a, w.meeting_id)
    if record.must_acknowledge:
        return NOT_ACKNOWLEDGED
    return record.summary if record.summary["readable"] else NOT_SHOWN


NOT_SHOWN, NOT_ACKNOWLEDGED = object(), object()  # a read that shows the reader nothing of that kind
READS = {
    "case_metadata": _part("case_metadata"),
    "case_content": _part("case_content"),
    "support_meeting": _meeting,
    "consent": _part("consents"),
    "plan": _part("plan"),
    "contact_notes": _part("contact_notes"),
    "shared_facts": _part("shared_facts"),
}
WRITES = {
    # 社協: covered by the case's consent (a department outside it may not be asked: test_join_offers).
    "case_metadata": lambda s, a, w: joins.request_join(s, a, w.case_id, to_department="shakyo",
                                                           reason="居場所の支援", summary="通院の支援", now=NOW),
    "case_content": lambda s, a, w: amend.amend_case(s, a, w.case_id, version=_version(s, w.case_id),
                                                        summary="修正後の要約", now=NOW),
    # The secretariat's act: add a member (who reads nothing before acknowledging the 守秘義務).
    "support_meeting": lambda s, a, w: meetings.add_meeting_member(s, a, w.meeting_id, "m-receiving", now=NOW),
    "consent": lambda s, a, w: firing.fire_event(s, a, w.case_id, "withdraw_consent",
                                                   version=_version(s, w.case_id), fields={"given_by": "本人"},
                                                   now=NOW),
    "plan": lambda s, a, w: firing.fire_event(s, a, w.case_id, "evaluate", version=_version(s, w.case_id),
                                                fields={"goals_met": "partly", "decision": "continue",
                                                        "next_evaluation_date": FUTURE}, now=NOW),
    "contact_notes": lambda s, a, w: notes.add_contact_note(s, a, w.case_id,
                                                               {"method": "phone", "body": "電話で様子を確認"},
                                                               now=NOW),
    "shared_facts": lambda s, a, w: meetings.carry_fact(s, a, w.meeting_id, "日中は在宅", now=NOW),
}
ERRORS = {M.NOT_FOUND: NotFound, M.FORBIDDEN: PermissionDenied, M.SECRECY: SecrecyNotAcknowledged}


def fingerprint(s) -> tuple:
    """Every table's row count, the case versions and the audit head: what a refusal must leave alone."""
    counts = tuple(s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables)
    versions = tuple(s.execute(select(Case.id, Case.version).order_by(Case.id)).all())
    head = s.get(AuditHead, 1)
    return counts, versions, (head.seq, head.hash)


def outcome_of(exc) -> str:
    if isinstance(exc, SecrecyNotAcknowledged):
        return M.SECRECY
    if isinstance(exc, PermissionDenied):
        return M.FORBIDDEN
    if isinstance(exc, NotFound):
        return M.NOT_FOUND
    return f"unexpected {type(exc).__name__}: {exc}"


def test_matrix_covers_every_role_kind_and_operation():
    assert set(M.EXPECTED) == {(r, k, o) for r in M.ROLES for k in M.KINDS for o in M.OPS}
    assert set(M.OPERATIONS) == {(k, o) for k in M.KINDS for o in M.OPS}
    assert set(READS) == set(WRITES) == set(M.KINDS)


@pytest.mark.parametrize("role", list(M.ROLES))
def test_role_against_the_matrix(world, sessions, role):
    mismatches = []
    refused = 0
    for kind in M.KINDS:
        for op, table in (("read", READS), ("write", WRITES)):
            expected = M.EXPECTED[(role, kind, op)]
            with sessions() as s:
                actor = actor_for(s, world, role)
                before = fingerprint(s)
                try:
                    result = table[kind](s, actor, world)
                    got = {id(NOT_SHOWN): M.FORBIDDEN, id(NOT_ACKNOWLEDGED): M.SECRECY}.get(id(result), M.ALLOW)
                except Exception as exc:  # noqa: BLE001 — every refusal is compared with the matrix
                    got = outcome_of(exc)
                    if got in ERRORS and fingerprint(s) != before:
                        mismatches.append(f"{kind}.{op}: refused but changed the database")
                    if got in ERRORS:
                        s.rollback()
                        refusals.record_refusal(s, actor, exc, action=f"{kind}.{op}", case_id=world.case_id)
                        s.commit()
                        refused += 1
                else:
                    if op == "read" and kind != "case_metadata":
                        assert result is not None
                    s.rollback()
            if got != expected:
                mismatches.append(f"{kind}.{op}: expected {expected}, got {got}")
    assert not mismatches, f"{role} ({M.ROLES[role]}):\n" + "\n".join(mismatches)
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
        assert len(rows) == refused
        assert all(set(r.detail) == {"code", "status"} for r in rows)
        assert trail.verify(s).ok


@pytest.mark.parametrize("role", list(M.ROLES))
def test_case_view_shows_only_the_kinds_the_matrix_opens(world, sessions, role):
    with sessions() as s:
        actor = actor_for(s, world, role)
        if M.EXPECTED[(role, "case_metadata", "read")] == M.NOT_FOUND:
            with pytest.raises(NotFound):
                reading.read_case(s, actor, world.case_id)
            return
        view = READS["case_metadata"](s, actor, world)
        text = json.dumps(view, ensure_ascii=False)
        for name, word in M.MARKERS.items():
            allowed = M.EXPECTED[(role, M.marker_kind(name), "read")] == M.ALLOW
            if isinstance(actor, access.ClientActor):
                allowed = False  # the referrer's view never carries records
            assert (word in text) == allowed, f"{role}: {name} {'missing from' if allowed else 'leaked into'} the view"
        assert (world.person_name in text) == (M.EXPECTED[(role, "case_content", "read")] == M.ALLOW)
        # Metadata for everyone who sees the case: state, departments and handoff dates.
        assert view["status"] == "accompaniment" and view["owning_department"]["code"] == "livelihood"
        if "handoffs" in view:
            assert view["handoffs"][0]["to_department"]["code"] == "livelihood" and view["handoffs"][0]["sent_at"]


def test_reads_of_content_are_audited_without_content(world, sessions):
    with unit_of_work(sessions) as s:
        receiving = actor_for(s, world, "receiving")
        fm_other = actor_for(s, world, "fm_other")
        trail.bind(s, remote_addr="10.0.0.7")
        reading.read_case(s, receiving, world.case_id)
        reading.read_case(s, fm_other, world.case_id)  # metadata only: not a read of content
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.read")).all()
        assert [(r.actor_label, r.action, r.remote_addr) for r in rows] == [("m-receiving", "case.read", "10.0.0.7")]
        assert rows[0].detail["parts"] == ["case_content", "consent", "plan", "contact_notes", "shared_facts"]
        everything = json.dumps([r.detail for r in s.scalars(select(AuditEvent))], ensure_ascii=False)
        everything += json.dumps([r.actor_label for r in s.scalars(select(AuditEvent))], ensure_ascii=False)
        for word in [*M.MARKERS.values(), world.person_name, "ハツカ", "0001234567"]:
            assert word not in everything
