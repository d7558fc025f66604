"""Who may see and do what: the one access policy every service, read model, page and API answer uses.

Welfare case records are 要配慮個人情報. The policy follows what the law implies (DESIGN.md): 支援会議
members share without consent under a secrecy duty; what they shared stays with them; after consent,
sharing reaches only the agencies the consent covers; outside those, a department sees what it owns.

The policy is data: `POLICY` names, for each kind of record and each operation, the relations to the case
that open it. `relations()` computes a person's relations to a case in Python from the records;
`visible_cases_filter()` computes the same in SQL for lists, counts and search, reading the departments'
relations from the table engine.case_departments keeps (the two are tested to agree).

Relations of a person to a case:
- owner: staff of the owning department; while no department owns it, of the department that recorded
  it, of the department whose staff reopened it and of the desk (相談まるごとサポートデスク);
- invited / joined: the person's department has an unanswered / an accepted つなぐシート of the case
  (the primary one or a join request);
- recorder: the department recorded the case or sent one of its つなぐシート (metadata only);
- notified: the department was told of the case (engine.notices: a routing rule's notify) (metadata only;
  named only when no other relation holds, since it opens nothing more);
- covered: the department is covered by the case's current consent (its newest consent record, if that
  one is given; a withdrawal or refusal narrows access at once);
- case_fm: the case's FM (担当FM, who convened its first 支援会議);
- case_member: a member of one of the case's 支援会議 who acknowledged the 守秘義務 (a 重層的支援会議 meets under the
  consent: its members see the case as the consent lets them);
- pending_member: a member who has not acknowledged it yet: knows the case exists, reads nothing;
- fm: any FM — handoff metadata (dates, departments, state) of every case;
- admin: the administrator — metadata of every case, never content.
Relations to one meeting: member (acknowledged member of that meeting), secretariat (its acknowledged
secretariat member, who keeps its records), pending (a member who has not acknowledged).

Levels of sight on a case (`case_sight`):
- NONE: the person may not know the case exists (404, in no list, count or search);
- METADATA: state, dates, departments, handoff metadata, history;
- CONTENT: the person, household, summary, categories, handoff texts, consents, and the further records
  that POLICY opens to the person's relations.

Records made in a 支援会議 (its minutes and decisions, and contact notes marked with its id) are read only
by that meeting's acknowledged members, before and after consent. They reach the consented track only as
a SharedFact that a member carries over explicitly (engine.confidential.carry_fact).

Refusals: an actor who may not know the case exists gets NotFound; one who sees it but may not do the
thing gets PermissionDenied (SecrecyNotAcknowledged when a member must first acknowledge the 守秘義務).
"""
from __future__ import annotations

from enum import IntEnum
from functools import cache

from sqlalchemy import exists, false, func, or_, select, true, union
from sqlalchemy.orm import Session

from engine.errors import NotFound, PermissionDenied, SecrecyNotAcknowledged

DESK_CODE = "desk"


class _SystemActor:
    """The engine itself acting (automatic routing); never a person, never signs in."""

    id = None
    login = "system"
    display_name = "自動振り分け"
    role = "system"
    department_id = None
    active = True
    is_fm = False
    is_admin = False


SYSTEM_ACTOR = _SystemActor()


class ClientActor:
    """An outside system acting for no staff user (a token with `referrals:*` scopes only).

    It sees the referrer's view of its own referrals and nothing else of any case.
    """

    id = None
    role = "client"
    department_id = None
    is_fm = False
    is_admin = False

    def __init__(self, client):
        self.client = client
        self.client_id = client.id
        self.login = f"client:{client.name}"
        self.display_name = client.name

    @property
    def active(self) -> bool:
        return True


def actor_for_client(client):
    """The actor an API client's token acts as: the staff user it names, else a ClientActor.

    A disabled user stays the actor, and every rule below refuses an inactive user, so the token stops.
    """
    if client.user_id is not None:
        return client.user
    return ClientActor(client)


