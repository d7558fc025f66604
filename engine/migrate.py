"""Schema migrations (Alembic), run from code: `tsunagu db upgrade`, readiness, tests.

The same scripts answer the `alembic` command from a checkout (alembic.ini at the repository root).
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from engine.db import sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# New revision files are named by the date and time they were made, then the revision: their names sort in
# the order they apply (`alembic revision --rev-id 0017 -m "..."`). alembic.ini says the same.
FILE_TEMPLATE = "%(year)d%(month).2d%(day).2d_%(hour).2d%(minute).2d_%(rev)s_%(slug)s"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option("file_template", FILE_TEMPLATE.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the database at `url` to `revision` (an SQLite file's folder is made if missing)."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_known_revision(revision: str) -> bool:
    """Whether `revision` is one of this program's migrations (a database a newer program migrated is not)."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return revision in {script.revision for script in scripts.walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_at_head(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
