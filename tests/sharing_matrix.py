"""The sharing rules as an expected matrix: body kind × basis × action → allowed or not.

A body outside the city receives a person's data only on a basis (engine.sharing.bases); a city section
shares inside the city as the work needs. Each cell builds its own small world: a case held by the desk
(相談まるごとサポートデスク, which records it and has not sent it yet), set up as the basis says, and then the
desk (or the FM, for a fact carried over) does the action towards the body.

Bodies: a city section (健康推進課), a commissioned agency (ひきこもり支援ステーション: its commission covers
ひきこもり, not 生活困窮), a partner (社協: no commission).
Bases: none; commission in scope (the case is about ひきこもり); commission out of scope (生活困窮 only); a
consent naming the body; a consent naming another (生活福祉課 only); the body's staff sits in the case's
支援会議; a statute or an emergency the desk chooses with a note.
Actions: read content / read metadata (after the desk tried to send the body the つなぐシート); receive a
sheet; be asked to join; receive a fact a 支援会議 member carries over (under a consent); be told of the case
(does the notice carry its reason, or only that there is a case).
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from engine.cases import intake
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.models import Case, Meeting, User  # noqa: F401  (Case: the tests read it)

ALLOW, REFUSE = "allow", "refuse"
BODIES = {  # kind → (department code, its staff's login in the tests' cast)
    "city_section": ("health", "health-staff"),
    "commissioned": ("hikikomori_station", "hikikomori"),
    "partner": ("shakyo", "shakyo"),
}
BASES = ("none", "commission_in_scope", "commission_out_of_scope", "consent_naming", "consent_not_naming",
         "meeting_member", "statute")
ACTIONS = ("read_content", "read_metadata", "receive_sheet", "join", "carry_fact", "be_told")

A, R = ALLOW, REFUSE
# body → basis → the actions in ACTIONS order
_TABLE = {
    "city_section": {
        #                          content metadata sheet join carry told
        "none":                    (A, A, A, A, R, A),
        "commission_in_scope":     (A, A, A, A, R, A),
        "commission_out_of_scope": (A, A, A, A, R, A),
        "consent_naming":          (A, A, A, A, A, A),
        # With a consent in force, a department outside it is not asked to join (the 支援会議 is where others
        # are consulted): as for every department.
        "consent_not_naming":      (A, A, A, R, R, A),
        "meeting_member":          (A, A, A, A, A, A),
        "statute":                 (A, A, A, A, R, A),
    },
    "commissioned": {
        "none":                    (R, R, R, R, R, R),
        "commission_in_scope":     (A, A, A, A, R, A),
        "commission_out_of_scope": (R, R, R, R, R, R),
        "consent_naming":          (A, A, A, A, A, A),
        "consent_not_naming":      (R, R, R, R, R, R),
        # The 支援会議 shares the case with its members (社会福祉法106条の6): its records and its subject, nothing
        # sent outside the meeting.
        "meeting_member":          (A, A, R, R, A, R),
        "statute":                 (A, A, A, A, R, A),
    },
    "partner": {
        "none":                    (R, R, R, R, R, R),
        "commission_in_scope":     (R, R, R, R, R, R),  # a partner has no commission
        "commission_out_of_scope": (R, R, R, R, R, R),
        "consent_naming":          (A, A, A, A, A, A),
        "consent_not_naming":      (R, R, R, R, R, R),
        "meeting_member":          (A, A, R, R, A, R),
        "statute":                 (A, A, A, A, R, A),
    },
}
EXPECTED: dict[tuple[str, str, str], str] = {
    (body, basis, action): row[i]
    for body, rows in _TABLE.items() for basis, row in rows.items() for i, action in enumerate(ACTIONS)
}
CELLS = sorted(EXPECTED)

STATUTE = {"code": "emergency", "note": "本人が自宅で倒れ、家族とも連絡がとれない"}
NAME = "柴田 ひかる"  # the person: their name reaches a reader of the content
REASON = "本人の状況を伝える理由MARK"  # a notice's reason: reaches the body only on a basis
FACT = "支援会議で共有したMARK"


@dataclass
class World:
    case_id: int
    body: str  # department code
    login: str  # the body's staff
    basis: str


def categories_for(basis: str) -> list[str]:
    return ["hikikomori"] if basis == "commission_in_scope" else ["poverty"]


def consent_for(basis: str, body: str, *, needed: bool = False) -> dict | None:
    """The consent taken with the consultation: naming the body, naming another, or none (one naming another
    when the action needs a consent in force: a fact carried over)."""
    if basis == "consent_naming":
        return {"given_by": "本人", "method": "oral", "agencies": [body]}
    if basis == "consent_not_naming" or needed:
        return {"given_by": "本人", "method": "oral", "agencies": ["livelihood"]}
    return None


def chosen(basis: str) -> dict | None:
    return STATUTE if basis == "statute" else None


def user(s, login: str) -> User:
    return s.scalar(select(User).where(User.login == login))


def build_world(sessions, kind: str, basis: str, *, consent_needed: bool = False) -> World:
    """A case the desk holds (recorded at the desk, not routed), set up as the basis says; with
    `consent_needed` (a fact to carry) a consent is in force and a 支援会議 met, the FM its secretariat."""
    from tests.conftest import NOW, intake_fields

    body, login = BODIES[kind]
    fields = intake_fields(categories=categories_for(basis), summary="要約", person={
        "name": NAME, "name_kana": "シバタ ヒカル", "birth_date": "1990-04-01", "area": "廿日市"})
    consent = consent_for(basis, body, needed=consent_needed)
    if consent:
        fields["consent"] = consent
    with unit_of_work(sessions) as s:
        case_id = intake.open_case(s, user(s, "window"), fields, now=NOW, route=False).id
    if basis == "meeting_member" or consent_needed:
        members = [{"user": login if basis == "meeting_member" else "livelihood", "acknowledged": True}]
        with unit_of_work(sessions) as s:
            firing.fire_event(s, user(s, "fm"), case_id, "convene_support_meeting",
                              version=s.get(Case, case_id).version, fields={"members": members}, now=NOW)
    return World(case_id, body, login, basis)


def meeting_of(sessions, case_id: int) -> int:
    with sessions() as s:
        return s.scalar(select(Meeting.id).where(Meeting.case_id == case_id))
