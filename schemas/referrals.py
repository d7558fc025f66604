"""Referrals (紹介) from other systems: the body of POST /referrals and the referrer's view."""
from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from engine import vocab
from engine.cases.checks import EARLIEST_BIRTH_DATE
from engine.fields import text_pattern
from engine.models import CASE_STATES
from schemas.common import DepartmentRef, PageQuery, parse_since, timestamp, today_jst
from schemas.fields import (
    Boolean,
    Date,
    Integer,
    List,
    Nested,
    Output,
    Schema,
    Text,
    known_code,
    listed_codes,
    not_future,
    one_of,
)


def _birth_year(value: int) -> None:
    if not 1850 <= value <= today_jst().year:
        raise ValidationError(f"1850年から{today_jst().year}年までの西暦で指定してください。")


# The contract's example (API.md), shown in the OpenAPI document.
EXAMPLE = {
    "external_ref": "HOUKATSU-OONO-2026-0042",
    "referrer": {"organization": "大野地域包括支援センター", "contact_name": "山田 花子", "contact_phone": "0829-00-0000"},
    "person": {"name": "廿日 太郎", "name_kana": "ハツカ タロウ", "birth_date": "1946-05-01", "area": "大野",
               "resident_id": "0001234567", "phone": None},
    "household": [{"relationship": "長男", "birth_year": 1974, "note": "長期のひきこもり"}],
    "categories": ["elder_care", "hikikomori"],
    "summary": "80代の母と50代の長男の二人世帯。母の介護サービス導入時に長男の長期ひきこもりを把握。",
    "urgency": "normal",
    "consent": {"given_by": "本人", "method": "written", "obtained_on": "2026-11-30",
                "agencies": ["houkatsu_oono", "hikikomori_station"]},
}


def _listed(list_name: str) -> dict:
    codes = listed_codes(list_name)
    return {} if codes is None else {"enum": codes}


class ReferrerIn(Schema):
    """Who refers: the organisation and a contact there."""

    organization = Text(one_line=True, required=True, blank=False, max_length=200,
                        metadata={"description": "紹介元の機関名（必須）"})
    contact_name = Text(person_name=True, allow_none=True, max_length=100, metadata={"description": "担当者名"})
    contact_phone = Text(one_line=True, allow_none=True, max_length=32, metadata={"description": "担当者の電話番号"})


class PersonIn(Schema):
    """The person the referral is about (本人)."""

    name = Text(person_name=True, required=True, blank=False, max_length=100, metadata={"description": "氏名（必須）"})
    name_kana = Text(person_name=True, allow_none=True, max_length=100, metadata={"description": "ふりがな"})
    sex = Text(allow_none=True, validate=known_code("sexes", "性別の値"),
               metadata={"description": "性別コード（categories.yaml の sexes）",
                         "enum": listed_codes("sexes", nullable=True)})
    birth_date = Date(allow_none=True, validate=not_future(today_jst, EARLIEST_BIRTH_DATE),
                      metadata={"description": "生年月日（YYYY-MM-DD、1900-01-01 から今日まで）"})
    area = Text(allow_none=True, validate=known_code("areas", "圏域"),
                metadata={"description": "圏域（categories.yaml の areas。例: 廿日市, 佐伯, 吉和, 大野, 宮島）",
                          "enum": listed_codes("areas", nullable=True)})
    resident_id = Text(one_line=True, allow_none=True, max_length=32, metadata={"description": "宛名番号"})
    phone = Text(one_line=True, allow_none=True, max_length=32, metadata={"description": "電話番号"})
    address = Text(allow_none=True, max_length=300, metadata={"description": "住所"})


