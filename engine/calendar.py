"""Business days and Japanese calendar display (和暦) for Tsunagu.

Everything here is pure: no database, no Flask. Deadlines are computed in
Japan Standard Time (the city's office hours) and returned as aware UTC
datetimes, which is how they are stored.

Naive datetimes passed to the *display* helpers (``wareki`` and friends) are
taken to be UTC, the storage convention (SQLite hands back naive UTC values).
The deadline helpers refuse naive datetimes outright.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import jpholiday
import yaml

__all__ = [
    "JST",
    "BusinessCalendar",
    "is_national_holiday",
    "wareki",
    "wareki_datetime",
    "wareki_year",
    "fiscal_year",
    "reiwa_year",
    "parse_aware_iso8601",
]

JST = zoneinfo.ZoneInfo("Asia/Tokyo")

# Safety net for loops that search for the next business day: no real calendar
# has a year without a business day, so hitting this means a broken calendar.
_MAX_SEARCH_DAYS = 366 * 2


@functools.lru_cache(maxsize=8192)
def is_national_holiday(d: date) -> bool:
    """Return True if ``d`` is a Japanese national holiday according to jpholiday.

    This includes 振替休日 (substitute holidays) and 国民の休日 (days sandwiched
    between two holidays), exactly as jpholiday reports them. Results are cached.
    """
    return bool(jpholiday.is_holiday(d))


def _is_year_end_closure(d: date) -> bool:
    """12/29–1/3: the closure of every Japanese municipal office."""
    return (d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)


class _TextDateLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text, so that a bad date gets our own message."""


_TextDateLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _require_aware(value: datetime, what: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} must be timezone-aware (タイムゾーン付きの日時が必要です): {value!r}")


def _parse_hhmm(value: Any, key: str, where: str) -> time:
    if not isinstance(value, str):
        raise ValueError(
            f"{where}: {key} は \"HH:MM\" 形式の文字列（引用符付き）で指定してください"
            f" ({key} must be a quoted \"HH:MM\" string, got {value!r})"
        )
    try:
        parsed = datetime.strptime(value.strip(), "%H:%M").time()
    except ValueError:
        raise ValueError(
            f"{where}: {key} の時刻 {value!r} を読み取れません。\"HH:MM\" 形式で指定してください"
            f" ({key} is not a valid \"HH:MM\" time)"
        ) from None
    return parsed


