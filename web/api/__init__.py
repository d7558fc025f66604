"""REST API, version 1 (flask-smorest), served at /api/v1; its OpenAPI document at /api/v1/openapi.json
and readable docs at /api/v1/docs (no outside assets)."""
from __future__ import annotations

import os

from flask import Flask

PREFIX = "/api/v1"


def init_app(app: Flask) -> None:
    """Register the API blueprints, their error handling and the OpenAPI document."""
    from flask_smorest.spec.plugins import integerconverter2paramschema

    from schemas.events import EVENT_SCHEMAS
    from schemas.referrals import HouseholdMemberIn
    from web import AsciiInteger
    from web.api import alerts, cases, docs, health, people, referrals, watch
    from web.api.core import DESCRIPTION, TsunaguApi

    app.config.setdefault("API_TITLE", "Tsunagu API")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": DESCRIPTION},
        "servers": [{"url": "/"}],
    })
    api = TsunaguApi(app)
    app.extensions["tsunagu.api"] = api
    # The app's own `int` converter (ASCII digits) is documented as werkzeug's is.
    api.register_converter(AsciiInteger, integerconverter2paramschema)
    api.spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "`tsunagu token create` で発行したトークン。操作ごとに必要なスコープは x-required-scope。",
    })
    for schema in EVENT_SCHEMAS.values():
        api.spec.components.schema(schema.__name__, schema=schema)
    for module in (referrals, watch, cases, people, alerts, health):
        api.register_blueprint(module.blp, url_prefix=PREFIX)
    # Rules across a schema's fields, which no field's description can carry.
    for schema in (HouseholdMemberIn,):
        api.spec.components.schemas[schema.__name__].update(schema.DOCUMENT_RULES)
    app.register_blueprint(docs.bp)
    csrf = app.extensions.get("csrf")
    if csrf is not None:  # the API authenticates with bearer tokens, not cookies
        for module in (referrals, watch, cases, people, alerts):
            csrf.exempt(module.blp)
    if os.environ.get("TSUNAGU_BENCH_BARE") == "1":
        from web.api import bench

        app.register_blueprint(bench.bp)