class HouseholdMemberIn(Schema):
    """A member of the person's household (世帯員)."""

    relationship = Text(one_line=True, allow_none=True, max_length=50, metadata={"description": "続柄（例: 長男）"})
    name = Text(person_name=True, allow_none=True, max_length=100, metadata={"description": "氏名"})
    birth_year = Integer(strict=True, allow_none=True, validate=_birth_year, metadata={
        "description": "生まれ年（西暦、1850年から今年まで）", "minimum": 1850})
    note = Text(allow_none=True, max_length=2000, metadata={"description": "特記事項"})
    resident_id = Text(one_line=True, allow_none=True, max_length=32, metadata={
        "description": "宛名番号。あれば、その番号の人の記録（なければ新しい記録）として世帯に加わる（氏名が必要）"})

    # What _named_with_number refuses, as the document says it (added to the schema's component).
    DOCUMENT_RULES = {
        "if": {"properties": {"resident_id": {"type": "string", "pattern": text_pattern(one_line=True, blank=False)}},
               "required": ["resident_id"]},
        "then": {"properties": {"name": {"type": "string", "pattern": text_pattern(person_name=True, blank=False)}},
                 "required": ["name"]},
    }

    @validates_schema
    def _named_with_number(self, data, **kwargs):
        if (data.get("resident_id") or "").strip() and not (data.get("name") or "").strip():
            raise ValidationError("宛名番号のある世帯員は、氏名も指定してください。", field_name="name")


class ConsentIn(Schema):
    """The person's consent to share their data with the named agencies, as the referrer obtained it."""

    given_by = Text(person_name=True, required=True, blank=False, max_length=100,
                    metadata={"description": "同意した人（本人・代理人）（必須）"})
    method = Text(required=True, validate=one_of(("written", "oral")), metadata={"description": "written（書面）/ oral（口頭）"})
    obtained_on = Date(allow_none=True, validate=not_future(today_jst), metadata={"description": "同意日（YYYY-MM-DD）"})
    agencies = List(Text(one_line=True, max_length=64, metadata=_listed("departments")), required=True,
                    validate=validate.Length(min=1, error="情報を共有してよい機関を1つ以上指定してください。"),
                    metadata={"description": "情報を共有してよい機関のコード（1つ以上、それぞれ1回。departments.yaml の code）",
                              "uniqueItems": True})


class ReferralIn(Schema):
    """A referral: opens a case, routes it and, where a rule matches, sends the つなぐシート."""

    external_ref = Text(one_line=True, required=True, blank=False, max_length=255,
                        metadata={"description": "紹介元システムでの番号（必須。同じ紹介元で一意）"})
    referrer = Nested(ReferrerIn, required=True)
    person = Nested(PersonIn, required=True)
    household = List(Nested(HouseholdMemberIn), allow_none=True,
                     validate=validate.Length(max=30, error="世帯員は30人までです。"))
    categories = List(Text(max_length=32, metadata={"enum": listed_codes("issue_categories")}),
                      required=True, metadata={
                          "description": "課題の分類コード（1つ以上、先頭が主な分類。categories.yaml の issue_categories）",
                          "minItems": 1, "maxItems": len(vocab.codes("issue_categories"))})
    summary = Text(required=True, blank=False, max_length=20000, metadata={"description": "相談内容の要約（必須）"})
    urgency = Text(load_default="normal", validate=one_of(("normal", "urgent")),
                   metadata={"description": "緊急度"})
    consent = Nested(ConsentIn, allow_none=True, metadata={
        "description": "本人の同意（共有してよい機関を名指しする）。record_consent と同じく記録され、名指しされた機関は"
                       "同意を根拠に情報を受け取れる"})
    consent_to_share = Boolean(load_default=False, metadata={
        "description": "非推奨: 機関を名指ししないため、これだけでは市の外の機関に何も提供されない（consent を使う）",
        "deprecated": True})

    @validates("categories")
    def _categories(self, value: list[str], **kwargs) -> None:
        if not value:
            raise ValidationError("課題の分類を1つ以上指定してください。")
        if len(value) > len(vocab.codes("issue_categories")):
            raise ValidationError("課題の分類が多すぎます。")
        unknown = [c for c in value if c not in vocab.codes("issue_categories")]
        if unknown:
            raise ValidationError([f"「{c}」という分類はありません。" for c in unknown])


class IdempotencyHeaders(Schema):
    """The Idempotency-Key header that makes a retried POST safe."""

    idempotency_key = Text(
        required=True, data_key="Idempotency-Key",
        validate=validate.Regexp(r"^[\x20-\x7e]{1,255}\Z",
                                 error="Idempotency-Key は1〜255文字の印字可能な ASCII 文字で指定してください。"),
        error_messages={"required": "Idempotency-Key ヘッダーが必要です。"},
        metadata={"description": "再送を安全にするためのキー（1〜255文字の印字可能な ASCII 文字）。"
                                 "同じキーで同じ本文を再送すると最初の応答がそのまま返ります。",
                  "pattern": "^[\\x20-\\x7e]{1,255}$"},
    )


