"""Batched reads of equally sized cell patches: a whole batch per read (in waves of chunks when large).

The patch reader of the triplet datasets (``viscy_data.triplet.TripletDataset`` and DynaCLR's
``MultiExperimentTripletDataset``): each row of a batch names a position of a
:class:`~viscy_data.io.PositionArrays` by its index, a time point and the top-left YX corner of
its patch; the reader turns the rows into index expressions and reads them all in one batched read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from viscy_data.io import PositionArrays

__all__ = ["PatchReader"]


class PatchReader:
    """Read ``(N, C, Z, Y, X)`` patches of one size from the positions of a :class:`PositionArrays`.

    Parameters
    ----------
    arrays : PositionArrays
        Handles of the positions (opened lazily by the reader thread or process).
    channels : Sequence[Sequence[int]]
        Per position, the indices of the channels to read, in the order the patch stacks them; every
        position reads the same number of channels.
    z_range : slice
        Z slices to read.
    yx_patch_size : tuple[int, int]
        YX size of every patch.
    """

    def __init__(
        self,
        arrays: PositionArrays,
        channels: Sequence[Sequence[int]],
        z_range: slice,
        yx_patch_size: tuple[int, int],
    ) -> None:
        if len(channels) != len(arrays):
            raise ValueError(f"PatchReader got channel lists for {len(channels)} positions but {len(arrays)} arrays.")
        counts = sorted({len(indices) for indices in channels})
        if len(counts) > 1:
            raise ValueError(f"PatchReader: every position must read the same number of channels, got {counts}.")
        self.arrays = arrays
        self.channels = [list(indices) for indices in channels]
        self.z_range = z_range
        self.yx_patch_size = (int(yx_patch_size[0]), int(yx_patch_size[1]))

    def read(self, position: ArrayLike, t: ArrayLike, y0: ArrayLike, x0: ArrayLike) -> Tensor:
        """Read one patch per row, all rows in one batched read.

        Parameters
        ----------
        position, t, y0, x0 : ArrayLike
            Equally long integer arrays: index of the position in ``arrays``, time point, and top-left
            Y and X of the patch in pixels.

        Returns
        -------
        Tensor
            ``(N, C, Z, Y, X)`` in the store dtype, row ``i`` read from ``position[i]`` at ``t[i]``.
        """
        height, width = self.yx_patch_size
        rows = (np.asarray(values, dtype=np.int64).tolist() for values in (position, t, y0, x0))
        regions = [
            (p, (ti, self.channels[p], self.z_range, slice(y, y + height), slice(x, x + width)))
            for p, ti, y, x in zip(*rows, strict=True)
        ]
        return torch.from_numpy(self.arrays.read(regions))
