"""Dates, years and times of day as staff type them on the pages: 西暦 or 和暦, full- or half-width.

A date: 令和8年11月30日, R8.11.30, 2026-11-30, 2026/11/30. A year: 1974, 昭和49年, S49, 令和元年. A date and
time (開催日時): a date as above and the time of day, 令和8年12月7日 14:30, R8.12.7 14時30分, 午後2時半,
2026-12-07T14:30; read in JST and returned aware. Each field turns what it cannot read into a Japanese
message beside its input.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time

from marshmallow import ValidationError, fields

from engine import calendar

_ERA_LETTERS = {"M": "明治", "T": "大正", "S": "昭和", "H": "平成", "R": "令和"}
_WAREKI = re.compile(r"^(明治|大正|昭和|平成|令和|[MTSHR])\s*(元|\d{1,2})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})\s*日?$")
_SEIREKI = re.compile(r"^(\d{4})\s*[年./-]\s*(\d{1,2})\s*[月./-]\s*(\d{1,2})\s*日?$")


class NoSuchDate(ValueError):
    """Typed as a date, but no such day exists (2月30日, 平成31年5月1日); the message says why."""


def parse_date(text: str) -> date:
    """A date typed in 西暦 or 和暦, full- or half-width; ValueError if it is not one (NoSuchDate when it
    has the form of a date but names no day)."""
    s = unicodedata.normalize("NFKC", text).strip().upper()
    m = _WAREKI.match(s)
    if m:
        era, year, month, day = m.groups()
        era = _ERA_LETTERS.get(era, era)
        year_n = 1 if year == "元" else int(year)
        try:
            date(2000, int(month), int(day))  # a leap year: only the month and day are checked here
        except ValueError:
            raise NoSuchDate(f"{int(month)}月{int(day)}日という日付はありません。") from None
        try:
            return calendar.from_wareki(era, year_n, int(month), int(day))
        except ValueError as exc:
            # calendar's own refusals are in Japanese (no such year or era); Python's (2月29日 of a common
            # year) are not.
            said = str(exc)
            raise NoSuchDate(said if not said.isascii() else
                             f"{era}{year}年{int(month)}月{int(day)}日という日付はありません。") from None
    m = _SEIREKI.match(s)
    if m:
        y, mo, d = (int(g) for g in m.groups())
        try:
            return date(y, mo, d)
        except ValueError:
            raise NoSuchDate(f"{y}年{mo}月{d}日という日付はありません。") from None
    raise ValueError(text)


class JaDate(fields.Field):
    """A date in 西暦 or 和暦; an empty input is None."""

    default_error_messages = {"invalid": "日付は 令和8年11月30日 または 2026-11-30 の形で入力してください。"}

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, ""):
            return None
        if isinstance(value, date):
            return value
        try:
            return parse_date(str(value))
        except NoSuchDate as exc:
            raise ValidationError(str(exc)) from None
        except ValueError:
            raise self.make_error("invalid") from None


_WAREKI_YEAR = re.compile(r"^(明治|大正|昭和|平成|令和|[MTSHR])\s*(元|\d{1,2})\s*年?$")


class JaYear(fields.Field):
    """A year in 西暦 (1974) or 和暦 (昭和49, 昭和49年, S49, 令和元年), full- or half-width; empty is None."""

    default_error_messages = {"invalid": "年は 1974 または 昭和49年 の形で入力してください。"}

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, ""):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        s = unicodedata.normalize("NFKC", str(value)).strip().upper()
        if s.endswith("年") and s[:-1].isdigit():
            s = s[:-1]
        if s.isascii() and s.isdigit():
            return int(s)
        m = _WAREKI_YEAR.match(s)
        if not m:
            raise self.make_error("invalid")
        era, year = m.groups()
        try:
            return calendar.year_of_wareki(_ERA_LETTERS.get(era, era), 1 if year == "元" else int(year))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class NoSuchTime(NoSuchDate):
    """Typed as a time of day, but no such time exists (25時, 午後13時)."""


class MissingTime(ValueError):
    """A date was typed where its time of day is needed too."""


# The time of day at the end of a date and time: after a space, a "T" or the 日 of the date; 14:30, 14:30:00,
# 14時, 14時30分, 2時半, with 午前/午後 (or AM/PM) before or after.
_TIME = re.compile(
    r"(?:T|\s+|(?<=日))(?P<before>午前|午後|AM|PM)?\s*(?P<h>\d{1,2})\s*"
    r"(?::\s*(?P<m>\d{1,2})(?::(?P<s>\d{1,2}))?|時\s*(?:(?P<m2>\d{1,2})\s*分|(?P<half>半))?)"
    r"\s*(?P<after>AM|PM)?$")


def parse_datetime(text: str) -> datetime:
    """A date and time of day typed in JST, the date in 西暦 or 和暦 (parse_date), as an aware datetime;
    ValueError if it is not one (NoSuchDate, or NoSuchTime, when it has the form of one but names no moment)."""
    s = unicodedata.normalize("NFKC", text).strip().upper()
    m = _TIME.search(s)
    if m is None:
        parse_date(s)  # a date alone says which message to give: no such day, or the time is missing
        raise MissingTime(text)
    day = parse_date(s[:m.start()].strip())
    if not calendar.EARLIEST_YEAR <= day.year <= calendar.LATEST_YEAR:  # a slip of the keyboard
        raise NoSuchDate(f"日時は{calendar.EARLIEST_YEAR}年から{calendar.LATEST_YEAR}年までで入力してください。")
    hour, minute = int(m["h"]), int(m["m"] or m["m2"] or (30 if m["half"] else 0))
    second = int(m["s"] or 0)
    marker = m["before"] or m["after"]
    if marker is not None:
        if hour > 12:
            raise NoSuchTime(f"{marker}{hour}時という時刻はありません。")
        if marker in ("午後", "PM") and hour < 12:
            hour += 12
        elif marker in ("午前", "AM") and hour == 12:
            hour = 0
    if hour > 23 or minute > 59 or second > 59:
        raise NoSuchTime(f"{hour}時{minute}分という時刻はありません。")
    return datetime.combine(day, time(hour, minute, second), tzinfo=calendar.JST)


class JaDateTime(fields.Field):
    """A date and time of day in JST (parse_datetime), returned aware; an empty input is None."""

    default_error_messages = {
        "invalid": "日時は 令和8年12月7日 14:30 または 2026-12-07 14:30 の形で入力してください。",
        "time": "時刻も入力してください（例: 令和8年12月7日 14:30）。",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if value in (None, ""):
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=calendar.JST)
        try:
            return parse_datetime(str(value))
        except NoSuchDate as exc:
            raise ValidationError(str(exc)) from None
        except MissingTime:
            raise self.make_error("time") from None
        except ValueError:
            raise self.make_error("invalid") from None


def datetime_input(moment: datetime) -> str:
    """How a date and time is written into a JaDateTime input: 和暦 and the clock time in JST."""
    return calendar.wareki_datetime(moment)
