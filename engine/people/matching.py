"""名寄せ: which person the city already knows a new consultation is about.

The same 宛名番号 (`resident_id`) is the same person. Otherwise the same birth date with the same name or the
same kana (folded: engine.people.names.match_key) is a *candidate*, which staff confirm or reject: two
records are never made one by a guess. Twins share a birth date and differ in name and kana: no candidate.
A record with another 宛名番号 is another person, whatever its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.models import Person
from engine.people.names import match_key

MATCHED, NEW, CANDIDATE = "matched", "new", "candidate"


@dataclass
class Match:
    """What is known of the person: `person` when the 宛名番号 matched, else the candidates found, each with
    why (name, kana, or name_kana: both)."""

    person: Person | None = None
    candidates: list[tuple[Person, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return MATCHED if self.person is not None else (CANDIDATE if self.candidates else NEW)


def live_by_resident_id(session: Session, resident_id: str | None) -> Person | None:
    """The live (not merged away) record with this 宛名番号, or None."""
    if not resident_id:
        return None
    return session.scalar(select(Person).where(Person.resident_id == resident_id,
                                               Person.merged_into_id.is_(None)))


def candidates(session: Session, *, name: str | None, kana: str | None, birth_date: date | None,
               resident_id: str | None = None, exclude: set[int] | frozenset[int] = frozenset()
               ) -> list[tuple[Person, str]]:
    """Live records born the same day whose name or kana folds the same (a name written in kana meets the
    other's kana too); none with another 宛名番号. One indexed read of that day's records."""
    if birth_date is None:
        return []
    keys = {k for k in (match_key(name), match_key(kana)) if k}
    if not keys:
        return []
    rows = session.scalars(
        select(Person).where(Person.birth_date == birth_date, Person.merged_into_id.is_(None),
                             Person.anonymised_at.is_(None),
                             or_(Person.name_key.in_(keys), Person.kana_key.in_(keys)))
        .order_by(Person.id))
    found = []
    name_key, kana_key = match_key(name), match_key(kana)
    for p in rows:
        if p.id in exclude or (resident_id and p.resident_id and p.resident_id != resident_id):
            continue
        by_name = bool(name_key) and name_key in (p.name_key, p.kana_key)
        by_kana = bool(kana_key) and kana_key in (p.kana_key, p.name_key)
        found.append((p, "name_kana" if by_name and by_kana else ("name" if by_name else "kana")))
    return found


def find(session: Session, *, name: str | None, kana: str | None = None, birth_date: date | None = None,
         resident_id: str | None = None) -> Match:
    """The person a consultation is about: matched by 宛名番号, or the candidates for staff to decide."""
    known = live_by_resident_id(session, resident_id)
    if known is not None:
        return Match(person=known)
    return Match(candidates=candidates(session, name=name, kana=kana, birth_date=birth_date,
                                       resident_id=resident_id))
