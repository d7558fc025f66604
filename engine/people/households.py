"""Households (世帯): people living together, each for a period, and the cases of its members.

A consultation's household list joins its person's household: a member with a 宛名番号 is the person the
city knows by it (or a new record of their own), one without is kept as listed (name, birth year, note). A
person with no household yet joins the one a listed member already has, else a new one is made. A
relationship (母, 長男 …) is kept as the person who listed it said it (`relative_to_id`).

A case belongs to its person, and so to their household: the case page shows the household and its other
cases, each only as far as the reader may see it (a case out of the reader's sight shows that it exists and
which department owns it, nothing more).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine import access, calendar, states
from engine.audit import trail
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.models import Case, Department, Household, HouseholdMember, Person, utcnow
from engine.people import matching, records

# What the listed member calls the person who listed them, for the person's own place in a household they
# join through that member (母 listed by her son: the son is her 子).
INVERSE = {
    "母": "子", "父": "子", "親": "子", "長男": "親", "次男": "親", "三男": "親", "長女": "親", "次女": "親",
    "三女": "親", "子": "親", "息子": "親", "娘": "親", "配偶者": "配偶者", "夫": "妻", "妻": "夫",
    "兄": "きょうだい", "姉": "きょうだい", "弟": "きょうだい", "妹": "きょうだい", "きょうだい": "きょうだい",
    "祖母": "孫", "祖父": "孫", "孫": "祖父母", "義母": "子の配偶者", "義父": "子の配偶者",
}
SELF = "本人"


def _current(today: date):
    return or_(HouseholdMember.until.is_(None), HouseholdMember.until > today)


def _new_household(session: Session, person: Person, now: datetime) -> Household:
    """A household made for `person`, who is its first member (本人)."""
    household = Household(created_at=now)
    session.add(household)
    session.add(HouseholdMember(household=household, person_id=person.id, relationship_label=SELF, created_at=now))
    return household


def places_of(session: Session, person_id: int, today: date) -> list[HouseholdMember]:
    """The person's places in households now (a person may be listed in two household records)."""
    return list(session.scalars(select(HouseholdMember).where(
        HouseholdMember.person_id == person_id, _current(today)).order_by(HouseholdMember.household_id)))


def record_listed(session: Session, person: Person, listed: list[dict], *, case: Case | None, now: datetime,
                  today: date) -> Household | None:
    """Join a consultation's household list to the person's household (see the module docstring); returns it
    (None when nothing was listed and the person has none)."""
    places = places_of(session, person.id, today)
    linked: list[tuple[dict, Person | None]] = []
    for m in listed:
        other = None
        if m.get("resident_id"):
            other = matching.live_by_resident_id(session, m["resident_id"])
            if other is None:
                other = Person(resident_id=m["resident_id"], created_at=now)
                records.set_name(other, m["name"].strip(), m.get("name_kana"))
                session.add(other)
                session.flush()
        linked.append((m, other))
    if not places and not listed:
        return None
    if places:
        household = places[0].household
    else:
        through = next(((m, o, p) for m, o in linked if o is not None for p in places_of(session, o.id, today)),
                       None)
        if through is not None:
            m, other, place = through
            household = place.household
            session.add(HouseholdMember(household=household, person_id=person.id, created_at=now,
                                        relationship_label=INVERSE.get((m.get("relationship") or "").strip(), "世帯員"),
                                        relative_to_id=other.id, recorded_with_case_id=getattr(case, "id", None)))
        else:
            household = _new_household(session, person, now)
        session.flush()
    present = {(x.person_id, x.relationship_label, x.relative_to_id, x.name, x.birth_year)
               for x in household.members if x.until is None or x.until > today}
    present_people = {x.person_id for x in household.members if x.person_id and (x.until is None or x.until > today)}
    for m, other in linked:
        label = (m.get("relationship") or "").strip() or "不明"
        if other is not None:
            if other.id in present_people or other.id == person.id:
                continue
            # The birth year as listed stays on the member row: the new record of a member knows no birth date.
            row = HouseholdMember(household=household, person_id=other.id, relationship_label=label,
                                  relative_to_id=person.id, birth_year=m.get("birth_year"), note=m.get("note"),
                                  created_at=now, recorded_with_case_id=getattr(case, "id", None))
            present_people.add(other.id)
        else:
            key = (None, label, person.id, m.get("name") or None, m.get("birth_year"))
            if key in present:
                continue
            present.add(key)
            row = HouseholdMember(household=household, relationship_label=label, relative_to_id=person.id,
                                  name=m.get("name") or None, birth_year=m.get("birth_year"), note=m.get("note"),
                                  created_at=now, recorded_with_case_id=getattr(case, "id", None))
        session.add(row)
    session.flush()
    return household


