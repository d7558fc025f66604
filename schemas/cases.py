"""The staff view of a case (engine.cases.views.case_view), as the API answers it."""
from __future__ import annotations

from marshmallow import fields, validate

from engine.models import CASE_STATES, HANDOFF_STATES
from schemas.common import DepartmentRef, day, timestamp
from schemas.fields import Output
from schemas.people import HouseholdViewOut

_S = fields.String
_N = fields.Nested


class HandoffOut(Output):
    """A つなぐシート: metadata for everyone who may see the case; reason and summary with content sight."""

    id = fields.Integer(required=True)
    primary = fields.Boolean(required=True, metadata={"description": "ケースを動かす送付か（false は参加依頼）"})
    state = _S(required=True, validate=validate.OneOf(HANDOFF_STATES))
    state_label = _S(required=True)
    from_department = _N(DepartmentRef, required=True, allow_none=True)
    to_department = _N(DepartmentRef, required=True, allow_none=True)
    urgency = _S(required=True)
    sent_at = timestamp()
    due_at = timestamp("受理期限", nullable=True)
    escalate_at = timestamp("FM へのエスカレーション時刻", nullable=True)
    accepted_at = timestamp(nullable=True)
    declined_at = timestamp(nullable=True)
    withdrawn_at = timestamp(nullable=True)
    # With content sight only:
    reason = _S(allow_none=True)
    summary = _S(allow_none=True)
    decline_reason = _S(allow_none=True)


class HistoryOut(Output):
    event = _S(required=True)
    from_state = _S(required=True, allow_none=True)
    to_state = _S(required=True)
    at = timestamp()
    actor = _S(required=True, allow_none=True, metadata={"description": "操作した職員（自動処理は null）"})
    detail = fields.Dict(keys=fields.String(), values=fields.String(), required=True, allow_none=True, metadata={
        "description": "ケースの記録を読める人にだけ: reason（再開・送付先変更の理由）、override_reason、close_reason"
                       "（終結理由コード）、decision（評価の結論コード）、note（メモ。支援会議・同意確認中に書かれた"
                       "ものは支援会議の構成員だけに全文）。ほかの人には null"})


class PersonOut(Output):
    name = _S(required=True)
    name_kana = _S(required=True, allow_none=True)
    sex = _S(required=True, allow_none=True)
    birth_date = day()
    area = _S(required=True, allow_none=True)
    resident_id = _S(required=True, allow_none=True)
    phone = _S(required=True, allow_none=True)
    address = _S(required=True, allow_none=True)


class HouseholdOut(Output):
    relationship = _S(required=True)
    name = _S(required=True, allow_none=True)
    birth_year = fields.Integer(required=True, allow_none=True)
    note = _S(required=True, allow_none=True)


class StaffRoutingOut(Output):
    rule_version = fields.Integer(required=True, allow_none=True)
    rule = _S(required=True, allow_none=True)
    reason = _S(required=True, allow_none=True)
    proposed_department = _N(DepartmentRef, required=True, allow_none=True)
    override_reason = _S(required=True, allow_none=True)


class ConsentOut(Output):
    id = fields.Integer(required=True)
    status = _S(required=True, validate=validate.OneOf(("given", "refused", "withdrawn")))
    given_by = _S(required=True)
    method = _S(required=True, allow_none=True)
    obtained_on = day(nullable=False)
    agencies = fields.List(_N(DepartmentRef, allow_none=True), required=True)
    note = _S(allow_none=True, metadata={"description": "同意を得たときの備考"})


class PlanRoleOut(Output):
    department = _N(DepartmentRef, required=True, allow_none=True)
    role = _S(required=True)


class EvaluationOut(Output):
    evaluated_on = day(nullable=False)
    goals_met = _S(required=True)
    changes = _S(required=True, allow_none=True)
    decision = _S(required=True)


