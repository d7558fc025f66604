"""POST /referrals: every row of the contract's table, with its status code and body, on a real database."""
from __future__ import annotations

import http.client
import io
import json

import pytest
from sqlalchemy import select

from engine import case_departments
from engine.db import unit_of_work
from engine.models import Alert, AuditEvent, Case, Consent, Department, HouseholdMember, IdempotencyKey, User
from engine.referrals import clients as api_clients
from engine.referrals import intake as referrals
from engine.users import accounts as users
from tests.api.support import assert_problem, auth, count, post_referral, referral, served


def _nothing_written(sessions, *, refusals: int | None = None) -> None:
    """Bad input leaves no case, no idempotency row, and no audit row but the refusal itself."""
    assert count(sessions, Case) == 0
    assert count(sessions, IdempotencyKey) == 0
    setup = ("api_token.create", "rules.load", "user.add")
    assert count(sessions, AuditEvent, AuditEvent.outcome == "ok", AuditEvent.action.not_in(setup)) == 0
    if refusals is not None:
        assert count(sessions, AuditEvent, AuditEvent.outcome == "refused") == refusals


def test_created_answers_201_with_location_and_the_routed_case(client, partner, sessions, make_token, actors):
    resp = post_referral(client, partner)
    assert resp.status_code == 201
    body = resp.get_json()
    assert set(body) >= {"id", "case_number", "status", "owning_department", "routing", "person_id", "person_match"}
    assert resp.headers["Location"].endswith(f"/api/v1/referrals/{body['id']}")
    assert "Idempotent-Replayed" not in resp.headers
    assert resp.headers["Cache-Control"] == "no-store"
    # 8050 (elder_care + hikikomori) → routed to 高齢介護課: the つなぐシート is sent, nobody owns it yet.
    assert body["status"] == "handoff"
    assert body["owning_department"] is None
    assert "8050" in body["routing"]["reason"]
    assert body["routing"]["proposed_department"] == {"code": "elderly", "name": "高齢介護課"}
    assert body["case_number"].startswith("R")
    with unit_of_work(sessions) as s:
        case = s.get(Case, body["id"])
        assert (case.source, case.external_ref) == ("api", "HOUKATSU-OONO-2026-0042")
        assert case.case_number == body["case_number"]
        assert case.person.name == "廿日 太郎" and case.person.area == "大野"
        assert str(case.person.birth_date) == "1946-05-01" and case.person.resident_id == "0001234567"
        listed = s.scalars(select(HouseholdMember).where(HouseholdMember.recorded_with_case_id == case.id)).all()
        assert [(m.relationship_label, m.birth_year, m.relative_to_id) for m in listed] == [
            ("長男", 1974, case.person_id)]
        # A person the city did not know: a new record, and the answer names it.
        assert (body["person_id"], body["person_match"]) == (case.person_id, "new")
        assert case.category_codes == ["elder_care", "hikikomori"] and case.primary_category == "elder_care"
        assert case.referrer["organization"] == "大野地域包括支援センター"
        assert case.routing_reason == body["routing"]["reason"]
        # The contract's example carries the person's consent, naming two agencies: recorded as a consent.
        consent = s.scalar(select(Consent).where(Consent.case_id == case.id))
        assert (consent.status, consent.given_by, consent.method, str(consent.obtained_on)) == (
            "given", "本人", "written", "2026-11-30")
        assert sorted(s.get(Department, a.department_id).code for a in consent.agencies) == [
            "hikikomori_station", "houkatsu_oono"]
        assert consent.recorded_by_id is None and consent.recorded_by_client_id == case.referral_client_id
        key = s.scalar(select(IdempotencyKey))
        assert (key.key, key.status_code, key.case_id, key.response_body) == ("key-1", 201, case.id, body)
        opened = s.scalar(select(AuditEvent).where(AuditEvent.action == "case.open"))
        assert opened.actor_label == "client:oono-houkatsu"
    # The same id is the referrer's view and the staff view.
    assert client.get(resp.headers["Location"], headers=auth(partner)).get_json()["id"] == body["id"]
    staff = make_token("cases:read", user=actors.elderly)
    staff_view = client.get(f"/api/v1/cases/{body['id']}", headers=auth(staff)).get_json()
    assert staff_view["case_number"] == body["case_number"]


