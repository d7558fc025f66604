"""REST API, version 1 (flask-smorest), served at /api/v1."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the API blueprints (added per resource as the API grows)."""