@dataclass(frozen=True)
class BusinessCalendar:
    """A municipality's business calendar: office hours plus closure days.

    A business day is a weekday that is not a national holiday, not in the
    12/29–1/3 year-end closure and not one of ``city_closures``.
    """

    office_start: time
    office_end: time
    city_closures: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.office_start, time) or not isinstance(self.office_end, time):
            raise TypeError("office_start and office_end must be datetime.time values")
        if self.office_start.tzinfo is not None or self.office_end.tzinfo is not None:
            raise ValueError("office hours are wall-clock JST times; pass naive time values")
        if self.office_start >= self.office_end:
            raise ValueError(
                f"office_start ({self.office_start:%H:%M}) must be before office_end "
                f"({self.office_end:%H:%M}) / 開庁時刻は閉庁時刻より前にしてください"
            )
        object.__setattr__(self, "city_closures", frozenset(self.city_closures))

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_file(cls, path: str | Path) -> "BusinessCalendar":
        """Build a calendar from a YAML file like ``config/calendar.yaml``.

        Expected keys: ``office_hours.start`` and ``office_hours.end`` ("HH:MM"),
        ``city_closures`` (a list of ISO dates, may be empty or absent).
        Raises ``ValueError`` naming the file and the problem.
        """
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{where}: ファイルを読み込めません ({exc})") from exc
        try:
            data = yaml.load(text, Loader=_TextDateLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ValueError(f"{where}{line}: YAML の構文エラー: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{where}: 最上位はマッピング（office_hours, city_closures）で指定してください")
        unknown = sorted(str(k) for k in data if k not in {"office_hours", "city_closures"})
        if unknown:
            raise ValueError(f"{where}: 不明なキー {', '.join(unknown)}")

        hours = data.get("office_hours")
        if not isinstance(hours, dict):
            raise ValueError(f"{where}: office_hours（start, end）がありません")
        for key in ("start", "end"):
            if key not in hours:
                raise ValueError(f"{where}: office_hours.{key} がありません")
        start = _parse_hhmm(hours["start"], "office_hours.start", where)
        end = _parse_hhmm(hours["end"], "office_hours.end", where)
        if start >= end:
            raise ValueError(f"{where}: office_hours.start は office_hours.end より前の時刻にしてください")

        raw_closures = data.get("city_closures")
        if raw_closures is None:
            raw_closures = []
        if not isinstance(raw_closures, list):
            raise ValueError(f"{where}: city_closures は日付（YYYY-MM-DD）のリストで指定してください")
        closures: set[date] = set()
        for item in raw_closures:
            if isinstance(item, datetime):
                raise ValueError(f"{where}: city_closures には日時ではなく日付を指定してください: {item}")
            if isinstance(item, date):
                closures.add(item)
                continue
            try:
                closures.add(date.fromisoformat(str(item).strip()))
            except ValueError:
                raise ValueError(
                    f"{where}: city_closures の日付 {item!r} を読み取れません（YYYY-MM-DD 形式で指定してください）"
                ) from None
        return cls(office_start=start, office_end=end, city_closures=frozenset(closures))

    # ------------------------------------------------------------------ days
    def is_business_day(self, d: date) -> bool:
        """True if the city office is open on ``d`` (a date; a datetime is reduced to its date)."""
        if isinstance(d, datetime):
            d = d.date()
        if d.weekday() >= 5:
            return False
        if _is_year_end_closure(d):
            return False
        if d in self.city_closures:
            return False
        return not is_national_holiday(d)

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after ``d``."""
        for _ in range(_MAX_SEARCH_DAYS):
            d = d + timedelta(days=1)
            if self.is_business_day(d):
                return d
        raise RuntimeError("no business day within two years; check the calendar configuration")

    def _close_at(self, d: date) -> datetime:
        return datetime.combine(d, self.office_end, tzinfo=JST)

    def _open_at(self, d: date) -> datetime:
        return datetime.combine(d, self.office_start, tzinfo=JST)

    # ------------------------------------------------------------------ deadlines
    def deadline_after_business_days(self, start: datetime, n: int) -> datetime:
        """Deadline = close of office (JST) on the ``n``-th business day after ``start``'s JST date.

        ``start`` must be timezone-aware (any zone). ``n == 0`` means the close of
        the start date itself if it is a business day, else of the next business
        day. Returns an aware UTC datetime.
        """
        _require_aware(start, "start")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        day = start.astimezone(JST).date()
        if n == 0:
            if not self.is_business_day(day):
                day = self.next_business_day(day)
        else:
            for _ in range(n):
                day = self.next_business_day(day)
        return self._close_at(day).astimezone(timezone.utc)

    def deadline_after_office_hours(self, start: datetime, hours: float) -> datetime:
        """Deadline after ``hours`` of office time, counting only office hours on business days.

        A start outside office hours (or on a closed day) begins counting at the
        next opening. Returns an aware UTC datetime.
        """
        _require_aware(start, "start")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours < 0:
            raise ValueError(f"hours must be a non-negative number, got {hours!r}")
        remaining = timedelta(hours=hours)
        t = start.astimezone(JST)
        for _ in range(_MAX_SEARCH_DAYS):
            day = t.date()
            if not self.is_business_day(day) or t >= self._close_at(day):
                t = self._open_at(self.next_business_day(day))
                continue
            if t < self._open_at(day):
                t = self._open_at(day)
            available = self._close_at(day) - t
            if remaining <= available:
                return (t + remaining).astimezone(timezone.utc)
            remaining -= available
            t = self._open_at(self.next_business_day(day))
        raise RuntimeError("deadline is more than two years of office time away")

    def business_days_between(self, start: datetime, end: datetime) -> int:
        """Business days strictly after ``start``'s JST date up to and including ``end``'s JST date.

        Returns 0 if ``end <= start``. Used to show how old a handoff is.
        """
        _require_aware(start, "start")
        _require_aware(end, "end")
        if end <= start:
            return 0
        day = start.astimezone(JST).date()
        last = end.astimezone(JST).date()
        count = 0
        while day < last:
            day += timedelta(days=1)
            if self.is_business_day(day):
                count += 1
        return count


# ---------------------------------------------------------------------- 和暦

# (first day of the era, name). 明治 is taken from 1868-01-25 (明治元年 as
# conventionally counted from the start of the Gregorian year 1868 for display).
_ERAS: tuple[tuple[date, str], ...] = (
    (date(2019, 5, 1), "令和"),
    (date(1989, 1, 8), "平成"),
    (date(1926, 12, 25), "昭和"),
    (date(1912, 7, 30), "大正"),
    (date(1868, 1, 25), "明治"),
)


def _jst_date(d: date | datetime) -> date:
    """Reduce a date or datetime to a JST calendar date (naive datetimes are UTC)."""
    if isinstance(d, datetime):
        if d.tzinfo is None or d.tzinfo.utcoffset(d) is None:
            d = d.replace(tzinfo=timezone.utc)
        return d.astimezone(JST).date()
    if isinstance(d, date):
        return d
    raise TypeError(f"expected a date or datetime, got {type(d).__name__}")


def _era(d: date) -> tuple[str, int]:
    """The era and its year; before 明治 there is no era to give: ("", the Gregorian year)."""
    for first_day, name in _ERAS:
        if d >= first_day:
            return name, d.year - first_day.year + 1
    return "", d.year


def from_wareki(era: str, year: int, month: int, day: int) -> date:
    """The date of 和暦 `era` `year` (1 for 元年) `month` `day`; ValueError unless it falls within that era."""
    eras = [(first, name) for first, name in _ERAS]
    for i, (first, name) in enumerate(eras):
        if name != era:
            continue
        if year < 1:
            raise ValueError(f"{era}0年という年はありません。")
        d = date(first.year + year - 1, month, day)
        ends = eras[i - 1][0] if i > 0 else None
        if d < first or (ends is not None and d >= ends):
            raise ValueError(f"{_era_year_text(era, year)}{month}月{day}日は{era}の期間にありません。")
        return d
    raise ValueError(f"「{era}」という元号はありません。")


def year_of_wareki(era: str, year: int) -> int:
    """The 西暦 year of 和暦 `era` `year` (1 for 元年); ValueError unless some day of it falls in that era."""
    eras = list(_ERAS)
    for i, (first, name) in enumerate(eras):
        if name != era:
            continue
        western = first.year + year - 1
        ends = eras[i - 1][0] if i > 0 else None
        if year < 1 or (ends is not None and western > ends.year):
            raise ValueError(f"{era}{year}年という年はありません。")
        return western
    raise ValueError(f"「{era}」という元号はありません。")


def _era_year_text(name: str, year: int) -> str:
    if not name:  # before 明治 (a date typed long ago must still show, never break the page)
        return f"{year}年"
    return f"{name}{'元' if year == 1 else year}年"


def wareki(d: date | datetime) -> str:
    """Format a date in 和暦, e.g. ``令和8年4月1日`` (year 1 as 元年: ``令和元年5月1日``); before 明治, in 西暦.

    An aware datetime is converted to JST first; a naive datetime is taken as UTC.
    """
    day = _jst_date(d)
    name, year = _era(day)
    return f"{_era_year_text(name, year)}{day.month}月{day.day}日"


def wareki_datetime(dt: datetime) -> str:
    """Format a datetime in 和暦 with JST clock time, e.g. ``令和8年11月28日 14:05``.

    A naive datetime is taken as UTC (the storage convention).
    """
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        dt = dt.replace(tzinfo=timezone.utc)
    local = dt.astimezone(JST)
    return f"{wareki(local.date())} {local:%H:%M}"


def wareki_year(d: date | datetime) -> str:
    """The 和暦 year of a date, e.g. ``令和8年`` (or ``令和元年``)."""
    name, year = _era(_jst_date(d))
    return _era_year_text(name, year)


def fiscal_year(d: date | datetime) -> int:
    """Japanese fiscal year (starting April 1) of a date: 2027-03-31 → 2026, 2027-04-01 → 2027."""
    day = _jst_date(d)
    return day.year if day.month >= 4 else day.year - 1


def reiwa_year(fiscal_year: int) -> int:
    """The 令和 year number of a fiscal year (西暦): 2026 → 8, 2019 → 1 (令和元年度)."""
    if isinstance(fiscal_year, bool) or not isinstance(fiscal_year, int):
        raise TypeError(f"fiscal_year must be an int, got {fiscal_year!r}")
    if fiscal_year < 2019:
        raise ValueError(f"{fiscal_year} 年度は令和より前です")
    return fiscal_year - 2018


# ---------------------------------------------------------------------- parsing

_ISO_ZONE_MESSAGE = (
    "expected an ISO 8601 date-time with a time zone offset or Z "
    "(e.g. 2027-01-06T17:00:00+09:00) / "
    "--now にはタイムゾーン付きの ISO 8601 日時を指定してください（例: 2027-01-06T17:00:00+09:00）"
)


# The years a time typed by a person or an operator may fall in: beyond any case's life, and clear of the
# edges of what a datetime can hold once moved to UTC.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999


class TimeOutOfRange(ValueError):
    """A well-formed time outside EARLIEST_YEAR–LATEST_YEAR."""


def parse_aware_iso8601(text: str) -> datetime:
    """Parse an ISO 8601 date-time that carries a zone offset or ``Z``; return it as aware UTC.

    Raises ``ValueError`` (English and Japanese message) when the text has no
    zone or does not parse.
    """
    if not isinstance(text, str):
        raise ValueError(f"{_ISO_ZONE_MESSAGE}: {text!r}")
    raw = text.strip()
    # A date alone ("2027-01-06") parses as a naive midnight; it is refused below.
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{_ISO_ZONE_MESSAGE}: {text!r}") from None
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{_ISO_ZONE_MESSAGE}: {text!r}")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise TimeOutOfRange(f"{EARLIEST_YEAR}年から{LATEST_YEAR}年までの日時を指定してください "
                             f"(a time between {EARLIEST_YEAR} and {LATEST_YEAR}): {text!r}")
    return value.astimezone(timezone.utc)


def iso(value: datetime | date | None) -> str | None:
    """A time or a date as ISO 8601 text (times with their offset), as the API and the read models give them."""
    return None if value is None else value.isoformat()
