"""Bodies of POST /cases/{id}/events: `{"event": ..., "version": N, ...fields}`, one schema per event.

Each event's schema is made from its declaration in the engine (engine.cases.events: the stage modules
declare their fields once, engine.fields), as the staff pages' forms are: the two cannot disagree about
what is valid. Fields the engine needs are marked required for the reader of the OpenAPI document; parsing
loads with `partial=True`, so that a missing field is reported by the engine in its order of refusals
(stale version and a state that does not allow the event come first).
"""
from __future__ import annotations

from marshmallow import INCLUDE, RAISE
from marshmallow import fields as ma_fields

from engine import states, vocab
from engine.cases.events.firing import EVENTS
from engine.fields import Field, text_pattern
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
    listed_codes,
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


def api_field(declared: Field, *, row_names: dict[str, type[Schema]]) -> ma_fields.Field:
    """The marshmallow field of the API for one declared field (engine.fields)."""
    kw: dict = {}
    if declared.takes_null:
        kw["allow_none"] = True
    if declared.choices:
        kw["validate"] = one_of(tuple(vocab.codes(declared.choices)))
    kind = declared.kind
    listed = listed_codes(declared.listed, nullable=declared.takes_null and kind == "code") \
        if declared.listed else None
    enum = {} if listed is None else {"enum": listed}
    if kind in ("text", "line", "code"):
        field = Text(max_length=declared.limit, one_line=declared.one_line, person_name=declared.person_name,
                     metadata=enum, **kw)
    elif kind == "codes":
        field = List(Text(max_length=declared.limit, one_line=True, metadata=enum), **kw)
        if declared.listed:
            field.metadata = {**field.metadata, "uniqueItems": True}
    elif kind == "date":
        field = Date(**kw)
    elif kind == "datetime":
        field = AwareDateTime(**kw)
    elif kind == "flag":
        field = Boolean(load_default=False)
    elif kind == "group":
        field = Nested(row_schema(declared, row_names), **kw)
    else:  # rows
        field = List(Nested(row_schema(declared, row_names)), **kw)
    field.required = declared.required
    if declared.required and kind in ("text", "line", "code") and not declared.choices and not enum:
        # Parsed as given (the engine refuses an empty one, in its order of refusals), described as needed.
        field.metadata = {**field.metadata, "minLength": 1, "pattern": text_pattern(
            one_line=declared.one_line, person_name=declared.person_name, blank=False)}
    elif declared.required and kind in ("codes", "rows"):
        field.metadata = {**field.metadata, "minItems": 1}
    if declared.description:
        field.metadata = {**field.metadata, "description": declared.description}
    return field


def row_schema(declared: Field, row_names: dict[str, type[Schema]]) -> type[Schema]:
    """The schema of one row of a `rows` field, named as the declaration names it (MeetingMemberIn …)."""
    if declared.row_name not in row_names:
        row_names[declared.row_name] = type(declared.row_name, (Schema,), {
            f.name: api_field(f, row_names=row_names) for f in declared.row})
    return row_names[declared.row_name]


def component_name(event: str) -> str:
    """The OpenAPI component name of an event's body, e.g. SendHandoffEvent."""
    return "".join(part.capitalize() for part in event.split("_")) + "Event"


_ROWS: dict[str, type[Schema]] = {}


def _make(event: str) -> type[Schema]:
    attrs: dict = {
        "event": Text(required=True, validate=one_of((event,)),
                      metadata={"description": states.CASE_EVENT_LABELS[event]}),
        "version": Integer(strict=True, required=True, validate=int_range(0, MAX_ID),
                           metadata={"description": "読み込んだときのケースの version"}),
    }
    for declared in EVENTS[event].fields:
        attrs[declared.name] = api_field(declared, row_names=_ROWS)
    # A field the event does not take is refused (422), not dropped: the caller meant it to be recorded.
    attrs["Meta"] = type("Meta", (), {"unknown": RAISE})
    attrs["__doc__"] = f"{event}: {states.CASE_EVENT_LABELS[event]}"
    return type(component_name(event), (Schema,), attrs)


EVENT_SCHEMAS: dict[str, type[Schema]] = {event: _make(event) for event in EVENT_NAMES}


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
