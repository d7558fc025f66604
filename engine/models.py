"""SQLAlchemy 2.x models: the case, its handoffs, meetings, consents, plans and the records around them."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.dbtypes import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CASE_STATES = (
    "intake", "handoff", "assigned", "support_meeting", "consent",
    "layered_meeting", "accompaniment", "suspended", "closed",
)
HANDOFF_STATES = ("sent", "accepted", "declined", "withdrawn")
ALERT_KINDS = (
    "handoff_stalled", "handoff_escalated", "handoff_declined", "unrouted",
    "multi_agency_candidate", "evaluation_overdue", "no_contact",
    "basis_needed", "handed_back", "notice_unseen", "watch_report", "meeting_requested",
)
DEPARTMENT_KINDS = ("city_section", "outside_agency", "partner")
# What a body outside the city was given of a person's data (提供記録), and on which basis.
PROVISION_KINDS = ("sheet", "join", "meeting", "fact", "notice", "plan_role")
BASIS_KINDS = ("commission", "consent", "support_meeting", "statute")
ALERT_STATUSES = ("open", "acknowledged", "resolved")
ROLES = ("staff", "fm", "admin")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


# --- organisation -------------------------------------------------------------------------------


class Department(Base):
    """A city section, an outside agency or a partner that a つなぐシート can reach."""

    __tablename__ = "departments"
    __table_args__ = (CheckConstraint(_in("kind", DEPARTMENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    areas: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A body outside the city commissioned by the city (委託, 個人情報保護法66条2項): the work, and the issue
    # categories it covers (engine.sharing.bases). None for a city section and for a partner (協定企業・団体).
    commission_work: Mapped[str | None] = mapped_column(Text)
    commission_categories: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")

    @property
    def outside_city(self) -> bool:
        """Whether the body is outside the city's own offices (a person's data reaches it only on a basis)."""
        return self.kind != "city_section"


class User(Base):
    """A staff member (職員) who signs in to the pages, or on whose behalf an API token acts."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped when a user is disabled or signs out everywhere: open sessions carry the old value and end.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # Set when someone else chose or saw the password (issued on the 管理 page, or set by an operator): the
    # user is led to change it before anything else.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Inner joins (the keys are NOT NULL): a row locked FOR UPDATE may not sit on the nullable side of a
    # LEFT JOIN on PostgreSQL.
    department: Mapped[Department] = relationship(lazy="joined", innerjoin=True)

    @property
    def is_fm(self) -> bool:
        return self.role == "fm"

    # The sign-in protocol of the pages (flask-login's user interface), in plain Python.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        """The session's user key; bumping `session_epoch` ends every open session of the user."""
        return f"{self.id}:{self.session_epoch}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# --- the person and the case --------------------------------------------------------------------