@dataclass
class MemberRow:
    """A member as a reader of the case's content sees them."""

    id: int
    relationship: str
    name: str | None
    birth_year: int | None
    note: str | None
    since: date | None
    until: date | None
    person_id: int | None
    is_self: bool


@dataclass
class HouseholdCase:
    """Another case of the household: what the reader may see of it (`visible`), else only that it exists and
    which department owns it."""

    whose: str
    owner: str | None
    visible: bool
    id: int | None = None
    case_number: str | None = None
    state_label: str | None = None
    owner_code: str | None = None
    state: str | None = None


@dataclass
class HouseholdView:
    id: int
    members: list[MemberRow] = field(default_factory=list)
    cases: list[HouseholdCase] = field(default_factory=list)


def _label(m: HouseholdMember, names: dict[int, str], self_id: int) -> str:
    """The relationship as the reader of `self_id`'s case reads it: as stated, and by whom when that is not
    the person of the case (「母（廿日 一郎からみて）」)."""
    if m.relationship_label == SELF:
        return SELF if m.person_id == self_id else "世帯員"
    if m.relative_to_id is not None and m.relative_to_id != self_id:
        return f"{m.relationship_label}（{names.get(m.relative_to_id, '世帯員')}からみて）"
    return m.relationship_label


def households_for(session: Session, actor, person: Person, *, today: date, exclude_case_id: int | None = None
                   ) -> list[HouseholdView]:
    """The person's households now, with every member (past ones with their period) and the other cases of
    its members, each as far as `actor` may see it. The caller has checked that `actor` reads the content of
    a case of this person."""
    out = []
    for place in places_of(session, person.id, today):
        household = place.household
        people = {m.person_id for m in household.members if m.person_id}
        names = dict(session.execute(select(Person.id, Person.name).where(
            Person.id.in_(people | {m.relative_to_id for m in household.members if m.relative_to_id}))).all())
        view = HouseholdView(id=household.id)
        whose: dict[int, str] = {}
        for m in household.members:
            p = session.get(Person, m.person_id) if m.person_id else None
            row = MemberRow(id=m.id, relationship=_label(m, names, person.id), name=p.name if p else m.name,
                            birth_year=(p.birth_date.year if p and p.birth_date else (p.birth_year if p else None))
                            or m.birth_year, note=m.note, since=m.since, until=m.until, person_id=m.person_id,
                            is_self=m.person_id == person.id)
            view.members.append(row)
            if m.person_id and (m.until is None or m.until > today):
                # As the reader of this person's record reads the relationship (a son's own 本人 row is 世帯員).
                whose.setdefault(m.person_id, SELF if m.person_id == person.id else
                                 f"{row.relationship} {row.name or ''}".strip())
        if whose:
            owners = Department.__table__.alias("owner")
            rows = session.execute(
                select(Case, owners.c.name, owners.c.code).outerjoin(owners, owners.c.id == Case.owning_department_id)
                .where(Case.person_id.in_(list(whose)), Case.id != (exclude_case_id or 0))
                .order_by(Case.opened_at, Case.id)).all()
            for case, owner, owner_code in rows:
                seen = access.case_sight(session, actor, case) >= access.Sight.METADATA
                view.cases.append(HouseholdCase(
                    whose=whose[case.person_id], owner=owner, owner_code=owner_code, visible=seen,
                    id=case.id if seen else None, case_number=case.case_number if seen else None,
                    state=case.state if seen else None,
                    state_label=states.CASE_STATE_LABELS[case.state] if seen else None))
        out.append(view)
    return out


def may_write_a_case_of(session: Session, actor, person_ids) -> bool:
    """Whether `actor` may write the content of a case of one of these people."""
    return any(access.may(session, actor, case, access.CASE_CONTENT, access.WRITE)
               for case in session.scalars(select(Case).where(Case.person_id.in_(list(person_ids)))))


def may_edit(session: Session, actor, household: Household) -> bool:
    """Who may change a household: whoever may write the content of a case of one of its members."""
    return may_write_a_case_of(session, actor, {m.person_id for m in household.members if m.person_id})


def add_first_member(session: Session, actor, person_id: int, fields: dict, *, now: datetime | None = None,
                     remote_addr: str | None = None) -> HouseholdMember:
    """Add someone to the household of a person who has none on record yet: the household is made with the
    person (本人) and the member (add_member's fields). For those who may write a case of the person."""
    now = now or utcnow()
    person = records.live(session, person_id)
    if not may_write_a_case_of(session, actor, {person.id}):
        raise NotFound("指定された人は見つかりません。")
    places = places_of(session, person.id, now.astimezone(calendar.JST).date())
    household = places[0].household if places else _new_household(session, person, now)
    session.flush()
    return add_member(session, actor, household.id, fields, now=now, remote_addr=remote_addr)


