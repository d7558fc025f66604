"""参加の申し出: a department told of a case offers to work on it; the owner asks it to join or lets it go.

The 8050 rule sends the つなぐシート to 高齢介護課 and tells the ひきこもり支援ステーション. The station reads
nothing of the case until it is asked to join and accepts: the offer is how it asks to be asked.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import access, case_departments
from engine.cases import joins
from engine.cases import offers as join_offers
from engine.db import unit_of_work
from engine.errors import EventNotAllowed, NotFound, PermissionDenied, StaleVersion, ValidationFailed
from engine.models import AuditEvent, Case, CaseHistory, Handoff, JoinOffer, User
from engine.privacy import retention
from tests.conftest import NOW
from tests.pages_support import (  # noqa: F401  (fixtures)
    app,
    case_state,
    case_version,
    count,
    error_beside,
    text_of,
    web,
)

EIGHTY_FIFTY = ["elder_care", "hikikomori"]
OFFER = "長男さんへの訪問支援を当ステーションで行えます。"


@pytest.fixture
def owned(open_case, fire, actors) -> int:
    """An 8050 case accepted by 高齢介護課; the station was told of it."""
    case_id = open_case(categories=EIGHTY_FIFTY)
    fire(actors.elderly, case_id, "accept_handoff")
    return case_id


def _offer(sessions, actor, case_id, message=OFFER, version=None):
    with unit_of_work(sessions) as s:
        v = s.get(Case, case_id).version if version is None else version
        return join_offers.offer(s, s.get(User, actor.id), case_id, message=message, version=v, now=NOW).id


def _answer(sessions, actor, case_id, offer_id, decision, note=None):
    with unit_of_work(sessions) as s:
        v = s.get(Case, case_id).version
        return join_offers.answer(s, s.get(User, actor.id), case_id, offer_id, decision, note=note, version=v,
                                  now=NOW).status


def _trail(sessions, case_id):
    with sessions() as s:
        history = [h.event for h in s.scalars(select(CaseHistory).where(CaseHistory.case_id == case_id)
                                              .order_by(CaseHistory.id)) if h.event.startswith("join_offer.")]
        audited = [a for (a,) in s.execute(select(AuditEvent.action).where(AuditEvent.case_id == case_id)
                                           .order_by(AuditEvent.seq)) if a.startswith("join_offer.")]
    return history, audited


def test_the_station_offers_and_the_owner_asks_it_to_join(owned, actors, sessions, fire):
    before = case_version(sessions, owned)
    offer_id = _offer(sessions, actors.hikikomori, owned)
    assert case_version(sessions, owned) == before + 1  # a page shown before is now stale
    with sessions() as s:
        station = s.get(User, actors.hikikomori.id)
        assert access.case_sight(s, station, s.get(Case, owned)) == access.Sight.METADATA  # still nothing more
        [waiting] = join_offers.waiting_for(s, s.get(User, actors.elderly.id))
        assert (waiting.id, waiting.message, waiting.status) == (offer_id, OFFER, "open")
        assert join_offers.waiting_for(s, station) == []
    assert _answer(sessions, actors.elderly, owned, offer_id, "accept") == "accepted"
    with sessions() as s:
        offer = s.get(JoinOffer, offer_id)
        sheet = s.get(Handoff, offer.handoff_id)
        assert (sheet.to_department.code, sheet.state, sheet.primary) == ("hikikomori_station", "sent", False)
        assert "参加の申し出を受けて" in sheet.reason and offer.open_key is None
        assert join_offers.waiting_for(s, s.get(User, actors.elderly.id)) == []
    with unit_of_work(sessions) as s:  # the station accepts the join sheet as any other: now it reads the case
        joins.answer_join(s, s.get(User, actors.hikikomori.id), sheet.id, "accept", now=NOW)
    with sessions() as s:
        assert access.case_sight(s, s.get(User, actors.hikikomori.id), s.get(Case, owned)) == access.Sight.CONTENT
        assert case_departments.drift(s) == []
    assert _trail(sessions, owned) == (["join_offer.offer", "join_offer.accept"],
                                       ["join_offer.offer", "join_offer.accept"])


def test_only_a_department_that_was_told_and_nothing_more_may_offer(owned, actors, sessions):
    with pytest.raises(PermissionDenied):
        _offer(sessions, actors.elderly, owned)  # the owner
    with pytest.raises(PermissionDenied):
        _offer(sessions, actors.window, owned)  # the desk that recorded it
    with pytest.raises(PermissionDenied):
        _offer(sessions, actors.fm, owned)  # an FM sees every case's metadata; it asks for nothing
    with pytest.raises(NotFound):
        _offer(sessions, actors.children, owned)  # may not know the case exists
    assert count(sessions, JoinOffer) == 0
    assert _trail(sessions, owned) == ([], [])


def test_bad_or_repeated_offers_are_refused_and_write_nothing(owned, actors, sessions, fire):
    version = case_version(sessions, owned)
    with pytest.raises(ValidationFailed) as err:
        _offer(sessions, actors.hikikomori, owned, message="  ")
    assert list(err.value.errors) == ["message"]
    with pytest.raises(ValidationFailed):
        _offer(sessions, actors.hikikomori, owned, message="あ" * 2001)
    with pytest.raises(StaleVersion):
        _offer(sessions, actors.hikikomori, owned, version=version - 1)
    assert case_version(sessions, owned) == version and count(sessions, JoinOffer) == 0
    _offer(sessions, actors.hikikomori, owned)
    with pytest.raises(join_offers.OfferAlreadyOpen):
        _offer(sessions, actors.hikikomori, owned)
    assert count(sessions, JoinOffer) == 1


def test_declining_needs_a_note_and_the_department_may_offer_again(owned, actors, sessions):
    offer_id = _offer(sessions, actors.hikikomori, owned)
    with pytest.raises(ValidationFailed) as err:
        _answer(sessions, actors.elderly, owned, offer_id, "decline")
    assert list(err.value.errors) == ["note"]
    with pytest.raises(PermissionDenied):  # only those who drive the case answer
        _answer(sessions, actors.hikikomori, owned, offer_id, "accept")
    assert _answer(sessions, actors.elderly, owned, offer_id, "decline", note="今は家族の意向で見送ります") == "declined"
    with pytest.raises(join_offers.OfferAnswered):
        _answer(sessions, actors.elderly, owned, offer_id, "accept")
    with sessions() as s:  # the station sees its own offer's outcome and the note written to it
        [own] = join_offers.of_case(s, s.get(User, actors.hikikomori.id), s.get(Case, owned),
                                    frozenset({access.NOTIFIED}))
        assert (own.status_label, own.answer_note, own.message) == ("見送り", "今は家族の意向で見送ります", OFFER)
    assert _offer(sessions, actors.hikikomori, owned) != offer_id  # a new offer, later


def test_the_department_withdraws_its_offer_and_closing_the_case_ends_one(owned, actors, sessions, fire):
    offer_id = _offer(sessions, actors.hikikomori, owned)
    with unit_of_work(sessions) as s, pytest.raises(PermissionDenied):
        join_offers.withdraw(s, s.get(User, actors.elderly.id), owned, offer_id, now=NOW)
    with unit_of_work(sessions) as s:
        join_offers.withdraw(s, s.get(User, actors.hikikomori.id), owned, offer_id,
                             version=s.get(Case, owned).version, now=NOW)
    second = _offer(sessions, actors.hikikomori, owned)
    fire(actors.elderly, owned, "close", close_reason="goal_met")
    with sessions() as s:
        assert [(o.status, o.open_key) for o in s.scalars(select(JoinOffer).order_by(JoinOffer.id))] == [
            ("withdrawn", None), ("lapsed", None)]
        assert join_offers.waiting_for(s, s.get(User, actors.elderly.id)) == []
    with pytest.raises(EventNotAllowed):
        _offer(sessions, actors.hikikomori, owned)
    assert second


def test_retention_clears_what_was_written(owned, actors, sessions, fire):
    offer_id = _offer(sessions, actors.hikikomori, owned)
    _answer(sessions, actors.elderly, owned, offer_id, "decline", note="家族の意向")
    fire(actors.elderly, owned, "close", close_reason="goal_met")
    with unit_of_work(sessions) as s:
        retention.anonymise_case(s, s.get(Case, owned), NOW)
    with sessions() as s:
        offer = s.get(JoinOffer, offer_id)
        assert OFFER not in offer.message and offer.answer_note == retention.MARKER


# --- pages ---------------------------------------------------------------------------------------


def test_pages_offer_answer_and_inbox(owned, actors, sessions, web):
    station = web(actors.hikikomori)
    page = text_of(station.get(f"/cases/{owned}"))
    assert "このケースへの参加を申し出る" in page
    assert "他部署に参加を依頼する" not in page
    r = station.post(f"/cases/{owned}/offer-join", {"message": " ", "version": case_version(sessions, owned)})
    assert r.status_code == 422
    assert error_beside(r, "offer", "message") == "必須項目です。"
    r = station.post(f"/cases/{owned}/offer-join", {"message": OFFER, "version": case_version(sessions, owned)})
    assert r.status_code == 303
    after = text_of(station.get(r.headers["Location"]))
    assert "参加を申し出ました" in after and OFFER in after and "回答待ち" in after
    assert "このケースへの参加を申し出る" in after  # the form stays; a second offer is refused
    owner = web(actors.elderly)
    inbox = text_of(owner.get("/inbox"))
    assert "担当ケースへの参加の申し出" in inbox and OFFER in inbox
    with sessions() as s:
        offer_id = s.scalar(select(JoinOffer.id))
    version = case_version(sessions, owned)
    r = owner.post(f"/cases/{owned}/offers/{offer_id}", {"decision": "decline", "note": "", "version": version})
    assert r.status_code == 422
    assert error_beside(r, f"ev-offer_answer_{offer_id}", "note") == "見送る理由を、申し出た部署あてに入力してください。"
    r = owner.post(f"/cases/{owned}/offers/{offer_id}", {"decision": "accept", "version": version})
    assert r.status_code == 303
    assert "参加を依頼しました" in text_of(owner.get(r.headers["Location"]))
    stale = owner.post(f"/cases/{owned}/offers/{offer_id}", {"decision": "accept", "version": version})
    assert stale.status_code == 409
    assert "参加依頼" in text_of(station.get("/inbox"))
    assert case_state(sessions, owned) == "assigned"


def test_pages_refuse_an_offer_from_the_owner(owned, actors, sessions, web):
    r = web(actors.elderly).post(f"/cases/{owned}/offer-join", {"message": OFFER,
                                                              "version": case_version(sessions, owned)})
    assert r.status_code == 403 and count(sessions, JoinOffer) == 0


def test_pages_withdraw(owned, actors, sessions, web):
    offer_id = _offer(sessions, actors.hikikomori, owned)
    station = web(actors.hikikomori)
    assert "申し出を取り下げる" in text_of(station.get(f"/cases/{owned}"))
    r = station.post(f"/cases/{owned}/offers/{offer_id}/withdraw", {"version": case_version(sessions, owned)})
    assert r.status_code == 303 and "取り下げました" in text_of(station.get(r.headers["Location"]))
    with sessions() as s:
        assert s.get(JoinOffer, offer_id).status == "withdrawn"
