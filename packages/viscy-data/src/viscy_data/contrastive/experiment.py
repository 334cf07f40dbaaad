"""Experiment descriptions for multi-experiment training: one entry per time-lapse plate.

``ExperimentConfig`` describes one plate (where it is, which channels to train on, which wells hold
which condition, how fast it was imaged). ``ExperimentRegistry`` validates a list of them against
the plates on disk and aligns their training channels **by position**: source position 0 of every
experiment feeds model channel 0, whatever the channel is called in each plate. Each plate is opened
once, by the registry, and stays open for the cell index; ``subset`` splits a registry (train /
validation) without opening or checking the plates again.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from viscy_data.experiment_schema import read_experiments_yaml

if TYPE_CHECKING:
    from iohub.ngff import Plate

__all__ = ["ExperimentConfig", "ExperimentRegistry"]

_logger = logging.getLogger(__name__)


@dataclass
class ExperimentConfig:
    """One time-lapse experiment (an HCS OME-Zarr plate plus its per-FOV tracking tables).

    Parameters
    ----------
    name : str
        Unique experiment name (used in ``global_track_id`` and sampler weights).
    data_path : str
        Path to the HCS OME-Zarr plate.
    tracks_path : str
        Root folder of the per-FOV tracking CSVs (``<tracks_path>/<row>/<col>/<fov>/*.csv``).
    channel_names : list[str]
        All channels of the plate, in on-disk order.
    source_channel : list[str]
        Training channels (a subset of ``channel_names``); their order is the model channel order.
    condition_wells : dict[str, list[str]]
        Condition label -> wells (``"A/1"``) imaged under that condition.
    interval_minutes : float
        Time between frames in minutes.
    start_hpi : float
        Hours post infection at frame 0.
    organelle : str
        Reporter organelle (informational).
    date : str
        Acquisition date (informational).
    moi : float
        Multiplicity of infection (informational).
    """

    name: str
    data_path: str
    tracks_path: str
    channel_names: list[str]
    source_channel: list[str]
    condition_wells: dict[str, list[str]]
    interval_minutes: float = 30.0
    start_hpi: float = 0.0
    organelle: str = ""
    date: str = ""
    moi: float = 0.0


def _open_plate(exp: ExperimentConfig) -> tuple[Plate, list[str], list[str]]:
    """``exp``'s plate, opened read-only and left open, with its first position's channels and its wells.

    Raises
    ------
    ValueError
        If ``data_path`` cannot be opened as an HCS OME-Zarr plate (naming the experiment and path).
    """
    from iohub.ngff import open_ome_zarr

    try:
        plate = open_ome_zarr(exp.data_path, layout="hcs", mode="r")
        wells = [name.strip("/") for name, _ in plate.wells()]
        first = next(plate.positions(), None)
        return plate, list(first[1].channel_names if first else plate.channel_names), wells
    except Exception as error:  # iohub/zarr raise many types for a folder that is not a plate
        raise ValueError(
            f"Experiment '{exp.name}': data_path {exp.data_path} cannot be opened as an HCS OME-Zarr plate: "
            f"{type(error).__name__}: {error}"
        ) from error


@dataclass
class ExperimentRegistry:
    """A validated set of experiments with their positional channel maps.

    Parameters
    ----------
    experiments : list[ExperimentConfig]
        The experiments. Validation (in this order, each failure a ``ValueError``): non-empty list,
        unique names, then per experiment positive ``interval_minutes``, non-empty
        ``condition_wells``, ``source_channel`` within ``channel_names``, existing ``data_path``
        that opens as an HCS plate, ``channel_names`` equal to the plate's and ``condition_wells``
        naming only wells of the plate; finally the same number of source channels everywhere.

    Attributes
    ----------
    num_source_channels : int
        Number of training channels shared by every experiment.
    channel_maps : dict[str, dict[int, int]]
        Per experiment, source position -> channel index in the plate.
    plates : dict[str, Plate]
        Per experiment, its plate, opened read-only once during validation and kept open.
    """

    experiments: list[ExperimentConfig]
    num_source_channels: int = field(init=False)
    channel_maps: dict[str, dict[int, int]] = field(init=False)
    plates: dict[str, Plate] = field(init=False, repr=False, compare=False)
    _name_map: dict[str, ExperimentConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.experiments:
            raise ValueError("Empty experiments list: ExperimentRegistry needs at least one ExperimentConfig.")
        self._name_map = {}
        for exp in self.experiments:
            if exp.name in self._name_map:
                raise ValueError(f"Duplicate experiment name '{exp.name}': experiment names must be unique.")
            self._name_map[exp.name] = exp
        self.plates = {}
        for exp in self.experiments:
            self.plates[exp.name] = self._validate_experiment(exp)
        counts = {exp.name: len(exp.source_channel) for exp in self.experiments}
        if len(set(counts.values())) > 1:
            found = ", ".join(f"'{name}': {n}" for name, n in counts.items())
            raise ValueError(
                f"All experiments must have the same number of source_channel entries, but found: {found}."
            )
        self.num_source_channels = next(iter(counts.values()))
        self.channel_maps = {
            exp.name: {i: exp.channel_names.index(ch) for i, ch in enumerate(exp.source_channel)}
            for exp in self.experiments
        }

    @staticmethod
    def _validate_experiment(exp: ExperimentConfig) -> Plate:
        """Check ``exp`` against its plate; return the plate, left open."""
        prefix = f"Experiment '{exp.name}':"
        if exp.interval_minutes <= 0:
            raise ValueError(f"{prefix} interval_minutes must be positive, got {exp.interval_minutes}")
        if not exp.condition_wells:
            raise ValueError(f"{prefix} condition_wells must not be empty")
        missing = [ch for ch in exp.source_channel if ch not in exp.channel_names]
        if missing:
            raise ValueError(
                f"{prefix} source_channel entries {missing} not found in channel_names {list(exp.channel_names)}"
            )
        if not Path(exp.data_path).exists():
            raise ValueError(f"{prefix} data_path does not exist: {exp.data_path}")
        plate, zarr_channels, plate_wells = _open_plate(exp)
        if zarr_channels != list(exp.channel_names):
            raise ValueError(
                f"{prefix} channel_names mismatch. Expected (from config): {list(exp.channel_names)}, "
                f"got (from zarr): {zarr_channels}"
            )
        absent = {c: [w for w in wells if w not in plate_wells] for c, wells in exp.condition_wells.items()}
        absent = {c: wells for c, wells in absent.items() if wells}
        if absent:
            raise ValueError(
                f"{prefix} condition_wells name wells the plate {exp.data_path} does not have: {absent}; "
                f"plate wells: {plate_wells}"
            )
        return plate

    def subset(self, names: list[str]) -> ExperimentRegistry:
        """The registry of the experiments called ``names`` (in registry order), sharing the open plates.

        Nothing is validated or opened again: the experiments were checked when this registry was built.

        Raises
        ------
        ValueError
            If ``names`` selects no experiment, or names one that is not in the registry.
        """
        unknown = [name for name in names if name not in self._name_map]
        if unknown or not names:
            raise ValueError(
                f"subset({list(names)}): expected a non-empty list of experiments of the registry "
                f"{list(self._name_map)}; unknown: {unknown}"
            )
        subset = copy.copy(self)
        subset.experiments = [exp for exp in self.experiments if exp.name in names]
        subset._name_map = {exp.name: exp for exp in subset.experiments}
        subset.channel_maps = {exp.name: self.channel_maps[exp.name] for exp in subset.experiments}
        subset.plates = {exp.name: self.plates[exp.name] for exp in subset.experiments}
        return subset

    @classmethod
    def from_yaml(cls, path: str | Path) -> ExperimentRegistry:
        """Build a registry from an ``experiments.yml`` file.

        Parameters
        ----------
        path : str | Path
            YAML file with a top-level ``experiments`` list of mappings whose keys are the
            ``ExperimentConfig`` fields.

        Returns
        -------
        ExperimentRegistry
            The validated registry.

        Raises
        ------
        FileNotFoundError, KeyError, TypeError, ValueError
            If the file fails the schema, see :func:`viscy_data.experiment_schema.read_experiments_yaml`.
        ValueError
            If a check against the plates fails (the message starts with the YAML path).
        """
        configs = [ExperimentConfig(**entry) for entry in read_experiments_yaml(path)]
        try:
            return cls(configs)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def tau_range_frames(self, experiment_name: str, tau_range_hours: tuple[float, float]) -> tuple[int, int]:
        """Convert a tau range in hours to frame offsets for one experiment.

        Parameters
        ----------
        experiment_name : str
            Experiment whose frame interval is used.
        tau_range_hours : tuple[float, float]
            ``(min, max)`` time offsets in hours.

        Returns
        -------
        tuple[int, int]
            ``(min_frames, max_frames)``, each ``round(hours * 60 / interval_minutes)``.
        """
        exp = self.get_experiment(experiment_name)
        min_f = round(tau_range_hours[0] * 60 / exp.interval_minutes)
        max_f = round(tau_range_hours[1] * 60 / exp.interval_minutes)
        if min_f >= max_f:
            _logger.warning(
                "Experiment '%s': tau_range_hours=%s yields fewer than 2 valid frames (min=%d, max=%d).",
                experiment_name,
                tau_range_hours,
                min_f,
                max_f,
            )
        return min_f, max_f

    def get_experiment(self, name: str) -> ExperimentConfig:
        """Return the experiment called ``name``.

        Raises
        ------
        KeyError
            If no experiment has that name.
        """
        try:
            return self._name_map[name]
        except KeyError:
            raise KeyError(f"Experiment '{name}' not found in registry. Available: {list(self._name_map)}") from None
