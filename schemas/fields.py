"""marshmallow fields with Japanese messages and the checks every text that reaches the database needs.

A JSON string may hold a NUL or a lone surrogate: neither can be stored (PostgreSQL refuses NUL, UTF-8
refuses surrogates), so such text is refused here with 422 instead of failing later with 500. The rule is
engine.fields' (text_problem), which the staff pages' forms apply too.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import marshmallow as ma
import yaml
from marshmallow import ValidationError, fields, validate

from engine import departments, vocab
from engine.fields import text_pattern, text_problem

REQUIRED = "必須項目です。"

BASE_MESSAGES = {"required": REQUIRED, "null": "null は指定できません。", "validator_failed": "値が正しくありません。"}


def check_text(value: str, *, one_line: bool = False, person_name: bool = False) -> None:
    """Refuse what engine.fields refuses in a text: control characters, text that is not valid Unicode,
    (one line) line breaks and tabs, and (a person's name) bidirectional controls."""
    problem = text_problem(value, one_line=one_line, person_name=person_name)
    if problem:
        raise ValidationError(problem)


class Text(fields.String):
    """A string; `blank=False` refuses one that is empty or only white space; `person_name` is one line without
    bidirectional controls (engine.fields)."""

    default_error_messages = {**BASE_MESSAGES, "invalid": "文字列で指定してください。",
                              "invalid_utf8": "正しい文字列ではありません。", "blank": REQUIRED}

    def __init__(self, *, max_length: int | None = None, blank: bool = True, one_line: bool = False,
                 person_name: bool = False, **kwargs):
        self.blank = blank
        self.one_line = one_line or person_name
        self.person_name = person_name
        given = kwargs.pop("validate", None)
        validators = [] if given is None else [given] if callable(given) else list(given)
        if max_length is not None:
            validators.append(validate.Length(max=max_length, error=f"{max_length}文字以内で指定してください。"))
        # The document says what _deserialize refuses, so that a client made from it never sends that.
        described = {}
        # A code of a list (enum) says enough.
        if not any(isinstance(v, validate.OneOf) for v in validators) and "enum" not in kwargs.get("metadata", {}):
            described["pattern"] = text_pattern(one_line=self.one_line, person_name=person_name, blank=blank)
        if not blank:
            described["minLength"] = 1
        kwargs["metadata"] = {**described, **kwargs.get("metadata", {})}
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        check_text(text, one_line=self.one_line, person_name=self.person_name)
        if not self.blank and not text.strip():
            raise self.make_error("blank")
        return text


class Integer(fields.Integer):
    """An integer: in a JSON body a JSON number that is whole, as JSON Schema's `integer` is (3 or 3.0, never
    "3", 3.5 or true)."""

    default_error_messages = {**BASE_MESSAGES, "invalid": "整数で指定してください。",
                              "too_large": "数が大きすぎます。"}

    def _validated(self, value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        # Text (a query string) is ASCII digits only: int() would also read "５", " 5" or "+5".
        if isinstance(value, str) and not (value.isascii() and value.lstrip("-").isdigit()):
            raise self.make_error("invalid")
        return super()._validated(value)


class Boolean(fields.Boolean):
    """true or false, and nothing that merely looks like one."""

    default_error_messages = {**BASE_MESSAGES, "invalid": "true か false で指定してください。"}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


# The document promises `format: date` and `date-time`, which are RFC 3339's: the extended forms only
# (Python's fromisoformat also reads 19460501, 2026-W48-2 or 2026-12-01T04Z, which a client of the
# document would never expect to be taken).
# ASCII digits only (re.ASCII): `\d` would also take full-width ones (２０２６), which RFC 3339 does not allow.
RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
RFC3339_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


# What the document says of them: RFC 3339's forms, with a year the records can hold (engine.calendar's
# EARLIEST_YEAR–LATEST_YEAR, 1900–2999), ASCII digits only (ECMA-262 reads `\d` so, Python would not).
_YEAR = "(19[0-9]{2}|2[0-9]{3})"
DATE_PATTERN = f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}$"
DATE_TIME_PATTERN = (f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\\.[0-9]+)?"
                     "([Zz]|[+-][0-9]{2}:[0-9]{2})$")


class Date(fields.Date):
    default_error_messages = {**BASE_MESSAGES, "invalid": "日付は YYYY-MM-DD の形で指定してください。",
                              "no_such_day": "「{input}」という日付はありません（月・日の範囲を確かめてください）。",
                              "format": "日付を表せません。"}

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": DATE_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not RFC3339_DATE.fullmatch(value):
                raise self.make_error("invalid")
            try:
                date.fromisoformat(value)
            except ValueError:
                # In the right form but no day of the calendar (2023-02-29, 2026-13-01): say that, not the form.
                raise self.make_error("no_such_day", input=value) from None
        return super()._deserialize(value, attr, data, **kwargs)


