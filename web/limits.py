"""How many characters each text input of the pages takes, said beside it before anything is sent.

The limit is read from the form the input is sent with (web.forms, web.forms_people: an event's form is made
from its declaration in engine/, as the API's schema is), so that the page says what the server checks. The
inputs find their form by the prefix of their ids (the `p` of web/templates/macros/forms.html): "in" is the
intake form, "ev-<event>" an event's, "a12" the forms of alert 12, and so on.
"""
from __future__ import annotations

import re
from functools import lru_cache

from marshmallow import Schema, fields, validate

from engine.users import accounts
from web import forms
from web import forms_people as people_forms


class _UserLimits(Schema):
    """管理's form adding a user (checked by engine.users.accounts.create_user)."""

    login = fields.String(validate=validate.Length(max=accounts.MAX_LOGIN))
    name = fields.String(validate=validate.Length(max=accounts.MAX_DISPLAY_NAME))


class _PasswordLimits(Schema):
    """The form changing one's own password (engine.users.accounts checks every new password)."""

    new_password = fields.String(validate=validate.Length(max=accounts.MAX_PASSWORD))
    confirm_password = fields.String(validate=validate.Length(max=accounts.MAX_PASSWORD))


# Prefix (without the trailing number of a row's forms) → the forms its inputs are sent with.
FORMS: dict[str, tuple[type[Schema], ...]] = {
    "in": (forms.IntakeSchema,),
    "ovr": (forms.IntakeConfirmSchema,),
    "res": (forms.IntakeConfirmSchema,),
    "amend": (forms.AmendSchema,),
    "join": (forms.JoinRequestSchema,),
    "offer": (forms.JoinOfferSchema,),
    "ask": (forms.MeetingAskSchema,),
    "redirect": (forms.RedirectHandoffSchema,),
    "ev-offer_answer_": (forms.JoinOfferAnswerSchema,),
    "note": (forms.ContactNoteSchema,),
    "match": (forms.ParticipationSchema,),
    "end": (forms.ParticipationEndSchema, people_forms.MemberEndSchema),
    "rec": (forms.MeetingRecordSchema,),
    "fact": (forms.CarryFactSchema,),
    "flt": (forms.CaseFilterSchema,),
    "a": (forms.AlertNoteSchema, forms.ReassignSchema),
    "h": (forms.InboxAnswerSchema,),
    "merge": (people_forms.MergeSchema,),
    "cand": (people_forms.CandidateDecisionSchema,),
    "undo": (people_forms.UnmergeSchema,),
    "hh": (people_forms.MemberAddSchema,),
    "hhnew": (people_forms.MemberAddSchema,),
    "user": (_UserLimits,),
    "pw": (_PasswordLimits,),
}
_ROW_NUMBER = re.compile(r"\d+$")


def _max_length(field: fields.Field) -> int | None:
    validators = field.validators if isinstance(field.validators, list) else [field.validators]
    found = [v.max for v in validators if isinstance(v, validate.Length) and v.max is not None]
    return min(found) if found else None


def limit_in(schema: type[Schema] | Schema, name: str) -> int | None:
    """The most characters the input `name` ("person.name", "household.0.name") of `schema` takes, or None."""
    field: fields.Field | None = None
    current = schema
    for part in name.split("."):
        if part.isdigit():
            continue
        declared = (current if isinstance(current, Schema) else current()).fields if current is not None else {}
        field = declared.get(part)
        if field is None:
            return None
        if isinstance(field, fields.List):
            field = field.inner
        current = field.nested if isinstance(field, fields.Nested) else None
    return _max_length(field) if field is not None and current is None else None


@lru_cache(maxsize=1024)
def field_limit(prefix: str, name: str) -> int | None:
    """The limit of the input `name` of the form whose ids begin with `prefix`, or None (not a text, or a
    form without limits)."""
    if prefix.startswith("ev-") and not prefix.startswith("ev-offer_answer_"):
        schema = forms.EVENT_SCHEMAS.get(prefix.removeprefix("ev-"))
        return limit_in(schema, name) if schema is not None else None
    for schema in FORMS.get(_ROW_NUMBER.sub("", prefix), ()):
        limit = limit_in(schema, name)
        if limit is not None:
            return limit
    return None


def with_limit(hint: str | None, limit: int | None) -> str | None:
    """The hint beside an input with its limit said (「100文字まで」)."""
    if not limit:
        return hint
    said = f"{limit:,}文字まで"
    return f"{hint}（{said}）" if hint else said
