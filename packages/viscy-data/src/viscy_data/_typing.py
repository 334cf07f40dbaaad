"""Type aliases, sample dictionaries and fixed label maps shared by the data modules.

The normalization-metadata types are defined in :mod:`viscy_data.normalization` and re-exported here.
"""

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, NotRequired, TypedDict, TypeVar

from torch import ShortTensor, Tensor

from viscy_data.normalization import ChannelNormStats, LevelNormStats, NormMeta

__all__ = [
    "AnnotationColumns",
    "ChannelMap",
    "ChannelNormStats",
    "DictTransform",
    "HCSStackIndex",
    "INDEX_COLUMNS",
    "LABEL_CELL_CYCLE_STATE",
    "LABEL_CELL_DIVISION_STATE",
    "LABEL_CELL_REMODELING_STATE",
    "LABEL_INFECTION_STATE",
    "LevelNormStats",
    "NormMeta",
    "OneOrSeq",
    "Sample",
    "SegmentationSample",
    "TrackingIndex",
    "TripletSample",
]

DictTransform = Callable[[dict[str, Tensor | dict]], dict[str, Tensor]]

T = TypeVar("T")
OneOrSeq = T | Sequence[T]


class HCSStackIndex(NamedTuple):
    """Where a sliding-window stack comes from.

    Attributes
    ----------
    image : str
        Array path, e.g. ``"A/1/0/0"``.
    time : int
        Time index.
    z : int
        First Z slice of the window.
    """

    image: str
    time: int
    z: int


class Sample(TypedDict, total=False):
    """One image-to-image training sample (or a collated batch of them)."""

    index: HCSStackIndex
    source: OneOrSeq[Tensor]
    target: OneOrSeq[Tensor]
    weight: OneOrSeq[Tensor]
    labels: OneOrSeq[Tensor]
    norm_meta: NormMeta | None


class SegmentationSample(TypedDict):
    """A predicted and a ground-truth label image of one position and time."""

    pred: ShortTensor
    target: ShortTensor
    position_idx: OneOrSeq[int]
    time_idx: OneOrSeq[int]


class ChannelMap(TypedDict):
    """Source (input) and optional target channel names."""

    source: OneOrSeq[str]
    target: NotRequired[OneOrSeq[str]]


class TrackingIndex(TypedDict):
    """Identity of a tracked cell."""

    fov_name: OneOrSeq[str]
    id: OneOrSeq[int]


class TripletSample(TypedDict):
    """Anchor, positive and negative cell patches (a batch of them)."""

    anchor: Tensor
    positive: NotRequired[Tensor]
    negative: NotRequired[Tensor]
    index: NotRequired[TrackingIndex]


AnnotationColumns = Literal["infection_state", "cell_division_state", "cell_remodeling_state", "cell_cycle_state"]

LABEL_INFECTION_STATE = {"uninfected": 0, "infected": 1, "unknown": -1}
LABEL_CELL_DIVISION_STATE = {"interphase": 0, "mitosis": 1, "unknown": -1}
LABEL_CELL_CYCLE_STATE = {
    "G1": 0,
    "S": 1,
    "G2": 2,
    "prophase": 3,
    "metaphase": 4,
    "anaphase": 5,
    "telophase": 6,
    "unknown": -1,
}
LABEL_CELL_REMODELING_STATE = {"no_remodel": 0, "remodeling": 1, "unknown": -1}

INDEX_COLUMNS = ["fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]
