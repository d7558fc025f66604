"""支援経過記録 from the case page: a contact note added once per form."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import access, services, submissions
from engine.models import ContactNote


def require_may_add(session: Session, actor, case_id: int) -> None:
    """Refuse before the form is looked at: a case out of sight answers NotFound, a case the actor may not
    add notes to answers Forbidden (both audited), whatever the form holds."""
    case = services.load_case(session, actor, case_id)
    access.require(session, actor, case, access.CONTACT_NOTES, access.WRITE)


def add_contact_note(session: Session, actor, case_id: int, fields: dict[str, Any], *,
                     submission_token: str | None, now: datetime | None = None,
                     remote_addr: str | None = None) -> ContactNote:
    """services.add_contact_note, refused with AlreadySubmitted when the same form comes twice."""
    require_may_add(session, actor, case_id)
    claim = submissions.claim(session, actor, submission_token, "contact_note", now=now)
    note = services.add_contact_note(session, actor, case_id, fields, now=now, remote_addr=remote_addr)
    submissions.settle(session, claim, case_id)
    return note
