"""Bodies of POST /cases/{id}/events: `{"event": ..., "version": N, ...fields}`, one schema per event.

The field meanings come from engine.services.EVENTS (the same text the forms show). Each event's schema
marks the fields the engine needs as required for the reader of the OpenAPI document; parsing loads
with `partial=True`, so that a missing field is reported by the engine in its order of refusals
(stale version and a state that does not allow the event come first).
"""
from __future__ import annotations

from typing import Callable

from marshmallow import INCLUDE, RAISE

from engine import services, states, vocab
from schemas.common import MAX_ID
from schemas.fields import (
    AwareDateTime,
    Boolean,
    Date,
    Integer,
    List,
    Nested,
    Schema,
    Text,
    int_range,
    one_of,
)

EVENT_NAMES = list(states.CASE_EVENT_LABELS)


class EventEnvelope(Schema):
    """What every event body has: the event's name and the version the caller last read."""

    class Meta:
        unknown = INCLUDE

    event = Text(required=True, max_length=64, metadata={"description": "イベント名"})
    version = Integer(strict=True, required=True, validate=int_range(0, MAX_ID),
                      metadata={"description": "読み込んだときのケースの version（古ければ 409）"})


class MeetingMemberIn(Schema):
    user = Text(required=True, max_length=64, metadata={"description": "構成員のログインID"})
    acknowledged = Boolean(load_default=False, metadata={"description": "守秘義務の確認が済んでいるか"})


class PlanRoleIn(Schema):
    department = Text(required=True, max_length=64, metadata={"description": "機関コード"})
    role = Text(required=True, max_length=2000, metadata={"description": "役割"})


def _code() -> Text:
    return Text(max_length=64)


def _note() -> Text:
    return Text(allow_none=True, max_length=20000)


# event → {field: (factory of the field, required by the engine)}
_FIELDS: dict[str, dict[str, tuple[Callable, bool]]] = {
    "send_handoff": {"to_department": (_code, True), "reason": (lambda: Text(max_length=20000), True),
                     # Required of whoever may read the case; a sender who may not sends the case's own.
                     "summary": (lambda: Text(max_length=20000), False),
                     "notify": (lambda: List(Text(max_length=64)), False),
                     "override_reason": (_note, False)},
    "accept_handoff": {},
    "decline_handoff": {"reason": (lambda: Text(max_length=20000), True)},
    "convene_support_meeting": {"members": (lambda: List(Nested(MeetingMemberIn)), True),
                                "held_at": (lambda: AwareDateTime(allow_none=True), False),
                                "minutes": (_note, False), "decisions": (_note, False)},
    "seek_consent": {"note": (_note, False)},
    "record_consent": {"given_by": (lambda: Text(max_length=100), True), "method": (lambda: Text(max_length=16), True),
                       "obtained_on": (lambda: Date(allow_none=True), False),
                       "agencies": (lambda: List(Text(max_length=64)), True), "note": (_note, False)},
    "refuse_consent": {"given_by": (lambda: Text(max_length=100), True),
                       "method": (lambda: Text(allow_none=True, max_length=16), False), "note": (_note, False)},
    "adopt_plan": {"goals": (lambda: Text(max_length=20000), True), "roles": (lambda: List(Nested(PlanRoleIn)), True),
                   "main_department": (_code, True), "next_evaluation_date": (lambda: Date(), True),
                   "decided_on": (lambda: Date(allow_none=True), False),
                   "business_categories": (lambda: List(Text(max_length=32)), False), "minutes": (_note, False)},
    "evaluate": {"goals_met": (lambda: Text(validate=one_of(tuple(vocab.codes("goals_met")))), True),
                 "changes": (_note, False),
                 "decision": (lambda: Text(validate=one_of(("continue", "replan", "suspend", "close"))), True),
                 "next_evaluation_date": (lambda: Date(allow_none=True), False),
                 "close_reason": (lambda: Text(allow_none=True, max_length=32), False),
                 "evaluated_on": (lambda: Date(allow_none=True), False)},
    "resume": {"note": (_note, False)},
    "withdraw_consent": {"given_by": (lambda: Text(max_length=100), True),
                         "method": (lambda: Text(allow_none=True, max_length=16), False), "note": (_note, False)},
    "close": {"close_reason": (lambda: Text(max_length=32), True), "note": (_note, False)},
    "reopen": {"reason": (lambda: Text(max_length=20000), True)},
}


def component_name(event: str) -> str:
    """The OpenAPI component name of an event's body, e.g. SendHandoffEvent."""
    return "".join(part.capitalize() for part in event.split("_")) + "Event"


def _make(event: str) -> type[Schema]:
    descriptions = services.EVENTS[event][2]
    attrs: dict = {
        "event": Text(required=True, validate=one_of((event,)),
                      metadata={"description": states.CASE_EVENT_LABELS[event]}),
        "version": Integer(strict=True, required=True, validate=int_range(0, MAX_ID),
                           metadata={"description": "読み込んだときのケースの version"}),
    }
    for name, (factory, required) in _FIELDS[event].items():
        f = factory()
        f.required = required
        f.metadata = {**f.metadata, "description": descriptions.get(name, "通知先の部署コードの一覧")}
        attrs[name] = f
    # A field the event does not take is refused (422), not dropped: the caller meant it to be recorded.
    attrs["Meta"] = type("Meta", (), {"unknown": RAISE})
    attrs["__doc__"] = f"{event}: {states.CASE_EVENT_LABELS[event]}"
    return type(component_name(event), (Schema,), attrs)


EVENT_SCHEMAS: dict[str, type[Schema]] = {event: _make(event) for event in EVENT_NAMES}

assert set(_FIELDS) == set(services.EVENTS) == set(EVENT_NAMES), "every event needs its body schema"


def request_body_doc() -> dict:
    """The requestBody of POST /cases/{id}/events: one of the events' schemas, chosen by `event`."""
    refs = {e: f"#/components/schemas/{component_name(e)}" for e in EVENT_NAMES}
    return {
        "required": True,
        "description": "イベント名・バージョンと、そのイベントに必要な項目。",
        "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "event", "mapping": refs},
        }}},
    }
