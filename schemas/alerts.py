"""Alerts (アラート) as the API lists them, and the bodies of acknowledge and resolve."""
from __future__ import annotations

from marshmallow import fields, validate

from engine.models import ALERT_KINDS, ALERT_STATUSES
from schemas.common import PageQuery, timestamp
from schemas.fields import Output, Schema, Text, one_of


class AlertOut(Output):
    """Something a person must look at: a stalled handoff, an unrouted case, an overdue evaluation …"""

    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ALERT_KINDS))
    kind_label = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(ALERT_STATUSES))
    case_id = fields.Integer(required=True)
    handoff_id = fields.Integer(required=True, allow_none=True)
    department = fields.String(required=True, allow_none=True, metadata={
        "description": "部署コード: 部署あてのアラートはその部署、FMあて（recipient が fm）のアラートは関係する部署"
                       "（つなぐシートの送付先、ケースの担当部署など）"})
    recipient = fields.String(required=True, validate=validate.OneOf(("department", "fm")), metadata={
        "description": "対応する人: department（department の部署）または fm（FM ダッシュボード）"})
    message = fields.String(required=True)
    raised_at = timestamp()
    due_at = timestamp(nullable=True)
    acknowledged_at = timestamp(nullable=True)
    resolved_at = timestamp(nullable=True)
    note = fields.String(required=True, allow_none=True, metadata={
        "description": "最後に書かれたメモ（解決時のメモ、なければ確認時のメモ）。書いた本人とケースの記録を読める"
                       "職員にだけ全文、ほかの人には記録があることだけが示されます"})
    acknowledgement_note = fields.String(required=True, allow_none=True, metadata={
        "description": "確認（acknowledge）のときに書かれたメモ（見え方は note と同じ）"})
    resolution_note = fields.String(required=True, allow_none=True, metadata={
        "description": "解決（resolve）のときに書かれたメモ。自動で解決されたときはその理由（見え方は note と同じ）"})


class AlertPage(Output):
    items = fields.List(fields.Nested(AlertOut), required=True)
    next = fields.String(required=True, allow_none=True,
                         metadata={"format": "uri", "description": "次のページの URL（最後は null）"})


class AlertQuery(PageQuery):
    """Filters of GET /alerts."""

    status = Text(validate=one_of(ALERT_STATUSES), metadata={"description": "open | acknowledged | resolved"})
    kind = Text(validate=one_of(ALERT_KINDS), metadata={"description": "アラートの種類"})


class AcknowledgeIn(Schema):
    """Acknowledge (確認済み): an optional note."""

    note = Text(allow_none=True, max_length=2000, metadata={"description": "メモ"})


class ResolveIn(Schema):
    """Resolve (解決): a note saying how is required."""

    note = Text(required=True, blank=False, max_length=2000, metadata={"description": "どう解決したか（必須）"})
