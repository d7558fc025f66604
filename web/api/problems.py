"""Error answers of the API: application/problem+json (RFC 9457), one stable `type` per kind of error.

`type` is a relative URI, /api/v1/problems/<name>; it resolves to a page of the app describing the
problem. Every refusal inside /api/v1 — the engine's, the request parser's, werkzeug's (404, 405, 413,
415) — goes through here; an unexpected error answers a generic 500 without any detail of the cause.
A refusal rolls the request's work back; for an authenticated caller it is audited
(engine.audit.refusals.record_refusal) and only that audit row is committed.
"""
from __future__ import annotations

import json
import logging
import re

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from engine.audit import refusals
from engine.errors import EngineError
from schemas.fields import flatten_errors

PREFIX = "/api/v1"
PROBLEM_BASE = PREFIX + "/problems/"
MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("tsunagu.api")

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# name → (status, title, when it happens)
PROBLEMS: dict[str, tuple[int, str, str]] = {
    "unauthorized": (401, "認証が必要です", "Authorization: Bearer <token> がない、トークンが無効・失効している、または代わりに操作する職員が停止されている。"),
    "insufficient-scope": (403, "トークンに権限（スコープ）がありません", "トークンにこの操作のスコープがない。"),
    "forbidden": (403, "権限がありません", "トークンの利用者（職員）にはこの操作が許されていない（例: 送付先の部署でない職員が受理しようとした）。"),
    "not-found": (404, "見つかりません", "存在しない、または呼び出し元が見てよい範囲にない（他のクライアントの紹介、担当外のケース）。"),
    "method-not-allowed": (405, "このメソッドは使えません", "この URL はこの HTTP メソッドを受け付けない（Allow ヘッダーを参照）。"),
    "payload-too-large": (413, "本文が大きすぎます", "本文が上限（POST /referrals は 64 KiB、ほかの操作は 1 MiB。POST /referral-batches は 500 行まで）を超えている。"),
    "unsupported-media-type": (415, "JSON で送ってください", "本文があるのに Content-Type が application/json（POST /referral-batches は text/csv）ではない。"),
    "malformed-json": (400, "本文が JSON ではありません", "本文が空、または JSON として読めない。"),
    "not-a-json-object": (400, "本文は JSON オブジェクトにしてください", "本文が JSON だがオブジェクト（{…}）ではない。"),
    "idempotency-key-missing": (400, "Idempotency-Key ヘッダーが必要です", "POST /referrals に Idempotency-Key ヘッダーがない。"),
    "idempotency-key-invalid": (400, "Idempotency-Key が正しくありません", "Idempotency-Key が1〜255文字の印字可能な ASCII 文字ではない。"),
    "bad-request": (400, "リクエストが正しくありません", "その他の形式の誤り。"),
    "validation-error": (422, "入力内容に誤りがあります", "項目の値が正しくない・不明な項目がある。errors に項目ごとの理由。"),
    "missing-field": (422, "必要な項目がありません", "イベントに必要な項目がない。errors に項目名。"),
    "unknown-event": (422, "不明な操作です", "event がケースの操作の名前ではない。errors.event に理由、allowed_events に今できる操作。"),
    "idempotency-key-reused": (409, "Idempotency-Key が別の内容で使われています", "同じキーで、最初と違う本文が送られた。"),
    "duplicate-referral": (409, "同じ紹介が既に登録されています", "同じ external_ref の紹介が別のキーで既に登録されている。existing_referral にその紹介。"),
    "stale-version": (409, "他の人が先に更新しました", "version が古い。current_version に今の版。読み直してからやり直す。"),
    "event-not-allowed": (409, "現在の状態ではこの操作はできません", "ケースの今の状態ではその操作ができない（allowed_events に今できる操作）。アラートの状態で確認・解決ができないとき（既に確認済み・解決済み）も同じ。"),
    "guard-refused": (409, "操作の条件を満たしていません", "状態としてはできるが、操作の条件（同意の範囲、評価日など）を満たしていない。"),
    "conflict": (409, "既存のデータと重複・衝突しています", "既存のデータと衝突する（ほかの種類に当たらない衝突）。"),
    "internal-error": (500, "サーバーで問題が起きました", "予期しないエラー。内容は記録され、応答には含まれない。"),
    "service-unavailable": (503, "一時的に利用できません", "データベースに接続できないなど。時間をおいて再試行する。"),
}

_ENGINE_CODES = {
    "not_found": "not-found", "forbidden": "forbidden", "unknown_event": "unknown-event",
    "event_not_allowed": "event-not-allowed", "guard_refused": "guard-refused", "stale_version": "stale-version",
    "validation_error": "validation-error", "missing_field": "missing-field", "conflict": "conflict",
    "idempotency_key_reused": "idempotency-key-reused", "duplicate_referral": "duplicate-referral",
}
_HTTP_CODES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 409: "conflict", 413: "payload-too-large", 415: "unsupported-media-type",
               422: "validation-error", 503: "service-unavailable"}


class ApiProblem(Exception):
    """A refusal the API layer gives itself (authentication, request format)."""

    def __init__(self, name: str, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra):
        super().__init__(name)
        self.name = name
        self.status = PROBLEMS[name][0]
        self.detail = detail or PROBLEMS[name][2]
        self.headers = headers or {}
        self.extra = extra


