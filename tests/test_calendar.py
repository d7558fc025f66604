"""Business days, deadlines and 和暦 (engine/calendar.py). Pure: no database."""

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from engine.calendar import (
    JST,
    BusinessCalendar,
    fiscal_year,
    from_wareki,
    is_national_holiday,
    parse_aware_iso8601,
    reiwa_year,
    wareki,
    wareki_datetime,
    wareki_year,
    year_of_wareki,
)

CONFIG = Path(__file__).resolve().parent.parent / "config"
UTC = timezone.utc


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    """The demo calendar: office hours 08:30–17:15, no city closures."""
    return BusinessCalendar.from_file(CONFIG / "calendar.yaml")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


# ---------------------------------------------------------------- config file


def test_demo_config_office_hours(cal):
    assert cal.office_start == time(8, 30)
    assert cal.office_end == time(17, 15)
    assert cal.city_closures == frozenset()


def test_city_closure_from_file(tmp_path):
    path = tmp_path / "calendar.yaml"
    path.write_text(
        'office_hours:\n  start: "08:30"\n  end: "17:15"\ncity_closures:\n  - 2027-02-15\n  - "2027-02-16"\n',
        encoding="utf-8",
    )
    cal = BusinessCalendar.from_file(path)
    assert cal.city_closures == {date(2027, 2, 15), date(2027, 2, 16)}
    assert not cal.is_business_day(date(2027, 2, 15))  # Monday, city closure
    assert not cal.is_business_day(date(2027, 2, 16))
    assert cal.is_business_day(date(2027, 2, 17))
    # Friday 2027-02-12 + 1 business day skips the weekend and both closure days.
    deadline = cal.deadline_after_business_days(jst(2027, 2, 12, 9, 0), 1)
    assert deadline.astimezone(JST) == jst(2027, 2, 17, 17, 15)


@pytest.mark.parametrize(
    "body, problem",
    [
        ("office_hours:\n  start: 8:30\n  end: \"17:15\"\n", "office_hours.start"),  # YAML 1.1 int 510
        ("office_hours:\n  start: \"8時半\"\n  end: \"17:15\"\n", "office_hours.start"),
        ("office_hours:\n  start: \"17:15\"\n  end: \"08:30\"\n", "office_hours.start"),
        ("office_hours:\n  start: \"08:30\"\n", "office_hours.end"),
        (
            "office_hours:\n  start: \"08:30\"\n  end: \"17:15\"\ncity_closures: [2027-13-01]\n",
            "city_closures",
        ),
        ("office_hours:\n  start: \"08:30\"\n  end: \"17:15\"\ncity_closures: 2027-02-15\n", "city_closures"),
        ("office_hours: [\n", "YAML"),
        ("office_hours:\n  start: \"08:30\"\n  end: \"17:15\"\nholidays: []\n", "holidays"),
    ],
)
def test_bad_calendar_file_names_file_and_problem(tmp_path, body, problem):
    path = tmp_path / "calendar.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        BusinessCalendar.from_file(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_missing_calendar_file(tmp_path):
    with pytest.raises(ValueError, match="calendar.yaml"):
        BusinessCalendar.from_file(tmp_path / "calendar.yaml")


# ---------------------------------------------------------------- business days


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2026, 12, 28), True),   # Monday, last business day of the year
        (date(2026, 12, 29), False),  # 年末年始
        (date(2026, 12, 31), False),
        (date(2027, 1, 1), False),    # 元日 and 年末年始
        (date(2027, 1, 3), False),
        (date(2027, 1, 4), True),     # 仕事始め
        (date(2027, 1, 9), False),    # Saturday
        (date(2027, 1, 10), False),   # Sunday
        (date(2027, 1, 11), False),   # 成人の日 (Monday)
        (date(2027, 1, 12), True),
        (date(2026, 5, 6), False),    # 振替休日 for 憲法記念日 (Sunday 2026-05-03)
        (date(2026, 5, 7), True),
        (date(2026, 9, 22), False),   # 国民の休日 between 敬老の日 and 秋分の日
    ],
)
def test_is_business_day(cal, day, expected):
    assert cal.is_business_day(day) is expected


