"""Reading a case file (ケース記録) as the access policy allows, and amending its content.

Every reader checks engine.access, raises NotFound (the actor may not know the case exists) or
PermissionDenied (the actor sees the case but not this record), and records the read in the audit trail.
The pages and the API call these (or engine.views.case_view, which audits itself); they never query
records of a case directly.

For the web layer, on a refusal: roll the request back, call engine.services.record_refusal with what was
attempted, commit that row alone (see its docstring), and answer 404 or 403.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine import access, audit, services, views, vocab
from engine.errors import PermissionDenied, StaleVersion, ValidationFailed
from engine.models import Case, Person, utcnow


def _audit_read(session: Session, actor, case: Case, kind: str, detail: dict | None = None) -> None:
    audit.record(session, actor=actor, action=f"{kind}.read", object_type="case", object_id=case.id,
                 case_id=case.id, detail=detail)


def read_case(session: Session, actor, case_id: int) -> dict[str, Any]:
    """The staff view of a case with the events the actor may fire (engine.views.case_view; audited there)."""
    case = services.load_case(session, actor, case_id)
    return views.case_view(session, actor, case, services.allowed_events(session, actor, case))


def read_case_content(session: Session, actor, case_id: int) -> dict[str, Any]:
    """The person, household, summary and categories of the case."""
    case = services.load_case(session, actor, case_id)
    access.require(session, actor, case, access.CASE_CONTENT, access.READ)
    _audit_read(session, actor, case, access.CASE_CONTENT)
    return views.content_view(session, case)


def read_consents(session: Session, actor, case_id: int) -> list[dict[str, Any]]:
    """The consent records of the case (who, when, how, which agencies), oldest first."""
    case = services.load_case(session, actor, case_id)
    access.require(session, actor, case, access.CONSENT, access.READ)
    _audit_read(session, actor, case, access.CONSENT)
    return views.consents_view(session, case,
                               meeting_member=bool(access.member_meeting_ids(session, actor, case.id)))


def read_plan(session: Session, actor, case_id: int) -> dict[str, Any] | None:
    """The active 支援プラン (None when there is none): the owner, the case FM, covered agencies."""
    case = services.load_case(session, actor, case_id)
    rel = access.require(session, actor, case, access.PLAN, access.READ)
    _audit_read(session, actor, case, access.PLAN)
    return views.plan_view(session, actor, case, rel=rel)


def read_contact_notes(session: Session, actor, case_id: int) -> list[dict[str, Any]]:
    """The ordinary (consented-track) contact notes the actor reads; 支援会議 notes are in read_meeting."""
    case = services.load_case(session, actor, case_id)
    rel = access.require(session, actor, case, access.CONTACT_NOTES, access.READ)
    _audit_read(session, actor, case, access.CONTACT_NOTES)
    return views.contact_notes_view(session, actor, case, rel=rel,
                                    member_meetings=access.member_meeting_ids(session, actor, case.id))


def read_shared_facts(session: Session, actor, case_id: int) -> list[dict[str, Any]]:
    """Facts carried over from a 支援会議: for covered agencies, and for that meeting's members."""
    case = services.load_case(session, actor, case_id)
    rel = access.relations(session, actor, case)
    members = access.member_meeting_ids(session, actor, case.id)
    if not members:
        access.require(session, actor, case, access.SHARED_FACTS, access.READ, rel=rel)
    _audit_read(session, actor, case, access.SHARED_FACTS)
    return views.shared_facts_view(session, case, rel=rel, member_meetings=members)


def read_referral(session: Session, actor, case_id: int) -> dict[str, Any]:
    """The referrer's view of its own referral (status and owner, never notes); NotFound for any other."""
    case = session.get(Case, case_id)
    if case is None or not access.referral_visible(actor, case):
        raise services.NotFound("指定された紹介は見つかりません。")
    return views.referral_view(session, case)


