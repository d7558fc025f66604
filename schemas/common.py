"""Pieces shared by several API schemas: department references, list pages, time stamps."""
from __future__ import annotations

from datetime import datetime, timezone

from marshmallow import ValidationError, fields, post_load, validates

from engine.calendar import EARLIEST_YEAR, JST, LATEST_YEAR, parse_aware_iso8601
from schemas.fields import RFC3339_DATE_TIME, Integer, Output, Schema, Text, int_range

MAX_ID = 2**31 - 1
PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def today_jst():
    """Today's date in Japan, the day a 'future' date is measured against."""
    return datetime.now(JST).date()


def timestamp(description: str | None = None, *, nullable: bool = False) -> fields.String:
    """An ISO 8601 time with offset (an answer field: engine.cases.views renders it as text)."""
    meta = {"format": "date-time"}
    if description:
        meta["description"] = description
    return fields.String(required=True, allow_none=nullable, metadata=meta)


def day(description: str | None = None, *, nullable: bool = True) -> fields.String:
    """A date as YYYY-MM-DD (an answer field)."""
    meta = {"format": "date"}
    if description:
        meta["description"] = description
    return fields.String(required=True, allow_none=nullable, metadata=meta)


class DepartmentRef(Output):
    """A department or agency, by code and name."""

    code = fields.String(required=True, metadata={"description": "部署・機関コード"})
    name = fields.String(required=True, metadata={"description": "名称"})


class PageQuery(Schema):
    """Paging of a list: newest first; follow `next` for the following page."""

    limit = Integer(load_default=PAGE_SIZE, validate=int_range(1, MAX_PAGE_SIZE),
                    metadata={"description": f"1ページの件数（1〜{MAX_PAGE_SIZE}、既定 {PAGE_SIZE}）"})
    cursor = Text(max_length=10, metadata={"description": "前のページの `next` に含まれる位置（そのまま渡す）",
                                           "pattern": "^[0-9]{1,10}$"})

    @validates("cursor")
    def _check_cursor(self, value: str, **kwargs) -> None:
        if not value.isascii() or not value.isdigit():
            raise ValidationError("前のページの next に含まれる値をそのまま指定してください。")

    @post_load
    def _cursor(self, data, **kwargs):
        if data.get("cursor") is not None:
            # Every id is below a cursor past the largest one: the list starts from the newest.
            cursor = int(data["cursor"])
            data["cursor"] = cursor if cursor <= MAX_ID else None
        return data


def parse_since(value: str) -> datetime:
    """An ISO 8601 time with offset from a query string.

    A '+' that was not percent-encoded arrives as a space; it is put back.
    """
    text = value.strip()
    if " " in text:
        text = text.replace(" ", "+")
    if not RFC3339_DATE_TIME.fullmatch(text):
        raise ValidationError("日時はタイムゾーン付きの RFC 3339 形式（例: 2026-11-30T10:00:00+09:00）で指定してください。")
    # A filter, not a record: a time before every record asks for all of them, one after every record for
    # none (the records' own times lie between 1900 and 2999).
    year = int(text[:4])
    if year < EARLIEST_YEAR:
        return datetime(EARLIEST_YEAR, 1, 1, tzinfo=timezone.utc)
    if year > LATEST_YEAR:
        return datetime(LATEST_YEAR, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    try:
        return parse_aware_iso8601(text.upper())
    except (ValueError, OverflowError):
        raise ValidationError("日時を表せません（存在しない日付や時刻です）。") from None
