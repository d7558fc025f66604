"""Refused requests in the audit trail: what was attempted, on which case and record, and the refusal.

A refusal must reach the trail of the person it concerns (開示請求), and never the trail of a case that did
not exist.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from engine.audit import trail
from engine.errors import EngineError
from engine.models import Alert, Case, CaseNotice, Handoff, JoinOffer, Meeting


def record_refusal(session: Session, actor, error: EngineError, *, action: str, case_id: int | None = None,
                   remote_addr: str | None = None, client=None, object_type: str | None = None,
                   object_id: int | None = None) -> None:
    """Audit a refused read or write (the refusal itself is the only row such a request leaves).

    For every NotFound and PermissionDenied an engine call raises, the web layer rolls the request's work
    back (`session.rollback()`), calls this with what was attempted (action such as "case.read",
    "plan.read", "case.close"), and commits it (web.db: `g.commit_on_error = True`). Nothing else of the
    refused request is kept. Its detail holds the error code only.
    """
    if object_type is None:
        object_type, object_id = ("case", case_id) if case_id else ("request", None)
    trail.record(session, actor=actor, client=client, action=action, object_type=object_type,
                 object_id=object_id, case_id=case_id, remote_addr=remote_addr, outcome="refused",
                 detail={"code": error.code, "status": error.status})


# The records a URL may name besides a case: (view argument, model, object type in the audit trail).
def _refusal_objects():
    return (("offer_id", JoinOffer, "join_offer"), ("handoff_id", Handoff, "handoff"),
            ("meeting_id", Meeting, "meeting"), ("alert_id", Alert, "alert"), ("notice_id", CaseNotice, "notice"))


def refused_target(session: Session, view_args: dict) -> tuple[int | None, str | None, int | None]:
    """The case a refused request was about, and the record it named: (case id, object type, object id).

    The case is the one the URL names if it exists, else the case of the record the URL names: a refusal
    must reach the trail of the person it concerns (開示請求), and never the trail of a case that did not exist.
    A person's record (GET /people/{id}) is named as itself, with no case.
    """
    if isinstance(view_args.get("person_id"), int):
        # A person's record (名寄せ): the refusal names the person, whose 開示請求 trail reads it.
        return None, "person", view_args["person_id"]
    named = view_args.get("case_id", view_args.get("referral_id"))  # a referral's id is its case's
    case_id = named if isinstance(named, int) and session.get(Case, named) is not None else None
    for key, model, kind in _refusal_objects():
        if isinstance(view_args.get(key), int):
            row = session.get(model, view_args[key])
            if case_id is None and row is not None:
                case_id = row.case_id
            return case_id, kind, view_args[key]
    if isinstance(view_args.get("person_id"), int):  # a person's page: the refusal is about that record
        return case_id, "person", view_args["person_id"]
    if case_id is None and isinstance(named, int):
        return None, "case", named
    return case_id, None, None
