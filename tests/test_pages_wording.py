"""What a page says once something is done: one sentence in the past tense, as staff would say it."""
from __future__ import annotations

import re

import pytest

from engine import states
from engine.cases.events import firing
from tests.pages_support import app, case_in, case_state, case_version, text_of, web  # noqa: F401  (fixtures)
from web.views.common import name_with_san

PAST = re.compile(r"^[^。「」]+した。$")  # no quoted button label, no state name tacked on


@pytest.mark.parametrize("event", list(states.CASE_EVENT_LABELS))
def test_every_event_says_what_was_done_in_its_own_words(event):
    declared = firing.EVENTS[event]
    dests = {t["dest"] for t in states.CASE_TRANSITIONS if t["trigger"] == event}
    said = {declared.done} if isinstance(declared.done, str) else set(declared.done.values())
    if not isinstance(declared.done, str):
        assert set(declared.done) == dests  # one sentence for each state the event may lead to
    for sentence in said:
        assert PAST.match(sentence), sentence
        assert states.CASE_EVENT_LABELS[event] not in sentence or event == "accept_handoff"


def test_the_sentences_differ_by_event():
    plain = [e.done for e in firing.EVENTS.values() if isinstance(e.done, str)]
    assert len(plain) == len(set(plain))


@pytest.mark.parametrize("given, said", [
    ("宮島", "宮島さん"),
    ("宮島 FM（地域福祉課 係長）", "宮島 FMさん（地域福祉課 係長）"),
    ("障害福祉課 職員", "障害福祉課 職員"),
    ("システム管理者", "システム管理者"),
])
def test_a_colleague_is_named_with_san_a_post_is_not(given, said):
    assert name_with_san(given) == said


def _flash(client, response) -> str:
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return " ".join(text_of(m) for m in re.findall(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', page, flags=re.S))


def test_closing_from_the_case_page_says_it_was_closed(web, actors, case_in, sessions):
    case_id = case_in("assigned")
    client = web(actors.livelihood)
    client.get(f"/cases/{case_id}")
    r = client.post(f"/cases/{case_id}/events/close", {"version": case_version(sessions, case_id),
                                                        "close_reason": "moved_out", "confirm": "1"})
    assert r.status_code == 303 and case_state(sessions, case_id) == "closed"
    assert _flash(client, r) == "ケースを終結しました。"


def test_an_evaluation_says_what_was_decided(web, actors, case_in, sessions):
    case_id = case_in("accompaniment")
    client = web(actors.livelihood)
    client.get(f"/cases/{case_id}")
    r = client.post(f"/cases/{case_id}/events/evaluate", {"version": case_version(sessions, case_id),
                                                           "goals_met": "partly", "decision": "suspend"})
    assert r.status_code == 303, text_of(r)
    assert _flash(client, r) == "評価を記録し、支援を中断しました。"
