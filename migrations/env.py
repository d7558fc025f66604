"""Alembic environment: runs on the connection or URL that engine.migrate hands over, or, for the `alembic`
command (alembic.ini), on the app's database: DATABASE_URL, or the SQLite file under the instance folder."""
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool

from engine.db import make_engine, sqlite_file
from engine.models import Base
from engine.settings import default_database_url

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None:  # the `alembic` command: its ini file says what to log
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """The URL the Alembic config gives (engine.migrate, or alembic.ini when set there), else the app's."""
    return config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL") or default_database_url()


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = database_url()
    if url == default_database_url():
        # The app makes its instance folder when it starts; `alembic upgrade head` on a new checkout may come first.
        sqlite_file(url).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A batch operation rebuilds a table (copy, DROP, rename). With foreign keys enforced, dropping
            # a parent such as `plans` would cascade to its children's rows (ON DELETE CASCADE): off while
            # the migrations run (it can only change outside a transaction), and checked afterwards.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            _run(conn)
            conn.commit()
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows that refer to nothing: {broken[:5]}")
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
