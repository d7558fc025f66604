"""GET /people/{id}: a person as the token's staff user may see them, asserted as a matrix (role × part of the
answer, one test per cell) on the access matrix's world (tests/access_matrix.py), with what a person has
besides one case: a second case owned by another department, a son whose own case lists her as his mother
(a household), and a record that may be hers (a 名寄せ candidate).

Who sees how far is engine.people.records.sight_of_person's: the readers of the content of one of her cases see
her details, households and candidates; an FM and the administrator see who she is and that her cases exist;
everyone else is answered 404, as for a case out of sight. Each case in the answer is shown as far as the
reader may see that case. Scope refusals, a merged record's id, unknown ids and the audit rows are below the
matrix; the case view's `person_id`, `person_match` and `households` at the end.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from engine.cases import intake
from engine.cases.events import firing
from engine.db import unit_of_work
from engine.models import AuditEvent, Case, Person, User
from engine.people import records
from engine.privacy import disclosure
from engine.referrals import clients as api_clients
from tests import access_matrix as M
from tests.api.support import assert_problem, auth
from tests.conftest import NOW, intake_fields

A, F, N = M.ALLOW, M.FORBIDDEN, M.NOT_FOUND
PARTS = ("identity", "details", "cases", "households", "candidates")
STAFF_ROLES = [r for r in M.ROLES if r != "referral_client"]

# role → part → expected: ALLOW (in the answer), FORBIDDEN (answered, without that part), NOT_FOUND (404).
# A candidate is shown to the reader of her content who decides it (an FM, or staff who read the newer record's
# case, here 障害福祉課's): the others read her record without it.
#                     identity details cases households candidates
_TABLE = {
    "window":          (N, N, N, N, N),  # recorded the case, reads none of its content
    "outsider":        (N, N, N, N, N),
    "receiving":       (A, A, A, A, F),
    "fm_member":       (A, A, A, A, A),
    "fm_other":        (A, F, A, F, F),  # an FM: who she is, that her cases exist
    "member_outside":  (A, A, A, A, F),
    "member_pending":  (N, N, N, N, N),
    "covered_partner": (A, A, A, A, F),
    "notified":        (N, N, N, N, N),
    "admin":           (A, F, A, F, F),
}
EXPECTED = {(role, part): row[i] for role, row in _TABLE.items() for i, part in enumerate(PARTS)}
# How each reader sees her cases (the matrix's case, then 障害福祉課's) and her son's case (visible or not).
CASE_ACCESS = {
    "receiving": ("content", "none"), "fm_member": ("content", "metadata"), "fm_other": ("metadata", "metadata"),
    "member_outside": ("content", "none"), "covered_partner": ("content", "none"),
    "admin": ("metadata", "metadata"),
}
SON_CASE_VISIBLE = {"receiving": False, "fm_member": True, "member_outside": False, "covered_partner": False}

RESIDENT_ID = "0001234567"  # hers, in the matrix's world
SON = {"name": "廿日 一郎", "name_kana": "ハツカ イチロウ", "birth_date": "1985-07-07", "area": "廿日市",
       "resident_id": "0001234568"}
CANDIDATE_NAME = "廿日 太郎"  # the same name and birth date as hers, without a 宛名番号


@pytest.fixture
def world(sessions, make_user):
    """The access matrix's world, and around its person: her second case (障害福祉課), her son's case listing
    her as his mother, and a record that may be hers. Returns (world, ids)."""
    w = M.build_world(sessions, make_user, NOW)
    disability = make_user("staff", "disability", login="p-disability")
    with unit_of_work(sessions) as s:
        actor = s.get(User, disability.id)
        hers = intake.open_case(s, actor, intake_fields(
            categories=["disability"], summary="障害福祉サービスの相談",
            person={"name": "廿日 太郎", "birth_date": "1960-05-01", "resident_id": RESIDENT_ID}), now=NOW)
        son = intake.open_case(s, actor, intake_fields(
            categories=["disability"], summary="長男の就労の相談", person=dict(SON),
            household=[{"relationship": "母", "name": "廿日 太郎", "birth_year": 1960, "resident_id": RESIDENT_ID}]),
            now=NOW)
        maybe = intake.open_case(s, actor, intake_fields(
            categories=["disability"], summary="同じ名前の人の相談",
            person={"name": CANDIDATE_NAME, "name_kana": "ハツカ タロウ", "birth_date": "1960-05-01"}),
            now=NOW, route=False)
        ids = {"person": hers.person_id, "hers": hers.id, "son_case": son.id, "son": son.person_id,
               "candidate": maybe.person_id, "case": w.case_id, "world_person": s.get(Case, w.case_id).person_id}
    for case_id in (ids["hers"], ids["son_case"]):
        with unit_of_work(sessions) as s:
            firing.fire_event(s, s.get(User, disability.id), case_id, "accept_handoff",
                              version=s.get(Case, case_id).version, fields={}, now=NOW)
    return w, ids


@pytest.fixture
def tokens(world, sessions):
    w, _ = world
    out = {}
    with unit_of_work(sessions) as s:
        for role in STAFF_ROLES:
            out[role] = api_clients.create_token(s, client_name=f"people-{role}", scopes=["cases:read"],
                                                 user_login=w.logins[role])[1]
        out["referral_client"] = api_clients.create_token(s, client_name="people-referrer",
                                                          scopes=["referrals:read", "referrals:write"])[1]
    return out


def test_the_world_is_as_the_matrix_assumes(world):
    w, ids = world
    assert ids["person"] == ids["world_person"]  # her 宛名番号 filed the second case under her
    assert len({ids["person"], ids["son"], ids["candidate"]}) == 3
    assert set(EXPECTED) == {(r, p) for r in STAFF_ROLES for p in PARTS}
    assert {r for r in STAFF_ROLES if EXPECTED[(r, "cases")] == A} == set(CASE_ACCESS)
    assert {r for r in STAFF_ROLES if EXPECTED[(r, "households")] == A} == set(SON_CASE_VISIBLE)


def _shown(part: str, body: dict, ids: dict, role: str) -> bool:
    """Whether the answer holds `part`, checking what it holds when it does."""
    if part == "identity":
        assert (body["id"], body["name"], body["birth_date"], body["area"]) == (
            ids["person"], "廿日 太郎", "1960-05-01", "廿日市")
        assert body["name_kana"] == "ハツカ タロウ" and body["merged_into"] is None
        return True
    if part == "details":
        shown = "resident_id" in body
        assert shown == ("sex" in body) == (RESIDENT_ID in json.dumps(body))
        assert not shown or body["resident_id"] == RESIDENT_ID
        return shown
    if part == "cases":
        cases = body["cases"]
        assert len(cases) == 2, "both of her cases are listed, seen or not"
        mine, other = cases
        assert (mine["access"], other["access"]) == CASE_ACCESS[role]
        assert mine["id"] == ids["case"] and mine["status"] == "accompaniment" and mine["case_number"]
        assert mine["owning_department"]["code"] == "livelihood" and other["owning_department"]["code"] == "disability"
        if other["access"] == "none":  # that it exists and who owns it, nothing more
            assert other["id"] is other["case_number"] is other["status"] is other["opened_at"] is None
        else:
            assert other["id"] == ids["hers"] and other["status"] == "assigned" and other["case_number"]
        return True
    if part == "households":
        if "households" not in body:
            assert "廿日 一郎" not in json.dumps(body, ensure_ascii=False)
            return False
        [household] = body["households"]
        members = {m["name"]: m for m in household["members"]}
        assert members["廿日 太郎"]["is_self"] and members["廿日 太郎"]["person_id"] == ids["person"]
        assert members["廿日 太郎"]["relationship"] == "母（廿日 一郎からみて）"
        assert members["廿日 一郎"]["person_id"] == ids["son"] and not members["廿日 一郎"]["is_self"]
        [son_case] = household["cases"]  # her own cases are in `cases`, not here
        assert son_case["visible"] == SON_CASE_VISIBLE[role] and son_case["owner_code"] == "disability"
        if son_case["visible"]:
            assert son_case["id"] == ids["son_case"] and son_case["state"] == "assigned"
        else:
            assert son_case["id"] is son_case["case_number"] is son_case["state"] is None
        return True
    if part == "candidates":
        if not body.get("candidates"):
            return False
        [candidate] = body["candidates"]
        assert (candidate["person_id"], candidate["reason"], candidate["name"], candidate["birth_date"]) == (
            ids["candidate"], "name_kana", CANDIDATE_NAME, "1960-05-01")
        return True
    raise AssertionError(part)


@pytest.mark.parametrize("role, part", list(EXPECTED), ids=[f"{r}-{p}" for r, p in EXPECTED])
def test_person_answer_follows_the_matrix(world, tokens, client, sessions, role, part):
    w, ids = world
    expected = EXPECTED[(role, part)]
    before = M.refusals(sessions)
    r = client.get(f"/api/v1/people/{ids['person']}", headers=auth(tokens[role]))
    if expected == N:
        assert_problem(r, 404, "not-found")
        assert "廿日" not in r.get_data(as_text=True) and RESIDENT_ID not in r.get_data(as_text=True)
        assert M.refusals(sessions) == before + 1
        return
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["access"] == ("content" if EXPECTED[(role, "details")] == A else "metadata")
    assert _shown(part, body, ids, role) == (expected == A), f"{role}: {part}"


def test_the_referrer_and_tokens_without_the_scope_are_refused(world, tokens, client, sessions, make_token):
    w, ids = world
    url = f"/api/v1/people/{ids['person']}"
    alerts_only = make_token("alerts:read", user=w.logins["receiving"])
    before = M.tables_but_audit(sessions)
    # A partner system: its referrals scopes reach no person.
    assert_problem(client.get(url, headers=auth(tokens["referral_client"])), 403, "insufficient-scope")
    # Staff who may read her cases, through a token without cases:read.
    assert_problem(client.get(url, headers=auth(alerts_only)), 403, "insufficient-scope")
    r = client.get(url)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(client.get(url, headers=auth("not-a-token")), 401, "unauthorized")
    assert M.tables_but_audit(sessions) == before
    with sessions() as s:
        reads = s.scalars(select(AuditEvent).where(AuditEvent.action == "person.read")).all()
        assert reads == []


def test_an_unknown_id_is_not_found_and_the_refusal_names_the_person(world, tokens, client, sessions):
    w, ids = world
    for person_id in (ids["person"] + 1000, 2**31 - 1):
        assert_problem(client.get(f"/api/v1/people/{person_id}", headers=auth(tokens["receiving"])), 404, "not-found")
    # Beyond the ids the API takes: no such route.
    assert_problem(client.get(f"/api/v1/people/{2**31}", headers=auth(tokens["receiving"])), 404, "not-found")
    assert_problem(client.get("/api/v1/people/abc", headers=auth(tokens["receiving"])), 404, "not-found")
    # A person out of the reader's sight is refused exactly as one that does not exist.
    out_of_sight = client.get(f"/api/v1/people/{ids['person']}", headers=auth(tokens["outsider"])).get_json()
    unknown = client.get(f"/api/v1/people/{ids['person'] + 1000}", headers=auth(tokens["outsider"])).get_json()
    assert out_of_sight == unknown
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")
                         .order_by(AuditEvent.seq)).all()
        assert [(r.object_type, r.object_id, r.case_id) for r in rows[:2]] == [
            ("person", str(ids["person"] + 1000), None), ("person", str(2**31 - 1), None)]
        assert rows[-2].object_id == str(ids["person"]) and rows[-2].action == "api GET /people/{person_id}"


def test_a_merged_records_id_answers_with_the_record_it_became(world, tokens, client, sessions):
    w, ids = world
    with unit_of_work(sessions) as s:
        fm = s.scalar(select(User).where(User.login == w.logins["fm_member"]))
        records.merge(s, fm, ids["person"], ids["candidate"], reason="同じ宛名の本人と確認", now=NOW)
    r = client.get(f"/api/v1/people/{ids['candidate']}", headers=auth(tokens["receiving"]))
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert (body["id"], body["requested_id"], body["merged_into"]) == (ids["person"], ids["candidate"], ids["person"])
    assert body["resident_id"] == RESIDENT_ID
    # The merged record's case is hers now (seen as far as the reader sees it), and no candidate is left open.
    assert len(body["cases"]) == 3 and body["candidates"] == []
    assert client.get(f"/api/v1/people/{ids['person']}", headers=auth(tokens["receiving"])).get_json()[
        "merged_into"] is None
    # Those who may not see her may not learn where the merged record went either.
    assert_problem(client.get(f"/api/v1/people/{ids['candidate']}", headers=auth(tokens["outsider"])),
                   404, "not-found")


def test_each_read_is_audited_with_the_parts_shown_and_no_personal_data(world, tokens, client, sessions):
    w, ids = world
    for role in ("receiving", "fm_other"):
        assert client.get(f"/api/v1/people/{ids['person']}", headers=auth(tokens[role])).status_code == 200
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.action == "person.read").order_by(AuditEvent.seq)).all()
        assert [(r.actor_label, r.object_type, r.object_id, r.outcome) for r in rows] == [
            ("m-receiving", "person", str(ids["person"]), "ok"), ("m-fm-other", "person", str(ids["person"]), "ok")]
        assert rows[0].detail["parts"] == ["identity", "details", "cases", "households"]
        assert rows[1].detail["parts"] == ["identity", "cases"]
        # Ids only: the cases and the candidates' records shown.
        assert rows[0].detail["cases"] and rows[1].detail["candidates"] == []
        assert all(r.client_id is not None for r in rows)  # the token's client is named
        text = json.dumps([r.detail for r in rows], ensure_ascii=False)
        for word in ("廿日", "ハツカ", RESIDENT_ID, "1960"):
            assert word not in text
        assert s.get(Person, ids["person"]).merged_into_id is None


def test_the_case_view_names_the_person_and_the_households(world, tokens, client, sessions):
    w, ids = world
    body = client.get(f"/api/v1/cases/{w.case_id}", headers=auth(tokens["receiving"])).get_json()
    assert (body["person_id"], body["person_match"]) == (ids["person"], "new")
    [household] = body["households"]
    assert {m["name"] for m in household["members"]} == {"廿日 太郎", "廿日 一郎"}
    # The household's other cases: her own second case and her son's, each as far as 生活福祉課 sees it.
    assert [(c["whose"], c["visible"], c["owner_code"], c["id"]) for c in household["cases"]] == [
        ("本人", False, "disability", None), ("世帯員 廿日 一郎", False, "disability", None)]
    # The flattened list stays as it was: the other members, without her.
    assert body["household"] == [{"relationship": "世帯員", "name": "廿日 一郎", "birth_year": 1985, "note": None}]
    # The same case for 障害福祉課's second case: the person was found by her 宛名番号.
    disability = client.get(f"/api/v1/cases/{ids['hers']}", headers=auth(tokens["fm_member"])).get_json()
    assert disability["access"] == "metadata" and "person_id" not in disability and "households" not in disability
    assert "廿日" not in json.dumps(disability, ensure_ascii=False)


def test_reads_and_refusals_of_the_record_reach_the_persons_disclosure(world, tokens, client, sessions):
    """開示請求: who looked at her record through the API is in the answer about any of her cases."""
    w, ids = world
    assert client.get(f"/api/v1/people/{ids['person']}", headers=auth(tokens["receiving"])).status_code == 200
    assert client.get(f"/api/v1/people/{ids['person']}", headers=auth(tokens["outsider"])).status_code == 404
    assert client.get(f"/api/v1/people/{ids['son']}", headers=auth(tokens["fm_other"])).status_code == 200
    with unit_of_work(sessions) as s:
        fm = s.scalar(select(User).where(User.login == w.logins["fm_member"]))
        records.merge(s, fm, ids["person"], ids["candidate"], reason="同じ宛名の本人と確認", now=NOW)
    # Read through the merged record's id: the row names her record.
    assert client.get(f"/api/v1/people/{ids['candidate']}", headers=auth(tokens["covered_partner"])).status_code == 200
    with unit_of_work(sessions) as s:
        number = s.get(Case, ids["hers"]).case_number
        _, rows = disclosure.person_trail(s, number)
    about_her = [(r.actor, r.action, r.outcome, r.case_number) for r in rows if r.case_number is None]
    assert about_her == [
        ("m-receiving", "person.read", "実施", None),
        ("m-outsider", "api GET /people/{person_id}", "拒否", None),
        ("m-fm", "person.merge", "実施", None),
        ("m-partner", "person.read", "実施", None),
    ]
    assert {r.action_label for r in rows if r.action == "person.read"} == {"本人の記録（世帯・ケース）の閲覧"}
