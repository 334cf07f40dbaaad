"""Checkpoint files checked before use: readable, and matching the model's keys and shapes.

``read_checkpoint`` turns a missing, truncated or foreign file into an error naming the file;
``read_state_dict`` also requires its ``"state_dict"`` entry; ``check_state_dict`` compares a state
dict with a module's and names the first missing, unexpected and differently shaped keys;
``check_checkpoint_matches`` does both for a Lightning checkpoint, memory-mapping the file so that
only its metadata is read.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "RESOLVED_CKPT_PATHS",
    "check_checkpoint_matches",
    "check_state_dict",
    "is_checkpoint_file_path",
    "read_checkpoint",
    "read_state_dict",
]

RESOLVED_CKPT_PATHS = ("last", "best", "hpc")
"""``ckpt_path`` keywords that Lightning resolves itself (as it does ``"registry"`` / ``"registry:..."``)."""

_SHOWN_KEYS = 5


def _first(keys: Iterable[str]) -> list[str]:
    return sorted(keys)[:_SHOWN_KEYS]


def is_checkpoint_file_path(ckpt_path: str | Path | None) -> bool:
    """Whether ``ckpt_path`` names a file (not None and not one of Lightning's keywords)."""
    if ckpt_path is None:
        return False
    name = str(ckpt_path)
    registry = name.lower() == "registry" or name.lower().startswith("registry:")
    return name not in RESOLVED_CKPT_PATHS and not registry


def read_checkpoint(ckpt_path: str | Path, mmap: bool = False) -> dict:
    """Load a checkpoint on the CPU (``weights_only``), with errors that name the file.

    Parameters
    ----------
    ckpt_path : str | Path
        Checkpoint file written by ``torch.save`` / Lightning.
    mmap : bool
        Memory-map the tensors instead of reading them (zip-format files only).

    Returns
    -------
    dict
        The checkpoint.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is truncated, not a PyTorch checkpoint, or not a mapping.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    mmap = mmap and zipfile.is_zipfile(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"checkpoint {path} ({path.stat().st_size} bytes) cannot be read: it is truncated or not a "
            f"PyTorch checkpoint ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dictionary")
    return checkpoint


def check_state_dict(module: nn.Module, state_dict: dict, source: str) -> None:
    """Raise if ``state_dict`` does not have exactly the module's keys and shapes.

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
        Naming the counts and the first missing, unexpected and differently shaped keys.
    """
    expected = module.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    reshaped = {
        key: (tuple(state_dict[key].shape), tuple(expected[key].shape))
        for key in set(expected) & set(state_dict)
        if hasattr(state_dict[key], "shape") and tuple(state_dict[key].shape) != tuple(expected[key].shape)
    }
    if missing or unexpected or reshaped:
        shapes = [f"{key}: checkpoint {reshaped[key][0]} vs model {reshaped[key][1]}" for key in _first(reshaped)]
        raise ValueError(
            f"checkpoint {source} does not match {type(module).__name__}: "
            f"{len(missing)} missing keys (first: {_first(missing)}), "
            f"{len(unexpected)} unexpected keys (first: {_first(unexpected)}), "
            f"{len(reshaped)} keys with other shapes (first: {shapes}). "
            "Check that the model configuration (backbone, in_channels, ...) matches the one used for training."
        )


def read_state_dict(ckpt_path: str | Path, mmap: bool = False) -> dict:
    """The ``"state_dict"`` entry of a Lightning checkpoint file (see :func:`read_checkpoint`).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    KeyError
        If the file has no ``"state_dict"`` entry.
    ValueError
        If the file cannot be read.
    """
    checkpoint = read_checkpoint(ckpt_path, mmap=mmap)
    if "state_dict" not in checkpoint:
        raise KeyError(f"checkpoint {ckpt_path} has no 'state_dict' entry (found keys {sorted(checkpoint)[:10]})")
    return checkpoint["state_dict"]


def check_checkpoint_matches(module: nn.Module, ckpt_path: str | Path) -> None:
    """Check that a Lightning checkpoint file is readable and fits ``module``, without loading its tensors.

    Parameters
    ----------
    module : nn.Module
        Model the checkpoint will be loaded into.
    ckpt_path : str | Path
        Lightning checkpoint with a ``"state_dict"`` entry.

    Raises
    ------
    FileNotFoundError, KeyError, ValueError
        As :func:`read_state_dict`; ``ValueError`` also if the keys or shapes differ from the module's.
    """
    check_state_dict(module, read_state_dict(ckpt_path, mmap=True), str(ckpt_path))
