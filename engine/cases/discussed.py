"""The further cases a meeting discusses: a 支援会議 or 重層的支援会議 may take up several cases at once (the
mother's and her son's, or those of several households), besides the case it was convened on.

The convening FM (convene_support_meeting) and the owner adopting a plan in a 重層的支援会議 (adopt_plan) name
them by case number (`also_cases`). Each must be a case the actor reads the content of: naming a case in a
支援会議 lets the meeting's members read it as they read the meeting's own case, so no one may bring in a
case they could not read themselves. A 重層的支援会議 meets under consent, and consent stays per person: a case
is discussed there only while its own person's consent is in force, and the meeting opens nothing of it
beyond that consent (engine.access.policy reads its records only for those every discussed case lets read).

Each discussed case gets a MeetingCase row, an audit row (`meeting.discuss_case`, on that case, for its
person's 開示請求) and, for a body outside the city among the members, its own 提供記録.
"""
from __future__ import annotations

import unicodedata
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access
from engine import fields as declare
from engine.access.relations import current_given_consent
from engine.audit import trail
from engine.models import Case, Meeting, MeetingCase
from engine.sharing import provisions

FIELD = "also_cases"
MAX_CASES = 20


def declaration(meeting_name: str) -> declare.Field:
    """The declared field both events take (the API's schema and the page's form are made from it)."""
    return declare.codes(FIELD, limit=32, label="併せて検討するケース", description=(
        f"この{meeting_name}で併せて検討するケースのケース番号の一覧（世帯の他の人のケースなど。"
        f"内容を閲覧できるケースに限る。{MAX_CASES}件まで）"))


def _number(raw) -> str:
    return unicodedata.normalize("NFKC", str(raw)).strip().upper()


def resolve(session: Session, actor, case: Case, numbers, *, kind: str) -> tuple[list[Case], list[str]]:
    """The cases named by `numbers` for a meeting of `kind` on `case`, and the messages of the ones refused
    (each naming its number): not found (or not to be known), not readable, the meeting's own case, named
    twice, anonymised, or (a 重層的支援会議) without a consent in force."""
    if isinstance(numbers, str):
        numbers = [numbers]
    numbers = [n for n in (numbers or []) if isinstance(n, str) and n.strip()]
    if len(numbers) > MAX_CASES:
        return [], [f"併せて検討するケースは{MAX_CASES}件までです。"]
    found: list[Case] = []
    problems: list[str] = []
    wanted = [_number(n) for n in numbers]
    by_number = {c.case_number: c for c in session.scalars(select(Case).where(Case.case_number.in_(set(wanted))))}
    for number in wanted:
        other = by_number.get(number)
        sight = access.case_sight(session, actor, other) if other is not None else access.Sight.NONE
        if sight == access.Sight.NONE:
            problems.append(f"ケース「{number}」は見つかりません。")
        elif other.id == case.id:
            problems.append(f"「{number}」はこの会議のケースです。ほかのケースの番号を指定してください。")
        elif any(c.id == other.id for c in found):
            problems.append(f"「{number}」が2回以上指定されています。")
        elif sight < access.Sight.CONTENT:
            problems.append(f"「{number}」は内容を閲覧できないケースのため、会議で検討するケースに加えられません。")
        elif other.anonymised_at is not None:
            problems.append(f"「{number}」は保存期間を過ぎて匿名化されたケースのため、会議で検討できません。")
        elif kind == "layered_meeting" and current_given_consent(session, other.id) is None:
            problems.append(f"「{number}」の本人の同意が記録されていないため、重層的支援会議では検討できません"
                            "（支援会議で検討してください）。")
        else:
            found.append(other)
    return found, problems


def resolve_or_refuse(session: Session, actor, case: Case, numbers, *, kind: str,
                      errors: dict[str, list[str]]) -> list[Case]:
    """resolve(), its messages added to `errors` under the field's name."""
    found, problems = resolve(session, actor, case, numbers, kind=kind)
    if problems:
        errors.setdefault(FIELD, []).extend(problems)
    return found


def link(session: Session, actor, meeting: Meeting, cases: list[Case], member_department_ids, *,
         now: datetime, remote_addr: str | None = None) -> None:
    """Record that `meeting` discussed `cases` too: the rows, an audit row on each case, and each case's
    provision to the bodies outside the city among the members."""
    for other in cases:
        meeting.discussed_cases.append(MeetingCase(case_id=other.id))
    session.flush()
    for other in cases:
        trail.record(session, actor=actor, action="meeting.discuss_case", object_type="meeting",
                     object_id=meeting.id, case_id=other.id, remote_addr=remote_addr, at=now,
                     detail={"kind": meeting.kind})
        provisions.provide_to_members(session, actor, other, meeting, member_department_ids, now=now)


def discussed_case_ids(session: Session, meeting_id: int) -> list[int]:
    """Every case the meeting discussed, its own first."""
    own = session.scalar(select(Meeting.case_id).where(Meeting.id == meeting_id))
    others = session.scalars(select(MeetingCase.case_id).where(MeetingCase.meeting_id == meeting_id,
                                                               MeetingCase.case_id != own)
                             .order_by(MeetingCase.case_id))
    return [own, *others] if own is not None else []
