"""Helpers shared by the viscy-models tests."""

import torch


def state_dict_summary(model: torch.nn.Module) -> tuple[int, set[str], set[str]]:
    """Number of state-dict entries, top-level prefixes and the full key set."""
    keys = set(model.state_dict())
    return len(keys), {k.split(".")[0] for k in keys}, keys
