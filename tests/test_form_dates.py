"""Dates and times as typed on the pages (web.form_dates): 和暦 or 西暦, and the time of day of 開催日時."""
from __future__ import annotations

from datetime import datetime

import pytest
from marshmallow import Schema

from engine import calendar
from web.form_dates import JaDateTime, datetime_input, parse_datetime


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=calendar.JST)


@pytest.mark.parametrize(("typed", "moment"), [
    ("令和8年12月7日 14:30", jst(2026, 12, 7, 14, 30)),
    ("令和８年１２月７日　１４：３０", jst(2026, 12, 7, 14, 30)),
    ("令和8年12月7日14時30分", jst(2026, 12, 7, 14, 30)),
    ("R8.12.7 9:05", jst(2026, 12, 7, 9, 5)),
    ("r8.12.7 14時", jst(2026, 12, 7, 14, 0)),
    ("令和8年12月7日 午後2時半", jst(2026, 12, 7, 14, 30)),
    ("令和8年12月7日 午前0時15分", jst(2026, 12, 7, 0, 15)),
    ("令和8年12月7日 午前12時", jst(2026, 12, 7, 0, 0)),
    ("令和8年12月7日 午後12時", jst(2026, 12, 7, 12, 0)),
    ("2026/12/07 12:42 PM", jst(2026, 12, 7, 12, 42)),
    ("2026-12-07T10:00", jst(2026, 12, 7, 10, 0)),
    ("2026-12-07 10:00:30", jst(2026, 12, 7, 10, 0, 30)),
    ("令和元年5月1日 10:00", jst(2019, 5, 1, 10, 0)),
])
def test_a_date_and_time_is_read_in_jst(typed, moment):
    assert parse_datetime(typed) == moment


def test_what_the_page_writes_in_the_input_reads_back():
    moment = jst(2026, 12, 7, 12, 42)
    assert datetime_input(moment) == "令和8年12月7日 12:42"
    assert parse_datetime(datetime_input(moment)) == moment


class _Form(Schema):
    held_at = JaDateTime(load_default=None)


@pytest.mark.parametrize(("typed", "message"), [
    ("令和8年12月7日", "時刻も入力してください（例: 令和8年12月7日 14:30）。"),
    ("令和8年2月30日 10:00", "2月30日という日付はありません。"),
    ("令和8年12月7日 25:00", "25時0分という時刻はありません。"),
    ("令和8年12月7日 10:75", "10時75分という時刻はありません。"),
    ("令和8年12月7日 午後13時", "午後13時という時刻はありません。"),
    ("0001-01-01 00:00", "日時は1900年から2999年までで入力してください。"),
    ("きのうの午後", "日時は 令和8年12月7日 14:30 または 2026-12-07 14:30 の形で入力してください。"),
])
def test_what_is_not_a_moment_is_refused_with_a_reason(typed, message):
    errors = _Form().validate({"held_at": typed})
    assert errors == {"held_at": [message]}


def test_an_empty_input_is_no_time():
    assert _Form().load({"held_at": ""}) == {"held_at": None}
