"""Type aliases for sample dictionaries and normalization metadata (not exported at package level)."""

from collections.abc import Sequence
from typing import NamedTuple, NotRequired, TypedDict, TypeVar

from torch import Tensor

from viscy_transforms.normalization_types import ChannelNormStats, LevelNormStats, NormMeta

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
