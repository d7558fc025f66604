"""The start page: cases by state, as far as the signed-in person may see them."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required
from sqlalchemy import func, select

from engine import access, states
from engine.models import Case
from web import db

bp = Blueprint("cases", __name__)


@bp.get("/")
@login_required
def index():
    s = db.session()
    visible = access.visible_cases_filter(s, current_user)
    counts = dict(s.execute(select(Case.state, func.count()).where(visible).group_by(Case.state)).all())
    recent = s.scalars(select(Case).where(visible).order_by(Case.updated_at.desc()).limit(50)).all()
    return render_template("index.html", counts=counts, recent=recent, states=list(states.CASE_STATE_LABELS))
