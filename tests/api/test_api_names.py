"""A person's name through the API holds no bidirectional control (U+202E and the like): it would show as another
name than the one stored and searched for. Refused like a control character, by field, and nothing written."""
from __future__ import annotations

import copy

import pytest

from engine.db import unit_of_work
from engine.fields import BIDI_CONTROL
from engine.models import AuditEvent, Case, Consent, IdempotencyKey
from tests.api.support import assert_problem, auth, count, post_referral, referral

# Every bidirectional control: marks, embeddings, overrides, isolates and the Arabic letter mark.
BIDI = ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
        "\u2069", "\u061c"]


def _with(path: str, value: str) -> dict:
    body = referral(household=[{"relationship": "長男", "name": "廿日 次郎", "birth_year": 1974}],
                    referrer={"organization": "大野地域包括支援センター", "contact_name": "山田 花子"})
    *parents, last = path.split(".")
    node = body
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[last] = value
    return body


NAMES = ["person.name", "person.name_kana", "household.0.name", "referrer.contact_name", "consent.given_by"]


@pytest.mark.parametrize("field", NAMES)
@pytest.mark.parametrize("control", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_a_name_with_a_bidirectional_control_is_422_naming_the_field(client, partner, sessions, field, control):
    resp = post_referral(client, partner, _with(field, f"廿日{control}太郎"))
    problem = assert_problem(resp, 422, "validation-error")
    assert problem["errors"] == {field: [BIDI_CONTROL]}
    assert problem["detail"] == f"{field}: {BIDI_CONTROL}"
    assert count(sessions, Case) == 0 and count(sessions, IdempotencyKey) == 0
    assert count(sessions, AuditEvent, AuditEvent.outcome == "refused") == 1


def test_the_message_is_japanese_and_says_what_is_refused():
    assert BIDI_CONTROL == "文字の向きを変える制御文字（U+202E など）は使えません。"


def test_other_text_may_hold_them_and_a_clean_name_is_taken(client, partner):
    """Right-to-left text in a summary or a note is text, not a name: only names are held to this."""
    body = copy.deepcopy(_with("summary", "相談内容 \u202bمرحبا\u202c の記録"))
    body["household"][0]["note"] = "\u2067עברית\u2069"
    assert post_referral(client, partner, body).status_code == 201


@pytest.fixture
def livelihood(make_token, actors):
    return make_token("cases:read,cases:write", user=actors.livelihood, name="livelihood-system")


@pytest.mark.parametrize("event", ["record_consent", "refuse_consent"])
def test_who_gave_or_refused_a_consent_is_a_name_too(client, livelihood, open_case, fire, actors, sessions, event):
    case_id = open_case(categories=["poverty"])
    fire(actors.livelihood, case_id, "accept_handoff")
    with unit_of_work(sessions) as s:
        version = s.get(Case, case_id).version
    body = {"event": event, "version": version, "given_by": "長男\u202e郎次", "method": "written",
            "agencies": ["livelihood"]}
    if event == "refuse_consent":
        del body["agencies"]
    resp = client.post(f"/api/v1/cases/{case_id}/events", json=body, headers=auth(livelihood))
    assert assert_problem(resp, 422, "validation-error")["errors"] == {"given_by": [BIDI_CONTROL]}
    assert count(sessions, Consent) == 0
    with unit_of_work(sessions) as s:
        assert s.get(Case, case_id).version == version
