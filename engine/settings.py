"""Settings read from the environment, with defaults for the embedded SQLite set-up."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_instance_dir() -> Path:
    return Path(os.environ.get("TSUNAGU_INSTANCE_DIR", PROJECT_ROOT / "instance"))


def default_database_url() -> str:
    return f"sqlite:///{_default_instance_dir() / 'tsunagu.db'}"


class SettingError(ValueError):
    """An environment setting that cannot be used; the message names it and says what it must be."""


def _whole_number(env, name: str, low: int, high: int) -> int:
    raw = env[name].strip()
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise SettingError(f"環境変数 {name} は{low}以上{high}以下の整数で指定してください（今の値: {env[name]!r}）。")
    return int(raw)


@dataclass
class Settings:
    """Everything the app and the commands read from the environment."""

    database_url: str = field(default_factory=default_database_url)
    secret_key: str | None = None
    config_dir: Path = PROJECT_ROOT / "config"
    instance_dir: Path = field(default_factory=_default_instance_dir)
    session_minutes: int = 30
    session_max_hours: int = 12
    retention_years: int = 5
    secure_cookies: bool = False
    # The host names the app answers to (ports are not compared; ".example.jp" also admits its subdomains);
    # None: any. Links the app writes (Location, a list's `next`) carry the request's host, so behind a
    # proxy that passes on the client's Host header, naming them here keeps a forged one out.
    trusted_hosts: list[str] | None = None
    # How many proxies in front of the app append to X-Forwarded-For / set X-Forwarded-Proto; 0: the headers
    # are ignored (anyone could write them) and the connecting address is the client's.
    proxy_hops: int = 0
    # The cost of hashing a password (argon2id): passes over memory, and the memory in KiB. The defaults
    # take about a tenth of a second of one core per sign-in; raise them on a larger server.
    password_time_cost: int = 3
    password_memory_kib: int = 65536

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        s = cls()
        if env.get("DATABASE_URL"):
            s.database_url = env["DATABASE_URL"]
        s.secret_key = env.get("SECRET_KEY") or None
        if env.get("TSUNAGU_CONFIG_DIR"):
            s.config_dir = Path(env["TSUNAGU_CONFIG_DIR"])
        if env.get("TSUNAGU_INSTANCE_DIR"):
            s.instance_dir = Path(env["TSUNAGU_INSTANCE_DIR"])
        if env.get("TSUNAGU_SESSION_MINUTES"):
            s.session_minutes = _whole_number(env, "TSUNAGU_SESSION_MINUTES", 1, 24 * 60)
        if env.get("TSUNAGU_SESSION_MAX_HOURS"):
            s.session_max_hours = _whole_number(env, "TSUNAGU_SESSION_MAX_HOURS", 1, 72)
        if env.get("TSUNAGU_RETENTION_YEARS"):
            s.retention_years = _whole_number(env, "TSUNAGU_RETENTION_YEARS", 1, 100)
        s.secure_cookies = env.get("TSUNAGU_SECURE_COOKIES", "").lower() in ("1", "true", "yes")
        if env.get("TSUNAGU_PROXY_HOPS"):
            s.proxy_hops = _whole_number(env, "TSUNAGU_PROXY_HOPS", 0, 5)
        if env.get("TSUNAGU_PASSWORD_TIME_COST"):
            s.password_time_cost = _whole_number(env, "TSUNAGU_PASSWORD_TIME_COST", 1, 20)
        if env.get("TSUNAGU_PASSWORD_MEMORY_KIB"):
            s.password_memory_kib = _whole_number(env, "TSUNAGU_PASSWORD_MEMORY_KIB", 1024, 4 * 1024 * 1024)
        if env.get("TSUNAGU_TRUSTED_HOSTS", "").strip():
            hosts = [h.strip() for h in env["TSUNAGU_TRUSTED_HOSTS"].split(",")]
            if any(not h or not h.isascii() or any(c.isspace() or c in "/@?#" for c in h) for h in hosts):
                raise SettingError("環境変数 TSUNAGU_TRUSTED_HOSTS はホスト名（必要ならポート付き）をカンマで区切って指定して"
                                   f"ください（例: tsunagu.city.lg.jp,10.0.0.5。今の値: {env['TSUNAGU_TRUSTED_HOSTS']!r}）。")
            s.trusted_hosts = hosts
        if not s.config_dir.is_dir():
            raise SettingError(f"TSUNAGU_CONFIG_DIR: 設定のフォルダ {s.config_dir} がありません"
                               "（departments.yaml、categories.yaml、routing.yaml、calendar.yaml を置くフォルダです）。")
        if s.instance_dir.exists() and not s.instance_dir.is_dir():
            raise SettingError(f"TSUNAGU_INSTANCE_DIR: {s.instance_dir} はフォルダではありません。")
        return s