def test_unrouted_referral_stays_in_intake_and_says_why(client, partner):
    resp = post_referral(client, partner, referral(categories=["other"]))
    body = resp.get_json()
    assert resp.status_code == 201
    assert body["status"] == "intake"
    assert body["routing"]["rule"] is None and body["routing"]["proposed_department"] is None
    assert "相談まるごとサポートデスク" in body["routing"]["reason"]


def test_same_key_same_body_replays_the_first_answer(client, partner, sessions):
    first = post_referral(client, partner)
    again = post_referral(client, partner)
    assert again.status_code == first.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    # Key order and spacing do not make another body.
    raw = json.dumps(dict(reversed(list(referral().items()))), ensure_ascii=False, indent=4)
    third = client.post("/api/v1/referrals", data=raw.encode(), content_type="application/json",
                        headers=auth(partner, **{"Idempotency-Key": "key-1"}))
    assert third.status_code == 201 and third.get_json() == first.get_json()
    assert count(sessions, Case) == 1 and count(sessions, IdempotencyKey) == 1


def test_a_retry_that_missed_the_first_key_row_by_a_moment_is_still_a_replay(client, partner, sessions, monkeypatch):
    """Two requests with one key: the second looked the key up just before the first committed, then
    finds the first's case by its external_ref. It answers as the first did, not 409 duplicate-referral
    (seen on PostgreSQL, where nothing serializes the two)."""
    first = post_referral(client, partner)
    look_up = referrals._earlier_answer
    calls = []

    def not_yet_committed_the_first_time(*args, **kwargs):
        calls.append(1)
        return None if len(calls) == 1 else look_up(*args, **kwargs)

    monkeypatch.setattr(referrals, "_earlier_answer", not_yet_committed_the_first_time)
    again = post_referral(client, partner)
    assert len(calls) == 2
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(sessions, Case) == 1 and count(sessions, IdempotencyKey) == 1


def test_same_key_different_body_is_409(client, partner, sessions):
    post_referral(client, partner)
    resp = post_referral(client, partner, referral(summary="別の内容"))
    assert_problem(resp, 409, "idempotency-key-reused")
    assert count(sessions, Case) == 1


def test_keys_are_per_client(client, partner, make_token, sessions):
    other = make_token("referrals:write", name="other-system")
    assert post_referral(client, partner).status_code == 201
    resp = post_referral(client, other)
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp.headers
    assert count(sessions, Case) == 2


def test_same_external_ref_under_another_key_is_409_naming_the_referral(client, partner, sessions):
    first = post_referral(client, partner).get_json()
    resp = post_referral(client, partner, key="key-2")
    body = assert_problem(resp, 409, "duplicate-referral")
    assert body["existing_referral"]["id"] == first["id"]
    assert body["existing_referral"]["case_number"] == first["case_number"]
    assert body["existing_referral"]["location"].endswith(f"/api/v1/referrals/{first['id']}")
    assert first["case_number"] in body["detail"]
    assert count(sessions, Case) == 1 and count(sessions, IdempotencyKey) == 1


def test_missing_key_is_400(client, partner, sessions):
    body = assert_problem(post_referral(client, partner, key=None), 400, "idempotency-key-missing")
    assert "Idempotency-Key" in body["errors"]
    _nothing_written(sessions, refusals=1)


@pytest.mark.parametrize("key", ["", "x" * 256, "キー", "tab\there"])
def test_malformed_key_is_400(client, partner, sessions, key):
    body = assert_problem(post_referral(client, partner, key=key), 400,
                          "idempotency-key-missing" if key == "" else "idempotency-key-invalid")
    assert "Idempotency-Key" in body["errors"]
    # The detail says the same as the type: an empty key is missing, not too short.
    assert ("必要" in body["detail"]) is (key == "")
    _nothing_written(sessions)