def test_jpholiday_reports_substitute_and_sandwiched_holidays():
    assert is_national_holiday(date(2026, 5, 6))
    assert is_national_holiday(date(2026, 9, 22))
    assert not is_national_holiday(date(2026, 5, 7))


def test_year_end_deadline_example(cal):
    """A handoff sent Monday 2026-12-28 10:00 JST, 2 business days: due 2027-01-05 17:15 JST."""
    sent = jst(2026, 12, 28, 10, 0)
    deadline = cal.deadline_after_business_days(sent, 2)
    assert deadline.tzinfo == UTC
    assert deadline == jst(2027, 1, 5, 17, 15)
    assert deadline.astimezone(JST) == jst(2027, 1, 5, 17, 15)
    assert not jst(2027, 1, 4, 17, 0) > deadline  # not overdue
    assert jst(2027, 1, 6, 17, 0) > deadline  # overdue


def test_deadline_start_in_another_zone_is_read_in_jst(cal):
    # 2026-12-27 23:00 UTC is already Monday 2026-12-28 08:00 JST.
    sent = datetime(2026, 12, 27, 23, 0, tzinfo=UTC)
    assert cal.deadline_after_business_days(sent, 2) == jst(2027, 1, 5, 17, 15)


def test_three_day_weekend(cal):
    # Friday 2027-01-08; Saturday, Sunday and 成人の日 Monday 2027-01-11 are closed.
    sent = jst(2027, 1, 8, 15, 0)
    assert cal.deadline_after_business_days(sent, 1) == jst(2027, 1, 12, 17, 15)
    assert cal.deadline_after_business_days(sent, 2) == jst(2027, 1, 13, 17, 15)


def test_substitute_holiday_deadline(cal):
    # Thursday 2026-04-30; 5/1 Fri is open, 5/2-5/6 are closed (weekend, holidays, 振替休日).
    sent = jst(2026, 4, 30, 10, 0)
    assert cal.deadline_after_business_days(sent, 1) == jst(2026, 5, 1, 17, 15)
    assert cal.deadline_after_business_days(sent, 2) == jst(2026, 5, 7, 17, 15)


def test_zero_business_days_is_close_of_the_same_or_next_business_day(cal):
    assert cal.deadline_after_business_days(jst(2027, 1, 12, 9), 0) == jst(2027, 1, 12, 17, 15)
    assert cal.deadline_after_business_days(jst(2027, 1, 9, 9), 0) == jst(2027, 1, 12, 17, 15)


def test_deadlines_refuse_naive_and_negative(cal):
    with pytest.raises(ValueError):
        cal.deadline_after_business_days(datetime(2027, 1, 4, 10), 2)
    with pytest.raises(ValueError):
        cal.deadline_after_business_days(jst(2027, 1, 4, 10), -1)
    with pytest.raises(ValueError):
        cal.deadline_after_office_hours(datetime(2027, 1, 4, 10), 4)
    with pytest.raises(ValueError):
        cal.deadline_after_office_hours(jst(2027, 1, 4, 10), -1)


# ---------------------------------------------------------------- office-hours deadlines


def test_urgent_four_office_hours_from_friday_afternoon():
    """08:30–17:00 office: Friday 16:00 + 4h = 1h on Friday + 3h on Monday = Monday 11:30."""
    cal = BusinessCalendar(time(8, 30), time(17, 0), frozenset())
    deadline = cal.deadline_after_office_hours(jst(2027, 1, 15, 16, 0), 4)  # Friday
    assert deadline.tzinfo == UTC
    assert deadline.astimezone(JST) == jst(2027, 1, 18, 11, 30)  # Monday


def test_urgent_four_office_hours_with_demo_hours(cal):
    # 08:30–17:15: 1h15 on Friday, 2h45 on Monday → 11:15.
    assert cal.deadline_after_office_hours(jst(2027, 1, 15, 16, 0), 4) == jst(2027, 1, 18, 11, 15)


