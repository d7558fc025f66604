"""The API's machinery: flask-smorest set up for problem+json, the JSON body reader, token checks.

Blueprint modules (referrals, cases, alerts, docs) hold the routes; this module holds what they share.
"""
from __future__ import annotations

import http
import json
from copy import deepcopy
from functools import wraps

import flask_smorest
from flask import g, request, url_for
from flask_smorest.utils import deepupdate, prepare_response
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from engine.audit import trail
from engine.errors import EngineError
from engine.referrals import clients as api_clients
from schemas.fields import flatten_errors
from schemas.problems import Problem
from web import db
from web.api.problems import (
    MEDIA_TYPE,
    ApiProblem,
    handle_api_problem,
    handle_engine_error,
    handle_http_exception,
    handle_unexpected,
    summary,
)

BODY_LIMIT = 1024 * 1024
REFERRAL_BODY_LIMIT = 64 * 1024

DESCRIPTION = "\n\n".join((
    "つなぐ（Tsunagu）の REST API です。他の市のシステムや関係機関（地域包括支援センター、社協など）が"
    "紹介（リファー）を送り、自分の紹介の状況を読み戻し、職員の権限の範囲でケースを操作します。",
    "認証: すべての操作に `Authorization: Bearer <token>` が必要です。トークンは "
    "`tsunagu token create --client NAME --scopes S1,S2 [--user LOGIN]` で発行し、一度だけ表示されます。"
    "スコープ: referrals:write, referrals:read（自分の紹介だけ）, cases:read, cases:write, alerts:read, "
    "alerts:write。cases:* と alerts:* は --user の職員として、画面と同じアクセス方針の範囲でだけ動きます。"
    "`tsunagu token revoke NAME` で即時に失効します。",
    "再送: POST /referrals には Idempotency-Key ヘッダー（1〜255文字の印字可能な ASCII）が必要です。"
    "同じキー・同じ本文の再送には最初の応答がそのまま（`Idempotent-Replayed: true` 付きで）返り、"
    "ケースは1件だけです。同じキーで違う本文は 409、同じ external_ref を別のキーで送ると既存の紹介を示す 409 です。",
    "エラー: すべて application/problem+json（RFC 9457）で、`type`（/api/v1/problems/<名前>、種類ごとに不変）、"
    "`title`、`status`、`detail` を持ちます。入力の誤りは `errors: {項目名: [理由]}`"
    "（入れ子は person.name のようにドット区切り）。",
    "一覧: `{\"items\": [...], \"next\": URL または null}`、新しいものから。`next` をそのままたどります。"
    "時刻はタイムゾーン付きの ISO 8601 です。",
    "Webhook: `tsunagu webhooks register --client NAME --url URL` でコールバック URL を登録すると、"
    "紹介の状態が変わるたびに `referral.status_changed` が POST されます（`tsunagu webhooks deliver` が送信、"
    "失敗は指数的に間隔をあけて再送、クライアントごとに発生順）。`X-Tsunagu-Signature: sha256=<hex>` は"
    "登録時に表示された秘密鍵による `<X-Tsunagu-Timestamp>.<本文>` の HMAC-SHA256 です。"
    "`X-Tsunagu-Delivery`（イベントID）で重複を除いてください。",
)) + "\n"

RESPONSE_DESCRIPTIONS = {
    400: "リクエストの形式の誤り（JSON でない、オブジェクトでない、Idempotency-Key がない・不正）",
    401: "トークンがない・無効・失効",
    403: "スコープがない、または利用者にこの操作が許されていない",
    404: "ない、または呼び出し元の範囲外",
    405: "このメソッドは使えない",
    409: "衝突（古い version、今の状態でできない操作、キーの再利用、重複した紹介）",
    413: "本文が大きすぎる",
    415: "Content-Type が application/json でない",
    422: "入力の値の誤り（errors に項目ごとの理由）",
    500: "サーバーで問題が起きた（予期しないエラー。内容は記録され、応答には含まれない）",
    503: "一時的に利用できない（データベースに接続できない、最新の版でない、読み取り専用。GET /api/v1/readyz が理由を示す）",
}


def _strict_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _bounded_int(digits: str):
    # A number of thousands of digits is still JSON (Python would refuse to read it as an int): it is read
    # as one too large for any field, which the field then refuses by name (422), not as unreadable JSON.
    return int(digits) if len(digits) <= 30 else float("inf")


class _RepeatedKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


BAD_NAME = "項目名に使えない文字（対になっていないサロゲート）が含まれています。"


