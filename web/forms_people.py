"""The person page's forms: 名寄せ decisions, merges and their undoing, household members (parsed with
web.forms.parse, messages in Japanese, dates and years in 西暦 or 和暦)."""
from __future__ import annotations

from marshmallow import fields, validate

from web.forms import REQUIRED, FormSchema, JaDate, JaYear, integer, text


def _required_number(message: str) -> fields.Integer:
    return fields.Integer(required=True, strict=False, validate=validate.Range(min=1, error=message),
                          error_messages={"required": REQUIRED, "null": REQUIRED,
                                          "invalid": "半角の数字で入力してください。"})


class CandidateDecisionSchema(FormSchema):
    """同一人物 or 別人, with a note (kept as the merge's reason when the two are one)."""

    decision = text(required=True, max_length=16)
    note = text(max_length=2000)


class MergeSchema(FormSchema):
    """Another record, by its number, merged into the page's, with the reason."""

    merged_id = _required_number("記録番号は1以上の数字です。")
    reason = text(required=True, max_length=2000)


class UnmergeSchema(FormSchema):
    """Undo a merge, with the reason."""

    reason = text(required=True, max_length=2000)


class MemberAddSchema(FormSchema):
    """A household member: a person with a record (by number), or a name and birth year."""

    person_id = integer(validate=validate.Range(min=1, error="記録番号は1以上の数字です。"))
    name = text(max_length=100, person_name=True)
    birth_year = JaYear(load_default=None, allow_none=True)
    relationship = text(required=True, max_length=50, one_line=True)
    relative_to = integer()
    since = JaDate(load_default=None)
    note = text(max_length=1000)
    submission_token = text(max_length=64)


class MemberEndSchema(FormSchema):
    """The day a member left the household (転出・死亡など)."""

    until = JaDate(required=True, error_messages={"required": REQUIRED, "null": REQUIRED})
