"""Checkpoint loading with a clear report of mismatched state-dict keys."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

_SHOWN_KEYS = 5


def _first(keys: Iterable[str]) -> list[str]:
    return sorted(keys)[:_SHOWN_KEYS]


def check_state_dict_keys(module: nn.Module, state_dict: dict, source: str) -> None:
    """Raise if ``state_dict`` does not have exactly the module's keys.

    Parameters
    ----------
    module : nn.Module
        Module the state dict is meant for.
    state_dict : dict
        Checkpoint state dict.
    source : str
        Where the state dict comes from (shown in the error).

    Raises
    ------
    ValueError
        Naming the counts and the first missing and unexpected keys.
    """
    expected = set(module.state_dict().keys())
    found = set(state_dict.keys())
    missing = expected - found
    unexpected = found - expected
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {source} does not match {type(module).__name__}: "
            f"{len(missing)} missing keys (first: {_first(missing)}), "
            f"{len(unexpected)} unexpected keys (first: {_first(unexpected)}). "
            "Check that the encoder configuration matches the one used for training."
        )


def load_checkpoint_weights(module: nn.Module, ckpt_path: str | Path) -> None:
    """Load a Lightning checkpoint's ``state_dict`` into ``module`` strictly.

    Parameters
    ----------
    module : nn.Module
        Module to load into.
    ckpt_path : str | Path
        Lightning checkpoint file with a ``"state_dict"`` entry.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If the file has no ``"state_dict"`` entry.
    ValueError
        If the keys do not match the module's (see :func:`check_state_dict_keys`).
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint:
        raise KeyError(f"checkpoint {path} has no 'state_dict' entry (found keys {sorted(checkpoint)[:10]})")
    state_dict = checkpoint["state_dict"]
    check_state_dict_keys(module, state_dict, str(path))
    module.load_state_dict(state_dict, strict=True)
