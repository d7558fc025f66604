"""Parsing the staff pages' forms (marshmallow schemas) into the plain values the engine takes.

Inputs are named with the engine's own field paths — `person.name`, `household.1.birth_year`,
`roles.0.department` — so that a message from a schema or from the engine (ValidationFailed.errors)
lands beside the input of the same name. Rows of repeated inputs that were left blank are dropped
before the engine sees them, and the engine's row numbers are mapped back to the rows on the page.
Messages are in Japanese; dates may be typed in 西暦 (2026-11-30, 2026/11/30) or 和暦 (令和8年11月30日, R8.11.30)
(web.form_dates).
"""
from __future__ import annotations

import unicodedata
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate
from werkzeug.datastructures import MultiDict

from engine import fields as declare
from engine.cases.events import firing
from engine.fields import Field, text_problem
from schemas.fields import flatten_errors
from web.form_dates import JaDate, JaDateTime, JaYear, NoSuchDate, parse_date  # noqa: F401  (the forms' names)

REQUIRED = "必須項目です。"
ERRORS = {"required": REQUIRED, "null": REQUIRED, "invalid": "入力の形が正しくありません。"}

def _storable(one_line: bool, person_name: bool = False):
    """engine.fields' rule on text: no control character (one line: no line break; a name: no bidi control)."""
    def check(value: str) -> None:
        problem = text_problem(value, one_line=one_line, person_name=person_name)
        if problem:
            raise ValidationError(problem)

    return check


def text(required: bool = False, max_length: int = 4000, *, one_line: bool = False, person_name: bool = False,
         **kw) -> fields.String:
    """A text input; surrounding spaces are ignored and an empty input counts as not given."""
    if not required:
        kw.setdefault("load_default", None)
    return fields.String(required=required, allow_none=not required,
                         validate=[validate.Length(max=max_length, error=f"{max_length}文字以内で入力してください。"),
                                   _storable(one_line, person_name)],
                         error_messages=ERRORS, **kw)


def integer(**kw) -> fields.Integer:
    """A whole number input; an empty input is None."""
    return fields.Integer(load_default=None, allow_none=True, strict=False,
                          error_messages={**ERRORS, "invalid": "半角の数字で入力してください。"}, **kw)


def checkbox() -> fields.Boolean:
    """A single checkbox: ticked or not."""
    return fields.Boolean(load_default=False, truthy={"1", "on", "true", "yes"}, falsy={"", "0", "off", "false"},
                          error_messages={**ERRORS, "invalid": "チェックの値が正しくありません。"})


MAX_CHECKED = 100  # more ticks than any form has boxes: not a person at a form
MAX_ROWS = 30  # household members, meeting members, plan roles (the API allows as many)


def code_list(required: bool = False, message: str = "1つ以上選んでください。",
              limit: int | None = None) -> fields.List:
    """Checkboxes (or several inputs of one name): a list of codes, each of at most `limit` characters (none
    ticked sends nothing at all)."""
    too_many = validate.Length(max=MAX_CHECKED, error=f"選べるのは{MAX_CHECKED}個までです。")
    item = fields.String(validate=validate.Length(max=limit, error=f"{limit}文字以内で入力してください。")
                         if limit else None)
    if required:
        return fields.List(item, required=True,
                           validate=[validate.Length(min=1, error=message), too_many],
                           error_messages={"required": message, "null": message})
    return fields.List(item, load_default=list, validate=too_many)


def rows(schema, what: str) -> fields.List:
    """Numbered rows of a form (person.0.…, person.1.…), at most MAX_ROWS."""
    return fields.List(fields.Nested(schema), load_default=list,
                       validate=validate.Length(max=MAX_ROWS, error=f"{what}は{MAX_ROWS}件までです。"))