def test_key_of_255_printable_characters_is_accepted(client, partner):
    key = "".join(chr(32 + i % 95) for i in range(255))
    assert post_referral(client, partner, key=key).status_code == 201


def _without(path: str) -> dict:
    body = referral()
    *parents, last = path.split(".")
    node = body
    for p in parents:
        node = node[p]
    del node[last]
    return body


def _person(**over) -> dict:
    return referral(person={**referral()["person"], **over})


INVALID = [
    ("missing external_ref", _without("external_ref"), "external_ref"),
    ("blank external_ref", referral(external_ref="  "), "external_ref"),
    ("external_ref too long", referral(external_ref="x" * 256), "external_ref"),
    ("missing referrer", _without("referrer"), "referrer"),
    ("missing referrer.organization", referral(referrer={"contact_name": "山田"}), "referrer.organization"),
    ("missing person.name", referral(person={"area": "大野"}), "person.name"),
    ("person not an object", referral(person="廿日 太郎"), "person"),
    ("no categories", referral(categories=[]), "categories"),
    ("missing categories", _without("categories"), "categories"),
    ("unknown category", referral(categories=["elder_care", "space_travel"]), "categories"),
    ("categories not a list", referral(categories="elder_care"), "categories"),
    ("unknown area", _person(area="東京"), "person.area"),
    ("future birth date", _person(birth_date="2999-01-01"), "person.birth_date"),
    ("impossible birth date", _person(birth_date="1946-02-30"), "person.birth_date"),
    ("birth date not a date", _person(birth_date="昭和21年"), "person.birth_date"),
    ("birth date in the basic form", _person(birth_date="19460501"), "person.birth_date"),
    ("unknown sex", _person(sex="x"), "person.sex"),
    ("NUL in a name", _person(name="廿日\x00太郎"), "person.name"),
    ("name too long", _person(name="あ" * 101), "person.name"),
    ("line break in a name", _person(name="廿日\n太郎"), "person.name"),
    ("tab in the external reference", referral(external_ref="REF\t1"), "external_ref"),
    ("missing summary", _without("summary"), "summary"),
    ("blank summary", referral(summary=" \n "), "summary"),
    ("urgency not in the list", referral(urgency="high"), "urgency"),
    ("consent not a boolean", referral(consent_to_share="yes"), "consent_to_share"),
    ("birth year as text", referral(household=[{"birth_year": "1974"}]), "household.0.birth_year"),
    ("birth year in the future", referral(household=[{"birth_year": 3000}]), "household.0.birth_year"),
    ("a member's resident_id without a name", referral(household=[{"relationship": "長男", "resident_id": "0002"}]),
     "household.0.name"),
    ("unknown field", referral(priority="high"), "priority"),
    ("unknown field inside person", _person(nickname="たろう"), "person.nickname"),
]


