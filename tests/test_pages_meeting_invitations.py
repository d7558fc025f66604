"""A member added to a 支援会議 finds it: an entry in their inbox and on the case page that leads to the
守秘義務 acknowledgement and then to the meeting, showing nothing more than the meeting's page shows before."""
from __future__ import annotations

from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Case, Meeting
from tests.pages_support import app, case_in, text_of, web  # noqa: F401  (fixtures)


def _support_meeting(sessions, case_id) -> tuple[int, str]:
    with unit_of_work(sessions) as s:
        meeting = s.scalars(select(Meeting).where(Meeting.case_id == case_id)).one()
        meeting.minutes = "長男の生活状況を共有した。"
        return meeting.id, s.get(Case, case_id).case_number


def _section(response, element_id: str) -> str | None:
    body = response.get_data(as_text=True)
    start = body.find(f'id="{element_id}"')
    if start < 0:
        return None
    end = body.find("</section>", start) if "<section" in body[max(0, start - 60):start] else body.find("</div>", start)
    return body[start:end]


def test_a_member_added_finds_the_meeting_in_the_inbox_and_on_the_case_page(web, actors, case_in, sessions):
    case_id = case_in("support_meeting")
    meeting_id, number = _support_meeting(sessions, case_id)
    assert web(actors.fm).post(f"/meetings/{meeting_id}/members", {"user": "shakyo"}).status_code == 303
    member = web(actors.shakyo)

    inbox = member.get("/inbox")
    entry = _section(inbox, "invitations")
    assert entry is not None
    shown = text_of(entry)
    assert "支援会議" in shown and number in shown and "地域福祉課" in shown and "招集: fm" in shown
    assert f'href="/meetings/{meeting_id}"' in entry and "守秘義務を確認して記録を読む" in shown
    # Only what the meeting's page shows before the acknowledgement: no person, no consultation, no record.
    page = text_of(inbox)
    assert "廿日 太郎" not in page and "長男の生活状況" not in page

    case_page = member.get(f"/cases/{case_id}")
    assert "廿日 太郎" not in text_of(case_page)
    link = _section(case_page, "meeting-invitations")
    assert link is not None and f'href="/meetings/{meeting_id}"' in link

    assert member.post(f"/meetings/{meeting_id}/acknowledge").status_code == 303
    assert "長男の生活状況を共有した。" in text_of(member.get(f"/meetings/{meeting_id}"))
    # Acknowledged: the entry has done its work, and the case page lists the meeting with the others.
    assert _section(member.get("/inbox"), "invitations") is None
    case_page = member.get(f"/cases/{case_id}")
    assert _section(case_page, "meeting-invitations") is None
    assert f'href="/meetings/{meeting_id}"' in case_page.get_data(as_text=True)


def test_the_entry_is_the_members_own_not_their_departments(web, actors, case_in, sessions, make_user):
    case_id = case_in("support_meeting")
    meeting_id, number = _support_meeting(sessions, case_id)
    assert web(actors.fm).post(f"/meetings/{meeting_id}/members", {"user": "shakyo"}).status_code == 303
    colleague = make_user("staff", "shakyo")
    assert _section(web(colleague).get("/inbox"), "invitations") is None
    assert number not in text_of(web(colleague).get("/inbox"))
    # Nor does anyone who is already bound by the duty see an entry.
    assert _section(web(actors.livelihood).get("/inbox"), "invitations") is None
