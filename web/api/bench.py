"""Route for bench/intake.py only: the baseline of an intake — parse the JSON, insert one row, commit.

Registered only when TSUNAGU_BENCH_BARE=1 is set; never in production, never in the OpenAPI document.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

bp = Blueprint("bench_bare", __name__)


@bp.post("/api/bench/bare-referrals")
def bare_referral():
    payload = json.loads(request.get_data())
    body = request.get_data()
    with current_app.extensions["tsunagu.engine"].begin() as conn:
        row_id = conn.execute(
            text("INSERT INTO idempotency_keys (client_id, key, body_hash, status_code, response_body, created_at) "
                 "VALUES (:client, :key, :hash, 201, :body, :at) RETURNING id"),
            {"client": int(request.args["client_id"]), "key": payload["external_ref"],
             "hash": hashlib.sha256(body).hexdigest(), "body": json.dumps({"external_ref": payload["external_ref"]}),
             "at": datetime.now(timezone.utc).replace(tzinfo=None)},
        ).scalar_one()
    return jsonify(id=row_id), 201