def _readable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unreadable_names(body: dict) -> dict[str, list[str]]:
    """Where the body holds a field name that is not valid Unicode: a lone surrogate, which JSON can write as an
    escape (`{"\\ud800": 1}`). Such a name could be neither stored nor repeated in an answer (UTF-8 has no form
    for it), so each is reported by the path of the object holding it ("person", "household.0"; "body" at the
    top), never by the name itself. Walked without recursion: the body may be nested as deep as JSON allows."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[str, object]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            children = []
            for key, item in value.items():
                if not _readable(key):
                    errors[path or "body"] = [BAD_NAME]
                else:  # under a name that cannot be said, nothing can be named either
                    children.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}.{i}", item) for i, item in enumerate(value)]))
    return errors


def _object_without_repeats(pairs: list[tuple[str, object]]) -> dict:
    # A key given twice is read as its last value by some parsers and its first by others: which one the
    # sender meant cannot be told, so the body is refused rather than one of them kept silently.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return value


def read_json_object(required: bool):
    """The request body as a JSON object; refuses 413, 415 and 400 with a problem.

    An empty body is "no body": `{}` where nothing is required, else 400.
    """
    data = request.get_data(cache=True)  # over the request's max_content_length: 413
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A chunked body is read up to the limit and no further (werkzeug's LimitedStream): were there
        # more, the JSON would look cut short. One more byte from the server's stream tells them apart.
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    if not data.strip():
        if required:
            raise ApiProblem("malformed-json", "本文がありません。JSON オブジェクトを送ってください。")
        return {}
    # application/json and nothing else: a +json type means other rules (merge-patch, problem+json), and
    # JSON between systems is UTF-8 (RFC 8259), so a charset other than that is refused too.
    mimetype = request.mimetype or ""
    if mimetype != "application/json":
        raise ApiProblem("unsupported-media-type",
                         f"Content-Type「{mimetype or 'なし'}」は受け付けません。application/json で送ってください。")
    charset = (request.mimetype_params.get("charset") or "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise ApiProblem("unsupported-media-type",
                         f"charset「{charset}」は受け付けません。本文は UTF-8 で送ってください。")
    try:
        text = data.decode("utf-8-sig")  # a leading byte order mark is ignored, as RFC 8259 allows
    except UnicodeDecodeError:
        raise ApiProblem("malformed-json", "本文を UTF-8 として読めません。JSON は UTF-8 で送ってください。") from None
    try:
        value = json.loads(text, parse_constant=_strict_constant, parse_int=_bounded_int,
                           object_pairs_hook=_object_without_repeats)
    except _RepeatedKey as exc:
        key = f"キー「{exc.key}」" if _readable(exc.key) else "同じキー（使えない文字を含む名前）"
        raise ApiProblem("malformed-json", f"本文の JSON で{key}が2回以上あります。1回だけにしてください。") from None
    except json.JSONDecodeError as exc:
        raise ApiProblem("malformed-json", f"本文を JSON として読めません（{exc.lineno}行目 {exc.colno}文字目）。"
                         ) from None
    except (ValueError, RecursionError):
        raise ApiProblem("malformed-json", "本文を JSON として読めません。") from None
    if not isinstance(value, dict):
        raise ApiProblem("not-a-json-object", "本文は JSON オブジェクト（{…}）にしてください。")
    return value


class ApiParser(FlaskParser):
    """webargs parser whose body reading and errors answer in problem+json."""

    def load_json(self, req, schema):
        body = g.api_body if "api_body" in g else read_json_object(any(f.required for f in schema.fields.values()))
        # Checked with the fields (422), after the headers: a name no answer could repeat is refused here,
        # before the schema would echo it back as an unknown field.
        errors = unreadable_names(body)
        if errors:
            raise ApiProblem("validation-error", summary(errors), errors=errors)
        return body

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        location, messages = next(iter(error.messages.items()))
        errors = flatten_errors(messages)
        if location == "headers":
            if not req.headers.get("Idempotency-Key"):  # absent, or sent empty: missing, and said so
                errors = {"Idempotency-Key": ["Idempotency-Key ヘッダーが必要です。"]}
                raise ApiProblem("idempotency-key-missing", summary(errors), errors=errors)
            raise ApiProblem("idempotency-key-invalid", summary(errors), errors=errors)
        raise ApiProblem("validation-error", summary(errors), errors=errors)


def _no_store(response):
    # Answers carry personal data: no shared or browser cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response


class ApiBlueprint(flask_smorest.Blueprint):
    """A blueprint of the API: parses with ApiParser and answers every error as problem+json."""

    ARGUMENTS_PARSER = ApiParser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_error_handler(EngineError, handle_engine_error)
        self.register_error_handler(ApiProblem, handle_api_problem)
        self.register_error_handler(Exception, handle_unexpected)
        self.after_request(_no_store)


PARSER = ApiBlueprint.ARGUMENTS_PARSER


class TsunaguApi(flask_smorest.Api):
    """flask-smorest's Api whose documented errors are problem+json (and no catch-all 'default')."""

    ERROR_SCHEMA = Problem
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self):
        for status in http.HTTPStatus:
            if status < 400:
                continue
            response = {"description": RESPONSE_DESCRIPTIONS.get(int(status), status.phrase), "schema": Problem}
            prepare_response(response, self.spec, MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)

    def handle_http_exception(self, error):
        return handle_http_exception(error)


