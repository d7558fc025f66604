"""The Flask application: staff pages, the REST API and the `tsunagu` commands."""
from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from engine.db import make_engine, make_session_factory
from engine.settings import Settings


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then the environment, then `config` (tests pass overrides here)."""
    settings = Settings.from_env()
    app = Flask(__name__, instance_path=str(settings.instance_dir))
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
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if config:
        app.config.update(config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)
    app.permanent_session_lifetime = timedelta(minutes=int(app.config["SESSION_MINUTES"]))
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["tsunagu.engine"] = engine
    app.extensions["tsunagu.sessions"] = make_session_factory(engine)

    # Page URLs name records by `<id:…>`: a number the database can hold (a larger one answers 404, not an
    # overflow inside the query).
    from schemas.common import MAX_ID

    class RecordId(IntegerConverter):
        def __init__(self, url_map, *args, **kwargs):
            super().__init__(url_map, min=1, max=MAX_ID)

    app.url_map.converters["id"] = RecordId

    from web import db, health

    db.init_app(app)
    app.register_blueprint(health.bp)
    # The API first, then the pages: the pages' app-wide error handlers are registered last and hand
    # anything under /api/ back to the API's problem+json answers.
    from web.api import init_app as init_api

    init_api(app)
    from web.views import init_app as init_views

    init_views(app)
    return app


def _instance_secret(app: Flask) -> str:
    """A SECRET_KEY kept in the instance folder when none is set, so sessions survive restarts."""
    import os
    from pathlib import Path

    path = Path(app.instance_path) / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()
