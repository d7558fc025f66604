"""The Flask application: staff pages, the REST API and the `tsunagu` commands."""
from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask
from markupsafe import escape
from werkzeug.routing import IntegerConverter, RequestRedirect, ValidationError

from engine.db import make_engine, make_session_factory
from engine.settings import Settings
from engine.users import accounts


class AsciiInteger(IntegerConverter):
    """werkzeug's integer converter, for ASCII digits only and one spelling per number."""

    regex = r"[0-9]+"

    def to_python(self, value: str):
        if len(value) > 1 and value.startswith("0"):
            raise ValidationError()
        return super().to_python(value)


class TsunaguFlask(Flask):
    """The Flask app whose redirects carry a short Japanese page (Werkzeug's own body is in English)."""

    def redirect(self, location: str, code: int = 302):
        """The redirect `flask.redirect` answers (same status and Location), with a page in Japanese."""
        response = super().redirect(location, code)
        href = escape(location)
        response.set_data(
            "<!doctype html>\n"
            '<html lang="ja">\n'
            '<meta charset="utf-8">\n'
            "<title>ページを移動します</title>\n"
            "<h1>ページを移動します</h1>\n"
            f'<p>自動で移動しないときは、<a href="{href}">こちらのページ</a>を開いてください。</p>\n'
        )
        return response

    def handle_http_exception(self, e):
        """A URL answered at its canonical form (/admin → /admin/) redirects with the same page."""
        if isinstance(e, RequestRedirect):
            return self.redirect(e.new_url, e.code)
        return super().handle_http_exception(e)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests pass overrides here)."""
    settings = Settings.from_env()
    app = TsunaguFlask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key,
        TSUNAGU_CONFIG_DIR=str(settings.config_dir),
        SESSION_MINUTES=settings.session_minutes,
        SESSION_MAX_HOURS=settings.session_max_hours,
        RETENTION_YEARS=settings.retention_years,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        TSUNAGU_TRUSTED_HOSTS=settings.trusted_hosts,
        TSUNAGU_PROXY_HOPS=settings.proxy_hops,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if config:
        app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)
    # The cookie lasts as long as a sign-in may (the day's limit): the server ends it after SESSION_MINUTES
    # without a request, and can then say so (a cookie the browser dropped at the same moment would leave the
    # person at the sign-in page with no word why).
    accounts.use_hash_cost(settings.password_time_cost, settings.password_memory_kib)
    app.permanent_session_lifetime = timedelta(hours=int(app.config["SESSION_MAX_HOURS"]))
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["tsunagu.engine"] = engine
    app.extensions["tsunagu.sessions"] = make_session_factory(engine)

    # Numbers in URLs are plain ASCII digits without leading zeros: werkzeug's `int` would also take "０９"
    # or "014" and answer as record 9 or 14, one record under many addresses. Page URLs name records by
    # `<id:…>`: a number the database can hold (a larger one answers 404, not an overflow inside the query).
    from schemas.common import MAX_ID

    app.url_map.converters["int"] = AsciiInteger

    class RecordId(AsciiInteger):
        def __init__(self, url_map, *args, **kwargs):
            super().__init__(url_map, min=1, max=MAX_ID)

    app.url_map.converters["id"] = RecordId

    if app.config.get("TSUNAGU_TRUSTED_HOSTS"):
        app.wsgi_app = TrustedHosts(app.wsgi_app, app.config["TSUNAGU_TRUSTED_HOSTS"])
    if app.config.get("TSUNAGU_PROXY_HOPS"):
        # Behind a reverse proxy the connecting address is the proxy's: the audit trail would name it for
        # every request, and the per-address sign-in limit would count every member of staff as one. The
        # client's address is then the one the nearest trusted proxy appended to X-Forwarded-For (and the
        # scheme its X-Forwarded-Proto); the Host header is the proxy's to pass on as it came.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TSUNAGU_PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)

    from web import db, health

    db.init_app(app)
    app.register_blueprint(health.bp)
    from web import errors
    from web.api import init_app as init_api
    from web.views import init_app as init_views

    init_api(app)
    init_views(app)
    errors.init_app(app)  # the app-wide error answers, by the face a path belongs to
    return app


class TrustedHosts:
    """WSGI middleware: refuse a request whose Host header is not one the operator named
    (TSUNAGU_TRUSTED_HOSTS), before the app reads it to write a link (Location, a list's `next`).

    It answers by itself, before Flask: a page cannot be rendered for a host the app will not build URLs for.
    """

    def __init__(self, wsgi_app, hosts: list[str]):
        self.wsgi_app = wsgi_app
        self.hosts = list(hosts)

    def __call__(self, environ, start_response):
        from werkzeug.exceptions import SecurityError
        from werkzeug.wrappers import Response
        from werkzeug.wsgi import get_host

        try:
            get_host(environ, self.hosts)
        except SecurityError:
            host = environ.get("HTTP_HOST", "")
            path = environ.get("PATH_INFO", "")
            detail = f"ホスト名「{host}」宛てのリクエストは受け付けません（TSUNAGU_TRUSTED_HOSTS にありません）。"
            if path == "/api/v1" or path.startswith("/api/v1/"):
                body = json.dumps({"type": "/api/v1/problems/bad-request", "title": "リクエストが正しくありません",
                                   "status": 400, "detail": detail, "code": "bad_request"}, ensure_ascii=False)
                response = Response(body, 400, mimetype="application/problem+json")
            else:
                response = Response(detail + "\n", 400, mimetype="text/plain")
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Content-Type-Options"] = "nosniff"
            return response(environ, start_response)
        return self.wsgi_app(environ, start_response)


def _instance_secret(app: Flask) -> str:
    """A SECRET_KEY kept in the instance folder when none is set, so sessions survive restarts."""
    import os
    from pathlib import Path

    from engine.settings import SettingError

    path = Path(app.instance_path) / "secret_key"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Two processes may start at once on a new folder (a scan beside the server): the key is
            # written whole under a name of this process's own, then linked into place, so that no one
            # reads a half-written key and the first link wins for everyone.
            draft = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(32))
                try:
                    os.link(draft, path)
                except FileExistsError:
                    pass
            finally:
                draft.unlink(missing_ok=True)
        return path.read_text().strip()
    except OSError as exc:
        raise SettingError(f"TSUNAGU_INSTANCE_DIR: {path.parent} に秘密鍵を置けません（{exc.strerror}）。"
                           "書き込めるフォルダを指定するか、SECRET_KEY を設定してください。") from None