def referral_visible(actor, case) -> bool:
    """Whether `actor` is the outside system that referred the case (the referrer's view)."""
    return isinstance(actor, ClientActor) and case.referral_client_id == actor.client_id


class Sight(IntEnum):
    NONE = 0
    METADATA = 1
    CONTENT = 2


# --- relations and the policy -------------------------------------------------------------------

SYSTEM = "system"
OWNER = "owner"
INVITED = "invited"
JOINED = "joined"
RECORDER = "recorder"
COVERED = "covered"
CASE_FM = "case_fm"
CASE_MEMBER = "case_member"
PENDING_MEMBER = "pending_member"
NOTIFIED = "notified"
FM = "fm"
ADMIN = "admin"
# relations to one meeting
MEMBER = "member"
SECRETARIAT = "secretariat"
PENDING = "pending"

CONTENT_RELATIONS = frozenset({SYSTEM, OWNER, INVITED, JOINED, COVERED, CASE_FM, CASE_MEMBER})
METADATA_RELATIONS = CONTENT_RELATIONS | {RECORDER, NOTIFIED, PENDING_MEMBER, FM, ADMIN}

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


def _desk_id(session: Session) -> int | None:
    from engine.models import Department

    cache = session.info.setdefault("tsunagu_cache", {})
    if "desk_id" not in cache:
        cache["desk_id"] = session.scalar(select(Department.id).where(Department.code == DESK_CODE))
    return cache["desk_id"]


def _is_person(user) -> bool:
    """An active staff user (staff, fm or admin) — not the system, not an outside client."""
    return user is not None and getattr(user, "role", None) in ("staff", "fm", "admin") and bool(user.active)


def current_consent(session: Session, case_id: int):
    """The newest consent record of the case (given, refused or withdrawn), or None."""
    from engine.models import Consent

    return session.scalars(
        select(Consent).where(Consent.case_id == case_id).order_by(Consent.id.desc()).limit(1)
    ).first()


def current_given_consent(session: Session, case_id: int):
    """The case's consent in force: the newest consent record if it is a given one, else None."""
    consent = current_consent(session, case_id)
    return consent if consent is not None and consent.status == "given" else None


def consented_department_ids(session: Session, case_id: int) -> set[int]:
    """The agencies the case's consent covers now; empty before consent and after withdrawal."""
    consent = current_given_consent(session, case_id)
    return set() if consent is None else {a.department_id for a in consent.agencies}


@cache
def _relation_statements():
    """The reads of relations(), built once (every event and every case page runs them)."""
    from sqlalchemy import bindparam

    from engine.models import CaseNotice, Consent, ConsentAgency, Handoff, Meeting, MeetingMember

    case_id, dept, user_id = bindparam("r_case"), bindparam("r_dept"), bindparam("r_user")
    handoffs = (select(Handoff.state, Handoff.to_department_id, Handoff.from_department_id)
                .where(Handoff.case_id == case_id,
                       or_(Handoff.to_department_id == dept, Handoff.from_department_id == dept)))
    # The newest consent's status, and whether the department is among its agencies.
    covered = (select(Consent.status, exists().where(ConsentAgency.consent_id == Consent.id,
                                                     ConsentAgency.department_id == dept))
               .where(Consent.case_id == case_id).order_by(Consent.id.desc()).limit(1))
    # Membership of a 支援会議 relates a person to the case; a 重層的支援会議 meets under the consent, and
    # its members see the case as the consent lets them (covered), no further and no longer.
    meetings = (select(MeetingMember.acknowledged_at).join(Meeting, Meeting.id == MeetingMember.meeting_id)
                .where(Meeting.case_id == case_id, MeetingMember.user_id == user_id,
                       Meeting.kind == "support_meeting"))
    notified = select(CaseNotice.id).where(CaseNotice.case_id == case_id, CaseNotice.department_id == dept)
    return handoffs, covered, meetings, notified