def test_office_hours_over_a_holiday_monday(cal):
    # Friday 2027-01-08 16:00; Monday 1/11 is 成人の日 → continues on Tuesday.
    assert cal.deadline_after_office_hours(jst(2027, 1, 8, 16, 0), 4) == jst(2027, 1, 12, 11, 15)


@pytest.mark.parametrize(
    "start, hours, expected",
    [
        (jst(2027, 1, 12, 9, 0), 4, jst(2027, 1, 12, 13, 0)),     # inside office hours
        (jst(2027, 1, 12, 7, 0), 4, jst(2027, 1, 12, 12, 30)),    # before opening: counts from 08:30
        (jst(2027, 1, 12, 20, 0), 4, jst(2027, 1, 13, 12, 30)),   # after closing: next opening
        (jst(2027, 1, 12, 17, 15), 1, jst(2027, 1, 13, 9, 30)),   # exactly at closing
        (jst(2027, 1, 9, 10, 0), 1.5, jst(2027, 1, 12, 10, 0)),   # Saturday of a 3-day weekend
        (jst(2026, 12, 28, 16, 0), 4, jst(2027, 1, 4, 11, 15)),   # across 年末年始
        (jst(2027, 1, 12, 9, 0), 0, jst(2027, 1, 12, 9, 0)),
        (jst(2027, 1, 12, 9, 0), 8.75 * 2, jst(2027, 1, 14, 9, 0)),  # two full office days
    ],
)
def test_deadline_after_office_hours(cal, start, hours, expected):
    assert cal.deadline_after_office_hours(start, hours) == expected


# ---------------------------------------------------------------- age of a handoff


@pytest.mark.parametrize(
    "start, end, expected",
    [
        (jst(2026, 12, 28, 10), jst(2026, 12, 28, 17), 0),   # same day
        (jst(2026, 12, 28, 10), jst(2027, 1, 4, 9), 1),      # only 1/4 counts
        (jst(2026, 12, 28, 10), jst(2027, 1, 6, 17), 3),
        (jst(2027, 1, 8, 10), jst(2027, 1, 12, 10), 1),      # weekend + 成人の日
        (jst(2027, 1, 12, 10), jst(2027, 1, 8, 10), 0),      # end before start
        (jst(2027, 1, 12, 10), jst(2027, 1, 12, 10), 0),
    ],
)
def test_business_days_between(cal, start, end, expected):
    assert cal.business_days_between(start, end) == expected


def test_business_days_between_uses_jst_dates(cal):
    # 2027-01-11 16:00 UTC is already Tuesday 2027-01-12 01:00 JST.
    start = jst(2027, 1, 8, 10)
    assert cal.business_days_between(start, datetime(2027, 1, 11, 16, 0, tzinfo=UTC)) == 1
    assert cal.business_days_between(start, datetime(2027, 1, 11, 14, 0, tzinfo=UTC)) == 0


def test_business_days_between_is_consistent_with_deadline(cal):
    sent = jst(2026, 12, 28, 10)
    deadline = cal.deadline_after_business_days(sent, 2)
    assert cal.business_days_between(sent, deadline) == 2


# ---------------------------------------------------------------- 和暦


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(1946, 5, 1), "昭和21年5月1日"),
        (date(2026, 4, 1), "令和8年4月1日"),
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
        (date(1912, 7, 30), "大正元年7月30日"),
        (date(1912, 7, 29), "明治45年7月29日"),
        (date(1868, 10, 23), "明治元年10月23日"),
    ],
)
def test_wareki(day, expected):
    assert wareki(day) == expected


def test_wareki_converts_aware_datetimes_to_jst():
    # 2019-04-30 15:00 UTC is 2019-05-01 00:00 JST: the first day of 令和.
    assert wareki(datetime(2019, 4, 30, 15, 0, tzinfo=UTC)) == "令和元年5月1日"
    assert wareki(datetime(2019, 4, 30, 14, 59, tzinfo=UTC)) == "平成31年4月30日"


