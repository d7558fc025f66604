"""The access policy as an expected matrix: role × record kind × read/write → allow or the refusal.

One world (`build_world`) holds a case that went through every track: intake at the desk (with a referral
from an outside system), acceptance by 生活福祉課, a 支援会議 with an outside agency, contact notes in
both tracks, consent covering 生活福祉課 and 社協, a fact carried over, a plan, and a partner's note.
Each role is one person's relation to that case. The engine tests (tests/test_access_matrix.py) assert the
matrix through the read models and services; page and API tests can assert the same matrix over HTTP by
mapping each (kind, op) to a request.

Expected values: ALLOW; FORBIDDEN (PermissionDenied, 403: may see the case, may not do this);
SECRECY (SecrecyNotAcknowledged, 403: a member who has not acknowledged the 守秘義務); NOT_FOUND
(NotFound, 404: may not know the case exists).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from engine.alerts import notices
from engine.cases import intake, meetings, notes
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.models import ApiClient, AuditEvent, Base, Case, Department, Meeting, User

ALLOW = "allow"
FORBIDDEN = "forbidden"
SECRECY = "secrecy"
NOT_FOUND = "not_found"

KINDS = ("case_metadata", "case_content", "support_meeting", "consent", "plan", "contact_notes", "shared_facts")
OPS = ("read", "write")

# What each (kind, op) means, in engine terms (pages and the API map these to their own requests).
OPERATIONS = {
    ("case_metadata", "read"): "the case's state, dates, departments, handoffs (referral view for a client)",
    ("case_metadata", "write"): "drive the case: ask another department to join (request_join)",
    ("case_content", "read"): "the person, household, summary (reading.read_case: its content)",
    ("case_content", "write"): "correct the summary (amend.amend_case)",
    ("support_meeting", "read"): "the 支援会議's minutes and its notes (reading.read_meeting)",
    ("support_meeting", "write"): "the secretariat adds a member (meetings.add_meeting_member)",
    ("consent", "read"): "the consent records (reading.read_case: its consents)",
    ("consent", "write"): "record the person's withdrawal (event withdraw_consent)",
    ("plan", "read"): "the 支援プラン (reading.read_case: its plan)",
    ("plan", "write"): "evaluate the plan (event evaluate)",
    ("contact_notes", "read"): "the consented-track contact notes (reading.read_case: its contact notes)",
    ("contact_notes", "write"): "add a contact note (notes.add_contact_note)",
    ("shared_facts", "read"): "facts carried over from the 支援会議 (reading.read_case: its shared facts)",
    ("shared_facts", "write"): "carry a fact over (meetings.carry_fact)",
}

ROLES = {
    "window": "窓口職員（相談を受け付けた部署。担当は他部署）",
    "outsider": "関わりのない部署の職員",
    "receiving": "受け入れた担当部署の職員（同意の範囲内・会議の構成員ではない）",
    "fm_member": "支援会議の構成員であるFM（担当FM・事務局）",
    "fm_other": "構成員ではないFM",
    "member_outside": "支援会議の構成員である外部機関の職員（同意の範囲外）",
    "member_pending": "守秘義務を確認していない構成員",
    "covered_partner": "同意の範囲に含まれる機関の職員（社協）",
    "notified": "ケースの通知を受けた部署の職員（担当ではない）",
    "admin": "管理者",
    "referral_client": "紹介元の外部システム（ユーザーに紐づかないAPIクライアント）",
}

A, F, S, N = ALLOW, FORBIDDEN, SECRECY, NOT_FOUND

# role → kind → (read, write)
_TABLE = {
    #                  metadata  content  support_mtg consent  plan    notes   facts
    "window":          [(A, F), (F, F), (F, F), (F, F), (F, F), (F, F), (F, F)],
    "outsider":        [(N, N), (N, N), (N, N), (N, N), (N, N), (N, N), (N, N)],
    "receiving":       [(A, A), (A, A), (F, F), (A, A), (A, A), (A, A), (A, F)],
    "fm_member":       [(A, A), (A, A), (A, A), (A, A), (A, A), (A, A), (A, A)],
    "fm_other":        [(A, F), (F, F), (F, F), (F, F), (F, F), (F, F), (F, F)],
    "member_outside":  [(A, F), (A, F), (A, F), (A, A), (F, F), (F, A), (A, A)],
    "member_pending":  [(A, F), (F, F), (S, S), (F, F), (F, F), (F, F), (F, S)],
    "covered_partner": [(A, F), (A, F), (F, F), (A, F), (A, F), (A, A), (A, F)],
    "notified":        [(A, F), (F, F), (F, F), (F, F), (F, F), (F, F), (F, F)],
    "admin":           [(A, F), (F, F), (F, F), (F, F), (F, F), (F, F), (F, F)],
    "referral_client": [(A, N), (N, N), (N, N), (N, N), (N, N), (N, N), (N, N)],
}

EXPECTED: dict[tuple[str, str, str], str] = {
    (role, kind, op): row[i][j]
    for role, row in _TABLE.items()
    for i, kind in enumerate(KINDS)
    for j, op in enumerate(OPS)
}

# Words planted in the world's records: a word may appear in what a role reads only where the matrix
# allows that kind. (The meeting's own notes are support-meeting records.)
MARKERS = {
    "case_content": "要約MARK-家賃を三か月滞納",
    "support_meeting": "会議MARK-長男の借金の詳細",
    "support_meeting_note": "会議メモMARK-訪問時に長男と面談",
    "consent": "同意MARK-家族同席で説明",
    "plan": "プランMARK-家賃を払えるようになりたい",
    "contact_notes": "経過MARK-家計の聞き取り",
    "contact_notes_partner": "社協MARK-居場所の見学",
    "shared_facts": "共有MARK-長男は日中在宅",
}
MARKER_KIND = {
    "support_meeting_note": "support_meeting",
    "contact_notes_partner": "contact_notes",
}


def marker_kind(name: str) -> str:
    return MARKER_KIND.get(name, name)


# What a refusal over HTTP must leave alone, and what it must add.

def tables_but_audit(sessions) -> tuple:
    """Every table's row count but the audit trail's, and the case versions."""
    from sqlalchemy import func, select

    with unit_of_work(sessions) as s:
        counts = tuple(s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables
                       if not t.name.startswith("audit"))
        return counts, tuple(s.execute(select(Case.id, Case.version).order_by(Case.id)).all())


def refusals(sessions) -> int:
    """How many refusals the audit trail holds."""
    from sqlalchemy import func, select

    with unit_of_work(sessions) as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.outcome == "refused"))


def version(sessions, case_id: int) -> int:
    with unit_of_work(sessions) as s:
        return s.get(Case, case_id).version


@dataclass
class World:
    case_id: int
    meeting_id: int
    client_id: int
    person_name: str
    logins: dict[str, str]  # role → login (referral_client: none)


def build_world(sessions, make_user, now) -> World:
    """Build the matrix's world in committed transactions; return its ids and each role's login."""
    from tests.conftest import intake_fields

    logins = {
        "window": make_user("staff", "desk", login="m-window").login,
        "outsider": make_user("staff", "children", login="m-outsider").login,
        "receiving": make_user("staff", "livelihood", login="m-receiving").login,
        "fm_member": make_user("fm", "community_welfare", login="m-fm").login,
        "fm_other": make_user("fm", "community_welfare", login="m-fm-other").login,
        "member_outside": make_user("staff", "hikikomori_station", login="m-outside").login,
        "member_pending": make_user("staff", "elderly", login="m-pending").login,
        "covered_partner": make_user("staff", "shakyo", login="m-partner").login,
        "notified": make_user("staff", "health", login="m-notified").login,
        "admin": make_user("admin", "community_welfare", login="m-admin").login,
    }
    future = (now + timedelta(days=60)).date().isoformat()

    def user(s, role):
        from sqlalchemy import select

        return s.scalar(select(User).where(User.login == logins[role]))

    def fire(s, role, case_id, event, **fields):
        case = s.get(Case, case_id)
        firing.fire_event(s, user(s, role), case_id, event, version=case.version, fields=fields, now=now)

    person_name = "廿日 太郎"
    with unit_of_work(sessions) as s:
        client = ApiClient(name="houkatsu-oono", scopes=["referrals:read", "referrals:write"])
        s.add(client)
        s.flush()
        case = intake.open_case(s, user(s, "window"), intake_fields(
            categories=["poverty"], summary=MARKERS["case_content"], external_ref="OONO-0001",
            person={"name": person_name, "name_kana": "ハツカ タロウ", "birth_date": "1960-05-01",
                    "area": "廿日市", "resident_id": "0001234567"}), now=now, client=client)
        case_id, client_id = case.id, client.id
    with unit_of_work(sessions) as s:
        fire(s, "receiving", case_id, "accept_handoff")
    with unit_of_work(sessions) as s:  # 健康推進課 is told of the case (as a routing rule's notify would)
        from sqlalchemy import select

        notices.notify(s, user(s, "window"), s.get(Case, case_id),
                       [s.scalar(select(Department).where(Department.code == "health"))], reason="通知", now=now)
    with unit_of_work(sessions) as s:
        fire(s, "fm_member", case_id, "convene_support_meeting",
             members=[{"user": logins["member_outside"], "acknowledged": True}],
             minutes=MARKERS["support_meeting"])
    with unit_of_work(sessions) as s:
        from sqlalchemy import select

        meeting_id = s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
        notes.add_contact_note(s, user(s, "member_outside"), case_id,
                                  {"method": "home_visit", "body": MARKERS["support_meeting_note"]}, now=now)
        notes.add_contact_note(s, user(s, "receiving"), case_id,
                                  {"method": "phone", "body": MARKERS["contact_notes"]}, now=now)
        meetings.add_meeting_member(s, user(s, "fm_member"), meeting_id, logins["member_pending"], now=now)
    with unit_of_work(sessions) as s:
        fire(s, "fm_member", case_id, "seek_consent")
    with unit_of_work(sessions) as s:
        fire(s, "receiving", case_id, "record_consent", given_by="本人", method="written",
             agencies=["livelihood", "shakyo"], note=MARKERS["consent"])
    with unit_of_work(sessions) as s:
        meetings.carry_fact(s, user(s, "fm_member"), meeting_id, MARKERS["shared_facts"], now=now)
    with unit_of_work(sessions) as s:
        fire(s, "receiving", case_id, "adopt_plan", goals=MARKERS["plan"], main_department="livelihood",
             next_evaluation_date=future,
             roles=[{"department": "livelihood", "role": "家計相談"}, {"department": "shakyo", "role": "居場所"}])
    with unit_of_work(sessions) as s:
        notes.add_contact_note(s, user(s, "covered_partner"), case_id,
                                  {"method": "home_visit", "body": MARKERS["contact_notes_partner"]}, now=now)
    return World(case_id=case_id, meeting_id=meeting_id, client_id=client_id, person_name=person_name,
                 logins=logins)
