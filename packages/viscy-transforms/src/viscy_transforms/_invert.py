"""Random intensity inversion (negation)."""

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from viscy_transforms._base import (
    MapTransform,
    Randomizable,
    draw_coins,
    is_batched_input,
    present_batched_keys,
    seed_from_global_rng,
)

__all__ = ["RandInvertIntensityd"]


class RandInvertIntensityd(MapTransform, Randomizable):
    """Negate the intensities of all keys with probability ``prob``.

    Per-sample input: one coin per call. Batched ``(B, C, Z, Y, X)`` input: one coin per sample, shared by
    the keys of that sample.

    Parameters
    ----------
    keys : Sequence[str] | str
        Keys of the tensors to invert.
    prob : float
        Probability of inverting a sample.
    allow_missing_keys : bool
        Skip keys absent from the sample instead of raising ``KeyError``.
    """

    def __init__(self, keys: Sequence[str] | str, prob: float = 0.1, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.prob = prob
        self._do_transform = False
        seed_from_global_rng(self)

    def __call__(self, sample: Mapping[Hashable, Tensor]) -> dict[Hashable, Tensor]:
        """Invert the selected sample(s)."""
        d = dict(sample)
        if is_batched_input(self, d):
            keys = present_batched_keys(self, d)
            selected = draw_coins(self.R, self.prob, d[keys[0]].shape[0])
            for key in keys:
                sign = torch.as_tensor(np.where(selected, -1.0, 1.0), dtype=d[key].dtype, device=d[key].device)
                d[key] = d[key] * sign.view(-1, 1, 1, 1, 1)
            return d
        self.randomize(None)
        if self._do_transform:
            for key in self.key_iterator(d):
                d[key] = -d[key]
        return d

    def randomize(self, data: Any = None) -> None:
        """Draw the coin of the next per-sample call."""
        self._do_transform = bool(self.R.rand() < self.prob)
