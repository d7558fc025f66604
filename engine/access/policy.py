"""Who may see and do what: the one access policy every use case, read model, page and API answer uses.

Welfare case records are 要配慮個人情報. The policy follows what the law implies (DESIGN.md): 支援会議
members share without consent under a secrecy duty; what they shared stays with them; after consent,
sharing reaches only the agencies the consent covers; outside those, a department sees what it owns.

The policy is data: `POLICY` names, for each kind of record and each operation, the relations to the case
(engine.access.relations) that open it. engine.access.visibility states the same in SQL for lists, counts
and search (the two are tested to agree).

Records made in a 支援会議 (its minutes and decisions, and contact notes marked with its id) are read only
by that meeting's acknowledged members, before and after consent. They reach the consented track only as
a SharedFact that a member carries over explicitly (engine.cases.meetings.carry_fact). A meeting may discuss
several cases (engine.cases.discussed): a 支援会議's members read each as they read its own case; a
重層的支援会議's records are read only by those every discussed case's own consent (or ownership) lets read.

Refusals: an actor who may not know the case exists gets NotFound; one who sees it but may not do the
thing gets PermissionDenied (SecrecyNotAcknowledged when a member must first acknowledge the 守秘義務).
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from engine.access.actors import is_person
from engine.access.relations import (
    CASE_FM,
    CASE_MEMBER,
    CONTENT_RELATIONS,
    COVERED,
    FM,
    FORMER,
    JOINED,
    MEMBER,
    METADATA_RELATIONS,
    OWNER,
    PENDING,
    SECRETARIAT,
    SYSTEM,
    current_given_consent,
    meeting_relations,
    member_meeting_ids,
    relations,
)
from engine.errors import NotFound, PermissionDenied, SecrecyNotAcknowledged
from engine.models import Case

# record kinds
CASE_METADATA = "case_metadata"      # state, dates, departments, handoff metadata, history
CASE_CONTENT = "case_content"        # person, household, summary, categories, handoff texts
SUPPORT_MEETING = "support_meeting"  # a 支援会議's minutes, decisions, members and its contact notes
LAYERED_MEETING = "layered_meeting"  # a 重層的支援会議's records (consented track)
CONSENT = "consent"
PLAN = "plan"                        # the 支援プラン and its evaluations
CONTACT_NOTES = "contact_notes"      # the 支援経過記録 of the consented (ordinary) track
SHARED_FACTS = "shared_facts"        # facts carried over from a 支援会議 into the consented track
RECORD_KINDS = (CASE_METADATA, CASE_CONTENT, SUPPORT_MEETING, LAYERED_MEETING, CONSENT, PLAN, CONTACT_NOTES,
                SHARED_FACTS)

READ = "read"
WRITE = "write"
CONVENE = "convene"
REOPEN = "reopen"
ROUTE = "route"  # send the つなぐシート onward: an FM coordinates handoffs on any case (FM dashboard)

_DRIVE = frozenset({SYSTEM, OWNER, CASE_FM})

# (kind, operation) → the relations that open it. For meeting kinds and for carrying a fact, "member" and
# "secretariat" are relations to that meeting. Extra rules, applied by the functions below:
# - a joined department reads only its own ordinary contact notes (the others' are not its own);
# - shared facts are read by covered agencies and by the members of the meeting they came from;
# - carrying a fact needs a current given consent; a contact note written by a member who is neither
#   owner, joined nor covered, or by a member while the case is in the 支援会議 track, is a record of their
#   支援会議 (note_meeting_id).
POLICY: dict[tuple[str, str], frozenset[str]] = {
    (CASE_METADATA, READ): METADATA_RELATIONS,
    (CASE_METADATA, WRITE): _DRIVE,  # send handoffs, ask others to join, resume, close
    (CASE_METADATA, REOPEN): _DRIVE | {FM},
    (CASE_METADATA, ROUTE): _DRIVE | {FM},
    (CASE_CONTENT, READ): CONTENT_RELATIONS,
    (CASE_CONTENT, WRITE): _DRIVE,
    (SUPPORT_MEETING, READ): frozenset({MEMBER}),
    (SUPPORT_MEETING, WRITE): frozenset({SECRETARIAT}),
    (SUPPORT_MEETING, CONVENE): frozenset({FM}),
    # Read under the consent, by those it lets read the case; being one of the meeting's members adds
    # nothing (a member whose agency the consent no longer covers reads no more of it).
    (LAYERED_MEETING, READ): frozenset({SYSTEM, OWNER, COVERED, CASE_FM}),
    (LAYERED_MEETING, WRITE): frozenset({SECRETARIAT}),
    (CONSENT, READ): CONTENT_RELATIONS,
    (CONSENT, WRITE): _DRIVE | {CASE_MEMBER},
    (PLAN, READ): frozenset({SYSTEM, OWNER, COVERED, CASE_FM}),
    (PLAN, WRITE): _DRIVE,
    (CONTACT_NOTES, READ): frozenset({SYSTEM, OWNER, COVERED, CASE_FM, JOINED}),
    (CONTACT_NOTES, WRITE): _DRIVE | {JOINED, COVERED, CASE_MEMBER},
    (SHARED_FACTS, READ): frozenset({SYSTEM, COVERED, MEMBER}),
    (SHARED_FACTS, WRITE): frozenset({MEMBER}),
}

# Which permission each event of the case machine needs (accept/decline: the receiving department).
EVENT_PERMISSIONS: dict[str, tuple[str, str]] = {
    "send_handoff": (CASE_METADATA, ROUTE),
    "convene_support_meeting": (SUPPORT_MEETING, CONVENE),
    "seek_consent": (CONSENT, WRITE),
    "record_consent": (CONSENT, WRITE),
    "refuse_consent": (CONSENT, WRITE),
    "withdraw_consent": (CONSENT, WRITE),
    "adopt_plan": (PLAN, WRITE),
    "evaluate": (PLAN, WRITE),
    "resume": (CASE_METADATA, WRITE),
    "close": (CASE_METADATA, WRITE),
    "reopen": (CASE_METADATA, REOPEN),
}

DENIED: dict[tuple[str, str], str] = {
    (CASE_METADATA, WRITE): "このケースを進められるのは、担当部署の職員と担当FMだけです。",
    (CASE_METADATA, REOPEN): "終結したケースを再開できるのは、最後の担当部署の職員とFMだけです。",
    (CASE_METADATA, ROUTE): "つなぐシートを送れるのは、担当部署（未定のときは受け付けた部署とサポートデスク）の職員とFMだけです。",
    (CASE_CONTENT, READ): "このケースの記録を閲覧する権限がありません。",
    (CASE_CONTENT, WRITE): "ケースの記録を修正できるのは、担当部署の職員と担当FMだけです。",
    (SUPPORT_MEETING, READ): "支援会議の記録を閲覧できるのは、その会議の構成員だけです。",
    (SUPPORT_MEETING, WRITE): "支援会議の記録を書けるのは、その会議の事務局だけです。",
    (SUPPORT_MEETING, CONVENE): "支援会議を開けるのはFM（係長級の調整担当）だけです。",
    (LAYERED_MEETING, READ): "重層的支援会議の記録を閲覧する権限がありません。",
    (LAYERED_MEETING, WRITE): "重層的支援会議の記録を書けるのは、その会議の事務局だけです。",
    (CONSENT, READ): "同意の記録を閲覧する権限がありません。",
    (CONSENT, WRITE): "同意を記録できるのは、担当部署の職員、担当FM、支援会議の構成員だけです。",
    (PLAN, READ): "支援プランを閲覧できるのは、担当部署、担当FM、本人が同意した範囲の機関だけです。",
    (PLAN, WRITE): "支援プランを決定・評価できるのは、担当部署の職員と担当FMだけです。",
    (CONTACT_NOTES, READ): "支援経過記録を閲覧できるのは、担当部署、担当FM、本人が同意した範囲の機関だけです。",
    (CONTACT_NOTES, WRITE): "支援経過を記録できるのは、このケースに関わる職員だけです。",
    (SHARED_FACTS, READ): "共有された情報を閲覧できるのは、本人が同意した範囲の機関と支援会議の構成員だけです。",
    (SHARED_FACTS, WRITE): "支援会議の情報を共有できるのは、その会議の構成員だけです。",
}


def may(session: Session, user, case, kind: str, op: str, *, meeting=None,
        rel: frozenset[str] | None = None) -> bool:
    """Whether `user` may do `op` on the records of `kind` of `case` (of `meeting`, for meeting kinds)."""
    rel = relations(session, user, case) if rel is None else rel
    if not rel & METADATA_RELATIONS:
        return False
    if kind == LAYERED_MEETING and not rel & POLICY[(LAYERED_MEETING, READ)]:
        return False  # its secretariat too writes only while the consent lets them read it
    if meeting is not None:
        if meeting.case_id != case.id:
            return False
        if kind == LAYERED_MEETING and not _every_discussed_case_opens(session, user, meeting):
            return False
        rel = rel | meeting_relations(user, meeting)
    elif kind in (SUPPORT_MEETING, LAYERED_MEETING) and op in (READ, WRITE):
        raise ValueError("a meeting kind needs the meeting")
    return bool(rel & POLICY[(kind, op)])


def _every_discussed_case_opens(session: Session, user, meeting) -> bool:
    """A 重層的支援会議 meets under consent, and consent stays per person: its records, which speak of every
    case it discussed, are read only by those whom each of those cases' own relations let read them (the
    mother's consent opens nothing of her son's case). Its own case is judged by the caller."""
    for link in meeting.discussed_cases:
        if link.case_id == meeting.case_id:
            continue
        other = session.get(Case, link.case_id)
        if other is None or not relations(session, user, other) & POLICY[(LAYERED_MEETING, READ)]:
            return False
    return True


def require_admin(user, message: str = "この操作は管理者だけができます。") -> None:
    """The administration of the system (the 開示請求 trail, staff users, API clients) is the admin's alone."""
    if not is_person(user) or user.role != "admin" or not getattr(user, "active", True):
        raise PermissionDenied(message)