def in_api() -> bool:
    path = request.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def problem_response(name: str, detail: str, *, status: int | None = None, headers: dict | None = None,
                     **extra) -> Response:
    status = status or PROBLEMS[name][0]
    body = {"type": PROBLEM_BASE + name, "title": PROBLEMS[name][1], "status": status, "detail": detail,
            "code": name.replace("-", "_")}
    body.update({k: v for k, v in extra.items() if k not in body})
    # A text that is not valid Unicode (a lone surrogate a request sent) must never make the refusal itself fail:
    # what repeats a request's text shows U+FFFD in its place.
    text = _LONE_SURROGATE.sub("\ufffd", json.dumps(body, ensure_ascii=False))
    resp = current_app.response_class(text, status=status, mimetype=MEDIA_TYPE)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _refused(error_code: str, status: int) -> None:
    """Undo the request's work; keep one audit row of the refusal for an authenticated caller."""
    from web import db

    caller = g.get("api_caller")
    session = db.session()
    session.rollback()
    if caller is None:
        return
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    # "/cases/<int(max=…):case_id>/events" reads "/cases/{case_id}/events" in the trail, as in the document.
    rule = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)
    refusal = EngineError("refused")
    refusal.code, refusal.status = error_code, status
    try:
        case_id, kind, object_id = refusals.refused_target(session, request.view_args or {})
        refusals.record_refusal(session, caller.user, refusal, action=f"api {request.method} {rule[len(PREFIX):]}"[:64],
                                case_id=case_id, object_type=kind, object_id=object_id,
                                remote_addr=request.remote_addr, client=caller.client)
        g.commit_on_error = True
    except Exception:  # the refusal must still be answered
        session.rollback()
        log.exception("could not audit a refused API request")


def handle_engine_error(exc: EngineError) -> Response:
    name = _ENGINE_CODES.get(exc.code, "bad-request" if exc.status == 400 else _HTTP_CODES.get(exc.status, "conflict"))
    _refused(exc.code, exc.status)
    extra = dict(exc.extra)
    if isinstance(extra.get("errors"), dict):
        extra["errors"] = {str(k): [str(m) for m in v] for k, v in extra["errors"].items()}
    return problem_response(name, exc.message, status=exc.status, **extra)


def handle_api_problem(exc: ApiProblem) -> Response:
    _refused(exc.name.replace("-", "_"), exc.status)
    return problem_response(exc.name, exc.detail, headers=exc.headers, **exc.extra)


def handle_http_exception(exc: HTTPException):
    """werkzeug's and the request parser's errors, inside /api/v1 only; pages keep their own."""
    if not in_api():
        return exc
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    if status >= 500:
        _refused("http_error", status)
        return problem_response("internal-error", PROBLEMS["internal-error"][2], status=500)
    if isinstance(messages, dict) and messages:
        errors = {}
        for location_messages in messages.values():
            errors.update(flatten_errors(location_messages))
        name = "validation-error" if status == 422 else _HTTP_CODES.get(status, "bad-request")
        _refused(name.replace("-", "_"), status)
        return problem_response(name, summary(errors), status=status, errors=errors, headers=headers)
    name = _HTTP_CODES.get(status, "bad-request")
    _refused(name.replace("-", "_"), status)
    detail = PROBLEMS[name][2]
    if status == 413 and request.max_content_length:
        detail = f"本文が、この操作の上限（{_size(request.max_content_length)}）を超えています。"
    return problem_response(name, detail, status=status, headers=headers)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n // 1024} KiB"


def handle_unexpected(exc: Exception) -> Response:
    """Any other error: logged with its trace on the server, a generic answer to the client."""
    if isinstance(exc, HTTPException):
        return handle_http_exception(exc)
    from engine.db import lost_race
    from engine.errors import LostRace

    if lost_race(exc):
        # Met a concurrent action in the database: rolled back whole, and said so (409), not a failure.
        log.info("%s %s lost a race: %s", request.method, request.path, type(exc).__name__)
        return handle_engine_error(LostRace())
    log.error("unexpected error in %s %s", request.method, request.path, exc_info=exc)
    from web import db

    db.session().rollback()
    if _database_unavailable(exc):
        return problem_response("service-unavailable", PROBLEMS["service-unavailable"][2], status=503,
                                headers={"Retry-After": "30"})
    return problem_response("internal-error", PROBLEMS["internal-error"][2], status=500)


def _database_unavailable(exc: Exception) -> bool:
    """The database cannot serve now: unreachable, or its schema not (yet) migrated (GET /readyz says which)."""
    from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DatabaseError):
        orig = getattr(exc, "orig", None)
        # A standby (read only) or a SQLite file that is not a database: the database cannot serve.
        if getattr(orig, "sqlstate", None) == "25006" or "file is not a database" in str(orig):
            return True
    return isinstance(exc, ProgrammingError) and type(exc.orig).__name__ in ("UndefinedTable", "UndefinedColumn")


def summary(errors: dict[str, list[str]]) -> str:
    """One line naming the first wrong field and why (the problem's `detail`)."""
    if not errors:
        return PROBLEMS["validation-error"][1]
    name, messages = next(iter(errors.items()))
    more = f"（ほか{len(errors) - 1}項目）" if len(errors) > 1 else ""
    return f"{name}: {messages[0]}{more}"
