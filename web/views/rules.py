"""振り分けルール: the routing rules in force, or an earlier version, as staff read them."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import login_required

from engine.errors import NotFound
from engine.rules import book as rulebook
from web import db
from web.views.common import actor

bp = Blueprint("rules", __name__)


@bp.get("/rules")
@login_required
def show():
    """The rules in force, or `?version=N` (the version a case's routing names)."""
    asked = request.args.get("version")
    number = None
    if asked:
        if not (asked.isascii() and asked.isdigit() and len(asked) <= 9):
            raise NotFound(f"「{asked[:20]}」という版はありません。版は数字で指定してください。")
        number = int(asked)
    chosen = (request.args.get("rule") or "")[:200] or None  # the rule a case's routing names
    return render_template("rules.html", book=rulebook.read(db.session(), actor(), number), chosen=chosen)
