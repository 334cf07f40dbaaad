"""Small helpers for command-line scripts: markdown tables and YAML configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["format_markdown_table", "load_config"]


def _title_case(name: str) -> str:
    return name.replace("_", " ").title()


def _format_value(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _separator(headers: list[str]) -> str:
    return "|" + "|".join("---" + "-" * len(header) for header in headers) + "|"


def format_markdown_table(data: dict | list[dict], title: str | None = None, headers: list[str] | None = None) -> str:
    """Format metrics or records as a markdown table.

    Parameters
    ----------
    data : dict | list[dict]
        A ``{name: value}`` mapping (one row per key, keys title-cased) or a list of records
        (one row per record, columns from ``headers`` or the first record's keys).
    title : str | None
        If given, a ``## title`` heading and a blank line come first.
    headers : list[str] | None
        Column names. For a dict they default to ``["Metric", "Value"]`` and are used as given;
        for records they default to the first record's keys and are title-cased.

    Returns
    -------
    str
        Markdown lines joined by newlines, ending with a newline (empty for an empty list
        without title).

    Examples
    --------
    >>> format_markdown_table({"train_accuracy": 0.91234, "n": 3}, title="Metrics")
    '## Metrics\\n\\n| Metric | Value |\\n|---------|--------|\\n| Train Accuracy | 0.912 |\\n| N | 3 |\\n'
    """
    lines: list[str] = []
    if title:
        lines += [f"## {title}", ""]
    if isinstance(data, dict):
        headers = ["Metric", "Value"] if headers is None else list(headers)
        lines.append("| " + " | ".join(headers) + " |")
        lines.append(_separator(headers))
        lines += [f"| {_title_case(str(key))} | {_format_value(value)} |" for key, value in data.items()]
    elif data:
        keys = list(data[0].keys()) if headers is None else list(headers)
        shown = [_title_case(str(key)) for key in keys]
        lines.append("| " + " | ".join(shown) + " |")
        lines.append(_separator(shown))
        for row in data:
            lines.append("| " + " | ".join(_format_value(row.get(key, "")) for key in keys) + " |")
    lines.append("")
    return "\n".join(lines)


def load_config(config_path: str | Path) -> dict:
    """Read a YAML configuration file.

    Parameters
    ----------
    config_path : str | Path
        Path of the YAML file.

    Returns
    -------
    dict
        The parsed document.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    yaml.YAMLError
        If the file is not valid YAML.
    """
    if not Path(config_path).is_file():
        raise FileNotFoundError(f"Config file not found: {config_path}")
    with open(config_path) as file:
        return yaml.safe_load(file)