@pytest.mark.parametrize("why,body,field", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_field_is_422_naming_the_field_and_writes_nothing(client, partner, sessions, why, body, field):
    resp = post_referral(client, partner, body)
    problem = assert_problem(resp, 422, "validation-error")
    assert field in problem["errors"], problem
    assert all(isinstance(m, str) and m for m in problem["errors"][field])
    assert field in problem["detail"] or len(problem["errors"]) > 1
    _nothing_written(sessions, refusals=1)


def test_japanese_messages(client, partner):
    problem = post_referral(client, partner, _person(birth_date="2999-01-01", area="東京")).get_json()
    assert problem["errors"]["person.birth_date"] == ["未来の日付は指定できません。"]
    assert problem["errors"]["person.area"] == ["「東京」という圏域はありません。"]
    problem = post_referral(client, partner, _person(birth_date="1899-12-31")).get_json()
    assert problem["errors"]["person.birth_date"] == ["1900年1月1日より前の日付は指定できません。"]


@pytest.mark.parametrize("birth_date,message", [
    ("2023-02-29", "「2023-02-29」という日付はありません（月・日の範囲を確かめてください）。"),
    ("1990-13-01", "「1990-13-01」という日付はありません（月・日の範囲を確かめてください）。"),
    ("1990-1-1", "日付は YYYY-MM-DD の形で指定してください。"),
])
def test_a_date_in_form_but_not_on_the_calendar_says_so(client, partner, birth_date, message):
    problem = post_referral(client, partner, _person(birth_date=birth_date)).get_json()
    assert problem["errors"]["person.birth_date"] == [message]


@pytest.mark.parametrize("raw,name,detail", [
    (b"{not json", "malformed-json", "1行目 2文字目"),
    (b"", "malformed-json", "本文がありません"),
    (b"\xff\xfe\x00", "malformed-json", "UTF-8"),
    (b'{"a": NaN}', "malformed-json", "JSON として読めません"),
    # A key given twice, at any depth, and where the syntax goes wrong.
    (b'{"external_ref": "a",\n "external_ref": "b"}', "malformed-json", "キー「external_ref」が2回以上あります"),
    (b'{"person": {"name": "a", "name": "b"}}', "malformed-json", "キー「name」が2回以上あります"),
    (b'{"summary": "a",\n  "urgency": }', "malformed-json", "2行目 14文字目"),
    (b"[1, 2]", "not-a-json-object", "JSON オブジェクト"),
    (b'"a string"', "not-a-json-object", "JSON オブジェクト"),
    (b"null", "not-a-json-object", "JSON オブジェクト"),
])
def test_body_not_json_or_not_an_object_is_400_and_says_why(client, partner, sessions, raw, name, detail):
    resp = client.post("/api/v1/referrals", data=raw, content_type="application/json",
                       headers=auth(partner, **{"Idempotency-Key": "k"}))
    assert detail in assert_problem(resp, 400, name)["detail"]
    _nothing_written(sessions, refusals=1)


def test_body_over_64_kib_is_413(client, partner, sessions):
    body = referral(summary="あ" * 22000)  # 66 000 bytes of UTF-8
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) > 64 * 1024
    resp = client.post("/api/v1/referrals", data=raw, content_type="application/json",
                       headers=auth(partner, **{"Idempotency-Key": "k"}))
    assert_problem(resp, 413, "payload-too-large")
    _nothing_written(sessions, refusals=1)


def test_body_just_under_64_kib_is_accepted(client, partner):
    body = referral(household=[{"relationship": "同居人", "note": "x" * 2000} for _ in range(30)])
    raw = json.dumps(body, ensure_ascii=False).encode()
    body["summary"] += "a" * (64 * 1024 - len(raw) - 1)
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) == 64 * 1024 - 1
    resp = client.post("/api/v1/referrals", data=raw, content_type="application/json",
                       headers=auth(partner, **{"Idempotency-Key": "k"}))
    assert resp.status_code == 201


def _sized(n: int) -> bytes:
    """A valid referral body of exactly `n` bytes."""
    body = referral(household=[{"relationship": "同居人", "note": "x" * 2000} for _ in range(30)])
    body["summary"] += "a" * (n - len(json.dumps(body, ensure_ascii=False).encode()))
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) == n
    return raw


@pytest.mark.parametrize(("size", "status"), [(64 * 1024, 201), (64 * 1024 + 1, 413), (70_000, 413)])
def test_a_chunked_body_has_the_same_limit(client, partner, sessions, size, status):
    """Without Content-Length (chunked) the body is read up to the limit: one byte more is 413, not a cut JSON."""
    resp = client.post("/api/v1/referrals", input_stream=io.BytesIO(_sized(size)),
                       headers=auth(partner, **{"Idempotency-Key": "k", "Content-Type": "application/json",
                                                "Transfer-Encoding": "chunked"}),
                       environ_overrides={"wsgi.input_terminated": True})  # as gunicorn says of a chunked body
    assert resp.status_code == status, resp.get_data(as_text=True)
    if status == 413:
        assert "64 KiB" in assert_problem(resp, 413, "payload-too-large")["detail"]
        _nothing_written(sessions, refusals=1)