class PlanOut(Output):
    id = fields.Integer(required=True)
    number = fields.Integer(required=True)
    status = _S(required=True, validate=validate.OneOf(("active", "ended")),
                metadata={"description": "active: 実施中 / ended: 終結・同意撤回で終了（最後の版）"})
    goals = _S(required=True)
    main_department = _N(DepartmentRef, required=True, allow_none=True)
    next_evaluation_date = day(nullable=False)
    decided_on = day(nullable=False)
    roles = fields.List(_N(PlanRoleOut), required=True)
    business_categories = fields.List(_S(), required=True)
    created_at = timestamp()
    evaluations = fields.List(_N(EvaluationOut), required=True)


class ContactNoteOut(Output):
    id = fields.Integer(required=True)
    contact_on = day(nullable=False)
    method = _S(required=True)
    method_label = _S(required=True)
    staff = _S(required=True)
    department = _N(DepartmentRef, required=True, allow_none=True)
    business_category = _S(required=True, allow_none=True)
    body = _S(required=True)


class ProvisionOut(Output):
    """提供記録: a person's data given to a body outside the city, what, when, by whom and on which basis."""

    given_at = timestamp()
    department = _S(required=True, metadata={"description": "提供先の機関名"})
    what = _S(required=True, metadata={"description": "提供したもの（つなぐシート、参加依頼、支援会議の記録 …）"})
    basis = _S(required=True, metadata={"description": "根拠（委託・本人の同意・支援会議の構成員・法令/緊急）"})
    note = _S(required=True, allow_none=True, metadata={"description": "法令・緊急の根拠に当たる事実"})
    given_by = _S(required=True, allow_none=True, metadata={"description": "提供した職員（自動振り分けは null）"})
    department_code = _S(required=True, metadata={"description": "提供先の機関コード"})
    what_code = _S(required=True, metadata={"description": "sheet / join / meeting / fact / notice / plan_role"})
    basis_kind = _S(required=True, metadata={"description": "commission / consent / support_meeting / statute"})
    basis_code = _S(required=True, allow_none=True,
                    metadata={"description": "法令・緊急の根拠のコード（categories.yaml の sharing_bases）。ほかは null"})


class SharedFactOut(Output):
    """A fact a 支援会議 member carried over into the consented track, for the agencies the consent covers."""

    id = fields.Integer(required=True)
    text = _S(required=True)
    carried_by = _S(required=True, allow_none=True)
    carried_at = timestamp()


class MeetingMemberOut(Output):
    name = _S(required=True)
    department = _N(DepartmentRef, required=True, allow_none=True)
    acknowledged_at = timestamp(nullable=True)
    secretariat = fields.Boolean(required=True)


class DiscussedCaseOut(Output):
    id = fields.Integer(required=True)
    case_number = _S(required=True)


class MeetingOut(Output):
    """A meeting that discussed the case: that it was held, on which case, and the other cases it took up (those
    the caller may know of). A 重層的支援会議's records for those who may read them; a 支援会議's records never
    (they are read on its page, by members who acknowledged the 守秘義務)."""

    id = fields.Integer(required=True)
    kind = _S(required=True, validate=validate.OneOf(("support_meeting", "layered_meeting")))
    held_at = timestamp()
    member_count = fields.Integer(required=True)
    readable = fields.Boolean(required=True)
    case_id = fields.Integer(required=True, metadata={
        "description": "会議を開いたケースの id（このケースと違えば、ほかのケースの会議で併せて検討された）"})
    case_number = _S(required=True, metadata={"description": "会議を開いたケースの番号"})
    discussed_cases = fields.List(_N(DiscussedCaseOut), required=True, metadata={
        "description": "会議を開いたケースのほかに併せて検討したケースのうち、呼び出し元が知りうるもの"})
    attendees = fields.List(_N(DepartmentRef), metadata={
        "description": "重層的支援会議に出席した機関（記録を読める呼び出し元だけ）"})
    plan_number = fields.Integer(allow_none=True, metadata={
        "description": "重層的支援会議で決定した支援プランの版（記録を読める呼び出し元だけ）"})
    minutes = _S(allow_none=True)
    decisions = _S(allow_none=True)
    members = fields.List(_N(MeetingMemberOut))


