"""Turn batches of image tensors into colour-mapped grids for image loggers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

__all__ = ["detach_sample", "render_images"]


def detach_sample(imgs: Sequence[Tensor], log_samples_per_batch: int) -> list[list[np.ndarray]]:
    """Take the middle Z slice of the first samples of each tensor, as numpy.

    Parameters
    ----------
    imgs : Sequence[Tensor]
        Tensors of shape (B, C, Z, Y, X) with the same batch size (e.g. anchor, positive, negative).
    log_samples_per_batch : int
        Maximum number of samples to keep.

    Returns
    -------
    list[list[np.ndarray]]
        One row per sample, one column per tensor; each entry is the squeezed (C, Y, X) middle slice.
    """
    num_samples = min(imgs[0].shape[0], log_samples_per_batch)
    middle_slices = [img[:num_samples, :, img.shape[2] // 2].detach().cpu().numpy() for img in imgs]
    return [[np.squeeze(patches[i]) for patches in middle_slices] for i in range(num_samples)]


def _colormap_channels(image: np.ndarray, cmap_name: str) -> np.ndarray:
    """Rescale each channel to [0, 1] and map it to uint8 RGB, channels side by side."""
    from matplotlib import colormaps
    from skimage.exposure import rescale_intensity

    cmap = colormaps[cmap_name]
    channels = image[np.newaxis] if image.ndim == 2 else image
    rendered = [cmap(rescale_intensity(channel, out_range=(0.0, 1.0)), bytes=True)[..., :3] for channel in channels]
    return np.concatenate(rendered, axis=1)


def render_images(imgs: Sequence[Sequence[np.ndarray]], cmaps: Sequence[str] = ()) -> np.ndarray:
    """Render rows of images as one RGB grid.

    Parameters
    ----------
    imgs : Sequence[Sequence[np.ndarray]]
        Rows (samples) of columns (e.g. source, target, prediction); each image is (Y, X) or (C, Y, X),
        channels are placed side by side.
    cmaps : Sequence[str]
        Colormap per column; empty uses "gray" for the first column and "inferno" for the others.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` uint8 image.
    """
    rows = []
    for row in imgs:
        pieces = []
        for column, image in enumerate(row):
            cmap_name = cmaps[column] if cmaps else ("gray" if column == 0 else "inferno")
            pieces.append(_colormap_channels(np.asarray(image, dtype=np.float32), cmap_name))
        rows.append(np.concatenate(pieces, axis=1))
    return np.concatenate(rows, axis=0)
