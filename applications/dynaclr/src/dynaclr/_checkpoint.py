"""Loading a checkpoint's weights strictly, with a clear report of mismatched keys and shapes."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from viscy_utils.checkpoint import check_state_dict, read_state_dict


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
    FileNotFoundError, KeyError, ValueError
        See :func:`viscy_utils.checkpoint.check_checkpoint_matches`.
    """
    state_dict = read_state_dict(ckpt_path)
    check_state_dict(module, state_dict, str(Path(ckpt_path)))
    module.load_state_dict(state_dict, strict=True)
