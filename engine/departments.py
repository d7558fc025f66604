"""Departments and agencies (部署・機関): looked up by code, once per session.

A department is a city section, an outside agency (委託・指定の相談機関) or a partner (協定企業・団体), as
config/departments.yaml declares it, with the commission (委託) that lets an outside agency receive a
person's data for that work (engine.sharing.bases). The desk (相談まるごとサポートデスク) holds every case that
no department owns.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import vocab
from engine.models import DEPARTMENT_KINDS, Department

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


def install(session: Session, path: Path) -> tuple[list[str], list[str]]:
    """Upsert the departments of a departments.yaml by code, with their commissions; return the codes added
    and the codes changed. The file is checked first and nothing is written if any entry is wrong
    (ValueError naming it). A department the file leaves out stays as it is: cases refer to it.

    A commission narrowed or removed takes effect on the next share; what was given before stays given
    and recorded (提供記録)."""
    added, changed = [], []
    for d in read_departments(path):
        row = session.scalar(select(Department).where(Department.code == d["code"]))
        if row is None:
            row = Department(code=d["code"])
            session.add(row)
            added.append(d["code"])
        commission = d.get("commission") or {}
        values = {"name": d["name"], "kind": d["kind"], "areas": list(d.get("areas") or []),
                  "commission_work": commission.get("work"),
                  "commission_categories": list(commission.get("categories") or [])}
        if row.id is not None and any(getattr(row, k) != v for k, v in values.items()):
            changed.append(d["code"])
        for key, value in values.items():
            setattr(row, key, value)
    session.flush()
    session.info.pop("departments_by_code", None)
    return added, changed


def configured_codes(directory: Path, *, city_only: bool = False) -> list[str] | None:
    """The codes of the departments.yaml in `directory` (only the city's sections with `city_only`), in the
    file's order; None when there is no such file or it is wrong (installing it says why)."""
    try:
        entries = _configured(str(Path(directory) / "departments.yaml"))
    except ValueError:
        return None
    return [d["code"] for d in entries if not city_only or d["kind"] == "city_section"]


@lru_cache(maxsize=8)
def _configured(path: str) -> tuple[dict, ...]:
    return tuple(read_departments(Path(path)))


def read_departments(path: Path) -> list[dict]:
    """The departments of a departments.yaml, checked: a code, a name, a known kind; a commission only for a
    body outside the city, with its work and known issue categories."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: 読み込めません（{exc}）") from exc
    entries = data.get("departments") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: departments のリストがありません")
    categories = set(vocab.codes("issue_categories"))
    for i, d in enumerate(entries, start=1):
        where = f"{path}: {i}番目の部署"
        if not isinstance(d, dict) or not isinstance(d.get("code"), str) or not isinstance(d.get("name"), str):
            raise ValueError(f"{where}に code と name がありません")
        if d.get("kind") not in DEPARTMENT_KINDS:
            raise ValueError(f"{where}（{d['code']}）の kind は {' / '.join(DEPARTMENT_KINDS)} のいずれかです")
        commission = d.get("commission")
        if commission is None:
            continue
        if d["kind"] == "city_section":
            raise ValueError(f"{where}（{d['code']}）: 市の部署に commission（委託）は指定できません")
        if not isinstance(commission, dict) or not isinstance(commission.get("work"), str) \
                or not commission["work"].strip():
            raise ValueError(f"{where}（{d['code']}）: commission には work（委託している業務）が必要です")
        cats = commission.get("categories")
        if not isinstance(cats, list) or not cats or not set(cats) <= categories:
            unknown = sorted(set(cats or []) - categories) if isinstance(cats, list) else []
            raise ValueError(f"{where}（{d['code']}）: commission.categories は課題分類コードのリストで指定してください"
                             + (f"（不明: {', '.join(map(str, unknown))}）" if unknown else ""))
    return entries
