"""Split a collated batch back into a list of samples."""

from collections.abc import Sequence
from typing import Any

from monai.data import decollate_batch
from monai.transforms import Decollated as MonaiDecollated
from monai.transforms import Transform

__all__ = ["Decollate", "Decollated"]


class Decollate(Transform):
    """Decollate a batch (tensor or nested structure) into a list of ``B`` samples.

    Parameters
    ----------
    detach : bool
        Detach tensors and turn 0-d tensors into Python numbers.
    pad_batch : bool
        Pad shorter sequences with ``fill_value`` when batch items have different lengths.
    fill_value : Any
        Value used for padding.
    """

    def __init__(self, detach: bool = True, pad_batch: bool = True, fill_value: Any = None) -> None:
        self.detach = detach
        self.pad_batch = pad_batch
        self.fill_value = fill_value

    def __call__(self, data: Any) -> list:
        """Return the list of samples of ``data``."""
        return decollate_batch(data, detach=self.detach, pad=self.pad_batch, fill_value=self.fill_value)


class Decollated(MonaiDecollated):
    """MONAI ``Decollated`` with an explicit signature: decollate the given keys into a list of dicts.

    Parameters
    ----------
    keys : Sequence[str] | str | None
        Keys to decollate (None: all).
    detach, pad_batch, fill_value
        See :class:`Decollate`.
    allow_missing_keys : bool
        Skip keys absent from the data instead of raising ``KeyError``.
    """

    def __init__(
        self,
        keys: Sequence[str] | str | None,
        detach: bool = True,
        pad_batch: bool = True,
        fill_value: Any = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, detach, pad_batch, fill_value, allow_missing_keys)
