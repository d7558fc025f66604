"""The app's answers to errors, for both faces: problem+json under /api/v1, the staff pages' pages elsewhere.

The API's blueprints answer their own requests' errors (web.api.core); what reaches the app — an address no
route has, a refusal raised before a blueprint's view — is answered here by the face the path belongs to.
"""
from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import HTTPException

from engine.errors import EngineError, NotFound, PermissionDenied
from web.api import problems
from web.views import errors as pages


def init_app(app: Flask) -> None:
    """Register the app-wide error handlers."""

    @app.errorhandler(NotFound)
    def _not_found(exc):
        return problems.handle_engine_error(exc) if problems.in_api() else pages.not_found(exc)

    @app.errorhandler(PermissionDenied)
    def _forbidden(exc):
        return problems.handle_engine_error(exc) if problems.in_api() else pages.forbidden(exc)

    @app.errorhandler(EngineError)
    def _engine_error(exc):
        return problems.handle_engine_error(exc) if problems.in_api() else pages.engine_error(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return problems.handle_http_exception(exc) if problems.in_api() else pages.http_error(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        return problems.handle_unexpected(exc) if problems.in_api() else pages.unexpected(exc)
