"""Meeting records after the meeting: members add to the minutes and decisions (追記).

Records are only ever added to, never rewritten: each addition is stamped with the time and the
member's name, and appended in one UPDATE, so two members writing at once both keep their text.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import audit, calendar, services, submissions
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.models import Meeting, MeetingMember, utcnow

MAX_ADDITION = 20000


def append_record(session: Session, actor, meeting_id: int, *, minutes: str | None, decisions: str | None,
                  submission_token: str | None, now: datetime | None = None,
                  remote_addr: str | None = None) -> Meeting:
    """Add to a meeting's minutes and/or decisions; only members who acknowledged the 守秘義務 may."""
    now = now or utcnow()
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("指定された会議は見つかりません。")
    services.load_case(session, actor, meeting.case_id, not_found="指定された会議は見つかりません。")
    member = session.scalar(select(MeetingMember).where(MeetingMember.meeting_id == meeting_id,
                                                        MeetingMember.user_id == actor.id))
    if member is None or member.acknowledged_at is None:
        raise PermissionDenied("会議の記録を追記できるのは、守秘義務を確認した構成員だけです。")
    minutes, decisions = (minutes or "").strip(), (decisions or "").strip()
    errors: dict[str, list[str]] = {}
    if not minutes and not decisions:
        errors["minutes"] = ["記録か決定事項のどちらかを入力してください。"]
    for name, text in (("minutes", minutes), ("decisions", decisions)):
        if len(text) > MAX_ADDITION:
            errors[name] = [f"{MAX_ADDITION}文字以内で入力してください。"]
    if errors:
        raise ValidationFailed(errors)
    claim = submissions.claim(session, actor, submission_token, "meeting_record", now=now)
    stamp = f"【{calendar.wareki_datetime(now)} {actor.display_name}】"
    values = {}
    for column, text in ((Meeting.minutes, minutes), (Meeting.decisions, decisions)):
        if text:
            # Existing text, a blank line, then the stamped addition — all in SQL.
            values[column.key] = func.coalesce(column + "\n\n", "") + (stamp + "\n" + text)
    session.execute(update(Meeting).where(Meeting.id == meeting_id).values(**values),
                    execution_options={"synchronize_session": False})
    audit.record(session, actor=actor, action="meeting.append_record", object_type="meeting", object_id=meeting_id,
                 case_id=meeting.case_id, remote_addr=remote_addr, at=now)
    submissions.settle(session, claim, meeting.case_id)
    session.flush()
    session.refresh(meeting)
    return meeting


def carry_fact(session: Session, actor, meeting_id: int, *, text: str, submission_token: str | None,
               now: datetime | None = None):
    """From a 支援会議's page: carry one fact over into the consented track, applied once per form.

    The rules are engine.confidential.carry_fact's (an acknowledged member, a given consent); this adds
    the form's one-time token, so that a form sent twice carries the fact once.
    """
    from engine import confidential

    now = now or utcnow()
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFound("指定された会議は見つかりません。")
    text = (text or "").strip()
    if len(text) > MAX_ADDITION:
        raise ValidationFailed({"fact": [f"{MAX_ADDITION}文字以内で入力してください。"]})
    # The rules first (a refusal must not depend on the token), then the token, then the fact.
    fact = confidential.carry_fact(session, actor, meeting.case_id, meeting_id, text, now=now)
    claim = submissions.claim(session, actor, submission_token, "shared_fact", now=now)
    submissions.settle(session, claim, meeting.case_id)
    return fact