def require(session: Session, user, case, kind: str, op: str, *, meeting=None,
            rel: frozenset[str] | None = None) -> frozenset[str]:
    """Refuse unless `user` may do `op` on `kind`; return the relations for further checks.

    NotFound when the user may not know the case exists; SecrecyNotAcknowledged when a member of the
    meeting must first acknowledge the 守秘義務; PermissionDenied otherwise.
    """
    rel = relations(session, user, case) if rel is None else rel
    if not rel & METADATA_RELATIONS:
        raise NotFound("指定されたケースは見つかりません。")
    if may(session, user, case, kind, op, meeting=meeting, rel=rel):
        return rel
    if meeting is not None and PENDING in meeting_relations(user, meeting):
        raise SecrecyNotAcknowledged()
    raise PermissionDenied(DENIED.get((kind, op), "この操作を行う権限がありません。"), kind=kind, operation=op)


def may_fire(session: Session, user, case, event: str, rel: frozenset[str] | None = None) -> bool:
    """Whether `user` may fire `event` on the case (who is asking; the state is the machine's matter)."""
    kind, op = EVENT_PERMISSIONS[event]
    return may(session, user, case, kind, op, rel=rel)


def contact_note_visible(user, note, rel: frozenset[str], member_meetings) -> bool:
    """Whether `user` reads one contact note.

    A 支援会議 note: only that meeting's acknowledged members. An ordinary note: the relations POLICY names;
    a department that only joined the case (or took part until its join lapsed) reads the notes it wrote itself.
    """
    if note.meeting_id is not None:
        return note.meeting_id in member_meetings
    if rel & (POLICY[(CONTACT_NOTES, READ)] - {JOINED}):
        return True
    return bool(rel & {JOINED, FORMER}) and note.department_id == getattr(user, "department_id", None)


