"""見守り通報: the narrow report of a 見守り協定 partner (POST /watch-reports), and the one thing it reads back."""
from __future__ import annotations

from datetime import datetime, timedelta

from marshmallow import ValidationError, fields

from engine import calendar
from schemas.common import timestamp
from schemas.fields import AwareDateTime, Nested, Output, Schema, Text, known_code, listed_codes
from schemas.referrals import ReferrerIn

EXAMPLE = {
    "external_ref": "MIMAMORI-DENKI-2026-0007",
    "reporter": {"organization": "廿日市電力サービス", "contact_name": "検針員 佐藤", "contact_phone": "0829-00-1111"},
    "who": "大野 ウメ（表札）",
    "where": "大野1丁目2-3",
    "area": "大野",
    "seen": "電気メーターがほとんど動いておらず、郵便受けに新聞が3日分たまっている。呼び鈴に応答なし。",
    "seen_at": "2026-12-06T09:30:00+09:00",
}


def _not_ahead(value: datetime) -> None:
    # A clock a few minutes fast is not a report from the future.
    if value > datetime.now(calendar.JST) + timedelta(minutes=10):
        raise ValidationError("見た日時に、先の日時は指定できません。")


class WatchReportIn(Schema):
    """Who and where, what was seen and when: what a partner knows. No issue category, no department."""

    external_ref = Text(one_line=True, required=True, blank=False, max_length=255,
                        metadata={"description": "通報元での番号（必須。同じ通報元で一意）"})
    reporter = Nested(ReferrerIn, required=True, metadata={"description": "通報した事業者と担当者"})
    who = Text(person_name=True, required=True, blank=False, max_length=100,
               metadata={"description": "誰のことか（氏名、分からなければ表札や様子。必須）"})
    where = Text(allow_none=True, max_length=300, metadata={"description": "どこか（住所・場所）"})
    area = Text(allow_none=True, validate=known_code("areas", "圏域"), metadata={"description": "圏域（categories.yaml の areas）",
                                                                 "enum": listed_codes("areas", nullable=True)})
    seen = Text(required=True, blank=False, max_length=4000, metadata={"description": "見たこと（必須）"})
    seen_at = AwareDateTime(required=True, validate=_not_ahead,
                            metadata={"description": "見た日時（タイムゾーン付き RFC 3339。必須）"})


class WatchReportReceived(Output):
    """That the report was received, and when: all a partner reads of it."""

    id = fields.Integer(required=True, metadata={"description": "通報のID（/watch-reports/{id}）"})
    external_ref = fields.String(required=True)
    received = fields.Boolean(required=True, metadata={"description": "受け付けたとき true"})
    received_at = timestamp("受け付けた日時")