class FormSchema(Schema):
    """Unknown inputs (the CSRF token, the button pressed) are ignored; blank texts become None."""

    class Meta:
        unknown = EXCLUDE

    error_messages = {"type": "入力の形式が正しくありません。"}

    @pre_load
    def _blank_to_none(self, data, **kwargs):
        if not isinstance(data, dict):  # e.g. `person=x` posted where `person.name` belongs: the type error says so
            return data
        out = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = unicodedata.normalize("NFC", value).strip()
                value = value if value != "" else None
            out[key] = value
        # A required text left blank must say "required", not "null".
        return {k: v for k, v in out.items() if v is not None}


# --- 相談受付 -----------------------------------------------------------------------------------

HOUSEHOLD_ROWS = 3


class PersonSchema(FormSchema):
    """本人: the person consulted about."""

    name = text(required=True, max_length=100, person_name=True)
    name_kana = text(max_length=100, person_name=True)
    sex = text(max_length=16)
    birth_date = JaDate(load_default=None)
    area = text(max_length=32)
    resident_id = text(max_length=32)
    phone = text(max_length=32)
    address = text(max_length=300)


class HouseholdSchema(FormSchema):
    """One row of 世帯."""

    relationship = text(max_length=50)
    name = text(max_length=100, person_name=True)
    birth_year = JaYear(load_default=None, allow_none=True, error_messages={"required": REQUIRED, "null": REQUIRED},
                        validate=validate.Range(min=1868, max=2100, error="1868年（明治元年）から2100年までの年にしてください。"))
    note = text(max_length=1000)


class IntakeConsentSchema(FormSchema):
    """The person's consent to share with named agencies, taken with the consultation (optional as a whole)."""

    given_by = text(required=True, max_length=100, person_name=True)
    method = text(required=True, max_length=16)
    obtained_on = JaDate(load_default=None)
    agencies = code_list(required=True, message="情報を共有してよい機関を1つ以上選んでください。")


class IntakeSchema(FormSchema):
    """相談受付: the consultation's own inputs."""

    person = fields.Nested(PersonSchema, required=True, error_messages=ERRORS)
    household = rows(HouseholdSchema, "世帯員")
    categories = code_list(required=True, message="課題の分類を1つ以上選んでください。")
    primary_category = text(max_length=32)
    summary = text(required=True, max_length=4000)
    source = text(required=True, max_length=32)
    urgency = text(required=True, max_length=16)
    consent = fields.Nested(IntakeConsentSchema, load_default=None, error_messages=ERRORS)


class IntakeConfirmSchema(FormSchema):
    """The choice made on the preview: follow, override or resolve."""

    mode = text(required=True, max_length=16)
    to_department = text(max_length=64)
    override_reason = text(max_length=2000)
    note = text(max_length=2000)
    rule_version = integer()
    submission_token = text(max_length=64)


# --- events of the case machine ------------------------------------------------------------------

MEMBER_ROWS = 6
ROLE_ROWS = 5


RELOAD = "画面を読み込み直してください。"


def version_field() -> fields.Integer:
    """The version of the record the form was shown with (a stale one is refused, never applied)."""
    return fields.Integer(required=True, strict=False, error_messages={"required": RELOAD, "null": RELOAD,
                                                                       "invalid": RELOAD})


class _Versioned(FormSchema):
    version = version_field()


def form_field(declared: Field) -> fields.Field:
    """The page's input for one declared field (engine.fields): dates typed in 西暦 or 和暦, checkboxes,
    numbered rows; the same limits and the same rule on text as the API's."""
    kind = declared.kind
    if kind in ("text", "line", "code"):
        limit = declared.limit or (64 if kind == "code" else 4000)
        return text(declared.required, limit, one_line=declared.one_line, person_name=declared.person_name)
    if kind == "codes":
        if declared.label:
            return code_list(declared.required, message=f"{declared.label}を1つ以上選んでください。",
                             limit=declared.limit)
        return code_list(declared.required, limit=declared.limit)
    if kind == "date":
        if declared.required:
            return JaDate(required=True, error_messages={"required": REQUIRED, "null": REQUIRED})
        return JaDate(load_default=None)
    if kind == "datetime":
        return JaDateTime(load_default=None)
    if kind == "flag":
        return checkbox()
    row = type(f"{declared.row_name}Form", (FormSchema,), {f.name: form_field(f) for f in declared.row})
    if kind == "group":
        return fields.Nested(row, load_default=None, error_messages=ERRORS)
    return rows(row, declared.label or declared.name)


