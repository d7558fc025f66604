"""POST /api/v1/referral-batches: a CSV of referrals uploaded by a system, each row created as POST /referrals
would create it, once per external_ref, with an answer per row; a file that cannot be read is refused whole."""
from __future__ import annotations

from sqlalchemy import select

from engine.db import unit_of_work
from engine.models import ApiClient, AuditEvent, Case
from tests.api.support import assert_problem, auth, count, post_referral, referral

HEADER = ("external_ref,referrer.organization,person.name,person.name_kana,person.birth_date,person.area,"
          "categories,summary,household.1.relationship,household.1.birth_year")
EIGHTY_FIFTY = ("OONO-1,大野地域包括支援センター,大野 ウメ,オオノ ウメ,昭和21年5月1日,大野,elder_care hikikomori,"
                "80代の母と50代の長男の二人世帯。,長男,1974")
POVERTY = "OONO-2,大野地域包括支援センター,大野 花子,,R8.4.1,大野,poverty,家賃を滞納している。,,"
NO_NAME = "OONO-3,大野地域包括支援センター,,,2026/4/31,大野,poverty,家賃を滞納している。,,"


def _csv(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def _send(client, token: str, body: bytes, content_type: str = "text/csv; charset=utf-8"):
    return client.post("/api/v1/referral-batches", data=body, headers=auth(token, **{"Content-Type": content_type}))


def test_each_row_is_created_as_a_referral_and_answered_in_the_files_order(client, partner, sessions):
    resp = _send(client, partner, _csv(EIGHTY_FIFTY, POVERTY))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    answer = resp.get_json()
    assert (answer["created"], answer["replayed"], answer["duplicate"], answer["refused"]) == (2, 0, 0, 0)
    first, second = answer["rows"]
    assert (first["line"], first["status"], second["line"], second["status"]) == (2, "created", 3, "created")
    assert first["referral"]["routing"]["proposed_department"]["code"] == "elderly"
    with unit_of_work(sessions) as s:
        case = s.get(Case, first["referral"]["id"])
        assert (case.external_ref, case.state, case.source, case.case_number) == (
            "OONO-1", "handoff", "api", first["referral"]["case_number"])
        client_id = s.scalar(select(ApiClient.id).where(ApiClient.name == "oono-houkatsu"))
        assert case.referral_client_id == client_id
        # Audited as the POST is: the client and the address it came from.
        opened = s.scalar(select(AuditEvent).where(AuditEvent.case_id == case.id, AuditEvent.action == "case.open"))
        assert (opened.client_id, opened.remote_addr) == (client_id, "127.0.0.1")
    # The same file again creates nothing: each row answers with its first answer.
    again = _send(client, partner, _csv(EIGHTY_FIFTY, POVERTY)).get_json()
    assert (again["created"], again["replayed"]) == (0, 2)
    assert again["rows"][0]["referral"]["id"] == first["referral"]["id"]
    assert count(sessions, Case) == 2


def test_a_refused_row_is_said_by_line_and_column_and_the_others_go_on(client, partner, sessions):
    answer = _send(client, partner, _csv(EIGHTY_FIFTY, NO_NAME, POVERTY)).get_json()
    assert (answer["created"], answer["refused"]) == (2, 1)
    refused = answer["rows"][1]
    assert (refused["line"], refused["status"], refused["referral"]) == (3, "refused", None)
    assert "person.name" in refused["errors"] and "person.birth_date" in refused["errors"]
    assert [r["status"] for r in answer["rows"]] == ["created", "refused", "created"]
    assert count(sessions, Case) == 2


def test_a_row_already_posted_under_its_own_key_is_a_duplicate_not_a_second_case(client, partner, sessions):
    posted = post_referral(client, partner, referral(external_ref="OONO-2"))
    assert posted.status_code == 201
    answer = _send(client, partner, _csv(POVERTY)).get_json()
    assert answer["duplicate"] == 1 and answer["rows"][0]["status"] == "duplicate"
    number = posted.get_json()["case_number"]
    assert answer["rows"][0]["errors"]["external_ref"] == [
        f"external_ref「OONO-2」の紹介は既にケース {number}（id {posted.get_json()['id']}）として登録されています。"]
    assert count(sessions, Case) == 1


def test_a_file_in_shift_jis_is_read(client, partner, sessions):
    answer = _send(client, partner, ("\n".join([HEADER, POVERTY]) + "\n").encode("cp932"), "text/csv").get_json()
    assert answer["created"] == 1
    with unit_of_work(sessions) as s:
        assert s.scalar(select(Case.summary)) == "家賃を滞納している。"


def test_a_file_that_cannot_be_read_is_refused_whole_and_nothing_is_created(client, partner, sessions):
    missing_column = ("external_ref,person.name\nX-1,大野 花子\n").encode("utf-8")
    problem = assert_problem(_send(client, partner, missing_column), 422, "validation-error")
    assert "必須の列がありません" in problem["detail"] and "1行目" in problem["detail"]
    assert problem["errors"] == {"file": [problem["detail"]]}
    assert_problem(_send(client, partner, b""), 422, "validation-error")
    assert_problem(_send(client, partner, b"\xff\xfe\x00\x00garbage"), 422, "validation-error")
    assert count(sessions, Case) == 0


def test_more_rows_than_one_batch_takes_is_refused_before_any_is_created(client, partner, sessions):
    rows = [f"BIG-{i},大野地域包括支援センター,大野 花子{i},,R8.4.1,大野,poverty,家賃。,," for i in range(501)]
    problem = assert_problem(_send(client, partner, _csv(*rows)), 413, "payload-too-large")
    assert "500行まで" in problem["detail"] and "501行" in problem["detail"]
    assert count(sessions, Case) == 0


def test_only_csv_from_a_client_allowed_to_send_referrals(client, partner, make_token, sessions):
    assert_problem(_send(client, partner, _csv(POVERTY), "application/json"), 415, "unsupported-media-type")
    reader = make_token("referrals:read")
    assert_problem(_send(client, reader, _csv(POVERTY)), 403, "insufficient-scope")
    watcher = make_token("watch:write,watch:read")
    assert_problem(_send(client, watcher, _csv(POVERTY)), 403, "insufficient-scope")
    resp = client.post("/api/v1/referral-batches", data=_csv(POVERTY), headers={"Content-Type": "text/csv"})
    assert_problem(resp, 401, "unauthorized")
    assert count(sessions, Case) == 0


def test_the_document_describes_the_csv_body_and_the_answer_per_row(client):
    op = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/referral-batches"]["post"]
    assert "text/csv" in op["requestBody"]["content"]
    assert op["x-required-scope"] == "referrals:write"
    assert {"200", "401", "403", "413", "415", "422"} <= set(op["responses"])
