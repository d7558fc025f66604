"""The code lists a rules file may name (departments, issue categories, areas, sources, urgencies), read
from the configuration folder beside it (categories.yaml and departments.yaml)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ValueError(f"{path}: ファイルを読み込めません ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: YAML の構文エラー: {exc}") from exc


def load_vocabularies(config_dir: Path) -> dict[str, set[str]]:
    """Read categories.yaml and departments.yaml from ``config_dir``.

    Returns ``{"departments", "categories", "areas", "sources", "urgencies"}``
    code sets, ready to pass to :func:`parse_rules` as keyword arguments.
    Raises ``ValueError`` naming the file when one is missing or malformed.
    """
    config_dir = Path(config_dir)
    cat_path = config_dir / "categories.yaml"
    dep_path = config_dir / "departments.yaml"
    cats = _read_yaml(cat_path)
    if not isinstance(cats, dict):
        raise ValueError(f"{cat_path}: 最上位はマッピングで指定してください")
    result: dict[str, set[str]] = {}
    for out_key, file_key in (
        ("categories", "issue_categories"),
        ("areas", "areas"),
        ("sources", "sources"),
        ("urgencies", "urgencies"),
    ):
        section = cats.get(file_key)
        if not isinstance(section, dict) or not section:
            raise ValueError(f"{cat_path}: {file_key}（コード: 表示名）がありません")
        result[out_key] = {str(code) for code in section}
    deps = _read_yaml(dep_path)
    entries = deps.get("departments") if isinstance(deps, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{dep_path}: departments のリストがありません")
    codes = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("code"), str):
            raise ValueError(f"{dep_path}: code のない部署があります: {entry!r}")
        codes.add(entry["code"])
    result["departments"] = codes
    return result
