"""The readable API docs speak Japanese: headings, answers, types and places are in the page's words, while
what a program reads (paths, field and schema names, codes) stays as the OpenAPI document spells it."""
from __future__ import annotations

import re
from html.parser import HTMLParser

from web.api import spec as api_spec

# English the page showed as words to read: flask-smorest's answers for 500 and 503 and for each success,
# the tags' names as headings, JSON Schema's types and the parameters' places, Python's False and None.
ENGLISH = {"Internal", "Server", "Error", "Service", "Unavailable", "OK", "Created", "Referrals", "Cases",
           "People", "Alerts", "Health", "string", "integer", "boolean", "object", "query", "path", "header",
           "False", "True", "None", "Total"}


class _Prose(HTMLParser):
    """The page's text outside identifiers (<code>, the links to schemas, the HTTP methods), and its h2s."""

    def __init__(self):
        super().__init__()
        self.words: list[str] = []
        self.headings: list[str] = []
        self._skip: list[str] = []
        self._in = ""
        self._style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("code", "style") or (tag == "a" and (attrs.get("href") or "").startswith("#schema-")) \
                or (tag == "span" and "method" in (attrs.get("class") or "")):
            self._skip.append(tag)
        elif tag in ("h2", "title"):
            self._in = tag
            self.headings.append("")

    def handle_endtag(self, tag):
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()
        elif tag in ("h2", "title"):
            self._in = ""

    def handle_data(self, data):
        if self._in:
            self.headings[-1] += data
        if not self._skip:
            self.words += re.findall(r"[A-Za-z]+", data)


def test_the_docs_page_reads_in_japanese(client):
    html = client.get("/api/v1/docs").get_data(as_text=True)
    prose = _Prose()
    prose.feed(html)
    assert ENGLISH.isdisjoint(prose.words), sorted(ENGLISH.intersection(prose.words))
    assert all(re.search(r"[^\x00-\x7f]", h) for h in prose.headings), prose.headings
    for heading in ("紹介", "ケース", "本人の記録", "アラート", "死活監視"):
        assert f"<h2>{heading}</h2>" in html
    assert "一時的に利用できない" in html and "サーバーで問題が起きた" in html
    assert "既定 false" in html and "既定 False" not in html


def test_the_document_keeps_its_identifiers_and_speaks_japanese_only_in_its_descriptions(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert [t["name"] for t in document["tags"]] == ["Referrals", "WatchReports", "Cases", "People", "Alerts", "Health"]
    assert document["info"]["title"] == "Tsunagu API"
    responses = document["components"]["responses"]
    assert responses["INTERNAL_SERVER_ERROR"]["description"].startswith("サーバーで問題が起きた")
    assert responses["SERVICE_UNAVAILABLE"]["description"].startswith("一時的に利用できない")
    for item in document["paths"].values():
        for operation in (op for method, op in item.items() if method != "parameters"):
            for status, answer in operation["responses"].items():
                if "description" in answer:
                    assert re.search(r"[^\x00-\x7f]", answer["description"]), (status, answer["description"])


def test_a_schema_no_operation_uses_is_left_off_the_page():
    document = api_spec.build()
    assert "PaginationMetadata" in document["components"]["schemas"]  # flask-smorest's, for a header not used
    names = [s["name"] for s in api_spec.page_context(document)["schemas"]]
    assert "PaginationMetadata" not in names
    assert {"ReferralIn", "Problem", "SendHandoffEvent", "CaseOut"} <= set(names)
