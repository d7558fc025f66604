"""The OpenAPI document says every rule the server holds a field's shape to: what it allows is taken."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from engine import vocab
from engine.departments import configured_codes, read_departments
from engine.fields import text_pattern, text_problem
from tests.api.support import assert_problem, auth, post_referral, referral
from tests.conftest import CONFIG_DIR, PROJECT_ROOT


@pytest.fixture
def document(client):
    return client.get("/api/v1/openapi.json").get_json()


def _prop(document, schema: str, name: str) -> dict:
    return document["components"]["schemas"][schema]["properties"][name]


def _allows(prop: dict, value: str) -> bool:
    """Whether a string fits a property, reading its pattern as JSON Schema (ECMA-262) does."""
    if len(value) < prop.get("minLength", 0) or len(value) > prop.get("maxLength", sys.maxsize):
        return False
    # fullmatch: ECMA-262's `$` is the end, never a place before a final line break as re.search's is.
    return re.fullmatch(prop["pattern"], value) is not None


@pytest.mark.parametrize("kind", [{}, {"one_line": True}, {"person_name": True}])
def test_text_patterns_allow_exactly_what_the_server_takes(kind):
    taken = re.compile(text_pattern(**kind))
    needed = re.compile(text_pattern(**kind, blank=False))
    for c in map(chr, range(0x110000)):
        if "\ud800" <= c <= "\udfff":
            continue  # a lone surrogate cannot be written in well-formed JSON text
        ok = text_problem(c, **kind) is None
        assert (taken.fullmatch(c) is not None) == ok, hex(ord(c))
        assert (needed.fullmatch(c) is not None) == (ok and bool(c.strip())), hex(ord(c))
        assert (needed.fullmatch(f"x{c}") is not None) == ok, hex(ord(c))
    assert taken.fullmatch("a\n") is None or not kind  # one line: not even a final line break


def test_the_document_refuses_what_the_server_refuses(document):
    note = _prop(document, "ResolveIn", "note")
    assert not _allows(note, "") and not _allows(note, " \u3000") and _allows(note, "電話で確認した")
    assert not _allows(note, "a\x00b") and not _allows(note, "a\x1bb") and _allows(note, "1行目\n2行目")
    organization = _prop(document, "ReferrerIn", "organization")
    assert not _allows(organization, "") and not _allows(organization, "  ") and not _allows(organization, "大野\n")
    name = _prop(document, "PersonIn", "name")
    assert not _allows(name, "\u202e郎太 日廿") and _allows(name, "廿日 太郎")
    given_by = _prop(document, "RecordConsentEvent", "given_by")
    assert not _allows(given_by, "本人\u2066") and not _allows(given_by, "") and _allows(given_by, "本人")

    categories = _prop(document, "ReferralIn", "categories")
    assert categories["minItems"] == 1
    assert categories["items"]["enum"] == list(vocab.codes("issue_categories"))
    assert _prop(document, "PersonIn", "area")["enum"] == [*vocab.codes("areas"), None]
    assert _prop(document, "HouseholdMemberIn", "birth_year")["minimum"] == 1850
    assert re.fullmatch(_prop(document, "PersonIn", "birth_date")["pattern"], "1899-12-31") is None
    assert _prop(document, "SendHandoffEvent", "version")["type"] == "integer"
    assert _prop(document, "RecordConsentEvent", "agencies")["minItems"] == 1
    # A member with a 宛名番号 needs a name.
    member = document["components"]["schemas"]["HouseholdMemberIn"]
    assert member["then"]["required"] == ["name"]


def test_a_version_written_as_a_whole_number_is_that_integer(client, make_token, actors, open_case):
    """JSON Schema's `integer` is a whole number however it is written: 3.0 is 3, as the document says."""
    token = make_token("cases:read,cases:write", user=actors.fm, name="fm-tool")
    case_id = open_case(categories=["poverty"])
    version = client.get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()["version"]
    url = f"/api/v1/cases/{case_id}/events"
    stale = client.post(url, json={"event": "accept_handoff", "version": float(version + 5)}, headers=auth(token))
    assert assert_problem(stale, 409, "stale-version")["current_version"] == version
    half = client.post(url, json={"event": "accept_handoff", "version": version + 0.5}, headers=auth(token))
    assert assert_problem(half, 422, "validation-error")["errors"] == {"version": ["整数で指定してください。"]}


def test_a_household_member_s_birth_year_may_be_a_whole_number_too(client, partner):
    body = referral(household=[{"relationship": "長男", "birth_year": 1974.0}])
    assert post_referral(client, partner, body).status_code == 201


def test_department_codes_are_the_configured_departments(document):
    everyone = [d["code"] for d in read_departments(CONFIG_DIR / "departments.yaml")]
    city = [d["code"] for d in read_departments(CONFIG_DIR / "departments.yaml") if d["kind"] == "city_section"]
    assert configured_codes(CONFIG_DIR) == everyone and configured_codes(CONFIG_DIR, city_only=True) == city
    assert _prop(document, "SendHandoffEvent", "to_department")["enum"] == everyone
    assert _prop(document, "SendHandoffEvent", "notify")["items"]["enum"] == everyone
    assert _prop(document, "RecordConsentEvent", "agencies")["uniqueItems"] is True
    assert _prop(document, "ConsentIn", "agencies")["items"]["enum"] == everyone
    assert _prop(document, "WithdrawConsentEvent", "return_to")["enum"] == [*city, None]
    assert _prop(document, "CloseEvent", "close_reason")["enum"] == list(vocab.codes("close_reasons"))
    assert _prop(document, "RefuseConsentEvent", "method")["enum"] == [*vocab.codes("consent_methods"), None]


def test_a_city_s_own_code_lists_are_the_enums_of_its_document(tmp_path):
    """The document is built from the configuration folder the server runs with, not from the repository's."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    categories = (config / "categories.yaml").read_text(encoding="utf-8")
    (config / "categories.yaml").write_text(
        categories.replace("issue_categories:\n", "issue_categories:\n  gambling: ギャンブル依存\n", 1), encoding="utf-8")
    departments = (config / "departments.yaml").read_text(encoding="utf-8")
    (config / "departments.yaml").write_text(
        departments + "  - code: kurashi_center\n    name: くらしサポートセンター\n    kind: city_section\n",
        encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "web.api.spec"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, "TSUNAGU_CONFIG_DIR": str(config)}, check=True).stdout
    schemas = json.loads(out)["components"]["schemas"]
    assert "gambling" in schemas["ReferralIn"]["properties"]["categories"]["items"]["enum"]
    assert "kurashi_center" in schemas["WithdrawConsentEvent"]["properties"]["return_to"]["enum"]
    assert "kurashi_center" in schemas["SendHandoffEvent"]["properties"]["to_department"]["enum"]