@pytest.mark.slow
def test_a_chunked_body_through_the_production_server(database_url, partner, sessions, tmp_path):
    """The same through `tsunagu serve` (gunicorn) and a client that streams its body in chunks."""
    with served(database_url, tmp_path) as port:
        answers = []
        for size in (70_000, 64 * 1024):
            raw = _sized(size)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/api/v1/referrals", body=iter([raw[:30_000], raw[30_000:]]), encode_chunked=True,
                         headers=auth(partner, **{"Idempotency-Key": f"k{size}", "Content-Type": "application/json"}))
            resp = conn.getresponse()
            answers.append((resp.status, resp.getheader("Content-Type"), json.loads(resp.read())))
            conn.close()
    assert [(status, kind) for status, kind, _ in answers] == [(413, "application/problem+json"),
                                                               (201, "application/json")]
    assert answers[0][2]["type"].endswith("/payload-too-large")
    assert count(sessions, Case) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None,
                                          "application/merge-patch+json", "application/problem+json",
                                          "application/vnd.api+json", "application/json; charset=iso-8859-1"])
def test_content_type_not_json_is_415(client, partner, sessions, content_type):
    headers = auth(partner, **{"Idempotency-Key": "k"})
    if content_type:
        headers["Content-Type"] = content_type
    resp = client.post("/api/v1/referrals", data=json.dumps(referral()), headers=headers)
    assert_problem(resp, 415, "unsupported-media-type")
    _nothing_written(sessions, refusals=1)


def test_a_body_not_in_utf8_is_400(client, partner, sessions):
    resp = client.post("/api/v1/referrals", data=json.dumps(referral(), ensure_ascii=False).encode("utf-16"),
                       headers=auth(partner, **{"Idempotency-Key": "k", "Content-Type": "application/json"}))
    assert "UTF-8" in assert_problem(resp, 400, "malformed-json")["detail"]
    _nothing_written(sessions, refusals=1)


def test_json_with_charset_is_accepted(client, partner):
    resp = client.post("/api/v1/referrals", data=json.dumps(referral()).encode(),
                       headers=auth(partner, **{"Idempotency-Key": "k",
                                                "Content-Type": "application/json; charset=utf-8"}))
    assert resp.status_code == 201


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer tsu_not-a-real-token", "Basic dXNlcjpwYXNz", "bearer  "])
def test_no_or_bad_token_is_401(client, sessions, departments, header):
    headers = {"Idempotency-Key": "k"}
    if header is not None:
        headers["Authorization"] = header
    resp = client.post("/api/v1/referrals", json=referral(), headers=headers)
    assert_problem(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert count(sessions, Case) == 0 and count(sessions, IdempotencyKey) == 0


def test_token_without_the_scope_is_403(client, make_token, sessions, actors):
    reader = make_token("referrals:read")
    body = assert_problem(post_referral(client, reader), 403, "insufficient-scope")
    assert body["required_scope"] == "referrals:write"
    staff = make_token("cases:read,cases:write", user=actors.window)
    assert_problem(post_referral(client, staff), 403, "insufficient-scope")
    assert count(sessions, Case) == 0
    writer = make_token("referrals:write")
    assert_problem(client.get("/api/v1/referrals", headers=auth(writer)), 403, "insufficient-scope")


def test_revoked_token_stops_at_once(client, partner, sessions):

    assert post_referral(client, partner).status_code == 201
    with unit_of_work(sessions) as s:
        assert api_clients.revoke_tokens(s, "oono-houkatsu") == 1
    assert_problem(client.get("/api/v1/referrals", headers=auth(partner)), 401, "unauthorized")


def test_disabled_users_tokens_stop_working(client, make_token, actors, sessions):

    token = make_token("referrals:write,cases:read", user=actors.window)
    assert post_referral(client, token).status_code == 201
    with unit_of_work(sessions) as s:
        users.disable_user(s, None, "window")
    assert_problem(post_referral(client, token, key="key-2", body=referral(external_ref="B")), 401, "unauthorized")
    assert_problem(client.get("/api/v1/cases/1", headers=auth(token)), 401, "unauthorized")


def test_token_acting_for_a_user_opens_the_case_as_that_user(client, make_token, actors, sessions):
    token = make_token("referrals:write,referrals:read", user=actors.elderly)
    body = post_referral(client, token).get_json()
    with unit_of_work(sessions) as s:
        case = s.get(Case, body["id"])
        assert case.created_by_id == actors.elderly.id
        assert case.created_department_id == s.get(User, actors.elderly.id).department_id


def test_refusal_keeps_only_its_audit_row(client, partner, sessions):
    post_referral(client, partner, referral(categories=["nope"]))
    with unit_of_work(sessions) as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).all()
        assert [(r.action, r.actor_label, r.detail["status"]) for r in rows] == [
            ("api POST /referrals", "client:oono-houkatsu", 422)]


