"""Type aliases for sample dictionaries and normalization metadata (not exported at package level)."""

from collections.abc import Sequence
from typing import NamedTuple, NotRequired, TypedDict, TypeVar

from torch import Tensor

__all__ = [
    "ChannelMap",
    "ChannelNormStats",
    "HCSStackIndex",
    "LevelNormStats",
    "NormMeta",
    "OneOrSeq",
    "Sample",
]

T = TypeVar("T")
OneOrSeq = T | Sequence[T]


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


class HCSStackIndex(NamedTuple):
    """Where a sliding-window stack comes from: array path, time index and first Z slice."""

    image: str
    time: int
    z: int


class Sample(TypedDict, total=False):
    """One training sample (or a collated batch of them)."""

    index: HCSStackIndex
    source: OneOrSeq[Tensor]
    target: OneOrSeq[Tensor]
    weight: OneOrSeq[Tensor]
    labels: OneOrSeq[Tensor]
    norm_meta: NormMeta | None


class ChannelMap(TypedDict):
    """Output key -> list of input channel keys, as used by ``StackChannelsd``."""

    source: list[str]
    target: NotRequired[list[str]]
