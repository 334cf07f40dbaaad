"""Precompute normalized images of an HCS plate into a stack of ``.npy`` chunks (one per FOV)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["precompute_array"]

Subtrahend = Literal["mean"] | float
Divisor = Literal["std"] | tuple[float, float]


def _normalize_image(image: da.Array, subtrahend: Subtrahend, divisor: Divisor, eps: float = 1e-6) -> da.Array:
    """Subtract and divide one channel of a well stack.

    Parameters
    ----------
    image : dask.array.Array
        Values of one channel.
    subtrahend : "mean" | float
        ``"mean"`` subtracts the image mean; a number is a percentile of the image to subtract.
    divisor : "std" | tuple[float, float]
        ``"std"`` divides by the image standard deviation; ``(low, high)`` percentiles divide by their spread.
    eps : float
        Lower bound of the divisor, so that a constant image does not divide by zero.

    Returns
    -------
    dask.array.Array
        ``(image - subtrahend) / max(divisor, eps)``.
    """
    import dask.array as da

    requested = [p for p in (subtrahend, *([] if divisor == "std" else divisor)) if p != "mean"]
    # dask merges chunk percentiles correctly only for increasing q
    percentiles = sorted(set(requested))
    values = da.percentile(image.flatten(), percentiles) if percentiles else None

    def percentile(q: float) -> da.Array:
        return values[percentiles.index(q)]

    sub = image.mean() if subtrahend == "mean" else percentile(subtrahend)
    div = image.std() if divisor == "std" else percentile(divisor[1]) - percentile(divisor[0])
    return (image - sub) / da.maximum(div, eps)


def _check_normalization(channel_names: Sequence[str], subtrahends: Sequence, divisors: Sequence) -> None:
    if not len(channel_names) == len(subtrahends) == len(divisors):
        raise ValueError(
            f"channel_names, subtrahends and divisors must have the same length, got {len(channel_names)}, "
            f"{len(subtrahends)} and {len(divisors)}."
        )
    for subtrahend in subtrahends:
        if subtrahend != "mean" and not isinstance(subtrahend, (int, float)):
            raise ValueError(f"A subtrahend must be 'mean' or a percentile number, got {subtrahend!r}.")
    for divisor in divisors:
        if divisor != "std" and not (isinstance(divisor, (list, tuple)) and len(divisor) == 2):
            raise ValueError(f"A divisor must be 'std' or a (low, high) percentile pair, got {divisor!r}.")


def precompute_array(
    data_path: Path,
    output_path: Path,
    channel_names: list[str],
    subtrahends: list[Subtrahend],
    divisors: list[Divisor],
    image_array_key: str = "0",
    include_wells: list[str] | None = None,
    exclude_fovs: list[str] | None = None,
) -> None:
    """Normalize selected channels of every selected FOV and save them as float16 ``.npy`` chunks.

    Each well is normalized on its own (statistics over its FOVs, T, Z, Y and X). The output, written with
    ``dask.array.to_npy_stack``, has shape ``(FOV, T, C, Z, Y, X)`` with one chunk per FOV.

    Parameters
    ----------
    data_path : Path
        HCS OME-Zarr plate.
    output_path : Path
        Directory to create for the ``.npy`` stack.
    channel_names : list[str]
        Channels to keep, in output order.
    subtrahends : list["mean" | float]
        Per channel: ``"mean"`` or a percentile to subtract.
    divisors : list["std" | tuple[float, float]]
        Per channel: ``"std"`` or a ``(low, high)`` percentile pair whose spread divides.
    image_array_key : str
        Array of each position to read.
    include_wells : list[str] | None
        Wells to use (e.g. ``["A/1"]``), all when None.
    exclude_fovs : list[str] | None
        FOVs to skip (e.g. ``["A/1/0"]``).

    Raises
    ------
    FileExistsError
        If ``output_path`` exists.
    ValueError
        For unknown channels, mismatched normalization lists, or when no FOV is selected.
    """
    import dask.array as da
    from dask.diagnostics import ProgressBar
    from iohub.ngff import open_ome_zarr

    from viscy_data.select import filter_fovs, filter_wells

    output_path = Path(output_path)
    if output_path.exists():
        raise FileExistsError(f"Output path {output_path} already exists.")
    _check_normalization(channel_names, subtrahends, divisors)
    with open_ome_zarr(data_path, layout="hcs", mode="r") as plate:
        unknown = [name for name in channel_names if name not in plate.channel_names]
        if unknown:
            raise ValueError(f"Channels {unknown} are not in {data_path}; available: {plate.channel_names}.")
        channel_indices = [plate.channel_names.index(name) for name in channel_names]
        wells = []
        for well in filter_wells(plate, include_wells):
            fovs = [fov[image_array_key].dask_array()[:, channel_indices] for fov in filter_fovs(well, exclude_fovs)]
            if not fovs:
                continue
            stack = da.stack(fovs)  # (FOV, T, C, Z, Y, X)
            normalized = [
                _normalize_image(stack[:, :, c], sub, div)
                for c, (sub, div) in enumerate(zip(subtrahends, divisors, strict=True))
            ]
            wells.append(da.stack(normalized, axis=2))
        if not wells:
            raise ValueError(
                f"No FOV of {data_path} selected with include_wells={include_wells}, exclude_fovs={exclude_fovs}."
            )
        images = da.concatenate(wells, axis=0).astype("float16").rechunk((1, -1, -1, -1, -1, -1))
        with ProgressBar():
            da.to_npy_stack(output_path, images, axis=0)