def event_form(event: str, declared_fields) -> type[Schema]:
    """The form of one event of the case machine, made from its declaration (as the API's schema is)."""
    attrs = {f.name: form_field(f) for f in declared_fields}
    return type(f"{event.title().replace('_', '')}Form", (_Versioned,), attrs)


EVENT_SCHEMAS: dict[str, type[Schema]] = {name: event_form(name, e.fields) for name, e in firing.EVENTS.items()}

# Rows of repeated inputs: which keys of a row make it "filled in" (a blank row is dropped).
ROW_LISTS = {"household": ("relationship", "name", "birth_year", "note"),
             "members": ("user",), "roles": ("department", "role")}
MULTI_VALUED = {"categories", "agencies", "business_categories", "notify", "consent.agencies", "also_cases",
                "attendees"}
# Groups of inputs that are given together or not at all (a basis: its code and its note; a consent at intake).
OPTIONAL_GROUPS = ("basis", "consent")


# --- other forms ---------------------------------------------------------------------------------


class ContactNoteSchema(FormSchema):
    """A contact note (支援経過)."""

    contact_on = JaDate(load_default=None)
    method = text(required=True, max_length=16)
    business_category = text(max_length=32)
    body = text(required=True, max_length=20000)
    submission_token = text(max_length=64)


class ParticipationSchema(FormSchema):
    """参加支援: a match to a 協力事業者."""

    host = text(required=True, max_length=32)
    activity = text(required=True, max_length=2000)
    started_on = JaDate(load_default=None)
    ended_on = JaDate(load_default=None)
    submission_token = text(max_length=64)


class ParticipationEndSchema(FormSchema):
    """The day a match ended."""

    ended_on = JaDate(load_default=None)


class JoinRequestSchema(_Versioned):
    """参加依頼: ask another department to join the case (a つなぐシート of its own)."""

    to_department = text(required=True, max_length=64, one_line=True)
    reason = text(required=True, max_length=20000)
    summary = text(required=True, max_length=20000)
    basis = form_field(declare.basis())


class RedirectHandoffSchema(_Versioned):
    """送付先の変更: withdraw the waiting つなぐシート and send a new one elsewhere."""

    to_department = text(required=True, max_length=64)
    reason = text(required=True)


class MeetingAskSchema(_Versioned):
    """支援会議の開催の依頼: the owning or a joined department asks an FM to convene one, saying why."""

    reason = text(required=True, max_length=2000)


class JoinOfferSchema(_Versioned):
    """参加の申し出: a department told of the case offers to work on it."""

    message = text(required=True, max_length=2000)


class JoinOfferAnswerSchema(_Versioned):
    """The owner's answer to an offer: ask the department to join, or let the offer go (with a note)."""

    decision = text(required=True, max_length=16)
    note = text(max_length=2000)


class AmendSchema(_Versioned):
    """内容の修正: the case's summary and the person's details (an input left blank clears it)."""

    person = fields.Nested(PersonSchema, required=True, error_messages=ERRORS)
    summary = text(required=True, max_length=4000)


class WithdrawSchema(FormSchema):
    """取下げ of a join request (the sheet's own version) or of an offer to join (the case's) not yet answered."""

    version = version_field()


class InboxAnswerSchema(FormSchema):
    """受理 or 返送 from the inbox."""

    decision = text(required=True, max_length=16)
    version = version_field()
    reason = text()


class AlertNoteSchema(FormSchema):
    """確認 or 解決 of an alert."""

    note = text(max_length=2000)


class ReassignSchema(FormSchema):
    """振り替え of an alert's case."""

    to_department = text(required=True, max_length=64)
    reason = text(required=True, max_length=2000)


class MeetingRecordSchema(FormSchema):
    """An addition to a meeting's records."""

    minutes = text(max_length=20000)
    decisions = text(max_length=20000)
    submission_token = text(max_length=64)


