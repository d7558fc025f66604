"""The sharing matrix (tests/sharing_matrix.py) through the REST API, where the API has the action: what a
token acting for each body's staff reads, and send_handoff with or without a basis (409 guard-refused)."""
from __future__ import annotations

import pytest

from tests import sharing_matrix as M

API_ACTIONS = ("read_content", "read_metadata", "receive_sheet")  # joins, facts and notices are the pages'


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def send_sheet(client, make_token, sessions, w: M.World) -> str:
    with sessions() as s:
        desk, version = M.user(s, "window"), s.get(M.Case, w.case_id).version
    token = make_token("cases:read,cases:write", user=desk, name=f"desk-{w.case_id}")
    body = {"event": "send_handoff", "version": version, "to_department": w.body, "reason": "理由", "summary": "要約"}
    if M.chosen(w.basis):
        body["basis"] = M.chosen(w.basis)
    r = client.post(f"/api/v1/cases/{w.case_id}/events", json=body, headers=_auth(token))
    assert r.status_code in (200, 409), r.get_json()
    if r.status_code == 409:
        problem = r.get_json()
        assert problem["code"] == "guard_refused" and "情報提供の根拠が必要です" in problem["detail"]
    return M.ALLOW if r.status_code == 200 else M.REFUSE


def read(client, make_token, sessions, w: M.World, what: str) -> str:
    send_sheet(client, make_token, sessions, w)
    with sessions() as s:
        staff = M.user(s, w.login)
    r = client.get(f"/api/v1/cases/{w.case_id}", headers=_auth(make_token("cases:read", user=staff,
                                                                         name=f"reader-{w.case_id}")))
    if r.status_code == 404:
        return M.REFUSE
    assert r.status_code == 200
    view = r.get_json()
    return M.ALLOW if what == "read_metadata" or (view["access"] == "content" and M.NAME in str(view)) else M.REFUSE


@pytest.mark.parametrize("kind, basis, action", [c for c in M.CELLS if c[2] in API_ACTIONS])
def test_cell_through_the_api(client, make_token, sessions, actors, kind, basis, action):
    w = M.build_world(sessions, kind, basis)
    got = (send_sheet(client, make_token, sessions, w) if action == "receive_sheet"
           else read(client, make_token, sessions, w, action))
    assert got == M.EXPECTED[(kind, basis, action)]
