"""Schemathesis over every operation of the OpenAPI document, in-process against the app's WSGI with a
valid token, with data that fits the document and data that does not: never a 5xx, every answer conforms
to the document (status code, content type, body, headers), and data that fits the document is accepted
(2xx) or refused for the state of things (401, 403, 404, 409, or a 422 about the clock or the records),
never for its shape: a client made from the document never sends what is refused."""
from __future__ import annotations

import json
import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from engine.db import unit_of_work
from engine.models import Alert
from engine.referrals.clients import SCOPES, WATCH_SCOPES
from web.api.spec import COMMITTED

# What no document can say, since it depends on the day: a date or year in the future, a consent obtained
# too long before the referral. Anything else refused in data that fits the document is the document's fault.
STATE_REFUSALS = re.compile("|".join((
    "未来の日付は指定できません",
    "先の日時は指定できません",
    r"1850年から\d{4}年までの西暦",
    "日前以降の日付にしてください",
)))


def _refused_for_state(response) -> bool:
    if response.status_code != 422:
        return False
    problem = response.json()
    if problem["type"] != "/api/v1/problems/validation-error":
        return False
    return all(STATE_REFUSALS.search(m) for ms in problem["errors"].values() for m in ms)


def _file_refused(response, case) -> bool:
    """A CSV upload whose file cannot be read: JSON Schema can say "text", not the columns a CSV must have."""
    if not case.operation.path.endswith("/referral-batches") or response.status_code != 422:
        return False
    problem = response.json()
    return problem["type"] == "/api/v1/problems/validation-error" and set(problem["errors"]) == {"file"}


@schemathesis.check
def fitting_data_accepted(ctx, response, case):
    """positive_data_acceptance, but for a refusal about the state of things, or a CSV file that cannot be read:
    neither can a document say."""
    if _refused_for_state(response) or _file_refused(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [not_a_server_error, fitting_data_accepted, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
# Enough to meet every kind of wrong input of every operation, small enough for ~20 s per database;
# TSUNAGU_SCHEMATHESIS_EXAMPLES=500 (say) for a deeper run, with fresh random data each time.
EXAMPLES = int(os.environ.get("TSUNAGU_SCHEMATHESIS_EXAMPLES") or 15)
DERANDOMIZE = "TSUNAGU_SCHEMATHESIS_EXAMPLES" not in os.environ
_PATHS = json.loads(COMMITTED.read_text(encoding="utf-8"))["paths"]
OPERATIONS = [(method.upper(), path) for path, item in _PATHS.items() for method in item if method != "parameters"]
# Operations that take no input at all (liveness, readiness) have no wrong data to send.
NO_INPUT = {(m, p) for m, p in OPERATIONS
            if not _PATHS[p][m.lower()].get("parameters") and "requestBody" not in _PATHS[p][m.lower()]
            and "security" not in _PATHS[p][m.lower()]}
# Each operation with data that fits and data that does not; those with an id also on objects that exist.
RUNS = [(m, p, mode) for m, p in OPERATIONS for mode in ("positive", "negative", "existing")
        if (mode != "existing" or "{" in p) and (mode != "negative" or (m, p) not in NO_INPUT)]


@pytest.fixture
def api(app, client, make_token, actors, open_case, sessions):
    """The app's schema, tokens (every scope but a 見守り partner's, acting for the FM; a partner's for its
    reports), and ids of things that exist."""
    from schemas.watch import EXAMPLE as WATCH_REPORT
    from tests.api.support import post_referral

    open_case(categories=["poverty"])
    open_case(categories=["other"])
    token = make_token(",".join(s for s in SCOPES if s not in WATCH_SCOPES), user=actors.fm, name="schemathesis")
    watcher = make_token(",".join(WATCH_SCOPES), name="schemathesis-watch")
    report = client.post("/api/v1/watch-reports", json=WATCH_REPORT,
                         headers={"Authorization": f"Bearer {watcher}", "Idempotency-Key": "report"}).get_json()
    created = post_referral(client, token).get_json()
    referral_id = created["id"]
    with unit_of_work(sessions) as s:
        alert_id = s.query(Alert.id).order_by(Alert.id).first()[0]
    existing = {"referral_id": referral_id, "case_id": referral_id, "alert_id": alert_id,
                "person_id": created["person_id"], "report_id": report["id"]}

    def headers_for(path: str) -> dict:
        return {"Authorization": f"Bearer {watcher if path.startswith('/api/v1/watch-reports') else token}"}

    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app), headers_for, existing


@pytest.mark.parametrize("method,path,mode", RUNS, ids=[f"{m} {p} {mode}" for m, p, mode in RUNS])
def test_operation_conforms(api, method, path, mode):
    schema, headers_for, existing = api
    headers = headers_for(path)
    operation = schema[path][method]
    names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    strategy = operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE, headers=headers,
        path_parameters={n: existing[n] for n in names} if mode == "existing" else None)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
