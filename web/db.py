"""One database session per request, committed once in one place and rolled back on any error."""
from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.orm import Session

from engine.audit import trail
from engine.db import write_turn as write_turn_of


def session() -> Session:
    """The request's session (opened on first use); its audit rows carry the request's address.

    An API request acting for a client also binds the client: `trail.bind(session(), remote_addr=…,
    client=client)`.
    """
    if "db_session" not in g:
        g.db_session = current_app.extensions["tsunagu.sessions"]()
        if has_request_context():
            trail.bind(g.db_session, remote_addr=request.remote_addr)
    return g.db_session


def write_turn() -> None:
    """This request will write: wait for the process's turn now, keep it until the request ends
    (engine.db.write_turn; SQLite only)."""
    if "write_turn" not in g:
        turn = write_turn_of(current_app.extensions["tsunagu.engine"])
        turn.__enter__()
        g.write_turn = turn


def commit() -> None:
    """Commit the request's work now (a view that must know the commit held before it answers)."""
    s = g.get("db_session")
    if s is not None:
        s.commit()


def init_app(app: Flask) -> None:
    @app.after_request
    def _commit_or_rollback(response):
        s = g.get("db_session")
        if s is not None:
            if response.status_code < 400 or g.get("commit_on_error"):
                s.commit()
            else:
                s.rollback()
        return response

    @app.teardown_request
    def _close(exc):
        s = g.pop("db_session", None)
        try:
            if s is not None:
                if exc is not None:
                    s.rollback()
                s.close()
        finally:
            turn = g.pop("write_turn", None)
            if turn is not None:
                turn.__exit__(None, None, None)
