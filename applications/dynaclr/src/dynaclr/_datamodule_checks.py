"""Checks of ``MultiExperimentDataModule``'s arguments, run once at ``setup`` before any data is read.

``check_patch_arguments`` checks the arguments against each other (non-empty ``z_range``, a final
patch no larger than the read patch, and ``tau_range`` with the index's own check,
:func:`viscy_data.contrastive.cell_index.check_tau_range`);
``check_sampling_arguments`` checks the names in ``experiment_weights`` and ``condition_ratio`` and
the ``channel_dropout_channels`` against the experiments of the YAML, and ``include_wells`` /
``exclude_fovs`` against their plates. Checks of the YAML, the plates and the tracks tables
themselves are done by ``ExperimentRegistry`` and ``MultiExperimentIndex``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from viscy_data.contrastive.cell_index import check_tau_range
from viscy_data.contrastive.experiment import ExperimentRegistry

__all__ = ["check_patch_arguments", "check_sampling_arguments"]

_OWNER = "MultiExperimentDataModule"


def _positive_pair(name: str, value: Sequence) -> None:
    if len(value) != 2 or not all(isinstance(v, Integral) and v > 0 for v in value):
        raise ValueError(f"{_OWNER}: {name} must be two positive integers (Y, X), got {tuple(value)}")


def check_patch_arguments(
    z_range: slice,
    yx_patch_size: Sequence[int],
    final_yx_patch_size: Sequence[int],
    tau_range: Sequence[float],
) -> None:
    """Raise ``ValueError`` naming the argument if the patch geometry or the tau range is invalid."""
    start, stop = z_range.start, z_range.stop
    if not (isinstance(start, Integral) and isinstance(stop, Integral) and 0 <= start < stop):
        raise ValueError(f"{_OWNER}: z_range must be (start, stop) with 0 <= start < stop, got ({start}, {stop})")
    _positive_pair("yx_patch_size", yx_patch_size)
    _positive_pair("final_yx_patch_size", final_yx_patch_size)
    if any(f > y for f, y in zip(final_yx_patch_size, yx_patch_size, strict=True)):
        raise ValueError(
            f"{_OWNER}: final_yx_patch_size {tuple(final_yx_patch_size)} must not exceed "
            f"yx_patch_size {tuple(yx_patch_size)} (the final patch is cropped from the read patch)"
        )
    check_tau_range(tau_range, _OWNER)


def _check_fov_filters(
    experiments_yaml: str, registry: ExperimentRegistry, include_wells: list[str] | None, exclude_fovs: list[str] | None
) -> None:
    """Raise if ``include_wells`` / ``exclude_fovs`` name wells / FOVs that no plate of ``registry`` has."""
    if not include_wells and not exclude_fovs:
        return
    fovs = {name.strip("/") for plate in registry.plates.values() for name, _ in plate.positions()}
    wells = {"/".join(fov.split("/")[:2]) for fov in fovs}
    for name, given, known in (("include_wells", include_wells, wells), ("exclude_fovs", exclude_fovs, fovs)):
        unknown = sorted(set(given or []) - known)
        if unknown:
            raise ValueError(
                f"{_OWNER}: {name} {unknown} are not in any plate of {experiments_yaml}; known: {sorted(known)}"
            )


def check_sampling_arguments(
    experiments_yaml: str,
    registry: ExperimentRegistry,
    experiment_weights: dict[str, float] | None,
    condition_ratio: dict[str, float] | None,
    channel_dropout_channels: Sequence[int],
    include_wells: list[str] | None = None,
    exclude_fovs: list[str] | None = None,
) -> None:
    """Raise ``ValueError`` if an argument names no experiment, condition, channel, well or FOV of the YAML.

    Conditions are the ``condition_wells`` labels of every experiment, plus ``"unknown"`` (wells that
    no label lists). ``channel_dropout_channels`` must be model channel indices. ``include_wells`` and
    ``exclude_fovs`` must name wells / FOVs of at least one plate.
    """
    experiments = [exp.name for exp in registry.experiments]
    unknown = sorted(set(experiment_weights or {}) - set(experiments))
    if unknown:
        raise ValueError(
            f"{_OWNER}: experiment_weights keys {unknown} name no experiment of {experiments_yaml}; "
            f"experiments: {experiments}"
        )
    conditions = sorted({c for exp in registry.experiments for c in exp.condition_wells} | {"unknown"})
    unknown = sorted(set(condition_ratio or {}) - set(conditions))
    if unknown:
        raise ValueError(
            f"{_OWNER}: condition_ratio keys {unknown} name no condition of {experiments_yaml}; "
            f"conditions: {conditions}"
        )
    n_channels = registry.num_source_channels
    outside = [c for c in channel_dropout_channels if not 0 <= c < n_channels]
    if outside:
        raise ValueError(
            f"{_OWNER}: channel_dropout_channels {outside} are not model channels; expected indices in "
            f"[0, {n_channels - 1}] ({n_channels} source channels in {experiments_yaml})"
        )
    _check_fov_filters(experiments_yaml, registry, include_wells, exclude_fovs)