def test_wareki_datetime_and_year():
    assert wareki_datetime(datetime(2026, 11, 28, 5, 5, tzinfo=UTC)) == "令和8年11月28日 14:05"
    assert wareki_datetime(jst(2026, 11, 28, 14, 5)) == "令和8年11月28日 14:05"
    assert wareki_year(date(2026, 4, 1)) == "令和8年"
    assert wareki_year(date(2019, 5, 1)) == "令和元年"
    assert wareki_year(date(2019, 4, 30)) == "平成31年"


def test_a_date_before_meiji_shows_in_seireki_and_never_breaks_a_page():
    """Such a date should never be entered (birth dates start in 1900), but one stored must still show."""
    assert wareki(date(1868, 1, 1)) == "1868年1月1日"
    assert wareki_year(date(1700, 6, 1)) == "1700年"
    assert wareki(date(1868, 1, 25)) == "明治元年1月25日"


@pytest.mark.parametrize(("era", "year", "month", "day", "expected"), [
    ("令和", 1, 5, 1, date(2019, 5, 1)), ("平成", 31, 4, 30, date(2019, 4, 30)), ("昭和", 64, 1, 7, date(1989, 1, 7)),
])
def test_from_wareki(era, year, month, day, expected):
    assert from_wareki(era, year, month, day) == expected


@pytest.mark.parametrize(("era", "year", "month", "day"), [
    ("令和", 0, 1, 1), ("平成", 31, 5, 1), ("昭和", 64, 1, 8), ("令和", 1, 4, 30), ("天平", 1, 1, 1), ("明治", 1, 1, 1),
])
def test_from_wareki_refuses_a_day_outside_the_era(era, year, month, day):
    with pytest.raises(ValueError):
        from_wareki(era, year, month, day)


@pytest.mark.parametrize(
    "day, expected",
    [
        (date(2027, 3, 31), 2026),
        (date(2027, 4, 1), 2027),
        (date(2026, 4, 1), 2026),
        (date(2027, 1, 1), 2026),
    ],
)
def test_fiscal_year(day, expected):
    assert fiscal_year(day) == expected


def test_fiscal_year_of_aware_datetime_uses_jst():
    # 2027-03-31 15:30 UTC is 2027-04-01 00:30 JST.
    assert fiscal_year(datetime(2027, 3, 31, 15, 30, tzinfo=UTC)) == 2027


def test_reiwa_year():
    assert reiwa_year(2026) == 8
    assert reiwa_year(2019) == 1
    with pytest.raises(ValueError):
        reiwa_year(2018)


# ---------------------------------------------------------------- --now parsing


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2027-01-06T17:00:00+09:00", datetime(2027, 1, 6, 8, 0, tzinfo=UTC)),
        ("2027-01-06T08:00:00Z", datetime(2027, 1, 6, 8, 0, tzinfo=UTC)),
        (" 2027-01-06T08:00:00+00:00 ", datetime(2027, 1, 6, 8, 0, tzinfo=UTC)),
    ],
)
def test_parse_aware_iso8601(text, expected):
    value = parse_aware_iso8601(text)
    assert value == expected
    assert value.tzinfo == UTC
    assert value.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2027-01-06T17:00:00", "yesterday", "", "2027-01-06"])
def test_parse_aware_iso8601_refuses(text):
    with pytest.raises(ValueError) as info:
        parse_aware_iso8601(text)
    message = str(info.value)
    assert "タイムゾーン付きの ISO 8601 日時を指定してください" in message
    assert "2027-01-06T17:00:00+09:00" in message
    assert "time zone" in message


@pytest.mark.parametrize("era, year, western", [("昭和", 64, 1989), ("平成", 1, 1989), ("平成", 31, 2019),
                                                ("令和", 1, 2019), ("大正", 15, 1926), ("明治", 45, 1912)])
def test_a_wareki_year_is_the_western_year_it_has_days_in(era, year, western):
    assert year_of_wareki(era, year) == western


@pytest.mark.parametrize("era, year", [("平成", 32), ("昭和", 65), ("令和", 0), ("大正", 16), ("寛永", 1)])
def test_a_wareki_year_its_era_never_had_is_refused(era, year):
    with pytest.raises(ValueError):
        year_of_wareki(era, year)
