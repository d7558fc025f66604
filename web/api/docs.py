"""Routes: the readable API documentation and the problem-type pages, served by the app itself."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from web.api import spec
from web.api.problems import PROBLEM_BASE, PROBLEMS

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")


@bp.get("/docs")
def docs():
    """The OpenAPI document as a page: operations, fields, answers, problem types (no outside assets)."""
    context = spec.page_context(current_app.extensions["tsunagu.api"].spec.to_dict())
    return render_template("api/docs.html", problems=PROBLEMS, problem_base=PROBLEM_BASE, **context)


@bp.get("/problems/<name>")
def problem(name: str):
    """What a problem `type` means (the URI a problem answer names)."""
    if name not in PROBLEMS:
        abort(404)
    status, title, when = PROBLEMS[name]
    return render_template("api/problem.html", name=name, status=status, title=title, when=when,
                           problem_base=PROBLEM_BASE)
