"""Which records are one person: the same 宛名番号, or the same folded name and birth date."""
from __future__ import annotations

from sqlalchemy import or_

from engine.models import Case, Person


def person_cases_filter(case: Case):
    """The cases of the same person as `case`: the same 宛名番号, or the same folded name and birth date."""
    p = case.person
    same = [Case.id == case.id, Case.person_id == p.id]
    if p.resident_id:
        same.append(Person.resident_id == p.resident_id)
    if p.search_key and p.birth_date is not None:
        same.append((Person.search_key == p.search_key) & (Person.birth_date == p.birth_date))
    return or_(*same)
