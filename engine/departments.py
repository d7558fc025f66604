"""Departments and agencies (部署・機関): looked up by code, once per session.

A department is a city section, an outside agency (委託・指定の相談機関) or a partner (協定企業・団体), as
config/departments.yaml declares it. The desk (相談まるごとサポートデスク) holds every case that no department owns.
"""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import Department

DESK_CODE = "desk"


def departments_by_codes(session: Session, codes: Iterable[str | None]) -> dict[str, Department | None]:
    """The departments with these codes, fetched in one query and remembered for the session."""
    cache = session.info.setdefault("departments_by_code", {})
    codes = [c for c in codes if c and isinstance(c, str)]
    missing = {c for c in codes if c not in cache}
    if missing:
        found = {d.code: d for d in session.scalars(select(Department).where(Department.code.in_(missing)))}
        for c in missing:
            cache[c] = found.get(c)
    return {c: cache.get(c) for c in codes}


def department_by_code(session: Session, code: str | None) -> Department | None:
    """The department with this code (looked up once per session)."""
    if not code or not isinstance(code, str):
        return None
    return departments_by_codes(session, [code])[code]


def desk_id(session: Session) -> int | None:
    """The desk's id (looked up once per session)."""
    desk = department_by_code(session, DESK_CODE)
    return desk.id if desk is not None else None
