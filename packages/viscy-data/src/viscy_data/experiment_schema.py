"""Typed schema of ``experiments.yml``, checked before anything else reads the file.

``read_experiments_yaml`` parses the YAML and validates every entry with pydantic: field types
(lists of strings, a mapping of condition -> wells), finite numbers, positive ``interval_minutes``,
non-negative ``moi``, well names of the form ``"row/col"`` and each well under one condition only.
Every failure names the file, the entry (index and name), the field, the value found and what was
expected. Checks against the plates on disk are done afterwards by ``ExperimentRegistry``.

For compatibility with configs written for the dataclass-only reader, numbers given for string
fields (``name: 20250722``) are read as strings, and an unquoted YAML date (``date: 2025-07-22``) as
its ISO text.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

__all__ = ["ExperimentEntry", "read_experiments_yaml"]

_WELL_PATTERN = r"^[^/\s]+/[^/\s]+$"


def _iso_date(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.date) else value


Well = Annotated[str, Field(pattern=_WELL_PATTERN)]


class ExperimentEntry(BaseModel):
    """One entry of the ``experiments`` list (the fields of ``ExperimentConfig``)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    data_path: str = Field(min_length=1)
    tracks_path: str = Field(min_length=1)
    channel_names: list[str] = Field(min_length=1)
    source_channel: list[str] = Field(min_length=1)
    condition_wells: dict[str, list[Well]]
    interval_minutes: float = 30.0
    start_hpi: float = 0.0
    organelle: str = ""
    date: Annotated[str, BeforeValidator(_iso_date)] = ""
    moi: float = Field(0.0, ge=0)

    @field_validator("interval_minutes")
    @classmethod
    def _positive_interval(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"interval_minutes must be positive, got {value}")
        return value

    @field_validator("condition_wells")
    @classmethod
    def _one_condition_per_well(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("condition_wells must not be empty")
        seen: dict[str, str] = {}
        for condition, wells in value.items():
            for well in wells:
                if well in seen and seen[well] != condition:
                    raise ValueError(f"well '{well}' is listed under conditions '{seen[well]}' and '{condition}'")
                seen[well] = condition
        return value


_FIELDS = list(ExperimentEntry.model_fields)


def _describe(path: Path, index: int, entry: dict, error: ValidationError) -> str:
    name = entry.get("name")
    where = f"{path}: experiments[{index}]" + (f" (name '{name}')" if name is not None else "")
    problems = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        found = "" if problem["type"] == "missing" else f" (got {problem['input']!r})"
        problems.append(f"field '{field}': {message}{found}")
    return f"{where}: " + "; ".join(problems)


def _validate_entry(path: Path, index: int, entry: Any) -> ExperimentEntry:
    if not isinstance(entry, dict):
        raise TypeError(f"{path}: experiments[{index}] must be a mapping, got {type(entry).__name__}.")
    unknown = sorted(set(entry) - set(_FIELDS), key=str)
    if unknown:
        raise TypeError(f"{path}: experiments[{index}] has unknown keys {unknown}; expected keys from {_FIELDS}.")
    try:
        return ExperimentEntry.model_validate(entry)
    except ValidationError as error:
        kind = TypeError if any(e["type"] == "missing" for e in error.errors()) else ValueError
        raise kind(_describe(path, index, entry, error)) from None


def read_experiments_yaml(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate an ``experiments.yml``.

    Parameters
    ----------
    path : str | Path
        YAML file with a top-level ``experiments`` list of mappings.

    Returns
    -------
    list[dict[str, Any]]
        One validated mapping per entry (all ``ExperimentConfig`` fields, defaults filled in).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If the top-level ``experiments`` key is missing.
    TypeError
        If an entry is not a mapping, has an unknown key or lacks a required one.
    ValueError
        If the file is not valid YAML, ``experiments`` is not a list, or a field has the wrong type
        or range (the message names the file, the entry, the field and the value).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Experiments YAML not found: {path}")
    try:
        content = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable YAML file: {error}") from error
    if not isinstance(content, dict) or "experiments" not in content:
        raise KeyError(f"{path}: missing top-level key 'experiments' (a list of experiment mappings).")
    entries = content["experiments"] or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'experiments' must be a list of mappings, got {type(entries).__name__}.")
    return [_validate_entry(path, i, entry).model_dump() for i, entry in enumerate(entries)]
