"""Referrals in a CSV file, as the city's other systems write them (`tsunagu referrals import`, and the same file
uploaded to `POST /api/v1/referral-batches`).

One row per referral. The header names the columns by the API's own field paths (docs/api.md "Referrals in a
file"): `external_ref`, `referrer.organization`, `person.name`, `person.birth_date`, `categories`, `summary`,
… and for each household member `household.1.relationship`, `household.1.name`, `household.1.birth_year`, ….
Lists (`categories`, `consent.agencies`) are codes separated by spaces, commas or semicolons; dates are
written in 西暦 or 和暦 (2026-04-01, 2026/4/1, 令和8年4月1日, R8.4.1). An empty cell is a field not given.

The file is read whole before anything is imported: one that cannot be read (its encoding, its header, a
line longer than any field may be) is refused as a whole with the line that stops it; a row that is wrong
is refused on its own, by line and column, and the other rows go on. Each accepted row becomes the body
`POST /referrals` would have validated, checked by the same schema.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.orm import sessionmaker

from engine.audit import trail
from engine.errors import EngineError
from engine.models import ApiClient
from engine.referrals import intake as referrals
from schemas.fields import flatten_errors
from schemas.referrals import ReferralIn
from web.form_dates import NoSuchDate, parse_date

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_CELL = 100_000  # characters: above any field's limit (a summary holds 20,000)

SCALAR_COLUMNS = (
    "external_ref",
    "referrer.organization", "referrer.contact_name", "referrer.contact_phone",
    "person.name", "person.name_kana", "person.sex", "person.birth_date", "person.area", "person.resident_id",
    "person.phone", "person.address",
    "categories", "summary", "urgency",
    "consent.given_by", "consent.method", "consent.obtained_on", "consent.agencies",
)
MEMBER_FIELDS = ("relationship", "name", "birth_year", "resident_id", "note")
REQUIRED_COLUMNS = ("external_ref", "referrer.organization", "person.name", "categories", "summary")
LIST_COLUMNS = frozenset({"categories", "consent.agencies"})
DATE_COLUMNS = frozenset({"person.birth_date", "consent.obtained_on"})
_MEMBER_COLUMN = re.compile(r"^household\.([1-9][0-9]?)\.(" + "|".join(MEMBER_FIELDS) + r")$")
_LIST_SEPARATOR = re.compile(r"[\s,、;；]+")
# A cell a spreadsheet would run as a formula when the file is opened again (=…, +…, -…, @…); a telephone
# number written +81 … or a plain number is not one.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER_LIKE = re.compile(r"^[+\-]?[0-9][0-9 ()\-]*$")
_WESTERN_YEAR = re.compile(r"^[0-9]{4}$")


class FileRefused(ValueError):
    """The file as a whole cannot be imported; the message (Japanese) says why and, where it can, on which line."""


@dataclass
class Row:
    """One row of the file: the body it makes, or why it is refused (column → messages)."""

    line: int
    body: dict[str, Any] | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def external_ref(self) -> str | None:
        return (self.body or {}).get("external_ref")


@dataclass
class Outcome:
    """What became of one row: `created`, `replayed` (imported before: the first answer), `duplicate` (the
    external_ref came before under another key, as a POST) or `refused` (`errors` by column)."""

    line: int
    status: str
    body: dict[str, Any] | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)


def file_key(external_ref: str) -> str:
    """The idempotency key of a row: one per external_ref, so that importing a file again (or the rest of
    one stopped midway) creates nothing twice, and a row changed since is refused rather than replayed."""
    return "file:" + hashlib.sha256(external_ref.encode("utf-8")).hexdigest()


def import_rows(sessions: sessionmaker, client_id: int, rows: list[Row], *, dry_run: bool = False, actor=None,
                remote_addr: str | None = None, location: Callable[[int], str] | None = None) -> Iterator[Outcome]:
    """Create each row's referral as POST /referrals would, each in a transaction of its own (a refused row
    leaves the others standing; a stop midway keeps what was done); with `dry_run`, each is rolled back."""
    for row in rows:
        if row.errors:
            yield Outcome(row.line, "refused", errors=row.errors)
            continue
        session = sessions()
        try:
            client = session.get(ApiClient, client_id)
            trail.bind(session, remote_addr=remote_addr, client=client)
            answer = referrals.receive(session, client, key=file_key(row.external_ref), payload=row.body,
                                       actor=actor, remote_addr=remote_addr,
                                       **({"location": location} if location else {}))
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except referrals.DuplicateReferral as exc:
            session.rollback()
            yield Outcome(row.line, "duplicate", errors={"external_ref": [exc.message]})
            continue
        except EngineError as exc:
            session.rollback()
            yield Outcome(row.line, "refused", errors=getattr(exc, "errors", None) or {"external_ref": [exc.message]})
            continue
        finally:
            session.close()
        yield Outcome(row.line, "replayed" if answer.replayed else "created", body=answer.body)


def decode(raw: bytes) -> str:
    """The file's text: UTF-8 (with or without a byte order mark) or CP932 (Shift_JIS as Windows writes it)."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileRefused("文字コードを読めません。UTF-8 または Shift_JIS（CP932）で保存したファイルを指定してください。")