def _require_editor(session: Session, actor, household: Household) -> None:
    if not may_edit(session, actor, household):
        raise NotFound("指定された世帯は見つかりません。")


def add_member(session: Session, actor, household_id: int, fields: dict, *, now: datetime | None = None,
               remote_addr: str | None = None) -> HouseholdMember:
    """Add someone to a household: a person the city knows (`person_id`), or one as listed (`name`,
    `birth_year`); `relationship` to `relative_to` (a member person), from `since`."""
    now = now or utcnow()
    today = now.astimezone(calendar.JST).date()
    household = session.get(Household, household_id)
    if household is None:
        raise NotFound("指定された世帯は見つかりません。")
    _require_editor(session, actor, household)
    errors: dict[str, list[str]] = {}
    label = (fields.get("relationship") or "").strip()
    if not label:
        errors["relationship"] = ["続柄を入力してください。"]
    elif len(label) > 50:
        errors["relationship"] = ["続柄は50文字以内で入力してください。"]
    person_id = fields.get("person_id")
    members = {m.person_id for m in household.members if m.person_id}
    current = {m.person_id for m in household.members if m.person_id and (m.until is None or m.until > today)}
    if person_id:
        try:
            known = records.live(session, int(person_id))
        except (NotFound, ValueError, TypeError):
            known = None
        # A record is named by its number only if the reader may see that person (no name found by guessing).
        if known is None or records.sight_of_person(session, actor, known) < access.Sight.METADATA:
            errors["person_id"] = ["指定された人は見つかりません。"]
        elif known.id in current:
            errors["person_id"] = ["この人は既にこの世帯の世帯員です。"]
        else:
            person_id = known.id
    elif not (fields.get("name") or "").strip():
        errors["name"] = ["氏名を入力してください（記録のある人は番号で指定します）。"]
    elif len(fields["name"].strip()) > 100:
        errors["name"] = ["氏名は100文字以内で入力してください。"]
    birth_year = fields.get("birth_year")
    if birth_year is not None and not (isinstance(birth_year, int) and 1868 <= birth_year <= today.year):
        errors["birth_year"] = [f"生まれ年は1868年（明治元年）から{today.year}年までの年にしてください。"]
    since = fields.get("since")
    if since is not None and since > today:
        errors["since"] = ["世帯に加わった日に、先の日付は入力できません。"]
    relative_to = fields.get("relative_to") or None
    if relative_to is not None and relative_to not in members:
        errors["relative_to"] = ["続柄の基準はこの世帯の人から選んでください。"]
    if errors:
        raise ValidationFailed(errors)
    row = HouseholdMember(household=household, person_id=person_id or None, relationship_label=label,
                          relative_to_id=relative_to, name=None if person_id else fields["name"].strip(),
                          birth_year=fields.get("birth_year"), note=fields.get("note"), since=fields.get("since"),
                          created_at=now)
    session.add(row)
    session.flush()
    trail.record(session, actor=actor, action="household.add_member", object_type="household",
                 object_id=household.id, remote_addr=remote_addr, at=now, detail={"member": row.id})
    return row


def end_membership(session: Session, actor, member_id: int, until: date, *, now: datetime | None = None,
                   remote_addr: str | None = None) -> HouseholdMember:
    """A member moved out (or died) on `until`: kept with their period, no longer counted as living there."""
    now = now or utcnow()
    row = session.get(HouseholdMember, member_id)
    if row is None:
        raise NotFound("指定された世帯員は見つかりません。")
    _require_editor(session, actor, row.household)
    if row.until is not None:
        raise Conflict("この世帯員は既に転出・死亡などで世帯を離れたと記録されています。")
    if until is None:
        raise ValidationFailed({"until": ["世帯を離れた日を入力してください。"]})
    if until > now.astimezone(calendar.JST).date():
        raise ValidationFailed({"until": ["世帯を離れた日に、先の日付は入力できません。"]})
    if row.since is not None and until < row.since:
        raise ValidationFailed({"until": ["世帯を離れた日は、世帯に加わった日以降にしてください。"]})
    row.until = until
    session.flush()
    trail.record(session, actor=actor, action="household.end_member", object_type="household",
                 object_id=row.household_id, remote_addr=remote_addr, at=now, detail={"member": row.id})
    return row
