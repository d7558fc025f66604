"""Field declarations: what an input of a use case is, written once.

A declaration says a field's name, its kind, whether it is required, its limit and its description, and
which text it takes: the REST API's schemas (schemas/) and the staff pages' forms (web/forms.py) are both
made from it, so that a page and the API cannot disagree about what is valid. The engine checks the rest
(codes of config/, dates against the case, who may do what) itself.

Kinds:
- ``text``: free text, line breaks and tabs allowed;
- ``line``: one line of text (a name, a reference): no line break, no tab;
- ``code``: a code (a department, a code of config/), one line;
- ``codes``: a list of codes, each once;
- ``date``, ``datetime``: a day; a moment with its time zone;
- ``flag``: true or false;
- ``rows``: a list of rows, each with the fields `row`;
- ``group``: one object with the fields `row` (a basis: {code, note}).

No text may hold a control character other than a line break or a tab, nor a lone surrogate (neither can
be stored: PostgreSQL refuses NUL, UTF-8 refuses surrogates); a one-line kind holds neither of those either.
A person's name (`person_name`: 氏名, ふりがな, who gave a consent) is one line and holds no bidirectional control
either (U+202E and the like), which would show it as another name than the one stored and searched for.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("text", "line", "code", "codes", "date", "datetime", "flag", "rows", "group")
ONE_LINE_KINDS = ("line", "code")

# The characters refused, as the insides of regular expression classes written so that Python and ECMA-262
# (the OpenAPI document's patterns) read them alike.
CONTROL_CLASS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
# A name, a number or a reference is one line: no line break (of any kind) and no tab.
LINE_BREAK_CLASS = r"\t\n\r\x85\u2028\u2029"
# Bidirectional controls (embeddings, overrides, isolates, marks): in a name they turn what is shown around.
BIDI_CONTROL_CLASS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# White space as str.strip() removes it: a required text that holds only these is empty.
SPACE_CLASS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CONTROL = re.compile(f"[{CONTROL_CLASS}]")
_LINE_BREAK = re.compile(f"[{LINE_BREAK_CLASS}]")
_BIDI_CONTROL = re.compile(f"[{BIDI_CONTROL_CLASS}]")

CONTROL_CHARACTER = "制御文字は使えません。"
NOT_UNICODE = "正しい文字列ではありません。"
NOT_ONE_LINE = "改行やタブは使えません。1行で指定してください。"
BIDI_CONTROL = "文字の向きを変える制御文字（U+202E など）は使えません。"


@dataclass(frozen=True)
class Field:
    """One input of a use case (see the module's docstring for the kinds)."""

    name: str
    kind: str
    required: bool = False
    limit: int | None = None  # characters of a text; for codes, of each code
    description: str = ""
    label: str = ""  # what a page calls it, where a message must name it (構成員, 役割 …)
    choices: str | None = None  # the code list of config/ its value comes from (documented as such)
    # The code list its value (each value, for codes) is one of, checked by the engine in its own order (after
    # the version and the state): a list of categories.yaml, or "departments" / "city_departments"
    # (departments.yaml). The API document lists them as its enum.
    listed: str | None = None
    row: tuple["Field", ...] = ()  # kinds "rows" and "group": the fields of one row
    row_name: str | None = None  # kinds "rows" and "group": the name of one row's schema in the API document
    nullable: bool | None = None  # whether the API takes null for it; by default, when it is optional
    person_name: bool = False  # kind "line": a person's name (see text_problem)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if (self.kind in ("rows", "group")) != bool(self.row):
            raise ValueError(f"{self.name}: only a field of kind 'rows' or 'group' has row fields")
        if self.person_name and self.kind != "line":
            raise ValueError(f"{self.name}: a person's name is of kind 'line'")

    @property
    def takes_null(self) -> bool:
        return (not self.required) if self.nullable is None else self.nullable

    @property
    def one_line(self) -> bool:
        return self.kind in ONE_LINE_KINDS


def text_problem(value: str, *, one_line: bool = False, person_name: bool = False) -> str | None:
    """What is wrong with a text for storing, if anything: a control character, text that is not valid
    Unicode, (for a one-line field or a person's name) a line break or a tab, or (for a person's name) a
    bidirectional control."""
    if _CONTROL.search(value):
        return CONTROL_CHARACTER
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UNICODE
    if (one_line or person_name) and _LINE_BREAK.search(value):
        return NOT_ONE_LINE
    if person_name and _BIDI_CONTROL.search(value):
        return BIDI_CONTROL
    return None


def text_pattern(*, one_line: bool = False, person_name: bool = False, blank: bool = True) -> str:
    """The regular expression (ECMA-262 and Python alike) a text that text_problem finds nothing wrong with
    matches: what the OpenAPI document says of it. With `blank=False` it holds more than white space too.
    (Lone surrogates are left out: they cannot be written in a well-formed JSON text.)"""
    refused = CONTROL_CLASS
    if one_line or person_name:
        refused += LINE_BREAK_CLASS
    if person_name:
        refused += BIDI_CONTROL_CLASS
    if blank:
        return f"^[^{refused}]*$"
    return f"^[^{refused}]*[^{refused}{SPACE_CLASS}][^{refused}]*$"


def text(name: str, *, required: bool = False, limit: int | None = None, description: str = "", **kw) -> Field:
    return Field(name, "text", required=required, limit=limit, description=description, **kw)


def line(name: str, *, required: bool = False, limit: int | None = None, description: str = "", **kw) -> Field:
    return Field(name, "line", required=required, limit=limit, description=description, **kw)


def person_name(name: str, *, required: bool = False, limit: int | None = 100, description: str = "", **kw) -> Field:
    """A person's name (氏名, 同意した人): one line, no bidirectional control."""
    return Field(name, "line", required=required, limit=limit, description=description, person_name=True, **kw)


def code(name: str, *, required: bool = False, limit: int | None = 64, description: str = "", **kw) -> Field:
    return Field(name, "code", required=required, limit=limit, description=description, **kw)


def codes(name: str, *, required: bool = False, limit: int | None = 64, description: str = "", **kw) -> Field:
    return Field(name, "codes", required=required, limit=limit, description=description, **kw)


def day(name: str, *, required: bool = False, description: str = "", **kw) -> Field:
    return Field(name, "date", required=required, description=description, **kw)


def moment(name: str, *, required: bool = False, description: str = "", **kw) -> Field:
    return Field(name, "datetime", required=required, description=description, **kw)


def flag(name: str, *, description: str = "", **kw) -> Field:
    return Field(name, "flag", description=description, **kw)


def rows(name: str, row: tuple[Field, ...], *, row_name: str, required: bool = False, description: str = "",
         **kw) -> Field:
    return Field(name, "rows", required=required, description=description, row=row, row_name=row_name, **kw)


def group(name: str, row: tuple[Field, ...], *, row_name: str, required: bool = False, description: str = "",
          **kw) -> Field:
    return Field(name, "group", required=required, description=description, row=row, row_name=row_name, **kw)


def basis(name: str = "basis") -> Field:
    """The statute or emergency an FM or the desk chooses for giving a body outside the city a person's data."""
    return group(name, row_name="SharingBasisIn", label="情報提供の根拠",
                 description="市の外の機関に、委託・本人の同意のどちらもなく送るときの根拠 {code: config の sharing_bases のコード, "
                             "note: その根拠に当たる事実}（FM・サポートデスクのみ）",
                 row=(code("code", required=True, limit=32, choices="sharing_bases", description="根拠のコード"),
                      text("note", required=True, limit=2000, description="その根拠に当たる事実（必須）")))
