"""Checks of the plain values a use case takes: required fields, codes of config/, dates and times.

Each adds Japanese messages by field name to an `errors` dict (or raises MissingField), so that one refusal
names every field that is wrong; the use case raises ValidationFailed(errors) once it has looked at all.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy.orm import Session

from engine import calendar, vocab
from engine.departments import department_by_code, departments_by_codes
from engine.errors import MissingField
from engine.models import Case, Department

REQUIRED = "必須項目です。"


def blank(value) -> bool:
    """Whether a field counts as not given: absent, empty, or text of spaces alone."""
    return value in (None, "", [], {}) or (isinstance(value, str) and not value.strip())


def require(fields: dict, *names: str) -> None:
    """MissingField naming each of `names` that is blank in `fields`."""
    missing = {n: [REQUIRED] for n in names if blank(fields.get(n))}
    if missing:
        raise MissingField(missing)


def choice(errors: dict, fields: dict, name: str, code_list: str, required: bool = True) -> None:
    """Check `fields[name]` is a code of `code_list` (config/); an optional one left empty becomes None."""
    value = fields.get(name)
    if blank(value):
        if required:
            errors.setdefault(name, []).append(REQUIRED)
        elif name in fields:
            fields[name] = None  # an optional choice left empty is not given (never stored as "")
        return
    if value not in vocab.codes(code_list):
        errors.setdefault(name, []).append(f"「{value}」は選べる値ではありません。")


def as_date(errors: dict, fields: dict, name: str, *, not_after: date | None = None) -> None:
    """Read `fields[name]` as a date; with `not_after`, a later day (something not yet done) is refused."""
    value = fields.get(name)
    if value is not None and not isinstance(value, date):
        try:
            value = fields[name] = date.fromisoformat(str(value))
        except ValueError:
            errors.setdefault(name, []).append("日付は YYYY-MM-DD の形で入力してください。")
            return
    if value is not None and not calendar.EARLIEST_YEAR <= value.year <= calendar.LATEST_YEAR:
        errors.setdefault(name, []).append(
            f"{calendar.EARLIEST_YEAR}年から{calendar.LATEST_YEAR}年までの日付を指定してください。")
        return
    if value is not None and not_after is not None and value > not_after:
        errors.setdefault(name, []).append("未来の日付は記録できません。")


def opened_on(case: Case) -> date:
    """The day (in Japan) the case's consultation was received."""
    return case.opened_at.astimezone(calendar.JST).date()


# A contact or a 支援会議 may be recorded for days before the case was: the consultation is often typed in
# after the first visit, or a partner refers a person it has been seeing. So far back, not further.
RECORDED_LATE_DAYS = 30


def not_before_opening(errors: dict, fields: dict, name: str, case: Case, what: str, *,
                       grace_days: int = 0) -> None:
    """Refuse a day (or a time's day) before the case was opened (less `grace_days`): a record of this
    case's support cannot come long before its consultation, and a mistyped year would also leave it out
    of every yearly report."""
    value = fields.get(name)
    if name in errors or value is None:
        return
    day = value.astimezone(calendar.JST).date() if isinstance(value, datetime) else value
    earliest = opened_on(case) - timedelta(days=grace_days)
    if isinstance(day, date) and day < earliest:
        if grace_days:
            errors[name] = [f"{what}は相談を受け付けた日（{calendar.wareki(opened_on(case))}）の{grace_days}日前"
                            f"（{calendar.wareki(earliest)}）以降の日付にしてください。"]
        else:
            errors[name] = [f"{what}は相談を受け付けた日（{calendar.wareki(earliest)}）以降の日付にしてください。"]


# How far ahead a next evaluation may be set: far enough for any plan, near enough that a mistyped year
# (2207 for 2027) is caught instead of never falling due.
EVALUATION_HORIZON_YEARS = 3


def evaluation_within_horizon(errors: dict, fields: dict, name: str, today: date) -> None:
    """Refuse a next evaluation date more than EVALUATION_HORIZON_YEARS ahead (a mistyped year)."""
    value = fields.get(name)
    if name in errors or not isinstance(value, date):
        return
    try:
        limit = today.replace(year=today.year + EVALUATION_HORIZON_YEARS)
    except ValueError:  # February 29
        limit = today.replace(year=today.year + EVALUATION_HORIZON_YEARS, day=28)
    if value > limit:
        errors[name] = [f"次回評価日は{EVALUATION_HORIZON_YEARS}年以内（{calendar.wareki(limit)}まで）の日付にしてください。"]


def known_departments(session: Session, errors: dict, name: str, codes: list[str] | None) -> list[Department]:
    """The departments `codes` name, once each; an unknown or repeated code is an error of `name`."""
    found = []
    codes = [c for c in (codes or []) if isinstance(c, str)] if isinstance(codes, list) else []
    departments_by_codes(session, codes)
    for i, code in enumerate(codes):
        dept = department_by_code(session, code)
        if dept is None:
            errors.setdefault(name, []).append(f"「{code}」という部署・機関はありません。")
        elif code in codes[:i]:
            errors.setdefault(name, []).append(f"「{code}」が2回以上指定されています。")
        else:
            found.append(dept)
    return found


def as_time(errors: dict, fields: dict, name: str, *, not_after: datetime | None = None) -> None:
    """Read `fields[name]` (ISO 8601 text with a zone, or an aware datetime) as UTC, within the years the
    calendar knows; with `not_after`, a later time (something not yet done) is refused."""
    value = fields.get(name)
    if value in (None, ""):
        fields[name] = None
        return
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(value)
            if not calendar.EARLIEST_YEAR <= value.year <= calendar.LATEST_YEAR:
                raise calendar.TimeOutOfRange(value)
            value = value.astimezone(timezone.utc)
        else:
            value = calendar.parse_aware_iso8601(str(value))
    except calendar.TimeOutOfRange:
        errors.setdefault(name, []).append(
            f"{calendar.EARLIEST_YEAR}年から{calendar.LATEST_YEAR}年までの日時を指定してください。")
        return
    except (ValueError, OverflowError):
        errors.setdefault(name, []).append("日時はタイムゾーン付きの ISO 8601 で指定してください。")
        return
    if not_after is not None and value > not_after:
        errors.setdefault(name, []).append("未来の日時は記録できません。")
        return
    fields[name] = value


EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def birth_date_problem(value: date, today: date) -> str | None:
    """What is wrong with a birth date, if anything: in the future, or before anyone now living was born."""
    if value > today:
        return "生年月日が未来の日付になっています。"
    if value < EARLIEST_BIRTH_DATE:
        return "生年月日が古すぎます。1900年（明治33年）1月1日以降の日付を入力してください。"
    return None


UNKNOWN_SEX = "性別「{value}」はコード表にありません。"
