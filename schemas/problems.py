"""The error answer of the API: application/problem+json (RFC 9457)."""
from __future__ import annotations

from marshmallow import INCLUDE, fields

from schemas.fields import Output


class ExistingReferral(Output):
    id = fields.Integer(required=True)
    case_number = fields.String(required=True)
    location = fields.String(required=True, metadata={"format": "uri"})


class Problem(Output):
    """Why a request was refused. `type` is stable per kind of error; `errors` names fields.

    A problem may carry more members than those listed (RFC 9457 extensions).
    """

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, metadata={
        "format": "uri-reference", "description": "エラーの種類（/api/v1/problems/<name>、種類ごとに不変）"})
    title = fields.String(required=True, metadata={"description": "エラーの種類の見出し"})
    status = fields.Integer(required=True, metadata={"description": "HTTP ステータスコード"})
    detail = fields.String(required=True, metadata={"description": "この応答についての説明"})
    code = fields.String(metadata={"description": "エラーコード（type の末尾と同じ意味の短い名前）"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "入力の誤り: 項目名（入れ子は person.name のようにドット区切り）→ 理由の一覧"})
    allowed_events = fields.List(fields.String(), metadata={"description": "今できる操作"})
    current_version = fields.Integer(allow_none=True, metadata={"description": "ケースの現在の version"})
    given_version = fields.Integer(allow_none=True)
    existing_referral = fields.Nested(ExistingReferral, metadata={"description": "既にある紹介"})
    event = fields.String(metadata={"description": "断られた操作"})
    state = fields.String(metadata={"description": "断られたときの状態"})
    guard = fields.String(metadata={"description": "満たされなかった条件の名前"})
    required_scope = fields.String(metadata={"description": "必要なスコープ"})
