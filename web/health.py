"""Liveness and readiness."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from engine import migrate

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    engine = current_app.extensions["tsunagu.engine"]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        at_head = migrate.is_at_head(engine)
    except Exception as exc:  # the answer must say why, not crash
        return jsonify(status="unavailable", database="unreachable", detail=type(exc).__name__), 503
    if not at_head:
        return jsonify(status="unavailable", database="ok", schema="outdated"), 503
    return jsonify(status="ok", database="ok", schema="head")
