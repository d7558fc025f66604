"""The sharing matrix (tests/sharing_matrix.py), cell by cell, through the engine: each share with a body
outside the city goes only on a basis, and a refused one changes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.alerts import notices
from engine.cases import joins, meetings, reading
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.errors import GuardRefused, NotFound
from engine.models import Case, CaseNotice, Department, Meeting, Provision
from tests import sharing_matrix as M
from tests.conftest import NOW

_user = M.user


@pytest.fixture
def world(sessions, actors):
    """world(body kind, basis, *, consent_needed) → a case the desk holds, set up as the basis says."""
    return lambda kind, basis, consent_needed=False: M.build_world(sessions, kind, basis,
                                                                   consent_needed=consent_needed)


def send_sheet(sessions, w: M.World) -> str:
    with unit_of_work(sessions) as s:
        try:
            firing.fire_event(s, _user(s, "window"), w.case_id, "send_handoff", version=s.get(Case, w.case_id).version,
                              fields={"to_department": w.body, "reason": "理由", "summary": "要約",
                                      "basis": M.chosen(w.basis)}, now=NOW)
        except GuardRefused:
            s.rollback()
            return M.REFUSE
    return M.ALLOW


def ask_to_join(sessions, w: M.World) -> str:
    with unit_of_work(sessions) as s:
        try:
            joins.request_join(s, _user(s, "window"), w.case_id, to_department=w.body, reason="理由", summary="要約",
                               basis=M.chosen(w.basis), now=NOW)
        except GuardRefused:
            s.rollback()
            return M.REFUSE
    return M.ALLOW


def read(sessions, w: M.World, what: str) -> str:
    send_sheet(sessions, w)  # as far as the basis lets it go
    with sessions() as s:
        try:
            file = reading.read_case(s, _user(s, w.login), w.case_id)
        except NotFound:
            return M.REFUSE
        shown = file.content and M.NAME in str(file.view)
        return M.ALLOW if what == "read_metadata" or shown else M.REFUSE


def carry(sessions, w: M.World) -> str:
    with unit_of_work(sessions) as s:
        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == w.case_id))
        meetings.carry_fact(s, _user(s, "fm"), meeting_id, M.FACT, now=NOW)
    with sessions() as s:
        try:
            view = reading.read_case(s, _user(s, w.login), w.case_id).view
        except NotFound:
            return M.REFUSE
        return M.ALLOW if M.FACT in str(view.get("shared_facts")) else M.REFUSE


def tell(sessions, w: M.World) -> str:
    if w.basis == "statute":  # the desk gave the body the case on a statute, which stays its basis
        assert ask_to_join(sessions, w) == M.ALLOW
    with unit_of_work(sessions) as s:
        body = s.scalar(select(Department).where(Department.code == w.body))
        notices.notify(s, _user(s, "window"), s.get(Case, w.case_id), [body], reason=M.REASON, now=NOW)
    with sessions() as s:
        reason = s.scalar(select(CaseNotice.reason).where(CaseNotice.case_id == w.case_id))
        return M.ALLOW if reason == M.REASON else M.REFUSE


def outcome(sessions, world, kind: str, basis: str, action: str) -> str:
    w = world(kind, basis, consent_needed=action == "carry_fact")
    return {
        "read_content": lambda: read(sessions, w, "read_content"),
        "read_metadata": lambda: read(sessions, w, "read_metadata"),
        "receive_sheet": lambda: send_sheet(sessions, w),
        "join": lambda: ask_to_join(sessions, w),
        "carry_fact": lambda: carry(sessions, w),
        "be_told": lambda: tell(sessions, w),
    }[action]()


def test_the_matrix_covers_every_body_basis_and_action():
    assert set(M.EXPECTED) == {(k, b, a) for k in M.BODIES for b in M.BASES for a in M.ACTIONS}


@pytest.mark.parametrize("kind, basis, action", M.CELLS)
def test_cell(sessions, world, kind, basis, action):
    assert outcome(sessions, world, kind, basis, action) == M.EXPECTED[(kind, basis, action)]


@pytest.mark.parametrize("kind", ["commissioned", "partner"])
def test_every_share_outside_the_city_is_recorded_with_its_basis(sessions, world, kind):
    """A sheet, a join, a notice's text on a statute; each provision names what, to whom and why."""
    w = world(kind, "statute")
    assert send_sheet(sessions, w) == M.ALLOW
    w2 = world(kind, "statute")
    assert ask_to_join(sessions, w2) == M.ALLOW
    with sessions() as s:
        rows = s.scalars(select(Provision).where(Provision.case_id.in_((w.case_id, w2.case_id)))
                         .order_by(Provision.id)).all()
        assert [(r.what, r.basis, r.basis_code, r.basis_note) for r in rows] == [
            ("sheet", "statute", "emergency", M.STATUTE["note"]), ("join", "statute", "emergency", M.STATUTE["note"])]
        assert all(s.get(Department, r.department_id).code == w.body for r in rows)
        assert all(r.given_by_id == _user(s, "window").id for r in rows)


@pytest.mark.parametrize("kind", ["commissioned", "partner"])
def test_a_refused_share_leaves_everything_as_it_was(sessions, world, kind):
    w = world(kind, "none")
    with sessions() as s:
        before = [s.scalar(select(func.count()).select_from(t)) for t in (Provision, CaseNotice)] + [
            s.get(Case, w.case_id).version]
    assert send_sheet(sessions, w) == M.REFUSE and ask_to_join(sessions, w) == M.REFUSE
    with sessions() as s:
        after = [s.scalar(select(func.count()).select_from(t)) for t in (Provision, CaseNotice)] + [
            s.get(Case, w.case_id).version]
    assert after == before
