"""Liveness and readiness, at the root (for load balancers) and under /api/v1 (the outside contract)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from engine import migrate

bp = Blueprint("health", __name__)


def liveness() -> tuple[dict, int]:
    return {"status": "ok"}, 200


def readiness() -> tuple[dict, int]:
    """Ready when the database answers and its schema is at the newest revision."""
    engine = current_app.extensions["tsunagu.engine"]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            # Every request writes (audit rows at least): a standby after a failover answers but cannot.
            read_only = (conn.dialect.name == "postgresql"
                         and conn.execute(text("SHOW transaction_read_only")).scalar() == "on")
        at_head = migrate.is_at_head(engine)
    except Exception as exc:  # the answer must say why, not crash
        return {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__}, 503
    if read_only:
        return {"status": "unavailable", "database": "read_only"}, 503
    if not at_head:
        return {"status": "unavailable", "database": "ok", "schema": "outdated"}, 503
    return {"status": "ok", "database": "ok", "schema": "head"}, 200


@bp.get("/healthz")
def healthz():
    body, status = liveness()
    return jsonify(body), status


@bp.get("/readyz")
def readyz():
    body, status = readiness()
    return jsonify(body), status
