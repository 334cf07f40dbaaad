"""Types of the normalization metadata that transforms read from a sample's ``norm_meta``.

The one definition of the ``.zattrs["normalization"]`` tree as tensors: ``viscy_data.normalization``
(which reads and writes it) and this package's ``NormalizeSampled`` both use these types.
"""

from typing import TypedDict

from torch import Tensor

__all__ = ["ChannelNormStats", "LevelNormStats", "NormMeta"]


class LevelNormStats(TypedDict):
    """Intensity statistics of one channel at one level (dataset or FOV)."""

    mean: Tensor
    std: Tensor
    median: Tensor
    iqr: Tensor


class ChannelNormStats(TypedDict):
    """Statistics of one channel, per level."""

    dataset_statistics: LevelNormStats
    fov_statistics: LevelNormStats


NormMeta = dict[str, ChannelNormStats]