def _covered(session: Session, case_id: int, department_id: int) -> bool:
    """Whether the case's consent in force covers the department."""
    row = session.execute(_relation_statements()[1], {"r_case": case_id, "r_dept": department_id}).first()
    return row is not None and row[0] == "given" and bool(row[1])


def relations(session: Session, user, case) -> frozenset[str]:
    """The relations of `user` to `case` (see the module docstring)."""
    if getattr(user, "role", None) == "system":
        return frozenset({SYSTEM})
    if not _is_person(user):
        return frozenset()
    if user.role == "admin":
        return frozenset({ADMIN})
    rel: set[str] = {FM} if user.role == "fm" else set()
    dept = user.department_id
    if case.owning_department_id is not None:
        if dept == case.owning_department_id:
            rel.add(OWNER)
    elif dept in (case.created_department_id, case.reopened_department_id) or dept == _desk_id(session):
        rel.add(OWNER)
    if dept == case.created_department_id:
        rel.add(RECORDER)
    handoffs, _, meetings, notified = _relation_statements()
    for state, to_dept, from_dept in session.execute(handoffs, {"r_case": case.id, "r_dept": dept}):
        if to_dept == dept and state == "sent":
            rel.add(INVITED)
        if to_dept == dept and state == "accepted":
            rel.add(JOINED)
        if from_dept == dept:
            rel.add(RECORDER)
    if _covered(session, case.id, dept):
        rel.add(COVERED)
    if case.fm_id is not None and case.fm_id == user.id:
        rel.add(CASE_FM)
    for (acknowledged_at,) in session.execute(meetings, {"r_case": case.id, "r_user": user.id}):
        rel.add(CASE_MEMBER if acknowledged_at is not None else PENDING_MEMBER)
    # Being told of a case opens its metadata only, which every other relation opens too: the notice is
    # looked up only when nothing else relates the person to the case.
    if not rel and session.execute(notified, {"r_case": case.id, "r_dept": dept}).first() is not None:
        rel.add(NOTIFIED)
    return frozenset(rel)


def meeting_relations(user, meeting) -> frozenset[str]:
    """The relations of `user` to one meeting: member, secretariat (acknowledged), or pending.

    An administrator is none of these even if listed (no form makes one a member): reading no case content
    is what the role is."""
    if not _is_person(user) or user.role == "admin":
        return frozenset()
    row = next((m for m in meeting.members if m.user_id == user.id), None)
    if row is None:
        return frozenset()
    if row.acknowledged_at is None:
        return frozenset({PENDING})
    return frozenset({MEMBER, SECRETARIAT} if row.secretariat else {MEMBER})


def invitation_reaches(session: Session, user, meeting) -> bool:
    """Whether an invited member who has not acknowledged yet reaches the meeting by the invitation alone
    (its page, to acknowledge the 守秘義務).

    A 支援会議 invites without consent. A 重層的支援会議 meets under the person's consent: its invitation
    reaches only the staff of the agencies that consent covers now, and lapses when it is withdrawn or
    narrowed (anyone else reaches it only as they reach the case)."""
    if meeting.kind != "layered_meeting":
        return True
    return user.department_id in consented_department_ids(session, meeting.case_id)


def sight_of(rel: frozenset[str]) -> Sight:
    if rel & CONTENT_RELATIONS:
        return Sight.CONTENT
    if rel & METADATA_RELATIONS:
        return Sight.METADATA
    return Sight.NONE


def case_sight(session: Session, user, case) -> Sight:
    """How much of the case `user` may see."""
    return sight_of(relations(session, user, case))


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
        rel = rel | meeting_relations(user, meeting)
    elif kind in (SUPPORT_MEETING, LAYERED_MEETING) and op in (READ, WRITE):
        raise ValueError("a meeting kind needs the meeting")
    return bool(rel & POLICY[(kind, op)])