class AwareDateTime(fields.AwareDateTime):
    default_error_messages = {**BASE_MESSAGES,
                              "invalid": "日時はタイムゾーン付きの RFC 3339 形式（例: 2026-11-30T10:00:00+09:00）で指定してください。",
                              "invalid_awareness": "日時にはタイムゾーン（+09:00 など）を付けてください。",
                              "no_such_time": "「{input}」という日時はありません（月・日・時刻の範囲を確かめてください）。",
                              "format": "日時を表せません。"}

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": DATE_TIME_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if RFC3339_DATE_TIME.fullmatch(value) is None:
                # Say the zone is missing when that is all that is wrong.
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?", value):
                    raise self.make_error("invalid_awareness")
                raise self.make_error("invalid")
            value = value.upper()
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise self.make_error("no_such_time", input=value) from None
        return super()._deserialize(value, attr, data, **kwargs)


class List(fields.List):
    default_error_messages = {**BASE_MESSAGES, "invalid": "配列で指定してください。"}


class Nested(fields.Nested):
    default_error_messages = {**BASE_MESSAGES, "type": "オブジェクトで指定してください。"}


class Dict(fields.Dict):
    default_error_messages = {**BASE_MESSAGES, "invalid": "オブジェクトで指定してください。"}


def one_of(choices) -> validate.OneOf:
    choices = list(choices)
    return validate.OneOf(choices, error="次のいずれかを指定してください: " + ", ".join(choices))


def known_code(list_name: str, what: str):
    """A validator: the value is a code of the configuration folder's list `list_name` (「…という{what}はありません」)."""
    def check(value: str) -> None:
        if value not in vocab.codes(list_name):
            raise ValidationError(f"「{value}」という{what}はありません。")

    return check


def listed_codes(list_name: str, *, nullable: bool = False) -> list[str | None] | None:
    """The codes of a list of the configuration folder (engine.fields' `listed`), as a document's enum (with
    null where the field takes it); None when the list cannot be read (no enum is said then)."""
    if list_name in ("departments", "city_departments"):
        found = departments.configured_codes(vocab.config_dir(), city_only=list_name == "city_departments")
    else:
        # Read when the schemas are imported: a configuration folder that is missing or broken is the
        # settings' to report (engine.settings), never a failure to import.
        try:
            found = list(vocab.codes(list_name))
        except (OSError, KeyError, ValueError, yaml.YAMLError):
            found = None
    if found is None:
        return None
    return [*found, *([None] if nullable else [])]


def int_range(low: int | None, high: int | None) -> validate.Range:
    if low is not None and high is not None:
        message = f"{low}以上{high}以下の数で指定してください。"
    elif low is not None:
        message = f"{low}以上の数で指定してください。"
    else:
        message = f"{high}以下の数で指定してください。"
    return validate.Range(min=low, max=high, error=message)


class Schema(ma.Schema):
    """Base of every API schema: unknown fields are refused, with Japanese messages."""

    error_messages = {"unknown": "不明な項目です。", "type": "JSON オブジェクトで指定してください。"}


class Output(ma.Schema):
    """Base of the schemas that only describe answers (dumping never validates)."""


def not_future(today_fn, earliest: date | None = None):
    """A validator refusing a date after `today_fn()` (and, with `earliest`, one before it)."""
    def check(value: date | datetime) -> None:
        if value > today_fn():
            raise ValidationError("未来の日付は指定できません。")
        if earliest is not None and value < earliest:
            raise ValidationError(f"{earliest.year}年{earliest.month}月{earliest.day}日より前の日付は指定できません。")

    return check


def flatten_errors(messages: Any, prefix: str = "", *, whole: str = "body") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"person.name": [...], "household.0.birth_year": [...]}: one key per
    field, its path dotted. A message about the whole body (or form) is filed under `whole`."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            for k, v in flatten_errors(value, name, whole=whole).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, (list, tuple)):
        texts = [m for m in messages if isinstance(m, str)]
        if texts:
            out.setdefault(prefix or whole, []).extend(texts)
        for m in messages:
            if not isinstance(m, str):
                for k, v in flatten_errors(m, prefix, whole=whole).items():
                    out.setdefault(k, []).extend(v)
    else:
        out.setdefault(prefix or whole, []).append(str(messages))
    return out
