"""The OpenAPI document: build it, print it, and shape it for the readable docs page.

Regenerate the committed copy after changing the API (a test fails while the two differ):

    python -m web.api.spec > web/api/openapi.json
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

COMMITTED = Path(__file__).with_name("openapi.json")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def build(app=None) -> dict[str, Any]:
    """The OpenAPI document of `app` (by default an app made only to describe itself, touching nothing)."""
    if app is None:
        from web import create_app

        app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "openapi", "TESTING": True})
    with app.app_context():
        return app.extensions["tsunagu.api"].spec.to_dict()


def render(spec: dict[str, Any]) -> str:
    """The document as committed: indented JSON, Japanese kept readable, a final newline."""
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


# --- the readable page --------------------------------------------------------------------------


_CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> Markup:
    """Text with `code` spans, as safe HTML."""
    return Markup(_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


def _paragraphs(text: str) -> list[Markup]:
    return [inline(p) for p in text.split("\n\n") if p.strip()]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


# The page's words for what the document names in English: JSON Schema's types and formats, where a parameter
# goes, and each tag (the tags' names are the document's identifiers and stay as they are there).
TYPE_WORDS = {"string": "文字列", "integer": "整数", "number": "数値", "boolean": "真偽値", "object": "オブジェクト"}
FORMAT_WORDS = {"date": "日付", "date-time": "日時", "uri": "URI", "email": "メールアドレス"}
PARAMETER_PLACES = {"query": "クエリ", "path": "パス", "header": "ヘッダー", "cookie": "Cookie"}
TAG_HEADINGS = {"Referrals": "紹介", "Cases": "ケース", "People": "本人の記録", "Alerts": "アラート",
                "WatchReports": "見守り通報", "Health": "死活監視"}


def _json(value: Any) -> str:
    """A value as JSON writes it (false, null), not as Python does (False, None)."""
    return json.dumps(value, ensure_ascii=False)


def type_html(schema: dict[str, Any] | None) -> Markup:
    """A schema's type in a few words, linking to the components it names."""
    if not schema:
        return Markup("任意")
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            return Markup(" | ").join(type_html(s) for s in schema[key])
    kind = schema.get("type", "object")
    kinds = kind if isinstance(kind, list) else [kind]
    parts = []
    for k in kinds:
        if k == "array":
            parts.append(Markup("{} の配列").format(type_html(schema.get("items"))))
        elif k == "null":
            parts.append(Markup("<code>null</code>"))
        else:
            text = escape(TYPE_WORDS.get(k, k))
            if schema.get("format"):
                text += Markup("（{}）").format(FORMAT_WORDS.get(schema["format"], schema["format"]))
            parts.append(text)
    out = Markup(" | ").join(parts)
    if schema.get("nullable"):
        out += Markup(" | <code>null</code>")
    return out


def _constraints(schema: dict[str, Any]) -> str:
    bits = []
    if "enum" in schema:
        bits.append("値: " + ", ".join(v if isinstance(v, str) else _json(v) for v in schema["enum"]))
    for key, label in (("minLength", "最短"), ("maxLength", "最長"), ("minimum", "最小"), ("maximum", "最大"),
                       ("minItems", "最少件数"), ("maxItems", "最多件数"), ("pattern", "形式"), ("default", "既定")):
        if key in schema:
            value = schema[key]
            bits.append(f"{label} {value if isinstance(value, str) else _json(value)}")
    return "、".join(bits)


def schema_rows(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in (schema.get("properties") or {}).items():
        rows.append({"name": name, "type": type_html(prop), "required": name in required,
                     "description": inline(prop.get("description", "")), "constraints": _constraints(prop)})
    return rows


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _schemas_used(spec: dict[str, Any]) -> set[str]:
    """The component schemas an operation reaches (flask-smorest also registers some no operation uses)."""
    components = spec.get("components", {})
    prefix = "#/components/"
    seen: set[str] = set()
    todo = _refs(spec.get("paths", {}))
    while todo:
        ref = todo.pop()
        if ref in seen or not ref.startswith(prefix):
            continue
        seen.add(ref)
        kind, _, name = ref[len(prefix):].partition("/")
        todo |= _refs(components.get(kind, {}).get(name, {}))
    return {ref.rsplit("/", 1)[-1] for ref in seen if ref.startswith(prefix + "schemas/")}


def page_context(spec: dict[str, Any]) -> dict[str, Any]:
    """The document reshaped for templates/api/docs.html."""
    tags = {t["name"]: {"name": t["name"], "heading": TAG_HEADINGS.get(t["name"], t["name"]),
                        "description": t.get("description", ""), "operations": []}
            for t in spec.get("tags", [])}
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [*shared, *op.get("parameters", [])]
            body = op.get("requestBody")
            body_types = []
            if body:
                for media, content in body.get("content", {}).items():
                    body_types.append({"media": media, "type": type_html(content.get("schema"))})
            responses = []
            for status, resp in sorted(op.get("responses", {}).items()):
                if "$ref" in resp:
                    resp = spec["components"]["responses"][_ref_name(resp["$ref"])]
                responses.append({
                    "status": status, "description": resp.get("description", ""),
                    "content": [{"media": m, "type": type_html(c.get("schema"))}
                                for m, c in resp.get("content", {}).items()],
                    "headers": sorted(resp.get("headers", {})),
                })
            entry = {
                "anchor": f"op-{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}",
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": _paragraphs(op.get("description", "")),
                "scope": op.get("x-required-scope"),
                "parameters": [{"name": p["name"], "in": PARAMETER_PLACES.get(p["in"], p["in"]),
                                "required": p.get("required", False),
                                "type": type_html(p.get("schema")), "description": inline(p.get("description", ""))}
                               for p in params],
                "body": body_types, "body_required": bool(body and body.get("required")), "responses": responses,
            }
            for tag in op.get("tags", ["api"]):
                tags.setdefault(tag, {"name": tag, "heading": TAG_HEADINGS.get(tag, tag), "description": "",
                                      "operations": []})["operations"].append(entry)
    used = _schemas_used(spec)
    schemas = [{"name": name, "description": s.get("description", ""), "rows": schema_rows(s),
                "variants": [type_html(v) for v in s.get("oneOf", [])]}
               for name, s in sorted(spec.get("components", {}).get("schemas", {}).items()) if name in used]
    info = spec.get("info", {})
    return {
        "title": info.get("title", "API"), "version": info.get("version", ""),
        "intro": _paragraphs(info.get("description", "")),
        "tags": [t for t in tags.values() if t["operations"]], "schemas": schemas,
    }


def main(argv: list[str] | None = None) -> int:
    sys.stdout.write(render(build()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