def require_admin(user, message: str = "この操作は管理者だけができます。") -> None:
    """The administration of the system (the 開示請求 trail, staff users, API clients) is the admin's alone."""
    if not _is_person(user) or user.role != "admin" or not getattr(user, "active", True):
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


def may_work_on_case(session: Session, user, case) -> bool:
    """Whether `user` may drive the case (send handoffs, ask others to join, close): owner or case FM."""
    return may(session, user, case, CASE_METADATA, WRITE)


def is_meeting_member(session: Session, user, case_id: int, kind: str | None = None,
                      acknowledged: bool = False) -> bool:
    """Whether `user` is a member of a meeting about the case (of `kind`, if given)."""
    from engine.models import Meeting, MeetingMember

    q = (
        select(MeetingMember.id)
        .join(Meeting, Meeting.id == MeetingMember.meeting_id)
        .where(MeetingMember.user_id == user.id, Meeting.case_id == case_id)
    )
    if kind:
        q = q.where(Meeting.kind == kind)
    if acknowledged:
        q = q.where(MeetingMember.acknowledged_at.is_not(None))
    return bool(session.scalar(select(exists(q))))


def is_support_meeting_member(session: Session, user, case_id: int) -> bool:
    return is_meeting_member(session, user, case_id, kind="support_meeting")


def member_meeting_ids(session: Session, user, case_id: int, kind: str = "support_meeting") -> list[int]:
    """The case's meetings (of `kind`) whose records `user` reads: acknowledged memberships, newest first."""
    from engine.models import Meeting, MeetingMember

    if not _is_person(user) or user.role == "admin":
        return []
    return list(session.scalars(
        select(Meeting.id).join(MeetingMember, MeetingMember.meeting_id == Meeting.id)
        .where(Meeting.case_id == case_id, Meeting.kind == kind, MeetingMember.user_id == user.id,
               MeetingMember.acknowledged_at.is_not(None))
        .order_by(Meeting.held_at.desc(), Meeting.id.desc())
    ))


def contact_note_visible(user, note, rel: frozenset[str], member_meetings) -> bool:
    """Whether `user` reads one contact note.

    A 支援会議 note: only that meeting's acknowledged members. An ordinary note: the relations POLICY names;
    a department that only joined the case reads the notes it wrote itself.
    """
    if note.meeting_id is not None:
        return note.meeting_id in member_meetings
    if rel & (POLICY[(CONTACT_NOTES, READ)] - {JOINED}):
        return True
    return JOINED in rel and note.department_id == getattr(user, "department_id", None)


def shared_fact_visible(fact, rel: frozenset[str], member_meetings) -> bool:
    """Whether a carried-over fact reaches `user`: covered agencies now, and its meeting's members."""
    return bool(rel & {SYSTEM, COVERED}) or fact.meeting_id in member_meetings


# The states in which a case is worked on without the person's consent, in the 支援会議 track: what a
# 支援会議 member types then may carry what the meeting shared, and stays with the meeting's members.
MEETING_TRACK_STATES = ("support_meeting", "consent")


def note_meeting_id(session: Session, user, case, rel: frozenset[str]) -> int | None:
    """The 支援会議 a new contact note by `user` belongs to, or None for the ordinary (consented) track.

    The owner, a joined department and a covered agency write into the ordinary track, except a 支援会議
    member while the case is in the 支援会議 track (支援会議・同意確認中): what they record then may carry
    what the meeting shared without consent, and it would reach the covered agencies once consent is
    given. Anyone else who may write (a 支援会議 member, the case FM) knows the case through a 支援会議.
    Either way the note is a record of their newest 支援会議 and stays with its members.
    """
    if SYSTEM in rel:
        return None
    meetings = member_meeting_ids(session, user, case.id)
    if rel & {OWNER, JOINED, COVERED} and not (meetings and case.state in MEETING_TRACK_STATES):
        return None
    return meetings[0] if meetings else None


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