class RoutingOut(Output):
    reason = fields.String(allow_none=True, metadata={"description": "振り分けの理由（職員にも表示される文）"})
    rule = fields.String(allow_none=True, metadata={"description": "一致したルール名（一致なしは null）"})
    proposed_department = fields.Nested(DepartmentRef, allow_none=True,
                                        metadata={"description": "ルールが提案した担当部署（つなぐシートの送付先）"})


class ReferralCreated(Output):
    """The answer to a new referral (and, unchanged, to its retries)."""

    id = fields.Integer(required=True, metadata={"description": "ケースID（/referrals/{id} と /cases/{id} で同じ）"})
    external_ref = fields.String(required=True)
    case_number = fields.String(required=True, metadata={"description": "ケース番号（例: R8-000123）"})
    status = fields.String(required=True, validate=validate.OneOf(CASE_STATES), metadata={"description": "状態コード"})
    status_label = fields.String(required=True, metadata={"description": "状態（日本語）"})
    owning_department = fields.Nested(DepartmentRef, required=True, allow_none=True,
                                      metadata={"description": "担当部署（受理されるまでは null）"})
    routing = fields.Nested(RoutingOut, required=True)
    person_id = fields.Integer(required=True, metadata={"description": "本人の記録のID（GET /people/{id}）"})
    person_match = fields.String(required=True, validate=validate.OneOf(("matched", "new", "candidate")), metadata={
        "description": "matched: 宛名番号が同じ既知の人 / new: 新しい記録 / candidate: 同じ人かもしれない記録がある"
                       "（職員が確認する。自動では統合しない）"})


class Referral(Output):
    """The referrer's view of its referral: status and owner, never case notes."""

    id = fields.Integer(required=True)
    external_ref = fields.String(required=True, allow_none=True)
    case_number = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CASE_STATES))
    status_label = fields.String(required=True)
    owning_department = fields.Nested(DepartmentRef, required=True, allow_none=True)
    created_at = timestamp("受付日時")
    accepted_at = timestamp("担当部署が受理した日時", nullable=True)
    closed_at = timestamp("終結日時", nullable=True)
    outcome = fields.String(required=True, allow_none=True, metadata={"description": "終結理由コード（終結前は null）"})


class ReferralPage(Output):
    items = fields.List(fields.Nested(Referral), required=True)
    next = fields.String(required=True, allow_none=True,
                         metadata={"format": "uri", "description": "次のページの URL（最後は null）"})


class ReferralQuery(PageQuery):
    """Filters of GET /referrals."""

    status = Text(validate=one_of(CASE_STATES), metadata={"description": "状態コードで絞り込む"})
    updated_since = Text(max_length=64, metadata={
        "format": "date-time", "description": "この日時以降に更新されたものだけ（タイムゾーン付き ISO 8601）"})

    @validates("updated_since")
    def _since(self, value: str, **kwargs) -> None:
        parse_since(value)


BATCH_ROW_STATUSES = ("created", "replayed", "duplicate", "refused")


class ReferralBatchRow(Output):
    """What became of one row of a batch."""

    line = fields.Integer(required=True, metadata={"description": "ファイルの行番号（見出しが1行目）"})
    status = fields.String(required=True, validate=validate.OneOf(BATCH_ROW_STATUSES), metadata={
        "description": "created: 受け付けた / replayed: 取り込み済み（最初の応答） / duplicate: 同じ external_ref の"
                       "紹介が POST /referrals で既にある / refused: 受け付けなかった（errors に列ごとの理由）"})
    referral = fields.Nested(ReferralCreated, allow_none=True,
                             metadata={"description": "created と replayed のとき、POST /referrals の応答と同じ内容"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "duplicate と refused のとき、列（external_ref、person.name …）ごとの理由"})


class ReferralBatchAnswer(Output):
    """The answer to a batch: counts, and one entry per row in the file's order."""

    created = fields.Integer(required=True)
    replayed = fields.Integer(required=True)
    duplicate = fields.Integer(required=True)
    refused = fields.Integer(required=True)
    rows = fields.List(fields.Nested(ReferralBatchRow), required=True)