class CarryFactSchema(FormSchema):
    """A fact of a 支援会議 carried over into the consented track."""

    fact = text(required=True, max_length=20000)
    submission_token = text(max_length=64)


class AddMemberSchema(FormSchema):
    """A member the secretariat adds to a 支援会議."""

    user = text(required=True, max_length=64)


class CaseFilterSchema(FormSchema):
    """The case list's filters (query string)."""

    state = text(max_length=32)
    department = text(max_length=64)
    area = text(max_length=32)
    category = text(max_length=32)
    overdue = checkbox()
    q = text(max_length=100)
    page = fields.Integer(load_default=1, strict=False,
                          validate=validate.Range(min=1, max=100000, error="ページ番号は1から100000までです。"),
                          error_messages={**ERRORS, "invalid": "ページ番号が正しくありません。"})


# --- from a flat form to nested values and back ---------------------------------------------------


def unflatten(form: MultiDict) -> dict[str, Any]:
    """`person.name` → {"person": {"name": …}}; `roles.1.role` → {"roles": {1: {"role": …}}} (rows by number)."""
    out: dict[str, Any] = {}
    for key in form.keys():
        # Of a multi-valued input, the values given (an input of several of one name may be left blank).
        value: Any = [v for v in form.getlist(key) if v.strip()] if key in MULTI_VALUED else form.get(key)
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            k: Any = int(part) if part.isdigit() and i > 0 else part
            if last:
                node[k] = value
            else:
                node = node.setdefault(k, {})
                if not isinstance(node, dict):
                    break
    return out


def _rows(data: dict[str, Any]) -> dict[str, list[int]]:
    """Turn numbered rows into lists, dropping blank rows; return each list's page row numbers."""
    positions: dict[str, list[int]] = {}
    for name, keys in ROW_LISTS.items():
        raw = data.get(name)
        if not isinstance(raw, dict):
            if name in data:
                data[name] = []
            continue
        kept, where = [], []
        for number in sorted(k for k in raw if isinstance(k, int)):
            row = raw[number]
            if isinstance(row, dict) and any((row.get(k) or "").strip() for k in keys if isinstance(row.get(k), str)):
                kept.append(row)
                where.append(number)
        data[name] = kept
        positions[name] = where
    return positions


class Parsed:
    """A parsed form: `data` for the engine, `errors` by page input name, and the row mapping."""

    def __init__(self, data: dict[str, Any], errors: dict[str, list[str]], positions: dict[str, list[int]]):
        self.data = data
        self.errors = errors
        self.positions = positions

    @property
    def ok(self) -> bool:
        """Whether the form parsed without errors."""
        return not self.errors

    def page_errors(self, errors: dict[str, list[str]]) -> dict[str, list[str]]:
        """Map the engine's error keys (`roles.0.role`: the 1st row it got) onto the page's inputs."""
        out: dict[str, list[str]] = {}
        for key, messages in errors.items():
            parts = key.split(".")
            if len(parts) >= 2 and parts[0] in self.positions and parts[1].isdigit():
                where = self.positions[parts[0]]
                i = int(parts[1])
                if i < len(where):
                    parts[1] = str(where[i])
            out.setdefault(".".join(parts), []).extend(messages)
        return out


def parse(schema_cls: type[Schema], form: MultiDict) -> Parsed:
    """Parse a posted form with `schema_cls`; errors are keyed by the page's input names."""
    data = unflatten(form)
    positions = _rows(data)
    for name in OPTIONAL_GROUPS:  # every input of the group left blank: the group is not given
        group = data.get(name)
        if isinstance(group, dict) and not any(v.strip() if isinstance(v, str) else v for v in group.values()):
            del data[name]
    try:
        loaded = schema_cls().load(data)
        errors: dict[str, list[str]] = {}
    except ValidationError as exc:
        loaded = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        errors = flatten_errors(exc.messages, whole="_form")
    parsed = Parsed(loaded, {}, positions)
    parsed.errors = parsed.page_errors(errors)
    return parsed