class Person(Base):
    """A person the city knows (本人, or a member of a household with a record of their own): one record per
    person across windows, referrers and years (名寄せ, engine.people).

    A record merged into another keeps its row, pointing at the one it became (`merged_into_id`), so that an
    unmerge restores both as they were."""

    __tablename__ = "people"
    __table_args__ = (
        # One live record per 宛名番号: a second consultation with it is the same person.
        Index("uq_people_resident_id_live", "resident_id", unique=True,
              sqlite_where=text("resident_id IS NOT NULL AND merged_into_id IS NULL"),
              postgresql_where=text("resident_id IS NOT NULL AND merged_into_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str | None] = mapped_column(String(100))
    # Name and kana folded (NFKC, katakana→hiragana, no spaces); the list's search reads name_key and kana_key.
    search_key: Mapped[str] = mapped_column(String(220), index=True, default="")
    # Name and kana folded for matching and search (異体字 and ヴ too, engine.people.names.match_key).
    name_key: Mapped[str] = mapped_column(String(200), default="")
    kana_key: Mapped[str] = mapped_column(String(200), default="")
    sex: Mapped[str | None] = mapped_column(String(16))
    birth_date: Mapped[date | None] = mapped_column(Date, index=True)
    # Kept alone when retention clears the birth date (the age band still counts in the yearly report).
    birth_year: Mapped[int | None] = mapped_column(Integer)
    area: Mapped[str | None] = mapped_column(String(32))
    resident_id: Mapped[str | None] = mapped_column(String(32))  # 宛名番号
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    anonymised_at: Mapped[datetime | None]


class PersonCandidate(Base):
    """A possible match (名寄せの候補): a newer record and a known person with the same birth date and the same
    name or kana. Never merged by itself: staff confirm it (the records are merged) or reject it."""

    __tablename__ = "person_candidates"
    __table_args__ = (
        CheckConstraint(_in("status", ("open", "confirmed", "rejected")), name="status"),
        UniqueConstraint("person_id", "candidate_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)  # the newer record
    candidate_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)  # the known person
    reason: Mapped[str] = mapped_column(String(32))  # name / kana / name_kana
    status: Mapped[str] = mapped_column(String(16), default="open")
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    merge_id: Mapped[int | None] = mapped_column(ForeignKey("person_merges.id"))


class PersonMerge(Base):
    """Two records found to be one person: `merged` became `survivor`, with what moved (cases, household
    places), so that an unmerge puts back exactly that. History is never rewritten."""

    __tablename__ = "person_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    merged_at: Mapped[datetime]
    merged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    case_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    member_ids: Mapped[list[int]] = mapped_column(JSON, default=list)  # household places moved
    resident_id_moved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # took the 宛名番号
    undone_at: Mapped[datetime | None]
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    undo_reason: Mapped[str | None] = mapped_column(Text)


class Household(Base):
    """A household (世帯): people living together, each for a period."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list["HouseholdMember"]] = relationship(order_by="HouseholdMember.id",
                                                            back_populates="household")


class HouseholdMember(Base):
    """A member of a household (世帯員) for a period: a person with a record of their own (`person_id`), or
    one known only as listed (name, birth year). `relationship_label` (母, 長男, 配偶者 …) is as stated by
    the person `relative_to_id` (the one whose consultation listed them; None for that person themself)."""

    __tablename__ = "household_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    relationship_label: Mapped[str] = mapped_column(String(50))
    relative_to_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    name: Mapped[str | None] = mapped_column(String(100))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    since: Mapped[date | None] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)  # moved out (or died) on; None while they live there
    recorded_with_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    household: Mapped[Household] = relationship(back_populates="members")
    person: Mapped[Person | None] = relationship(foreign_keys=[person_id])


class CaseNumberCounter(Base):
    """Last case number given in a fiscal year (年度)."""

    __tablename__ = "case_number_counters"

    fiscal_year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class Case(Base):
    """A consultation followed from intake to closure; its `state` is driven by engine.states."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("state", CASE_STATES), name="state"),
        CheckConstraint(_in("urgency", ("normal", "urgent")), name="urgency"),
        CheckConstraint(
            "(state = 'closed' AND closed_at IS NOT NULL AND close_reason IS NOT NULL)"
            " OR (state <> 'closed' AND closed_at IS NULL)",
            name="closed_fields",
        ),
        CheckConstraint(
            "state NOT IN ('assigned', 'accompaniment', 'layered_meeting') OR owning_department_id IS NOT NULL",
            name="owned_states_have_owner",
        ),
        UniqueConstraint("referral_client_id", "external_ref"),
        # Covers the counts by state of every case list (visibility tests owner and creator).
        Index("ix_cases_state_owner_created", "state", "owning_department_id", "created_department_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    # How the person was found when the case was opened (名寄せ): matched (宛名番号), new, or candidate.
    person_match: Mapped[str | None] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    state: Mapped[str] = mapped_column(String(32), default="intake")
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    owning_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    created_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The department whose staff reopened the case: until a department accepts it again, it holds the case
    # in 受付 as the recording window and the desk do (it may send the つなぐシート, or close the case again).
    reopened_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    fm_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    consent_to_share: Mapped[bool] = mapped_column(Boolean, default=False)
    multi_agency_candidate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Routing: what the rules proposed, under which version, and any override by staff.
    routing_rule_version: Mapped[int | None] = mapped_column(Integer)
    routing_rule_name: Mapped[str | None] = mapped_column(String(100))
    routing_reason: Mapped[str | None] = mapped_column(Text)
    proposed_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    override_reason: Mapped[str | None] = mapped_column(Text)
    # Referral from another system.
    referral_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"), index=True)
    external_ref: Mapped[str | None] = mapped_column(String(255))
    referrer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Reporting (national 事業区分, 支援決定日).
    business_categories: Mapped[list[Any]] = mapped_column(default=list)
    support_decision_date: Mapped[date | None] = mapped_column(Date)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(String(32))
    close_note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    anonymised_at: Mapped[datetime | None]

    person: Mapped[Person] = relationship(lazy="joined", innerjoin=True)  # inner: see User.department
    owning_department: Mapped[Department | None] = relationship(foreign_keys=[owning_department_id])
    proposed_department: Mapped[Department | None] = relationship(foreign_keys=[proposed_department_id])
    categories: Mapped[list["CaseCategory"]] = relationship(
        cascade="all, delete-orphan", order_by="CaseCategory.position"
    )
    handoffs: Mapped[list["Handoff"]] = relationship(
        back_populates="case", order_by="Handoff.id", cascade="all, delete-orphan"
    )
    history: Mapped[list["CaseHistory"]] = relationship(order_by="CaseHistory.id", cascade="all, delete-orphan")

    __mapper_args__ = {"version_id_col": version}

    @property
    def category_codes(self) -> list[str]:
        return [c.code for c in self.categories]

    @property
    def primary_category(self) -> str | None:
        return next((c.code for c in self.categories if c.primary), None)

    @property
    def open_primary_handoff(self) -> "Handoff | None":
        return next((h for h in self.handoffs if h.primary and h.state == "sent"), None)


class CaseCategory(Base):
    """One issue category (課題分類) of a case; exactly one is primary."""

    __tablename__ = "case_categories"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    primary: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Handoff(Base):
    """A つなぐシート: one department hands a case, or asks another to join it."""

    __tablename__ = "handoffs"
    __table_args__ = (
        CheckConstraint(_in("state", HANDOFF_STATES), name="state"),
        CheckConstraint("state <> 'accepted' OR accepted_at IS NOT NULL", name="accepted_fields"),
        CheckConstraint(
            "state <> 'declined' OR (declined_at IS NOT NULL AND decline_reason IS NOT NULL)",
            name="declined_fields",
        ),
        Index("ix_handoffs_open_due", "state", "due_at"),
        Index("ix_handoffs_open_escalate", "state", "escalate_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    # A primary handoff moves the case (intake → handoff → assigned); a join request does not.
    primary: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str] = mapped_column(String(16), default="sent")
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    from_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    to_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(16), default="normal")
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    escalate_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    declined_at: Mapped[datetime | None]
    declined_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None]
    # The join ended because the consent it rested on was narrowed or withdrawn: the department keeps the
    # case's metadata and what it wrote itself (engine.access.relations: former).
    lapsed_at: Mapped[datetime | None]

    case: Mapped[Case] = relationship(back_populates="handoffs")
    from_department: Mapped[Department | None] = relationship(foreign_keys=[from_department_id])
    to_department: Mapped[Department] = relationship(foreign_keys=[to_department_id])

    __mapper_args__ = {"version_id_col": version}


class CaseHistory(Base):
    """Append-only record of every transition of a case (and of its handoffs)."""

    __tablename__ = "case_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    actor: Mapped[User | None] = relationship()


# --- meetings, consent, plan --------------------------------------------------------------------


class Meeting(Base):
    """A 支援会議 (kind support_meeting; no consent, members under 守秘義務) or 重層的支援会議 (layered_meeting)."""

    __tablename__ = "meetings"
    __table_args__ = (CheckConstraint(_in("kind", ("support_meeting", "layered_meeting")), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    held_at: Mapped[datetime]
    convenor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    secretariat_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    minutes: Mapped[str | None] = mapped_column(Text)
    decisions: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list["MeetingMember"]] = relationship(cascade="all, delete-orphan", order_by="MeetingMember.id")
    discussed_cases: Mapped[list["MeetingCase"]] = relationship(cascade="all, delete-orphan")
    attendees: Mapped[list["MeetingAttendee"]] = relationship(cascade="all, delete-orphan",
                                                              order_by="MeetingAttendee.department_id")


class MeetingMember(Base):
    """A member of a meeting, with the time they acknowledged the 守秘義務."""

    __tablename__ = "meeting_members"
    __table_args__ = (UniqueConstraint("meeting_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    secretariat: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class MeetingAttendee(Base):
    """An agency (a department or a body outside the city) that attended a 重層的支援会議 (出席機関).

    A 重層的支援会議 meets under the person's consent with the agencies it covers; who sat for each is the
    agency's affair, the record names the agency."""

    __tablename__ = "meeting_attendees"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True)

    department: Mapped[Department] = relationship()


class MeetingCase(Base):
    """Which cases a meeting discussed: the case it was opened from and the others it took up (another
    member of the household …). Each discussed person's trail, retention and counts include the meeting."""

    __tablename__ = "meeting_cases"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    # Indexed on its own too: the meetings that discussed a case are looked up by the case.
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True, index=True)


class Consent(Base):
    """A consent record: given, refused or withdrawn; by whom, when, how, covering which agencies."""

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint(_in("status", ("given", "refused", "withdrawn")), name="status"),
        CheckConstraint("method IS NULL OR " + _in("method", ("written", "oral")), name="method"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    given_by: Mapped[str] = mapped_column(String(100))  # 本人, or the representative's name and relation
    method: Mapped[str | None] = mapped_column(String(16))
    obtained_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    # Who recorded it: a member of staff, or the system that referred the case with the person's consent.
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_by_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    agencies: Mapped[list["ConsentAgency"]] = relationship(cascade="all, delete-orphan")


class CaseDepartment(Base):
    """A department's standing relation to a case, kept by engine.case_departments.

    One row per (case, department) for the relations that belong to a department rather than to one
    person: owner (or, while the case is unowned, its recorder and the desk), invited or joined by a
    つなぐシート, covered by the current consent (`content` true), recorder and notified (`content` false). The
    case's `state` is repeated here so that a department's counts by state read one index. This table
    only speeds up lists and counts; every decision on one case is taken from the records themselves.
    """

    __tablename__ = "case_departments"
    __table_args__ = (
        Index("ix_case_departments_department_id_state", "department_id", "state", "content", "case_id"),
    )

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True)
    content: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(32))


class ConsentAgency(Base):
    """An agency a consent covers (同意の範囲)."""

    __tablename__ = "consent_agencies"

    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id", ondelete="CASCADE"), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), primary_key=True, index=True)


class SharedFact(Base):
    """A fact a 支援会議 member carried over into the consented track, explicitly and audited."""

    __tablename__ = "shared_facts"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"))
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id"))
    text: Mapped[str] = mapped_column(Text)
    carried_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    carried_at: Mapped[datetime] = mapped_column(default=utcnow)


class Plan(Base):
    """A 支援プラン version: goals in the person's words, a role per agency, 主担当, next evaluation date."""

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("case_id", "number"),
        CheckConstraint(_in("status", ("active", "superseded", "ended")), name="status"),
        # The stall scan reads only active plans that are due (engine/alerts/scan.py).
        Index("ix_plans_status_next_evaluation", "status", "next_evaluation_date"),
        Index("ix_plans_status_no_contact", "status", "no_contact_since"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    goals: Mapped[str] = mapped_column(Text)
    main_department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    next_evaluation_date: Mapped[date] = mapped_column(Date, index=True)
    # The day the no-contact period counts from: the plan's adoption day or the last contact, whichever is
    # later (kept up to date by add_contact_note, so that the scan finds silent cases by an index).
    no_contact_since: Mapped[date | None] = mapped_column(Date)
    business_categories: Mapped[list[Any]] = mapped_column(default=list)
    # 支援決定: the day the 重層的支援会議 decided the plan (recorded that day, or later with that day).
    decided_on: Mapped[date | None] = mapped_column(Date)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revised_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]

    roles: Mapped[list["PlanRole"]] = relationship(cascade="all, delete-orphan", order_by="PlanRole.id")
    main_department: Mapped[Department] = relationship()
    meeting: Mapped[Meeting | None] = relationship()


class PlanRole(Base):
    """What one agency does under a plan (役割分担)."""

    __tablename__ = "plan_roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    role: Mapped[str] = mapped_column(Text)

    department: Mapped[Department] = relationship()


class Evaluation(Base):
    """An evaluation (評価) of a plan at its review date."""

    __tablename__ = "evaluations"
    __table_args__ = (
        CheckConstraint(_in("decision", ("continue", "replan", "suspend", "close")), name="decision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    evaluated_on: Mapped[date] = mapped_column(Date)
    goals_met: Mapped[str] = mapped_column(String(16))  # a code of config/categories.yaml goals_met
    changes: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16))
    next_evaluation_date: Mapped[date | None] = mapped_column(Date)
    evaluator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactNote(Base):
    """A contact in the 支援経過記録: date, method, staff, agency, what happened.

    `meeting_id` set marks the note as a record of that 支援会議 (made without consent): only the
    meeting's members read it, and it never reaches the consented track (see engine.access).
    """

    __tablename__ = "contact_notes"
    __table_args__ = (Index("ix_contact_notes_case_date", "case_id", "contact_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    contact_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    business_category: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[User] = relationship()
    department: Mapped[Department] = relationship()


class ParticipationMatch(Base):
    """参加支援: a person matched to a place or role hosted by a 協力事業者."""

    __tablename__ = "participation_matches"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    host_name: Mapped[str] = mapped_column(String(200))  # the host's label when the match was recorded
    host: Mapped[str | None] = mapped_column(String(32))  # a code of config/categories.yaml participation_hosts
    activity: Mapped[str] = mapped_column(Text)
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


# --- routing and alerts -------------------------------------------------------------------------


class RoutingRuleVersion(Base):
    """One installed version of config/routing.yaml; the newest is in force."""

    __tablename__ = "routing_rule_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    checksum: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(String(300))
    source_text: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    loaded_by: Mapped[str | None] = mapped_column(String(100))


class CaseNotice(Base):
    """A department told of a case it does not own (a routing rule's `notify`, or the sender's choice).

    It lets the department know the case exists (its number, state, departments and the reason it was
    told), not read its content: to work on the case it is asked to join. Shown in the department's
    inbox until someone there acknowledges it.
    """

    __tablename__ = "case_notices"
    __table_args__ = (UniqueConstraint("case_id", "department_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When a notice of a 多機関協働 candidate nobody has seen goes to the FM (the stall policy's business days).
    escalate_at: Mapped[datetime | None] = mapped_column(index=True)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    case: Mapped["Case"] = relationship()
    department: Mapped["Department"] = relationship()


JOIN_OFFER_STATUSES = ("open", "accepted", "declined", "withdrawn", "lapsed")


class JoinOffer(Base):
    """参加の申し出: a department told of a case (a CaseNotice) offers to work on it.

    The case's owner answers: it asks the department to join (a join つなぐシート, `handoff_id`) or lets
    the offer go with a note. `open_key` ("<case id>:<department id>") is set while the offer waits, so a
    department has one open offer per case.
    """

    __tablename__ = "join_offers"
    __table_args__ = (
        CheckConstraint(_in("status", JOIN_OFFER_STATUSES), name="status"),
        UniqueConstraint("open_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    open_key: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None]
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer_note: Mapped[str | None] = mapped_column(Text)
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id", ondelete="SET NULL"))

    department: Mapped["Department"] = relationship()


class Alert(Base):
    """Something a person must look at: a stalled handoff, an unrouted case, an overdue evaluation …"""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
        # One open alert per object and kind: `open_key` is set while unresolved and cleared on resolve.
        UniqueConstraint("open_key"),
        Index("ix_alerts_status_kind", "status", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    open_key: Mapped[str | None] = mapped_column(String(100))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    # What a plan's alert (evaluation_overdue, no_contact) was raised about: the plan, and the date that made
    # it due (its evaluation date, or the start of the silence). The scan lets the alert go once either changes.
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    subject_date: Mapped[date | None] = mapped_column(Date)
    # A notice nobody has seen (notice_unseen): the notice it is about.
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("case_notices.id", ondelete="CASCADE"))
    message: Mapped[str] = mapped_column(Text, default="")
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # What was written on 確認 (acknowledge) and on 解決 (resolve): two notes, so that neither replaces the other.
    note: Mapped[str | None] = mapped_column(Text)
    resolution_note: Mapped[str | None] = mapped_column(Text)

    department: Mapped[Department | None] = relationship()


class Provision(Base):
    """提供記録: a person's data given to a body outside the city — what, to whom, when, by whom, on which basis.

    Written by the engine with every outward share (engine.sharing): a つなぐシート, a join request, a 支援会議's
    records, a fact carried over, a notice's text, a plan role. The 開示請求 answer lists them.
    """

    __tablename__ = "provisions"
    __table_args__ = (
        CheckConstraint(_in("what", PROVISION_KINDS), name="what"),
        CheckConstraint(_in("basis", BASIS_KINDS), name="basis"),
        CheckConstraint("basis <> 'statute' OR (basis_code IS NOT NULL AND basis_note IS NOT NULL)",
                        name="statute_has_code_and_note"),
        Index("ix_provisions_case_department", "case_id", "department_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    what: Mapped[str] = mapped_column(String(16))
    basis: Mapped[str] = mapped_column(String(32))
    basis_code: Mapped[str | None] = mapped_column(String(32))  # a statute or emergency: config sharing_bases
    basis_note: Mapped[str | None] = mapped_column(Text)
    commission_work: Mapped[str | None] = mapped_column(Text)  # the commission as it stood
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id", ondelete="SET NULL"))
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="SET NULL"))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id", ondelete="SET NULL"))
    given_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    given_by_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    given_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship()


# --- API clients, idempotency, webhooks ---------------------------------------------------------


class ApiClient(Base):
    """Another system that calls the REST API; `user_id` set means its tokens act as that staff user."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    # The source (categories.yaml `sources`) of every referral the client sends; None: `api`.
    source: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship()


class ApiToken(Base):
    """A bearer token; only its SHA-256 hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    client: Mapped[ApiClient] = relationship(lazy="joined", innerjoin=True)


class IdempotencyKey(Base):
    """The first answer to a POST under an Idempotency-Key, replayed for retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    body_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxEvent(Base):
    """A webhook event written in the same transaction as the change; sent after commit."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """One attempt to deliver an outbox event."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


# --- audit --------------------------------------------------------------------------------------


class AuditHead(Base):
    """The single row holding the chain's last sequence number and hash; locking it orders appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    hash: Mapped[str] = mapped_column(String(64), default="0" * 64)


class AuditEvent(Base):
    """An append-only, hash-chained record of who read or wrote what (監査ログ)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_case_at", "case_id", "at"),
        # Failed sign-ins per address (engine.users.accounts throttles on them).
        Index("ix_audit_events_addr_at", "remote_addr", "at"),
        # The rows that name a person's record (reads through the API, merges): the 開示請求 answer's.
        Index("ix_audit_events_person", "object_id", sqlite_where=text("object_type = 'person'"),
              postgresql_where=text("object_type = 'person'")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)  # no FK: the trail outlives the case
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RetentionRun(Base):
    """What one run of `tsunagu retention apply` did."""

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(default=utcnow)
    cutoff: Mapped[datetime]
    dry_run: Mapped[bool] = mapped_column(Boolean)
    case_ids: Mapped[list[Any]] = mapped_column(default=list)


# --- page forms ---------------------------------------------------------------------------------


class FormSubmission(Base):
    """The one-time key of a page form that creates something (a consultation, a contact note):
    the same form sent twice — a double click, a reload — is applied once."""

    __tablename__ = "form_submissions"
    __table_args__ = (UniqueConstraint("user_id", "token"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