def _add_doc(func, doc: dict):
    func._apidoc = deepcopy(getattr(func, "_apidoc", {}))
    func._apidoc["manual_doc"] = deepupdate(deepcopy(func._apidoc.get("manual_doc", {})), doc)


def problems(*codes: int):
    """Document the problem answers an operation gives (references to the shared responses)."""
    def decorator(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)

        wrapper._apidoc = deepcopy(getattr(func, "_apidoc", {}))
        responses = wrapper._apidoc.setdefault("response", {}).setdefault("responses", {})
        for code in codes:
            name = http.HTTPStatus(code).name
            if name not in responses.get(code, []):
                responses.setdefault(code, []).append(name)
        return wrapper

    return decorator


def requires(scope: str, *, max_body: int = BODY_LIMIT, body: str | None = None):
    """Check the bearer token and its scope before anything else of the request (parsing included).

    `body` ("required" or "optional") reads the JSON body right after: the body's size, media type and
    syntax (413, 415, 400) are refused before its headers and fields (400, 422). The caller (client,
    token, staff user) is left in `g.api_caller`.
    """
    def decorator(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            request.max_content_length = max_body
            g.api_caller = authenticate(scope)
            if body is not None:
                g.api_body = read_json_object(body == "required")
            return func(*args, **kwargs)

        wrapper._apidoc = deepcopy(getattr(func, "_apidoc", {}))
        _add_doc(wrapper, {"security": [{"bearerAuth": []}], "x-required-scope": scope})
        return problems(401, 403)(wrapper)

    return decorator


def authenticate(scope: str):
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem("unauthorized", "Authorization: Bearer <token> ヘッダーが必要です。",
                         headers={"WWW-Authenticate": 'Bearer realm="tsunagu"'})
    caller = api_clients.authenticate(db.session(), token.strip())
    if caller is None:
        raise ApiProblem("unauthorized", "トークンが無効か、失効しています。",
                         headers={"WWW-Authenticate": 'Bearer realm="tsunagu", error="invalid_token"'})
    g.api_caller = caller
    # Every audit row of this request names the client and the address it came from.
    trail.bind(db.session(), remote_addr=request.remote_addr, client=caller.client)
    if scope not in caller.scopes or (scope in api_clients.USER_SCOPES and caller.user is None):
        challenge = f'Bearer realm="tsunagu", error="insufficient_scope", scope="{scope}"'
        raise ApiProblem("insufficient-scope", f"このトークンには {scope} のスコープがありません。",
                         headers={"WWW-Authenticate": challenge}, required_scope=scope)
    return caller


def created_headers(location: str) -> dict:
    """The headers documented on a 201 that opened a case under an Idempotency-Key."""
    return {
        "Location": {"description": location, "schema": {"type": "string", "format": "uri"}},
        "Idempotent-Replayed": {"description": "再送に最初の応答を返したとき true",
                                "schema": {"type": "string", "enum": ["true"]}},
    }


def created(answer, location: str):
    """The answer to a POST that opened a case (or replayed the first answer): body, status and headers."""
    headers = {"Location": location}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return answer.body, answer.status, headers


def next_page(endpoint: str, query: dict, after: int | None, filters: tuple[str, ...]) -> str | None:
    """The absolute URL of the page after `after` (None when there is none), keeping the filters."""
    if after is None:
        return None
    kept = {k: query[k] for k in filters if query.get(k)}
    return url_for(endpoint, _external=True, limit=query["limit"], cursor=after, **kept)


def caller():
    """The authenticated caller of this request (set by `requires`)."""
    return g.api_caller