def read_rows(raw: bytes) -> list[Row]:
    """Every row of the file with its line number (the line it starts on), each with a body or its errors."""
    if len(raw) > MAX_FILE_BYTES:
        raise FileRefused(f"ファイルが大きすぎます（{MAX_FILE_BYTES // (1024 * 1024)} MB まで）。分けて取り込んでください。")
    text = decode(raw)
    if not text.strip():
        raise FileRefused("ファイルが空です。1行目に見出し、2行目から1行に1件の紹介を書いてください。")
    records = _records(text)
    header_line, header = records[0]
    columns = _check_header(header_line, header)
    rows, first_seen = [], {}
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            continue
        row = _row(line, columns, cells)
        ref = row.external_ref
        if ref is not None:
            if ref in first_seen:
                row.errors.setdefault("external_ref", []).append(
                    f"external_ref「{ref}」は{first_seen[ref]}行目と同じです（1件に1つの番号にしてください）。")
                row.body = None
            else:
                first_seen[ref] = line
        rows.append(row)
    if not rows:
        raise FileRefused("見出しの行のほかに紹介の行がありません。")
    return rows


def _records(text: str) -> list[tuple[int, list[str]]]:
    """(the line each record starts on, its cells); a cell longer than any field may be stops the file."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[tuple[int, list[str]]] = []
    start = 1
    previous_limit = csv.field_size_limit(MAX_CELL)
    try:
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise FileRefused(f"{start}行目: 1つの項目が長すぎます（{MAX_CELL:,}文字まで）。") from None
                raise FileRefused(f"{start}行目: CSV として読めません（引用符 \" の閉じ忘れなど）。") from None
            out.append((start, cells))
            start = reader.line_num + 1
    finally:
        csv.field_size_limit(previous_limit)
    return out


def _check_header(line: int, header: list[str]) -> list[str]:
    columns = [h.strip() for h in header]
    unknown = [c for c in columns if c not in SCALAR_COLUMNS and not _MEMBER_COLUMN.match(c)]
    if unknown:
        raise FileRefused(f"{line}行目（見出し）: 知らない列があります: {'、'.join(repr(c) for c in unknown[:10])}。"
                          "列の名前は docs/api.md の「Referrals in a file」のとおりに書いてください。")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise FileRefused(f"{line}行目（見出し）: 同じ列が2回以上あります: {'、'.join(repeated)}。")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise FileRefused(f"{line}行目（見出し）: 必須の列がありません: {'、'.join(missing)}。")
    return columns


def _row(line: int, columns: list[str], cells: list[str]) -> Row:
    row = Row(line)
    if len(cells) > len(columns):
        row.errors["行"] = [f"項目の数（{len(cells)}）が見出しの列の数（{len(columns)}）より多くなっています。"]
        return row
    body: dict[str, Any] = {}
    members: dict[int, dict[str, Any]] = {}
    for column, raw in zip(columns, cells):
        value = raw.strip()
        if not value:
            continue
        if _FORMULA.match(raw) and not _NUMBER_LIKE.match(value):
            row.errors[column] = ["数式のように見える値（=、+、-、@ で始まる）は取り込めません。"]
            continue
        member = _MEMBER_COLUMN.match(column)
        try:
            parsed = _value(column, member.group(2) if member else None, value)
        except ValueError as exc:
            row.errors[column] = [str(exc)]
            continue
        if member:
            members.setdefault(int(member.group(1)), {})[member.group(2)] = parsed
        else:
            section, _, name = column.partition(".")
            if name:
                body.setdefault(section, {})[name] = parsed
            else:
                body[section] = parsed
    numbers = sorted(members)
    if numbers:
        body["household"] = [members[n] for n in numbers]
    # The schema checks the rest even when a cell was refused already: every mistake of the row is said at
    # once (a refused cell is left out of the body, so what the schema says of it adds nothing).
    try:
        loaded = ReferralIn().load(body)
    except ValidationError as exc:
        for name, messages in flatten_errors(exc.messages).items():
            column = _column_of(name, numbers)
            if column not in row.errors:
                row.errors[column] = messages
    else:
        if not row.errors:
            row.body = loaded
    return row


def _value(column: str, member_field: str | None, value: str) -> Any:
    if column in LIST_COLUMNS:
        return [code for code in _LIST_SEPARATOR.split(value) if code]
    if column in DATE_COLUMNS:
        try:
            return parse_date(value).isoformat()
        except NoSuchDate:
            raise
        except ValueError:
            raise ValueError("日付は 2026-04-01、2026/4/1、令和8年4月1日 または R8.4.1 の形で書いてください。") from None
    if member_field == "birth_year":
        if not _WESTERN_YEAR.match(value):
            raise ValueError("生まれ年は西暦の4桁（例: 1974）で書いてください。")
        return int(value)
    return value


# A section with no cell filled in is missing as a whole: the column to fill is its required one.
_SECTION_COLUMN = {"referrer": "referrer.organization", "person": "person.name"}


def _column_of(name: str, numbers: list[int]) -> str:
    """The column an error of the schema (`household.0.name`, `person.birth_date`) is about."""
    if name in _SECTION_COLUMN:
        return _SECTION_COLUMN[name]
    parts = name.split(".")
    if parts[0] == "household" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(numbers):
        parts[1] = str(numbers[int(parts[1])])
    return ".".join(parts)
