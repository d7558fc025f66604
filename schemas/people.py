"""A person as staff see them (engine.people.reading), and the households a case or a person belongs to."""
from __future__ import annotations

from marshmallow import fields, validate

from engine.models import CASE_STATES
from schemas.common import DepartmentRef, day, timestamp
from schemas.fields import Output

_S = fields.String
_N = fields.Nested

ACCESS = ("content", "metadata", "none")


class HouseholdMemberOut(Output):
    """A member of a household (世帯員), past members with their period."""

    id = fields.Integer(required=True)
    relationship = _S(required=True, metadata={
        "description": "続柄。本人以外が届け出た続柄は「母（廿日 一郎からみて）」のように誰からみてかを添える"})
    name = _S(required=True, allow_none=True)
    birth_year = fields.Integer(required=True, allow_none=True, metadata={"description": "生まれ年（西暦）"})
    note = _S(required=True, allow_none=True)
    since = day("世帯に加わった日（不明なら null）")
    until = day("転出・死亡などで世帯を離れた日（今も世帯員なら null）")
    person_id = fields.Integer(required=True, allow_none=True, metadata={
        "description": "記録のある人なら、その人の記録のID（GET /people/{id}）。届け出られた名前だけなら null"})
    is_self = fields.Boolean(required=True, metadata={"description": "ケース（または GET /people）の本人か"})


class HouseholdCaseOut(Output):
    """Another case of the household: what the caller may see of it (`visible`), else only that it exists
    and which department owns it."""

    whose = _S(required=True, metadata={"description": "誰のケースか（続柄と氏名）"})
    owner = _S(required=True, allow_none=True, metadata={"description": "担当部署の名称（未定なら null）"})
    owner_code = _S(required=True, allow_none=True, metadata={"description": "担当部署のコード（未定なら null）"})
    visible = fields.Boolean(required=True, metadata={
        "description": "呼び出し元がこのケースを見てよいか。false なら id・case_number・state は null"})
    id = fields.Integer(required=True, allow_none=True)
    case_number = _S(required=True, allow_none=True)
    state = _S(required=True, allow_none=True, validate=validate.OneOf(CASE_STATES))
    state_label = _S(required=True, allow_none=True)


class HouseholdViewOut(Output):
    """A household (世帯) the person lives in now, its members and the cases of its members."""

    id = fields.Integer(required=True)
    members = fields.List(_N(HouseholdMemberOut), required=True)
    cases = fields.List(_N(HouseholdCaseOut), required=True, metadata={
        "description": "世帯員のケース（見てよいものは番号と状態、ほかは担当部署だけ）"})


class PersonCaseOut(Output):
    """One of the person's cases: number, state and dates if the caller may see the case, else only that it
    exists and which department owns it (`access` none)."""

    id = fields.Integer(required=True, allow_none=True)
    case_number = _S(required=True, allow_none=True)
    owning_department = _N(DepartmentRef, required=True, allow_none=True)
    access = _S(required=True, validate=validate.OneOf(ACCESS), metadata={
        "description": "content: 内容まで見える / metadata: 送付の記録だけ / none: あることと担当部署だけ"})
    status = _S(required=True, allow_none=True, validate=validate.OneOf(CASE_STATES))
    status_label = _S(required=True, allow_none=True)
    opened_at = timestamp(nullable=True)
    closed_at = timestamp(nullable=True)


class MatchCandidateOut(Output):
    """名寄せの候補: another record that may be the same person (same birth date, same name or kana), left for
    staff to confirm or reject; never merged by itself."""

    id = fields.Integer(required=True, metadata={"description": "候補のID"})
    person_id = fields.Integer(required=True, metadata={"description": "同じ人かもしれない記録のID"})
    reason = _S(required=True, validate=validate.OneOf(("name", "kana", "name_kana")), metadata={
        "description": "name: 氏名が同じ / kana: ふりがなが同じ / name_kana: 両方（いずれも生年月日が同じ）"})
    name = _S(required=True)
    name_kana = _S(required=True, allow_none=True)
    birth_date = day()
    found_at = timestamp()


class PersonRecordOut(Output):
    """A person as the token's staff user may see them (one record per person across windows and years)."""

    id = fields.Integer(required=True, metadata={"description": "今の記録のID"})
    requested_id = fields.Integer(required=True, metadata={"description": "問い合わせたID"})
    merged_into = fields.Integer(required=True, allow_none=True, metadata={
        "description": "問い合わせたIDの記録が統合（名寄せ）されていれば、統合先（この記録）のID。されていなければ null"})
    access = _S(required=True, validate=validate.OneOf(("content", "metadata")), metadata={
        "description": "content: 本人のケースの内容を読める（詳細・世帯・名寄せの候補まで） / "
                       "metadata: FM・管理者（氏名・ふりがな・生年月日・圏域とケースがあることだけ）"})
    name = _S(required=True)
    name_kana = _S(required=True, allow_none=True)
    birth_date = day()
    area = _S(required=True, allow_none=True)
    cases = fields.List(_N(PersonCaseOut), required=True, metadata={"description": "本人のケース（古い順）"})
    # With content sight only (access == "content"):
    sex = _S(allow_none=True)
    resident_id = _S(allow_none=True, metadata={"description": "宛名番号"})
    households = fields.List(_N(HouseholdViewOut), metadata={"description": "今属している世帯"})
    candidates = fields.List(_N(MatchCandidateOut), metadata={"description": "未判断の名寄せの候補"})