def visible_cases_filter(session: Session | None, user, min_sight: Sight = Sight.METADATA, *, walk: bool = False):
    """A WHERE clause for the cases `user` sees at `min_sight` or more (lists, counts and search use it).

    It states the rules of `relations()` in SQL; a test checks the two agree on every pair of a varied set.
    (`session` is not needed; it is kept for the callers that pass it.) The clause is true() or false()
    itself when the answer does not depend on the case.

    With `walk`, the clause is stated so that the database cannot answer it through the case id's index:
    for a list that walks another index (newest first) and tests each row, which beats gathering and
    sorting every visible case when the person may know of thousands.
    """
    from engine.models import Case, CaseDepartment

    role = getattr(user, "role", None)
    if role == "system":
        return true()
    if not _is_person(user):
        return false()
    if role == "admin":
        return true() if min_sight <= Sight.METADATA else false()
    if role == "fm" and min_sight <= Sight.METADATA:
        return true()
    if session is not None:  # the transaction's own writes first
        from engine import case_departments

        case_departments.settle(session)
    # The department's relations are kept in case_departments (engine.case_departments, checked against
    # the records by the tests); the person's own (case FM, meeting member) are added here. Each way in
    # is an index lookup, so the database unions ids instead of testing every case row.
    # Every way in is stated on the case id alone, so that a list walking an index of `cases` in some order
    # can test it without reading the rows it skips.
    known = select(CaseDepartment.case_id).where(CaseDepartment.department_id == user.department_id)
    fm_cases = select(Case.id).where(Case.fm_id == user.id)
    case_id = Case.id + 0 if walk else Case.id
    if min_sight >= Sight.CONTENT:
        return or_(case_id.in_(known.where(CaseDepartment.content.is_(True))), case_id.in_(fm_cases),
                   case_id.in_(_meeting_cases(user, acknowledged=True)))
    return or_(case_id.in_(known), case_id.in_(fm_cases), case_id.in_(_meeting_cases(user, acknowledged=False)))


def visible_state_counts(session: Session, user) -> dict[str, int]:
    """How many cases `user` may know of are in each state (the same cases as visible_cases_filter)."""
    from engine.models import Case, CaseDepartment

    visible = visible_cases_filter(session, user)
    if visible is false():
        return {}
    if visible is true():
        return dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    counts = dict(session.execute(
        select(CaseDepartment.state, func.count()).where(CaseDepartment.department_id == user.department_id)
        .group_by(CaseDepartment.state)).all())
    # The person's own cases that the department does not already know of (their ids first: an OR of the
    # two ways in would test every case row).
    own_ids = union(select(Case.id).where(Case.fm_id == user.id), _meeting_cases(user, acknowledged=False))
    own = select(Case.state, func.count()).where(
        Case.id.in_(own_ids),
        ~exists().where(CaseDepartment.case_id == Case.id, CaseDepartment.department_id == user.department_id),
    ).group_by(Case.state)
    for state, n in session.execute(own):
        counts[state] = counts.get(state, 0) + n
    return counts


def _meeting_cases(user, *, acknowledged: bool):
    from engine.models import Meeting, MeetingMember

    q = (select(Meeting.case_id).join(MeetingMember, MeetingMember.meeting_id == Meeting.id)
         .where(MeetingMember.user_id == user.id, Meeting.kind == "support_meeting"))
    return q.where(MeetingMember.acknowledged_at.is_not(None)) if acknowledged else q


def content_cases_filter(session: Session | None, user):
    """A WHERE clause for the cases whose content (person, summary, notes) `user` may read: a search by
    name, area or category must never reveal a case to someone who sees only its metadata."""
    return visible_cases_filter(session, user, Sight.CONTENT)


def content_is_visibility(user) -> bool:
    """Whether every case `user` may know of is also one whose content they read (never assumed: the
    department that recorded a case keeps only metadata once another owns it)."""
    return getattr(user, "role", None) == "system"
