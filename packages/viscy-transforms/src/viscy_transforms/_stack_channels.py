"""Stack named channel entries of a sample into multi-channel tensors."""

from collections.abc import Hashable, Mapping

import torch
from torch import Tensor

from viscy_transforms._base import MapTransform
from viscy_transforms._typing import ChannelMap

__all__ = ["StackChannelsd"]


class StackChannelsd(MapTransform):
    """Concatenate channel entries into one tensor per output key, e.g. ``{"source": [...], "target": [...]}``.

    Per-sample entries ``(1, *spatial)`` are concatenated along dim 0; batched 5-D entries ``(B, 1, Z, Y, X)``
    along dim 1. The output holds only the stacked keys (every other entry, ``norm_meta`` included, is dropped).

    Parameters
    ----------
    channel_map : ChannelMap
        Output key -> list of input channel keys, in stacking order.
    """

    def __init__(self, channel_map: ChannelMap) -> None:
        channels = [channel for names in channel_map.values() for channel in names]
        super().__init__(channels, allow_missing_keys=False)
        self.channel_map = channel_map

    def __call__(self, sample: Mapping[Hashable, Tensor]) -> dict[str, Tensor]:
        """Return ``{out_key: stacked tensor}`` for each entry of ``channel_map``."""
        out = {}
        for out_key, channels in self.channel_map.items():
            missing = [channel for channel in channels if channel not in sample]
            if missing:
                available = sorted(map(str, sample))
                raise KeyError(f"StackChannelsd: channels {missing} for '{out_key}' not in sample (keys: {available})")
            tensors = [sample[channel] for channel in channels]
            dim = 1 if tensors[0].ndim == 5 else 0
            out[out_key] = torch.cat(tensors, dim=dim)
        return out
