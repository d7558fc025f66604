"""Routes: a case as staff see it, and firing one of its events."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from engine import states
from engine.cases import kernel, reading
from engine.cases.events import firing
from engine.errors import EventNotAllowed, GuardRefused, UnknownEvent
from schemas.cases import CaseOut
from schemas.common import MAX_ID
from schemas.events import EVENT_SCHEMAS, EventEnvelope, request_body_doc
from web import db
from web.api.core import PARSER, ApiBlueprint, caller, problems, requires

blp = ApiBlueprint("Cases", __name__, description="ケース（職員の見え方）とイベント（状態遷移）")


@blp.route(f"/cases/<int(max={MAX_ID}):case_id>")
class CaseById(MethodView):
    @requires("cases:read")
    @blp.response(200, CaseOut, description="ケース（見てよい範囲）")
    @problems(404, 500, 503)
    def get(self, case_id):
        """ケースを職員の見え方で読む（トークンの職員の権限の範囲。version と allowed_events 付き）"""
        who = caller()
        # A 支援会議's records never leave through the API, not even to its members: that the meeting was held
        # stays. `allowed_events` says what this caller can do now: nothing through a token that cannot write.
        return reading.read_case(db.session(), who.user, case_id, support_meeting_records=False,
                                 may_act="cases:write" in who.scopes).view  # a content read is audited


@blp.route(f"/cases/<int(max={MAX_ID}):case_id>/events")
class CaseEvents(MethodView):
    @requires("cases:write", body="required")
    @blp.doc(requestBody=request_body_doc())
    @blp.response(200, CaseOut, description="イベントを起こした後のケース")
    @problems(400, 404, 409, 413, 415, 422, 500, 503)
    def post(self, case_id):
        """ケースのイベントを1つ起こす（`{"event": "...", "version": N, ...項目}`）

        `version` が古ければ 409（current_version 付き）、今の状態でできない操作は 409（allowed_events 付き）、
        必要な項目がなければ 422、トークンの職員に許されない操作は 403、範囲外のケースは 404。
        各イベントの項目は requestBody のスキーマ（SendHandoffEvent など）にあります。
        """
        who = caller()
        s = db.session()
        # The case first: a case outside the caller's scope is 404 whatever the body holds.
        kernel.load_case(s, who.user, case_id)
        envelope = PARSER.parse(EventEnvelope, location="json")
        event = envelope["event"]
        fields = {}
        if event in EVENT_SCHEMAS:
            loaded = PARSER.parse(EVENT_SCHEMAS[event](partial=True), location="json")
            fields = {k: v for k, v in loaded.items() if k not in ("event", "version")}
        try:
            case = firing.fire_event(s, who.user, case_id, event, version=envelope["version"], fields=fields,
                                       remote_addr=request.remote_addr, client=who.client)
        except (EventNotAllowed, UnknownEvent, GuardRefused) as exc:
            # Say what this caller may do now, not every event the state allows.
            s.rollback()
            allowed = firing.allowed_events(s, who.user, kernel.load_case(s, who.user, case_id))
            if isinstance(exc, EventNotAllowed):
                exc.narrow(allowed, [states.CASE_EVENT_LABELS[e] for e in allowed])
            else:
                exc.extra["allowed_events"] = allowed
            raise
        s.expire(case, ["history", "handoffs"])
        # A token that may fire events but not read cases gets the receipt only (status and version).
        return reading.event_answer(s, who.user, case, support_meeting_records=False,
                                    may_read="cases:read" in who.scopes)
