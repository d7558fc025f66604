"""FM dashboard rows: a sheet both past its deadline and escalated is one row with both reasons and one
振り替え; 確認済み says who and when; the message of what was done shows on the row the page opens at."""
from __future__ import annotations

import re

from sqlalchemy import select

from engine.alerts import alerts
from engine.db import unit_of_work
from engine.models import Alert, Handoff, User
from engine.worklists import dashboard
from tests.conftest import NOW
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_in,
    text_of,
    web,
)


def _both(sessions, case_id) -> tuple[int, int]:
    """The sheet's 期限超過 and its エスカレーション, as the stall scan raises them."""
    with unit_of_work(sessions) as s:
        h = s.scalars(select(Handoff).where(Handoff.case_id == case_id)).one()
        stalled = alerts.raise_alert(s, kind="handoff_stalled", case_id=case_id, handoff_id=h.id,
                                     department_id=h.to_department_id, due_at=h.due_at,
                                     message="つなぐシートが受理期限を過ぎても受理されていません。")
        escalated = alerts.raise_alert(s, kind="handoff_escalated", case_id=case_id, handoff_id=h.id,
                                       department_id=None, due_at=h.escalate_at,
                                       message="つなぐシートが5営業日を過ぎても受理されていません。")
    return stalled, escalated


def _statuses(sessions, *ids) -> list[str]:
    with unit_of_work(sessions) as s:
        return [s.get(Alert, i).status for i in ids]


def test_a_sheet_past_its_deadline_and_escalated_is_one_row_with_one_reassign_form(web, actors, case_in, sessions):
    stalled, escalated = _both(sessions, case_in("handoff"))
    with sessions() as s:
        [section] = [sec for sec in dashboard.fm_dashboard(s, s.get(User, actors.fm.id), now=NOW)
                     if sec.key == "stalled"]
        assert section.total == 1 and len(section.items) == 1
        assert section.items[0].alert_ids == [escalated, stalled]  # what reached the FM first
    body = web(actors.fm).get("/dashboard").get_data(as_text=True)
    part = body.split('id="stalled"')[1].split("</section>")[0]
    assert part.count('<tr id="alert-') == 1 and part.count("振り替えて送る") == 1
    assert part.count("確認済みにする") == 1 and part.count("<summary>解決にする</summary>") == 1
    assert alerts.ALERT_LABELS["handoff_stalled"] in part and alerts.ALERT_LABELS["handoff_escalated"] in part
    assert "止まっているつなぐシート（1）" in text_of(web(actors.fm).get("/dashboard"))


def test_acknowledging_the_row_acknowledges_both_and_says_who_and_when(web, actors, case_in, sessions):
    stalled, escalated = _both(sessions, case_in("handoff"))
    client = web(actors.fm)
    r = client.post(f"/dashboard/alerts/{escalated}/acknowledge")
    assert r.status_code == 303
    assert r.headers["Location"].endswith(f"/dashboard?done={escalated}#alert-{escalated}")
    assert _statuses(sessions, stalled, escalated) == ["acknowledged", "acknowledged"]
    body = client.get(r.headers["Location"]).get_data(as_text=True)
    # The message is under the row the page opens at, not at the top out of view.
    main = body.split('<main id="main"')[1]
    assert main.index("アラートを確認しました") > main.index(f'id="alert-{escalated}"')
    assert main.count("アラートを確認しました") == 1
    row = body.split(f'id="alert-{escalated}"')[1].split('class="row-message"')[0]  # its two lines
    with sessions() as s:
        name = s.get(User, actors.fm.id).display_name
    seen = re.findall(r'<small class="seen">([^<]*)</small>', row)
    assert len(seen) == 2 and all(x.startswith(f"{name}・令和") for x in seen), seen
    assert "確認済みにする" not in row
    # Once both are seen there is nothing left to acknowledge: said as before.
    assert client.post(f"/dashboard/alerts/{escalated}/acknowledge").status_code == 409


def test_resolving_the_row_resolves_both(web, actors, case_in, sessions):
    stalled, escalated = _both(sessions, case_in("handoff"))
    client = web(actors.fm)
    r = client.post(f"/dashboard/alerts/{escalated}/resolve", {"note": "電話で催促した。"})
    assert r.status_code == 303
    assert _statuses(sessions, stalled, escalated) == ["resolved", "resolved"]
    # The row is gone: the message is at the top.
    body = client.get(r.headers["Location"]).get_data(as_text=True)
    assert '<p class="flash flash-success" role="status">' in body.split('<h1>')[0]


def test_a_single_alert_is_acknowledged_alone(web, actors, case_in, sessions):
    stalled, escalated = _both(sessions, case_in("handoff"))
    other = case_in("handoff")
    with unit_of_work(sessions) as s:
        h = s.scalars(select(Handoff).where(Handoff.case_id == other)).one()
        lone = alerts.raise_alert(s, kind="handoff_stalled", case_id=other, handoff_id=h.id,
                                  department_id=h.to_department_id, due_at=h.due_at, message="未受理")
    assert web(actors.fm).post(f"/dashboard/alerts/{lone}/acknowledge").status_code == 303
    assert _statuses(sessions, lone, stalled, escalated) == ["acknowledged", "open", "open"]
