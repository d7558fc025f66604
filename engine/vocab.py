"""The code lists of config/categories.yaml (課題分類, 圏域, 相談経路, 終結理由 …)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import yaml

from engine.settings import PROJECT_ROOT


def config_dir() -> Path:
    return _folder(os.environ.get("TSUNAGU_CONFIG_DIR"))


# Asked for on every label shown: the folder and the file's name are worked out once per configured value.
@lru_cache(maxsize=8)
def _folder(configured: str | None) -> Path:
    return Path(configured or PROJECT_ROOT / "config")


@lru_cache(maxsize=8)
def _codes_file(directory: Path) -> str:
    return str(Path(directory) / "categories.yaml")


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return {k: {str(code): str(label) for code, label in v.items()} for k, v in data.items()}


def lists(directory: Path | None = None) -> dict[str, dict[str, str]]:
    """Every code list, as {list name: {code: Japanese label}}."""
    return _load(_codes_file(directory or config_dir()))


def codes(name: str) -> dict[str, str]:
    return lists()[name]


def label(name: str, code: str | None) -> str:
    if code is None:
        return ""
    return lists()[name].get(code, code)
