"""Intensity normalization of images: z-scoring, percentile clipping and adaptive equalization."""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["zscore", "unzscore", "hist_clipping", "hist_adapteq_2D"]

_EPS = sys.float_info.epsilon


def zscore(input_image: np.ndarray, im_mean: float | None = None, im_std: float | None = None) -> np.ndarray:
    """Z-score an image: ``(x - mean) / (std + eps)``.

    Parameters
    ----------
    input_image : np.ndarray
        Image of any shape.
    im_mean : float | None
        Mean to subtract; ``None`` uses the image's NaN-aware mean. A mean of 0 is honoured.
    im_std : float | None
        Standard deviation to divide by; ``None`` uses the image's NaN-aware standard deviation.

    Returns
    -------
    np.ndarray
        The normalized image.
    """
    if im_mean is None:
        im_mean = np.nanmean(input_image)
    if im_std is None:
        im_std = np.nanstd(input_image)
    return (input_image - im_mean) / (im_std + _EPS)


def unzscore(im_norm: np.ndarray, zscore_median: float, zscore_iqr: float) -> np.ndarray:
    """Undo a median/IQR normalization: ``x * (iqr + eps) + median``.

    Parameters
    ----------
    im_norm : np.ndarray
        Normalized image.
    zscore_median : float
        Median (or mean) that was subtracted.
    zscore_iqr : float
        Interquartile range (or standard deviation) that was divided by.

    Returns
    -------
    np.ndarray
        Image in the original intensity scale.
    """
    return im_norm * (zscore_iqr + _EPS) + zscore_median


def hist_clipping(input_image: np.ndarray, min_percentile: float = 2, max_percentile: float = 98) -> np.ndarray:
    """Clip an image to the intensities at two percentiles (values are not rescaled).

    Parameters
    ----------
    input_image : np.ndarray
        Image of any shape.
    min_percentile : float
        Lower percentile in ``[0, max_percentile)``.
    max_percentile : float
        Upper percentile in ``(min_percentile, 100]``.

    Returns
    -------
    np.ndarray
        The clipped image.

    Raises
    ------
    ValueError
        If the percentiles are out of order or outside ``[0, 100]``.
    """
    if not 0 <= min_percentile < max_percentile <= 100:
        raise ValueError(
            f"Expected 0 <= min_percentile < max_percentile <= 100, got min_percentile={min_percentile}, "
            f"max_percentile={max_percentile}."
        )
    low, high = np.percentile(input_image, [min_percentile, max_percentile])
    return np.clip(input_image, low, high)


def hist_adapteq_2D(
    input_image: np.ndarray,
    kernel_size: int | list[int] | tuple[int, int] | None = None,
    clip_limit: float | None = None,
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization of a 2-D image.

    Parameters
    ----------
    input_image : np.ndarray
        2-D image (Y, X).
    kernel_size : int | list[int] | tuple[int, int] | None
        Tile size: an int smaller than both image sides, or a pair; ``None`` uses 1/8 of each side.
    clip_limit : float | None
        Clipping limit in ``[0, 1]``; ``None`` uses scikit-image's default.

    Returns
    -------
    np.ndarray
        Equalized float image in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the image is not 2-D, or ``kernel_size`` / ``clip_limit`` are invalid.
    """
    from skimage.exposure import equalize_adapthist

    if input_image.ndim != 2:
        raise ValueError(f"Expected a 2-D image, got shape {input_image.shape}.")
    nrows, ncols = input_image.shape
    if isinstance(kernel_size, int):
        if kernel_size >= min(nrows, ncols):
            raise ValueError(f"kernel_size {kernel_size} must be smaller than the image sides {(nrows, ncols)}.")
    elif isinstance(kernel_size, (list, tuple)):
        if len(kernel_size) != 2:
            raise ValueError(f"kernel_size must have length 2, got {kernel_size}.")
    elif kernel_size is not None:
        raise ValueError("kernel size invalid: not an int / list / tuple")
    if clip_limit is not None and not 0 <= clip_limit <= 1:
        raise ValueError(f"clip_limit must be in [0, 1], got {clip_limit}.")
    kwargs = {} if clip_limit is None else {"clip_limit": clip_limit}
    return equalize_adapthist(input_image, kernel_size=kernel_size, **kwargs)