def search_cases(session: Session, actor, text: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Find cases by the person's name or kana (width and kana folded), or by case number.

    Names match only in cases whose content the actor sees; a case number matches in any case the actor
    may know of (the row then carries no name). Notes, minutes and summaries are never searched. Each
    case whose person's name is shown is recorded in the audit trail (`case.found`).
    """
    text = (text or "").strip()
    key = services.fold_for_search(text)
    if not key:
        return []
    by_name = (select(Case).join(Person, Person.id == Case.person_id)
               .where(access.visible_cases_filter(session, actor, access.Sight.CONTENT),
                      Person.search_key.contains(key, autoescape=True)))
    by_number = select(Case).where(access.visible_cases_filter(session, actor),
                                   Case.case_number == text.upper())
    found: dict[int, Case] = {}
    for case in session.scalars(by_number):
        found[case.id] = case
    for case in session.scalars(by_name.order_by(Case.updated_at.desc(), Case.id.desc()).limit(limit)):
        found.setdefault(case.id, case)
    items = []
    for case in list(found.values())[:limit]:
        sight = access.case_sight(session, actor, case)
        items.append(views.case_list_item(session, actor, case, sight))
    audit.record_case_reads(session, actor=actor, action="case.found",
                            case_ids=[item["id"] for item in items if "person_name" in item])
    return items


PERSON_FIELDS = ("name", "name_kana", "sex", "birth_date", "area", "resident_id", "phone", "address")


def amend_case(session: Session, actor, case_id: int, *, version: int | None, summary: str | None = None,
               person: dict[str, Any] | None = None, now: datetime | None = None) -> Case:
    """Correct the content of a case: its summary and the person's details (the owner or the case FM).

    The history gets a row naming the amended fields (not their values); so does the audit trail.
    """
    now = now or utcnow()
    case = services.load_case(session, actor, case_id)
    access.require(session, actor, case, access.CASE_CONTENT, access.WRITE)
    if case.anonymised_at is not None:
        raise PermissionDenied("保存期間を過ぎて匿名化されたケースは修正できません。")
    if version is None:
        raise services.MissingField({"version": ["読み込んだときのバージョンを指定してください。"]})
    stale = case.version != version  # told after the comparison: was this form's change made already?
    errors: dict[str, list[str]] = {}
    changed: list[str] = []
    if summary is not None:
        if not summary.strip():
            errors["summary"] = [services.REQUIRED]
        elif summary.strip() != case.summary:
            case.summary = summary.strip()
            changed.append("summary")
    p = case.person
    for name, value in (person or {}).items():
        if name not in PERSON_FIELDS:
            errors[f"person.{name}"] = ["修正できない項目です。"]
            continue
        if name == "name" and not (value or "").strip():
            errors["person.name"] = [services.REQUIRED]
            continue
        if name == "area" and value not in (None, "") and value not in vocab.codes("areas"):
            errors["person.area"] = [f"「{value}」という圏域はありません。"]
            continue
        if name == "sex" and value not in (None, "") and value not in vocab.codes("sexes"):
            errors["person.sex"] = [services.UNKNOWN_SEX.format(value=value)]
            continue
        if name == "birth_date" and value not in (None, "") and not isinstance(value, date):
            try:
                value = date.fromisoformat(str(value))
            except ValueError:
                errors["person.birth_date"] = ["生年月日は YYYY-MM-DD の形で入力してください。"]
                continue
        problem = services.birth_date_problem(value, now.astimezone(services.calendar.JST).date()) \
            if name == "birth_date" and value else None
        if problem:
            errors["person.birth_date"] = [problem]
            continue
        if isinstance(value, str):
            value = value.strip() or None
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
    p.search_key = services.fold_for_search(p.name, p.name_kana)
    case.updated_at = now
    services._history(session, case, actor, "amend", case.state, case.state, now, {"fields": changed})
    audit.record(session, actor=actor, action="case.amend", object_type="case", object_id=case.id,
                 case_id=case.id, at=now, detail={"fields": changed})
    services.flush_or_stale(session, case)
    return case


def person_cases_filter(case: Case):
    """The cases of the same person as `case`: the same 宛名番号, or the same folded name and birth date."""
    p = case.person
    same = [Case.id == case.id, Case.person_id == p.id]
    if p.resident_id:
        same.append(Person.resident_id == p.resident_id)
    if p.search_key and p.birth_date is not None:
        same.append((Person.search_key == p.search_key) & (Person.birth_date == p.birth_date))
    return or_(*same)