def test_body_errors_come_before_the_key_and_the_fields(client, partner):
    """Size, media type and syntax of the body are judged first, then the key, then the fields."""
    headers = auth(partner)  # no Idempotency-Key
    big = json.dumps(referral(summary="あ" * 22000)).encode()
    assert_problem(client.post("/api/v1/referrals", data=big, content_type="application/json", headers=headers),
                   413, "payload-too-large")
    assert_problem(client.post("/api/v1/referrals", data=b"{}", content_type="text/plain", headers=headers),
                   415, "unsupported-media-type")
    assert_problem(client.post("/api/v1/referrals", data=b"{", content_type="application/json", headers=headers),
                   400, "malformed-json")
    assert_problem(client.post("/api/v1/referrals", json={"external_ref": 5}, headers=headers),
                   400, "idempotency-key-missing")


def test_a_referral_the_rules_sent_and_the_receiver_returned_comes_to_the_desk(client, partner, fire, actors,
                                                                                sessions):
    """A sheet the rules sent on arrival has no sending department: its 返送 goes to the desk, which holds
    the case back in 受付 and must send it on, not to the FM dashboard alone."""
    created = post_referral(client, partner).get_json()  # 8050 → 高齢介護課
    with unit_of_work(sessions) as s:
        receiver = s.get(Case, created["id"]).open_primary_handoff.to_department.code
    fire(getattr(actors, receiver), created["id"], "decline_handoff", reason="所管外")
    with unit_of_work(sessions) as s:
        alert = s.scalars(select(Alert).where(Alert.case_id == created["id"], Alert.kind == "handoff_declined")).one()
        assert s.get(Department, alert.department_id).code == "desk"


def test_a_new_case_asks_nothing_it_already_knows(app, client, partner, sessions):
    """A referral is the hottest write path: the case it opens has no sheets and no department rows yet,
    so routing it neither loads its sheets nor deletes its rows before writing them."""
    from sqlalchemy import event

    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    engine = app.extensions["tsunagu.engine"]
    event.listen(engine, "before_cursor_execute", note)
    try:
        resp = post_referral(client, partner)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert resp.status_code == 201 and resp.get_json()["status"] == "handoff"
    assert any(s.startswith("INSERT INTO handoffs") for s in seen)
    assert any(s.startswith("INSERT INTO case_departments") for s in seen)
    assert not [s for s in seen if s.startswith("SELECT") and "FROM handoffs" in s]
    assert not [s for s in seen if s.startswith("DELETE FROM case_departments")]
    # … and the rows are what a rebuild from the records gives.
    with unit_of_work(sessions) as s:
        assert case_departments.drift(s) == []