def shared_fact_visible(fact, rel: frozenset[str], member_meetings) -> bool:
    """Whether a carried-over fact reaches `user`: covered agencies now, and its meeting's members."""
    return bool(rel & {SYSTEM, COVERED}) or fact.meeting_id in member_meetings


def permissions(session: Session, user, case, rel: frozenset[str] | None = None) -> dict[str, bool]:
    """What `user` may do on the case, as {"kind.op": bool}, for pages and answers to offer the right actions.

    Meeting kinds are left out (they depend on the meeting: see meeting views).
    """
    rel = relations(session, user, case) if rel is None else rel
    out = {}
    for kind, op in POLICY:
        if kind in (SUPPORT_MEETING, LAYERED_MEETING) and op != CONVENE:
            continue
        if kind == SHARED_FACTS:
            continue
        out[f"{kind}.{op}"] = may(session, user, case, kind, op, rel=rel)
    members = member_meeting_ids(session, user, case.id)
    sees_facts = bool(rel & {SYSTEM, COVERED} or members)
    out[f"{SHARED_FACTS}.{READ}"] = bool(rel & METADATA_RELATIONS) and sees_facts
    out[f"{SHARED_FACTS}.{WRITE}"] = bool(members) and current_given_consent(session, case.id) is not None
    return out


# --- the same rules in SQL, for lists, counts and search -----------------------------------------


