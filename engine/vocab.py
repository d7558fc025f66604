"""The code lists of config/categories.yaml (課題分類, 圏域, 相談経路, 終結理由 …)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from engine.settings import PROJECT_ROOT


def config_dir() -> Path:
    return Path(os.environ.get("TSUNAGU_CONFIG_DIR") or PROJECT_ROOT / "config")


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return {k: {str(code): str(label) for code, label in v.items()} for k, v in data.items()}


@lru_cache(maxsize=8)
def _file_in(directory: str | None) -> str:
    return str(Path(directory or PROJECT_ROOT / "config") / "categories.yaml")


def lists(directory: Path | None = None) -> dict[str, dict[str, str]]:
    """Every code list, as {list name: {code: Japanese label}}."""
    if directory is not None:
        return _load(str(Path(directory) / "categories.yaml"))
    # Read on every label shown: the file's name is worked out once per configured folder.
    return _load(_file_in(os.environ.get("TSUNAGU_CONFIG_DIR")))


def codes(name: str) -> dict[str, str]:
    return lists()[name]


def label(name: str, code: str | None) -> str:
    if code is None:
        return ""
    return lists()[name].get(code, code)
