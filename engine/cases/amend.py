"""Reading a case file (ケース記録) as the access policy allows, and amending its content.

Every reader checks engine.access, raises NotFound (the actor may not know the case exists) or
PermissionDenied (the actor sees the case but not this record), and records the read in the audit trail.
The pages and the API call these (or engine.cases.views.case_view, which audits itself); they never query
records of a case directly.

For the web layer, on a refusal: roll the request back, call engine.audit.refusals.record_refusal with what was
attempted, commit that row alone (see its docstring), and answer 404 or 403.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import access, calendar, vocab
from engine.audit import trail
from engine.cases import checks, kernel
from engine.errors import MissingField, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Case, utcnow
from engine.people import matching, records

PERSON_FIELDS = ("name", "name_kana", "sex", "birth_date", "area", "resident_id", "phone", "address")


def amend_case(session: Session, actor, case_id: int, *, version: int | None, summary: str | None = None,
               person: dict[str, Any] | None = None, now: datetime | None = None) -> Case:
    """Correct the content of a case: its summary and the person's details (the owner or the case FM).

    The history gets a row naming the amended fields (not their values); so does the audit trail.
    """
    now = now or utcnow()
    case = kernel.load_case(session, actor, case_id)
    access.require(session, actor, case, access.CASE_CONTENT, access.WRITE)
    if case.anonymised_at is not None:
        raise PermissionDenied("保存期間を過ぎて匿名化されたケースは修正できません。")
    if version is None:
        raise MissingField({"version": ["読み込んだときのバージョンを指定してください。"]})
    stale = case.version != version  # told after the comparison: was this form's change made already?
    errors: dict[str, list[str]] = {}
    changed: list[str] = []
    if summary is not None:
        if not summary.strip():
            errors["summary"] = [checks.REQUIRED]
        elif summary.strip() != case.summary:
            case.summary = summary.strip()
            changed.append("summary")
    p = case.person
    for name, value in (person or {}).items():
        if name not in PERSON_FIELDS:
            errors[f"person.{name}"] = ["修正できない項目です。"]
            continue
        if name == "name" and not (value or "").strip():
            errors["person.name"] = [checks.REQUIRED]
            continue
        if name == "area" and value not in (None, "") and value not in vocab.codes("areas"):
            errors["person.area"] = [f"「{value}」という圏域はありません。"]
            continue
        if name == "sex" and value not in (None, "") and value not in vocab.codes("sexes"):
            errors["person.sex"] = [checks.UNKNOWN_SEX.format(value=value)]
            continue
        if name == "birth_date" and value not in (None, "") and not isinstance(value, date):
            try:
                value = date.fromisoformat(str(value))
            except ValueError:
                errors["person.birth_date"] = ["生年月日は YYYY-MM-DD の形で入力してください。"]
                continue
        problem = checks.birth_date_problem(value, now.astimezone(calendar.JST).date()) \
            if name == "birth_date" and value else None
        if problem:
            errors["person.birth_date"] = [problem]
            continue
        if isinstance(value, str):
            value = value.strip() or None
        if name == "resident_id" and value and value != p.resident_id:
            other = matching.live_by_resident_id(session, value)
            if other is not None and other.id != p.id:
                errors["person.resident_id"] = ["この宛名番号は別の人の記録にあります。同じ人なら、FM・管理者が"
                                                "2つの記録を統合します。"]
                continue
        if getattr(p, name) != value:
            setattr(p, name, value)
            changed.append(f"person.{name}")
    if stale:
        # A form sent twice shows nothing left to change (its first copy was applied); a form made stale by
        # another change still has its own to make, and comes back with what was typed. The comparison set
        # the form's values on the loaded row: the refusal rolls them back.
        error = StaleVersion(case.version, version)
        error.extra["already_applied"] = not changed and not errors
        raise error
    if errors:
        raise ValidationFailed(errors)
    if not changed:
        return case
    records.set_name(p, p.name, p.name_kana)
    case.updated_at = now
    kernel.record_history(session, case, actor, "amend", now, {"fields": changed}, from_state=case.state,
                            to_state=case.state)
    trail.record(session, actor=actor, action="case.amend", object_type="case", object_id=case.id,
                 case_id=case.id, at=now, detail={"fields": changed})
    kernel.flush_or_stale(session, case)
    return case


