"""YAML with line numbers: a SafeLoader whose mappings and sequences remember where each key and item starts,
so that a refusal of the rules file names its line."""
from __future__ import annotations

from typing import Any

import yaml


class LineMap(dict):
    """A YAML mapping that remembers where it and its keys and values start (1-based)."""

    line: int = 1
    key_lines: dict
    value_lines: dict
    duplicates: list


class LineSeq(list):
    """A YAML sequence that remembers where it and each item start (1-based)."""

    line: int = 1
    item_lines: list


class LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader whose mappings and sequences carry their source line numbers; it parses with libyaml where
    PyYAML was built with it, several times faster on a city's rules file."""


def _construct_map(loader: LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.value_lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "unhashable key", key_node.start_mark
            ) from None
        if key in result:
            result.duplicates.append((key, key_node.start_mark.line + 1))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
        result.value_lines[key] = value_node.start_mark.line + 1
    return result


def _construct_seq(loader: LineLoader, node: yaml.SequenceNode) -> LineSeq:
    result = LineSeq()
    result.line = node.start_mark.line + 1
    result.item_lines = []
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.item_lines.append(item.start_mark.line + 1)
    return result


def key_line(mapping: Any, key: str, default: int) -> int:
    return getattr(mapping, "key_lines", {}).get(key, default)


def value_line(mapping: Any, key: str, default: int) -> int:
    return getattr(mapping, "value_lines", {}).get(key, default)


def item_line(seq: Any, index: int, default: int) -> int:
    lines = getattr(seq, "item_lines", None)
    return lines[index] if lines and index < len(lines) else default


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
# Rules hold no dates: keep date-like scalars as text (a bad date must not crash the loader).
LineLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
