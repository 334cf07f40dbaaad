"""Helpers to fill the TODO placeholders of the example configs and to write override configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from dynaclr_testing import CONFIG_DIR


def load_example(name: str) -> dict:
    """Parse one example config of ``examples/configs``."""
    return yaml.safe_load((CONFIG_DIR / name).read_text())


def class_paths(node: Any) -> list[str]:
    """Every ``class_path`` value in a parsed config, depth first."""
    if isinstance(node, dict):
        found = [node["class_path"]] if isinstance(node.get("class_path"), str) else []
        return found + [path for value in node.values() for path in class_paths(value)]
    if isinstance(node, list):
        return [path for value in node for path in class_paths(value)]
    return []


def fill_todos(node: Any, root: Path) -> Any:
    """Replace every string starting with ``TODO`` by a path (or name) under ``root``."""
    if isinstance(node, dict):
        return {key: fill_todos(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [fill_todos(value, root) for value in node]
    if isinstance(node, str) and node.startswith("TODO"):
        return str(root / node.removeprefix("TODO").lstrip("/_"))
    return node


def todo_strings(node: Any) -> list[str]:
    """Every string starting with ``TODO`` in a parsed config."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in todo_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in todo_strings(value)]
    return [node] if isinstance(node, str) and node.startswith("TODO") else []


def write_yaml(path: Path, content: dict) -> Path:
    """Write ``content`` as YAML to ``path`` and return the path."""
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path
