"""Sharing with bodies outside the city through the REST API: a referral's consent, the deprecated
`consent_to_share` that opens nothing by itself, a basis on send_handoff, and the refusals by field or 403."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, Consent, Department, Handoff, Provision
from tests.api.support import assert_problem, auth, count, post_referral, referral

ISOLATION = {"categories": ["isolation"], "person": {"name": "柴田 ひかる", "area": "大野"}}  # 孤立 → 社協


def _case(sessions, case_id: int) -> Case:
    with sessions() as s:
        return s.get(Case, case_id)


def test_consent_to_share_alone_names_no_agency_and_opens_nothing_outside_the_city(client, partner, sessions):
    body = referral(**ISOLATION, consent_to_share=True)
    del body["consent"]
    resp = post_referral(client, partner, body)
    assert resp.status_code == 201
    answer = resp.get_json()
    # The rules propose 社協, a partner: with no consent naming it, nothing is sent; the desk holds the case.
    assert answer["status"] == "intake" and answer["owning_department"] is None
    assert answer["routing"]["proposed_department"]["code"] == "shakyo"
    assert "送付していません" in answer["routing"]["reason"]
    with sessions() as s:
        assert s.scalars(select(Handoff).where(Handoff.case_id == answer["id"])).all() == []
        assert s.scalars(select(Consent).where(Consent.case_id == answer["id"])).all() == []
        assert s.scalars(select(Provision)).all() == []
        kinds = set(s.scalars(select(Alert.kind).where(Alert.case_id == answer["id"])))
        assert "basis_needed" in kinds
        # It still answers as before (the referrer said the person agreed to share, to nobody in particular).
        assert s.get(Case, answer["id"]).consent_to_share is True


def test_a_referral_consent_naming_the_partner_sends_the_sheet_on_that_consent(client, partner, sessions):
    body = referral(**ISOLATION, consent={"given_by": "本人", "method": "written", "obtained_on": "2026-11-30",
                                          "agencies": ["shakyo"]})
    answer = post_referral(client, partner, body).get_json()
    assert answer["status"] == "handoff"
    with sessions() as s:
        consent = s.scalar(select(Consent).where(Consent.case_id == answer["id"]))
        [provision] = s.scalars(select(Provision).where(Provision.case_id == answer["id"])).all()
        assert (s.get(Department, provision.department_id).code, provision.what, provision.basis,
                provision.consent_id) == ("shakyo", "sheet", "consent", consent.id)


CONSENT = {"given_by": "本人", "method": "written", "obtained_on": "2026-11-30", "agencies": ["shakyo"]}
BAD_CONSENTS = [
    ("an unknown agency", {**CONSENT, "agencies": ["shakyo", "nowhere"]}, "consent.agencies"),
    ("no agency", {**CONSENT, "agencies": []}, "consent.agencies"),
    ("nobody who gave it", {k: v for k, v in CONSENT.items() if k != "given_by"}, "consent.given_by"),
    ("an unknown method", {**CONSENT, "method": "telepathy"}, "consent.method"),
    ("a date in the future", {**CONSENT, "obtained_on": "2999-01-01"}, "consent.obtained_on"),
]


@pytest.mark.parametrize("why, consent, field", BAD_CONSENTS, ids=[b[0] for b in BAD_CONSENTS])
def test_a_bad_referral_consent_is_422_by_field_and_writes_nothing(client, partner, sessions, why, consent,
                                                                    field):
    problem = assert_problem(post_referral(client, partner, referral(**ISOLATION, consent=consent)), 422,
                             "validation-error")
    assert field in problem["errors"], problem
    assert count(sessions, Case) == 0 and count(sessions, Consent) == 0 and count(sessions, Provision) == 0


def _desk_case(sessions, actors, at=None) -> int:
    """A 孤立 consultation recorded at a window (the desk's, or `at`'s) and not sent yet."""
    from engine.cases import intake
    from tests.conftest import NOW, intake_fields

    with unit_of_work(sessions) as s:
        return intake.open_case(s, s.merge(at or actors.window), intake_fields(categories=["isolation"]), now=NOW,
                                route=False).id


def _send(client, token, case_id, version, **extra):
    body = {"event": "send_handoff", "version": version, "to_department": "shakyo", "reason": "理由",
            "summary": "要約", **extra}
    return client.post(f"/api/v1/cases/{case_id}/events", json=body, headers=auth(token))


@pytest.mark.parametrize("basis, field", [
    ({"code": "nowhere", "note": "n"}, "basis.code"),
    ({"code": "emergency"}, "basis.note"),
    ({"code": "emergency", "note": ""}, "basis.note"),
])
def test_a_bad_basis_on_send_handoff_is_422_naming_the_field(client, make_token, sessions, actors, basis, field):
    case_id = _desk_case(sessions, actors)
    version = _case(sessions, case_id).version
    token = make_token("cases:read,cases:write", user=actors.window)
    problem = assert_problem(_send(client, token, case_id, version, basis=basis), 422, "validation-error")
    assert field in problem["errors"], problem
    assert _case(sessions, case_id).version == version and count(sessions, Provision) == 0


def test_a_basis_chosen_by_staff_who_may_not_choose_it_is_403(client, make_token, sessions, actors):
    # Any window takes a consultation: 生活福祉課 recorded this one and holds it, but only an FM or the desk
    # chooses a statute or an emergency as the basis for sending it outside the city.
    case_id = _desk_case(sessions, actors, at=actors.livelihood)
    version = _case(sessions, case_id).version
    token = make_token("cases:read,cases:write", user=actors.livelihood)
    problem = assert_problem(_send(client, token, case_id, version, basis={"code": "emergency", "note": "倒れている"}),
                             403, "forbidden")
    assert problem["guard"] == "basis_chooser" and "FM" in problem["detail"]
    assert _case(sessions, case_id).version == version and count(sessions, Provision) == 0


def test_the_desk_sends_on_an_emergency_and_the_case_answers_with_the_provision(client, make_token, sessions,
                                                                                  actors):
    case_id = _desk_case(sessions, actors)
    token = make_token("cases:read,cases:write", user=actors.window)
    refused = _send(client, token, case_id, _case(sessions, case_id).version)
    problem = assert_problem(refused, 409, "guard-refused")
    assert problem["guard"] == "basis_needed" and "本人の同意が記録されていません" in problem["detail"]
    sent = _send(client, token, case_id, _case(sessions, case_id).version,
                 basis={"code": "emergency", "note": "本人が倒れている"})
    assert sent.status_code == 200, sent.get_json()
    view = client.get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()
    [row] = view["provisions"]
    assert (row["department_code"], row["what_code"], row["basis_kind"], row["basis_code"], row["note"]) == (
        "shakyo", "sheet", "statute", "emergency", "本人が倒れている")
    with sessions() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "provision.sheet")) is not None


def test_a_withdrawal_naming_where_the_case_returns_is_the_fms_alone(client, make_token, sessions, actors,
                                                                      make_user, fire):
    oono = make_user("staff", "houkatsu_oono", login="oono")
    from engine.cases import intake
    from tests.conftest import NOW, intake_fields

    fields = intake_fields(consent={"given_by": "本人", "method": "written", "agencies": ["houkatsu_oono"]})
    with unit_of_work(sessions) as s:
        case_id = intake.open_case(s, s.merge(actors.window), fields, now=NOW, route=False).id
    fire(actors.window, case_id, "send_handoff", to_department="houkatsu_oono", reason="r", summary="s")
    fire(oono, case_id, "accept_handoff")
    fire(oono, case_id, "record_consent", given_by="本人", method="written", agencies=["houkatsu_oono"])
    version = _case(sessions, case_id).version
    token = make_token("cases:read,cases:write", user=oono)
    resp = client.post(f"/api/v1/cases/{case_id}/events", headers=auth(token), json={
        "event": "withdraw_consent", "version": version, "given_by": "本人", "return_to": "livelihood"})
    assert_problem(resp, 403, "forbidden")
    assert _case(sessions, case_id).version == version
    resp = client.post(f"/api/v1/cases/{case_id}/events", headers=auth(token), json={
        "event": "withdraw_consent", "version": version, "given_by": "本人"})
    assert resp.status_code == 200, resp.get_json()
    case = _case(sessions, case_id)
    assert case.owning_department_id is None and case.state == "support_meeting"
    # 大野包括 now reads the case's metadata only.
    assert client.get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()["access"] == "metadata"
