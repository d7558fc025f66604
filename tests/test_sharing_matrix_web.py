"""The sharing matrix (tests/sharing_matrix.py) through the staff pages: what each body's staff reads, and
what the desk's forms send or refuse (409, the reason beside the input; nothing written)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.db import unit_of_work
from engine.models import Case, Handoff, Provision
from tests import sharing_matrix as M
from tests.pages_support import app, text_of, web  # noqa: F401  (fixtures)


def _version(sessions, case_id):
    with sessions() as s:
        return s.get(Case, case_id).version


def _staff(sessions, login):
    with sessions() as s:
        return M.user(s, login)


def _basis_inputs(w: M.World) -> dict:
    chosen = M.chosen(w.basis)
    return {"basis.code": chosen["code"], "basis.note": chosen["note"]} if chosen else {}


def send_sheet(web, sessions, w: M.World) -> str:
    desk = web(_staff(sessions, "window"))
    r = desk.post(f"/cases/{w.case_id}/events/send_handoff", {
        "version": _version(sessions, w.case_id), "to_department": w.body, "reason": "理由", "summary": "要約",
        **_basis_inputs(w)})
    assert r.status_code in (303, 409), r.status_code
    if r.status_code == 409:
        assert "市の外の機関です" in text_of(r) and "情報提供の根拠が必要です" in text_of(r)
    return M.ALLOW if r.status_code == 303 else M.REFUSE


def ask_to_join(web, sessions, w: M.World) -> str:
    desk = web(_staff(sessions, "window"))
    r = desk.post(f"/cases/{w.case_id}/join", {
        "version": _version(sessions, w.case_id), "to_department": w.body, "reason": "理由", "summary": "要約",
        **_basis_inputs(w)})
    assert r.status_code in (303, 409), r.status_code
    return M.ALLOW if r.status_code == 303 else M.REFUSE


def read(web, sessions, w: M.World, what: str) -> str:
    send_sheet(web, sessions, w)
    page = web(_staff(sessions, w.login)).get(f"/cases/{w.case_id}")
    if page.status_code == 404:
        return M.REFUSE
    assert page.status_code == 200
    return M.ALLOW if what == "read_metadata" or M.NAME in text_of(page) else M.REFUSE


def carry(web, sessions, w: M.World) -> str:
    meeting_id = M.meeting_of(sessions, w.case_id)
    r = web(_staff(sessions, "fm")).post(f"/meetings/{meeting_id}/facts",
                                         {"fact": M.FACT, "submission_token": "t" * 24})
    assert r.status_code == 303, text_of(r)
    page = web(_staff(sessions, w.login)).get(f"/cases/{w.case_id}")
    return M.ALLOW if page.status_code == 200 and M.FACT in text_of(page) else M.REFUSE


def tell(web, sessions, w: M.World) -> str:
    if w.basis == "statute":
        assert ask_to_join(web, sessions, w) == M.ALLOW
    desk = web(_staff(sessions, "window"))
    r = desk.post(f"/cases/{w.case_id}/events/send_handoff", {
        "version": _version(sessions, w.case_id), "to_department": "livelihood", "reason": "理由",
        "summary": "要約", "notify": [w.body]})
    assert r.status_code == 303, text_of(r)
    inbox = text_of(web(_staff(sessions, w.login)).get("/inbox"))
    assert "通知" in inbox
    return M.ALLOW if "つなぐシートが送られ、あなたの部署が通知先に指定されました" in inbox else M.REFUSE


@pytest.mark.parametrize("kind, basis, action", M.CELLS)
def test_cell_through_the_pages(web, sessions, actors, kind, basis, action):
    w = M.build_world(sessions, kind, basis, consent_needed=action == "carry_fact")
    got = {
        "read_content": lambda: read(web, sessions, w, "read_content"),
        "read_metadata": lambda: read(web, sessions, w, "read_metadata"),
        "receive_sheet": lambda: send_sheet(web, sessions, w),
        "join": lambda: ask_to_join(web, sessions, w),
        "carry_fact": lambda: carry(web, sessions, w),
        "be_told": lambda: tell(web, sessions, w),
    }[action]()
    assert got == M.EXPECTED[(kind, basis, action)]


def test_a_refused_sheet_keeps_what_was_typed_and_writes_nothing(web, sessions, actors):
    w = M.build_world(sessions, "partner", "none")
    with sessions() as s:
        before = (s.scalar(select(func.count()).select_from(Handoff)), s.scalar(select(func.count()).select_from(Provision)))
    r = web(_staff(sessions, "window")).post(f"/cases/{w.case_id}/events/send_handoff", {
        "version": _version(sessions, w.case_id), "to_department": "shakyo", "reason": "居場所の相談が中心",
        "summary": "要約"})
    assert r.status_code == 409
    assert "委託がありません（協定団体）" in text_of(r) and "本人の同意が記録されていません" in text_of(r)
    assert "居場所の相談が中心" in r.get_data(as_text=True)  # what was typed comes back
    with unit_of_work(sessions) as s:
        assert (s.scalar(select(func.count()).select_from(Handoff)),
                s.scalar(select(func.count()).select_from(Provision))) == before