class ParticipationOut(Output):
    id = fields.Integer(required=True)
    host = _S(required=True, allow_none=True, metadata={"description": "協力事業者コード（categories.yaml の participation_hosts）"})
    host_name = _S(required=True)
    activity = _S(required=True)
    started_on = day(nullable=False)
    ended_on = day()


class CaseOut(Output):
    """A case as staff see it, opened as far as the access policy lets the token's user see it."""

    id = fields.Integer(required=True)
    external_ref = _S(required=True, allow_none=True)
    case_number = _S(required=True)
    status = _S(required=True, validate=validate.OneOf(CASE_STATES))
    status_label = _S(required=True)
    owning_department = _N(DepartmentRef, required=True, allow_none=True)
    created_at = timestamp()
    accepted_at = timestamp(nullable=True)
    closed_at = timestamp(nullable=True)
    outcome = _S(required=True, allow_none=True)
    version = fields.Integer(required=True, metadata={"description": "楽観的排他のバージョン（イベント送信時に渡す）"})
    allowed_events = fields.List(_S(), required=True, metadata={"description": "このトークンの利用者が今できる操作"})
    access = _S(required=True, validate=validate.OneOf(("content", "metadata", "none")),
                metadata={"description": "content: 内容まで見える / metadata: 送付の記録だけ / "
                                         "none: イベントの結果このケースが見えなくなった（受領の確認だけ）"})
    urgency = _S(required=True)
    multi_agency_candidate = fields.Boolean(required=True)
    handoffs = fields.List(_N(HandoffOut), required=True)
    history = fields.List(_N(HistoryOut), required=True)
    categories = fields.List(_S(), required=True, allow_none=True, metadata={
        "description": "課題の分類のコード。内容を閲覧できない呼び出し元（access が content でない）には null"})
    # With content sight only (access == "content"):
    person = _N(PersonOut)
    person_id = fields.Integer(metadata={"description": "本人の記録のID（GET /people/{id}）"})
    person_match = _S(allow_none=True, validate=validate.OneOf(("matched", "new", "candidate")), metadata={
        "description": "受付のときの名寄せ: matched（宛名番号が同じ既知の人）/ new（新しい記録）/ "
                       "candidate（同じ人かもしれない記録があり職員の確認待ち）。名寄せより前のケースは null"})
    households = fields.List(_N(HouseholdViewOut), metadata={
        "description": "本人の世帯（世帯員と、世帯員のほかのケース。見てよいものだけ番号と状態）"})
    household = fields.List(_N(HouseholdOut), metadata={
        "description": "本人以外の世帯員を並べたもの（互換のため。households が詳しい）"})
    primary_category = _S(allow_none=True)
    summary = _S()
    source = _S()
    routing = _N(StaffRoutingOut)
    close_note = _S(allow_none=True)
    support_decision_date = _S(allow_none=True, metadata={"format": "date"})
    business_categories = fields.List(_S())
    consents = fields.List(_N(ConsentOut))
    plan = _N(PlanOut, allow_none=True)
    participation = fields.List(_N(ParticipationOut), metadata={
        "description": "参加支援のマッチング（支援プランを読める人だけ）、新しい順"})
    contact_notes = fields.List(_N(ContactNoteOut))
    shared_facts = fields.List(_N(SharedFactOut))
    meetings = fields.List(_N(MeetingOut))
    provisions = fields.List(_N(ProvisionOut), metadata={
        "description": "市の外の機関への提供記録（古い順）。内容を閲覧できる呼び出し元のみ"})
    own_contact_notes = fields.List(_N(ContactNoteOut), metadata={
        "description": "同意の撤回・変更で参加を終えた部署が自ら書いた支援経過（access が metadata のとき）"})
