"""The five ways a person's data once left the city without a basis, each now refused or narrowed; and the
bad input a basis or a hand-back can carry (refused by field or with 403, nothing changed).

1. A consultation with no consent sent its つなぐシート to a body outside the city (the ひきこもり支援ステーション,
   社協) and its staff read everything.
2. 社協, asked to join, kept reading after a consent that named only 大野包括, and after its withdrawal.
3. 大野包括, 主担当 on the consent alone, stayed owner after the consent was withdrawn.
4. A routing rule's reason (「ひきこもりの子」) reached an outside agency in its notice.
5. (the API's `consent_to_share`: tests/api/test_api_sharing_regressions.py)
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.alerts import notices
from engine.cases import intake, joins, notes, reading
from engine.db import unit_of_work
from engine.errors import GuardRefused, PermissionDenied, ValidationFailed
from engine.models import Alert, Case, CaseNotice, Department, Handoff, Provision, User
from engine.rules import store as rules
from tests.conftest import CONFIG_DIR, NOW, intake_fields
from tests.pages_support import error_beside, text_of, web  # noqa: F401  (fixture)

PERSON = {"name": "柴田 ひかる", "name_kana": "シバタ ヒカル", "birth_date": "1950-04-01", "area": "大野"}
SECRET = "長男の借金MARK"  # in the summary: only a reader of the content sees it
EMERGENCY = {"code": "emergency", "note": "本人が自宅で倒れ、家族とも連絡がとれない"}


@pytest.fixture
def oono(make_user):
    return make_user("staff", "houkatsu_oono", login="oono")


def _desk_case(sessions, actors, *, categories, consent=None, route=False) -> int:
    fields = intake_fields(categories=categories, summary=SECRET, person=dict(PERSON))
    if consent:
        fields["consent"] = {"given_by": "本人", "method": "written", **consent}
    with unit_of_work(sessions) as s:
        return intake.open_case(s, s.get(User, actors.window.id), fields, now=NOW, route=route).id


def _reads(sessions, login: str, case_id: int) -> str:
    """What `login` reads of the case: "content", "metadata" or "nothing"."""
    from engine.errors import NotFound

    with sessions() as s:
        actor = s.scalar(select(User).where(User.login == login))
        try:
            file = reading.read_case(s, actor, case_id)
        except NotFound:
            return "nothing"
        assert file.content == (SECRET in str(file.view))
        return "content" if file.content else "metadata"


def _provisions(sessions, case_id: int) -> list[tuple[str, str, str, str | None]]:
    with sessions() as s:
        return [(s.get(Department, p.department_id).code, p.what, p.basis, p.basis_code)
                for p in s.scalars(select(Provision).where(Provision.case_id == case_id).order_by(Provision.id))]


def _open_alerts(sessions, case_id: int) -> dict[str, str]:
    with sessions() as s:
        return {a.kind: a.message for a in s.scalars(select(Alert).where(
            Alert.case_id == case_id, Alert.status.in_(("open", "acknowledged"))))}


def _version(sessions, case_id: int) -> int:
    with sessions() as s:
        return s.get(Case, case_id).version


# --- 1. no consent: nothing leaves the city without a basis ---------------------------------------------------

def test_rules_routing_to_a_partner_keep_the_case_at_the_desk_and_send_nothing(sessions, actors):
    # 孤立 routes to 社協, a partner with no commission: with no consent the case stays in 受付 at the desk.
    case_id = _desk_case(sessions, actors, categories=["isolation"], route=True)
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.state == "intake" and case.owning_department_id is None
        assert s.scalars(select(Handoff).where(Handoff.case_id == case_id)).all() == []
        assert "送付していません" in case.routing_reason
    alert = _open_alerts(sessions, case_id)["basis_needed"]
    assert "社会福祉協議会" in alert and "委託がありません" in alert and "本人の同意が記録されていません" in alert
    assert _reads(sessions, "shakyo", case_id) == "nothing"
    assert _provisions(sessions, case_id) == []


def test_a_sheet_to_a_commissioned_agency_outside_its_commission_is_refused_naming_what_is_missing(
        sessions, actors, fire):
    case_id = _desk_case(sessions, actors, categories=["poverty"])
    version = _version(sessions, case_id)
    with pytest.raises(GuardRefused) as refused:
        fire(actors.window, case_id, "send_handoff", to_department="hikikomori_station", reason="r", summary="s")
    assert refused.value.extra["guard"] == "basis_needed"
    assert "はつかいちひきこもり支援ステーションは市の外の機関です" in str(refused.value)
    assert "委託（" in str(refused.value) and "範囲にこの相談の分類が含まれていません" in str(refused.value)
    assert _version(sessions, case_id) == version and _provisions(sessions, case_id) == []
    assert _reads(sessions, "hikikomori", case_id) == "nothing"


def test_the_desk_sends_on_an_emergency_with_its_note_and_the_provision_says_so(sessions, actors, fire):
    case_id = _desk_case(sessions, actors, categories=["isolation"], route=True)
    assert "basis_needed" in _open_alerts(sessions, case_id)
    fire(actors.window, case_id, "send_handoff", to_department="shakyo", reason="r", summary="s", basis=EMERGENCY)
    assert _provisions(sessions, case_id) == [("shakyo", "sheet", "statute", "emergency")]
    with sessions() as s:
        assert s.scalar(select(Provision.basis_note).where(Provision.case_id == case_id)) == EMERGENCY["note"]
    assert "basis_needed" not in _open_alerts(sessions, case_id)
    assert _reads(sessions, "shakyo", case_id) == "content"


def test_within_its_commission_an_agency_receives_the_sheet_and_the_provision_names_the_commission(
        sessions, actors):
    case_id = _desk_case(sessions, actors, categories=["hikikomori"], route=True)
    assert _provisions(sessions, case_id) == [("hikikomori_station", "sheet", "commission", None)]
    assert _reads(sessions, "hikikomori", case_id) == "content"


# --- 2. 社協 asked in, then a consent not naming it, then a withdrawal ---------------------------------------

def test_a_partner_asked_to_join_before_any_consent_is_refused(sessions, actors, fire):
    case_id = _desk_case(sessions, actors, categories=["poverty"])
    fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="r", summary="s")
    fire(actors.livelihood, case_id, "accept_handoff")
    with unit_of_work(sessions) as s, pytest.raises(GuardRefused) as refused:
        joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="shakyo", reason="r",
                           summary="s", now=NOW)
    assert refused.value.extra["guard"] == "basis_needed" and "参加依頼を送るには" in str(refused.value)
    assert _reads(sessions, "shakyo", case_id) == "nothing"


def _shakyo_joined_under_consent(sessions, actors, oono, fire) -> int:
    """A case 大野包括 owns on a consent naming it and 社協; 社協 joined under that consent and wrote a note."""
    case_id = _desk_case(sessions, actors, categories=["poverty"],
                         consent={"agencies": ["houkatsu_oono", "shakyo"]})
    fire(actors.window, case_id, "send_handoff", to_department="houkatsu_oono", reason="r", summary="s")
    fire(oono, case_id, "accept_handoff")
    with unit_of_work(sessions) as s:
        handoff = joins.request_join(s, s.get(User, oono.id), case_id, to_department="shakyo", reason="r",
                                     summary="s", now=NOW)
        handoff_id = handoff.id
    with unit_of_work(sessions) as s:
        joins.answer_join(s, s.get(User, actors.shakyo.id), handoff_id, "accept", now=NOW)
    with unit_of_work(sessions) as s:
        notes.add_contact_note(s, s.get(User, actors.shakyo.id), case_id,
                               {"body": "社協が書いた記録MARK", "method": "home_visit", "contact_on": "2026-11-30"},
                               now=NOW)
    assert _reads(sessions, "shakyo", case_id) == "content"
    return case_id


def test_a_consent_recorded_anew_naming_only_oono_drops_the_partner_to_metadata(sessions, actors, oono, fire):
    case_id = _shakyo_joined_under_consent(sessions, actors, oono, fire)
    fire(oono, case_id, "record_consent", given_by="本人", method="written", agencies=["houkatsu_oono"])
    assert _reads(sessions, "shakyo", case_id) == "metadata"
    with sessions() as s:  # it keeps what it wrote itself
        view = reading.read_case(s, s.get(User, actors.shakyo.id), case_id).view
        assert "社協が書いた記録MARK" in str(view)
        assert s.scalar(select(Handoff.state).where(Handoff.case_id == case_id,
                                                    Handoff.primary.is_(False))) == "withdrawn"
    assert _reads(sessions, "oono", case_id) == "content"


def test_a_withdrawn_consent_drops_the_partner_to_metadata_at_once(sessions, actors, oono, fire):
    case_id = _shakyo_joined_under_consent(sessions, actors, oono, fire)
    fire(oono, case_id, "record_consent", given_by="本人", method="written", agencies=["houkatsu_oono", "shakyo"])
    fire(oono, case_id, "withdraw_consent", given_by="本人")
    assert _reads(sessions, "shakyo", case_id) == "metadata"


# --- 3. the owner outside the city on the consent alone hands the case back -----------------------------------

def _oono_owns_on_consent(sessions, actors, oono, fire) -> int:
    case_id = _desk_case(sessions, actors, categories=["poverty"], consent={"agencies": ["houkatsu_oono"]})
    fire(actors.window, case_id, "send_handoff", to_department="houkatsu_oono", reason="r", summary="s")
    fire(oono, case_id, "accept_handoff")
    # An FM convened a 支援会議 (and is the case's FM) without 大野包括 (a member would read the case on that
    # basis, 社会福祉法106条の6); the owner then took the consent.
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    fire(oono, case_id, "record_consent", given_by="本人", method="written", agencies=["houkatsu_oono"])
    assert _provisions(sessions, case_id)[0] == ("houkatsu_oono", "sheet", "consent", None)
    return case_id


def test_the_owner_on_consent_alone_hands_the_case_back_to_the_desk_when_it_is_withdrawn(
        sessions, actors, oono, fire):
    case_id = _oono_owns_on_consent(sessions, actors, oono, fire)
    fire(oono, case_id, "withdraw_consent", given_by="本人", note="電話で撤回の申し出")
    with sessions() as s:
        case = s.get(Case, case_id)
        assert case.state == "support_meeting" and case.owning_department_id is None
        desk = s.scalar(select(Department.id).where(Department.code == "desk"))
        alert = s.scalar(select(Alert).where(Alert.case_id == case_id, Alert.kind == "handed_back"))
        assert alert.department_id == desk and "大野地域包括支援センター" in alert.message
    assert _reads(sessions, "oono", case_id) == "metadata"
    # The desk takes it from here: it sends the case on inside the city.
    fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="r", summary="s")


def test_an_fm_names_the_city_department_the_case_returns_to(sessions, actors, oono, fire):
    case_id = _oono_owns_on_consent(sessions, actors, oono, fire)
    fire(actors.fm, case_id, "withdraw_consent", given_by="本人", return_to="livelihood")
    with sessions() as s:
        case = s.get(Case, case_id)
        assert s.get(Department, case.owning_department_id).code == "livelihood"
        alert = s.scalar(select(Alert).where(Alert.case_id == case_id, Alert.kind == "handed_back"))
        assert alert.department_id == case.owning_department_id and "生活福祉課" in alert.message
    assert _reads(sessions, "livelihood", case_id) == "content"
    assert _reads(sessions, "oono", case_id) == "metadata"


@pytest.mark.parametrize("who, return_to, refusal", [
    ("oono", "livelihood", PermissionDenied),  # only an FM names where it goes
    ("fm", "shakyo", ValidationFailed),  # back inside the city
    ("fm", "nowhere", ValidationFailed),
])
def test_a_return_to_the_asker_may_not_name_is_refused_and_nothing_changes(sessions, actors, oono, fire, who,
                                                                           return_to, refusal):
    case_id = _oono_owns_on_consent(sessions, actors, oono, fire)
    version = _version(sessions, case_id)
    actor = oono if who == "oono" else actors.fm
    with pytest.raises(refusal) as refused:
        fire(actor, case_id, "withdraw_consent", given_by="本人", return_to=return_to)
    if refusal is ValidationFailed:
        assert list(refused.value.errors) == ["return_to"]
    else:
        assert refused.value.extra["guard"] == "return_to_chooser"
    assert _version(sessions, case_id) == version and _reads(sessions, "oono", case_id) == "content"


def test_a_consent_that_leaves_out_the_owner_outside_the_city_is_refused(sessions, actors, oono, fire):
    case_id = _desk_case(sessions, actors, categories=["poverty"], consent={"agencies": ["houkatsu_oono"]})
    fire(actors.window, case_id, "send_handoff", to_department="houkatsu_oono", reason="r", summary="s")
    fire(oono, case_id, "accept_handoff")
    with pytest.raises(GuardRefused) as refused:
        fire(oono, case_id, "record_consent", given_by="本人", method="written", agencies=["livelihood"])
    assert refused.value.extra["guard"] == "owner_named_in_consent"
    assert "大野地域包括支援センター" in str(refused.value)
    with sessions() as s:
        assert s.get(Case, case_id).state == "assigned"


def test_an_owner_within_its_commission_stays_after_a_withdrawal(sessions, actors, oono, fire):
    case_id = _desk_case(sessions, actors, categories=["elder_care"], consent={"agencies": ["houkatsu_oono"]})
    fire(actors.window, case_id, "send_handoff", to_department="houkatsu_oono", reason="r", summary="s")
    fire(oono, case_id, "accept_handoff")
    fire(oono, case_id, "record_consent", given_by="本人", method="written", agencies=["houkatsu_oono"])
    fire(oono, case_id, "withdraw_consent", given_by="本人")
    with sessions() as s:
        assert s.get(Department, s.get(Case, case_id).owning_department_id).code == "houkatsu_oono"
    assert "handed_back" not in _open_alerts(sessions, case_id)
    assert _reads(sessions, "oono", case_id) == "content"


def test_the_withdrawal_form_offers_the_return_to_only_to_an_fm(sessions, actors, oono, fire, web):
    case_id = _oono_owns_on_consent(sessions, actors, oono, fire)
    assert 'name="return_to"' not in web(oono).get(f"/cases/{case_id}").get_data(as_text=True)
    page = web(actors.fm).get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'name="return_to"' in page


# --- 4. a rule's reason in a notice to a body outside the city ---------------------------------------------

@pytest.fixture
def rules_telling_shakyo_of_8050(sessions, departments, tmp_path):
    """The demo rules, with 社協 told of an 8050 case too (besides the ひきこもり支援ステーション)."""
    text = (CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8")
    assert "notify: [hikikomori_station]" in text
    path = tmp_path / "routing.yaml"
    path.write_text(text.replace("notify: [hikikomori_station]", "notify: [hikikomori_station, shakyo]"),
                    encoding="utf-8")
    with unit_of_work(sessions) as s:
        rules.install_rules(s, path, loaded_by="tests")


def test_a_rule_reason_reaches_an_outside_body_only_on_a_basis(sessions, actors, rules_telling_shakyo_of_8050,
                                                               web):
    case_id = _desk_case(sessions, actors, categories=["elder_care", "hikikomori"], route=True)
    with sessions() as s:
        told = {s.get(Department, n.department_id).code: n.reason
                for n in s.scalars(select(CaseNotice).where(CaseNotice.case_id == case_id))}
    # The station's commission covers ひきこもり: it reads the reason, and that is a provision.
    assert "ひきこもりの子" in told["hikikomori_station"]
    # 社協 has no basis: it is told there is a case, not what it is about.
    assert told["shakyo"] == notices.REASON_WITHHELD
    assert ("hikikomori_station", "notice", "commission", None) in _provisions(sessions, case_id)
    assert not any(code == "shakyo" for code, *_ in _provisions(sessions, case_id))
    inbox = text_of(web(actors.shakyo).get("/inbox"))
    assert "情報提供の根拠が記録されるまで表示されません" in inbox and "ひきこもり" not in inbox


# --- bad input on a basis -----------------------------------------------------------------------------------

@pytest.mark.parametrize("basis, field", [
    ({"code": "nowhere", "note": "n"}, "basis.code"),
    ({"code": "emergency"}, "basis.note"),
    ({"code": "emergency", "note": "   "}, "basis.note"),
    ({"note": "n"}, "basis.code"),
])
def test_a_bad_basis_is_refused_by_field_and_nothing_changes(sessions, actors, fire, basis, field):
    case_id = _desk_case(sessions, actors, categories=["isolation"])
    version = _version(sessions, case_id)
    with pytest.raises(ValidationFailed) as refused:
        fire(actors.window, case_id, "send_handoff", to_department="shakyo", reason="r", summary="s", basis=basis)
    assert field in refused.value.errors
    assert _version(sessions, case_id) == version and _provisions(sessions, case_id) == []


def test_a_basis_chosen_by_staff_outside_the_desk_is_refused(sessions, actors, fire):
    case_id = _desk_case(sessions, actors, categories=["poverty"])
    fire(actors.window, case_id, "send_handoff", to_department="livelihood", reason="r", summary="s")
    fire(actors.livelihood, case_id, "accept_handoff")
    version = _version(sessions, case_id)
    with unit_of_work(sessions) as s, pytest.raises(PermissionDenied) as refused:
        joins.request_join(s, s.get(User, actors.livelihood.id), case_id, to_department="shakyo", reason="r",
                           summary="s", basis=EMERGENCY, now=NOW)
    assert refused.value.extra["guard"] == "basis_chooser"
    assert _version(sessions, case_id) == version
    assert all(code != "shakyo" for code, *_ in _provisions(sessions, case_id))
    # An FM may choose it (the case's FM, who convened its 支援会議).
    fire(actors.fm, case_id, "convene_support_meeting", members=[{"user": "livelihood", "acknowledged": True}])
    with unit_of_work(sessions) as s:
        joins.request_join(s, s.get(User, actors.fm.id), case_id, to_department="shakyo", reason="r",
                           summary="s", basis=EMERGENCY, now=NOW)
    assert ("shakyo", "join", "statute", "emergency") in _provisions(sessions, case_id)


def test_the_pages_show_a_bad_basis_beside_its_input(sessions, actors, web):
    case_id = _desk_case(sessions, actors, categories=["isolation"])
    r = web(actors.window).post(f"/cases/{case_id}/events/send_handoff", {
        "version": _version(sessions, case_id), "to_department": "shakyo", "reason": "r", "summary": "s",
        "basis.code": "emergency", "basis.note": ""})
    assert r.status_code == 422
    assert error_beside(r, "ev-send_handoff", "basis.note") == "必須項目です。"
    assert _provisions(sessions, case_id) == []
