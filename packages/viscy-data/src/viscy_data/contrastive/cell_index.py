"""One table of every tracked cell observation across several experiments.

``MultiExperimentIndex`` reads each experiment's per-FOV tracking CSVs (from the plates its registry
opened), and builds a single ``tracks`` table (one row per cell per timepoint) with experiment,
condition, time and lineage columns, plus the subset ``valid_anchors`` of observations that have a
same-lineage positive within the tau range. It owns every fact derived from them: the tau range in
frames per experiment, the patch origins (clamped once) and the lineage/time lookup that both selects
the valid anchors and draws the positives (:class:`LineageLookup`). All per-row work is vectorised;
Python only loops over experiments and FOVs.
"""

from __future__ import annotations

import logging
import math
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from viscy_data.contrastive.experiment import ExperimentRegistry
from viscy_data.tracks_table import REQUIRED_TRACKS_COLUMNS, read_tracks_csv

__all__ = ["LineageLookup", "MultiExperimentIndex", "check_tau_range"]

_logger = logging.getLogger(__name__)


def check_tau_range(tau_range_hours: tuple[float, float], owner: str) -> None:
    """Raise ``ValueError`` unless ``tau_range_hours`` is two finite hours with ``0 <= min <= max``, ``max > 0``."""
    values = tuple(tau_range_hours)
    if len(values) != 2 or not all(isinstance(v, Real) and math.isfinite(v) for v in values):
        raise ValueError(f"{owner}: tau_range must be two finite numbers of hours (min, max), got {tau_range_hours}")
    if not 0 <= values[0] <= values[1] or values[1] == 0:
        raise ValueError(f"{owner}: tau_range must satisfy 0 <= min <= max with max > 0 (hours), got {values}")


class LineageLookup:
    """Sorted ``(lineage, t)`` keys of every observation of a tracks table, for vectorised lookups.

    Parameters
    ----------
    lineage_codes : np.ndarray
        Integer lineage code of every row.
    t : np.ndarray
        Frame of every row.
    stride : int
        Key stride: larger than any ``t + tau`` that will be looked up.
    """

    def __init__(self, lineage_codes: np.ndarray, t: np.ndarray, stride: int) -> None:
        self.stride = stride
        self.keys = lineage_codes.astype(np.int64) * stride + t
        self._sorted_rows = np.argsort(self.keys, kind="stable")
        self._sorted_keys = self.keys[self._sorted_rows]

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Whether an observation has each key."""
        if len(self._sorted_keys) == 0:
            return np.zeros(len(keys), dtype=bool)
        where = np.searchsorted(self._sorted_keys, keys).clip(max=len(self._sorted_keys) - 1)
        return self._sorted_keys[where] == keys

    def pick(self, keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly chosen row per key, or -1 where no observation has that key."""
        low = np.searchsorted(self._sorted_keys, keys, side="left")
        high = np.searchsorted(self._sorted_keys, keys, side="right")
        chosen = low + (rng.random(len(keys)) * (high - low)).astype(np.int64)
        return np.where(high > low, self._sorted_rows[np.minimum(chosen, len(self._sorted_rows) - 1)], -1)


class MultiExperimentIndex:
    """Tracks of several experiments in one table, with lineage, clamped centroids and valid anchors.

    Parameters
    ----------
    registry : ExperimentRegistry
        Validated experiments to index.
    z_range : slice
        Z slices that patches will read (checked against each plate's Z size).
    yx_patch_size : tuple[int, int]
        Patch size read around each centroid; centroids are clamped so patches stay in the image.
    tau_range_hours : tuple[float, float]
        Range of anchor-positive time offsets, in hours.
    include_wells : list[str] | None
        Only index these wells (``"A/1"``); all wells when None.
    exclude_fovs : list[str] | None
        FOV names (``"A/1/0"``) to skip.
    include_fovs : list[str] | None
        Only index these FOV names; all FOVs when None.

    Attributes
    ----------
    positions : list
        iohub ``Position`` objects that contributed tracks (of the registry's open plates).
    position_keys : list[tuple[str, str]]
        ``(experiment, fov_name)`` of every position.
    tracks : pd.DataFrame
        One row per cell observation, RangeIndex. CSV columns plus ``experiment, condition,
        well_name, fov_name, global_track_id, hours_post_infection, fluorescence_channel,
        position_idx`` (the row's position in ``positions``), ``lineage_id, y_clamp, x_clamp``.
    valid_anchors : pd.DataFrame
        Rows of ``tracks`` with a same-lineage observation at ``t + tau`` for some non-zero tau in
        the experiment's tau range (in frames), RangeIndex.
    anchor_rows : np.ndarray
        Row of ``tracks`` of every row of ``valid_anchors``.
    tau_range_hours : tuple[float, float]
        The tau range as given.
    tau_frames : dict[str, tuple[int, int]]
        Per experiment, the tau range in frames (``ExperimentRegistry.tau_range_frames``).
    lineage : LineageLookup
        ``(lineage, t)`` keys of ``tracks``, used for the valid anchors and the positives.
    patch_origins : np.ndarray
        ``(len(tracks), 2)`` int64 ``(y0, x0)`` of every row's patch: the clamped centroid minus half
        the patch size, kept so that the whole patch lies inside the image.

    Raises
    ------
    ValueError
        If ``tau_range_hours`` is not ``0 <= min <= max`` finite hours with ``max > 0``, or for the
        tracks tables and patch geometry, see the notes.

    Notes
    -----
    Each FOV's CSV is read and checked against its image by
    :func:`viscy_data.tracks_table.read_tracks_csv`: malformed tables raise ``ValueError`` naming the
    CSV, experiment, FOV and column; rows with NaN/Inf or out-of-image coordinates are dropped and
    unknown parents start their own lineage, each reported by one ``UserWarning`` per file.
    """

    def __init__(
        self,
        registry: ExperimentRegistry,
        z_range: slice,
        yx_patch_size: tuple[int, int],
        tau_range_hours: tuple[float, float] = (0.5, 2.0),
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        include_fovs: list[str] | None = None,
    ) -> None:
        check_tau_range(tau_range_hours, type(self).__name__)
        self.registry = registry
        self.z_range = z_range
        self.yx_patch_size = tuple(yx_patch_size)
        self.include_fovs = include_fovs
        self.tau_range_hours = tuple(tau_range_hours)
        self.tau_frames = {
            exp.name: registry.tau_range_frames(exp.name, self.tau_range_hours) for exp in registry.experiments
        }
        self.positions: list = []
        self.position_keys: list[tuple[str, str]] = []
        tracks = self._load(include_wells, exclude_fovs, include_fovs)
        tracks = self._reconstruct_lineage(tracks)
        tracks = self._clamp_borders(tracks)
        tracks.index = pd.RangeIndex(len(tracks))
        self.tracks = tracks
        self.lineage = self._lineage_lookup()
        self.anchor_rows = self._compute_anchor_rows()
        self.valid_anchors = tracks.take(self.anchor_rows)
        self.valid_anchors.index = pd.RangeIndex(len(self.anchor_rows))

    # ------------------------------------------------------------------ loading
    def _load(
        self, include_wells: list[str] | None, exclude_fovs: list[str] | None, include_fovs: list[str] | None
    ) -> pd.DataFrame:
        """Read every selected FOV's tracks CSV and add the per-FOV columns."""
        excluded = set(exclude_fovs or [])
        included = None if include_fovs is None else set(include_fovs)
        tables: list[pd.DataFrame] = []
        fov_meta: list[dict] = []
        for exp in self.registry.experiments:
            if not Path(exp.tracks_path).is_dir():
                raise ValueError(f"Experiment '{exp.name}': tracks_path is not a directory: {exp.tracks_path}")
            plate = self.registry.plates[exp.name]
            fluorescence = exp.source_channel[1] if len(exp.source_channel) > 1 else ""
            well_condition = {well: cond for cond, wells in reversed(exp.condition_wells.items()) for well in wells}
            for name, position in plate.positions():
                fov_name = name.strip("/")
                well_name = "/".join(fov_name.split("/")[:2])
                if include_wells is not None and well_name not in include_wells:
                    continue
                if fov_name in excluded or (included is not None and fov_name not in included):
                    continue
                csvs = sorted((Path(exp.tracks_path) / fov_name).glob("*.csv"))
                if not csvs:
                    _logger.warning("No tracking CSV in %s, skipping", Path(exp.tracks_path) / fov_name)
                    continue
                image = position["0"]
                self._check_image_fits(exp.name, fov_name, image.shape)
                table = read_tracks_csv(csvs[0], exp.name, fov_name, image.shape)
                table["_fov"] = len(fov_meta)
                tables.append(table)
                self.positions.append(position)
                self.position_keys.append((exp.name, fov_name))
                fov_meta.append(
                    {
                        "experiment": exp.name,
                        "condition": well_condition.get(well_name, "unknown"),
                        "well_name": well_name,
                        "fov_name": fov_name,
                        "start_hpi": exp.start_hpi,
                        "interval_minutes": exp.interval_minutes,
                        "fluorescence_channel": fluorescence,
                        "_img_height": image.height,
                        "_img_width": image.width,
                    }
                )
        if not tables:
            columns = [*REQUIRED_TRACKS_COLUMNS, "experiment", "condition", "well_name", "fov_name"]
            columns += ["global_track_id", "hours_post_infection", "fluorescence_channel", "position_idx"]
            return pd.DataFrame(columns=[*columns, "_img_height", "_img_width"])
        tracks = pd.concat(tables, ignore_index=True)
        return self._add_fov_columns(tracks, pd.DataFrame(fov_meta))

    def _check_image_fits(self, experiment: str, fov_name: str, shape: tuple[int, ...]) -> None:
        _, _, n_z, n_y, n_x = shape
        z_start = self.z_range.start or 0
        z_stop = self.z_range.stop if self.z_range.stop is not None else n_z
        if not 0 <= z_start < z_stop <= n_z:
            raise ValueError(
                f"Experiment '{experiment}', FOV {fov_name}: z_range {self.z_range} is empty or exceeds Z={n_z}; "
                f"expected 0 <= start < stop <= {n_z}."
            )
        if self.yx_patch_size[0] > n_y or self.yx_patch_size[1] > n_x:
            raise ValueError(
                f"Experiment '{experiment}', FOV {fov_name}: yx_patch_size {self.yx_patch_size} "
                f"is larger than the image (Y={n_y}, X={n_x})."
            )

    def _add_fov_columns(self, tracks: pd.DataFrame, fov_meta: pd.DataFrame) -> pd.DataFrame:
        """Broadcast the per-FOV values to rows, building the table once (no fragmented inserts)."""
        fov = tracks.pop("_fov").to_numpy()
        columns = {name: tracks[name].to_numpy() for name in tracks.columns}
        for column in ("experiment", "condition", "well_name", "fov_name"):
            columns[column] = fov_meta[column].to_numpy(dtype=object)[fov]
        prefix = (fov_meta["experiment"] + "_" + fov_meta["fov_name"] + "_").to_numpy(dtype=object)
        columns["global_track_id"] = prefix[fov] + tracks["track_id"].astype(str).to_numpy(dtype=object)
        interval_hours = fov_meta["interval_minutes"].to_numpy(dtype=float) / 60.0
        columns["hours_post_infection"] = fov_meta["start_hpi"].to_numpy(dtype=float)[fov] + (
            tracks["t"].to_numpy(dtype=float) * interval_hours[fov]
        )
        columns["fluorescence_channel"] = fov_meta["fluorescence_channel"].to_numpy(dtype=object)[fov]
        columns["position_idx"] = fov.astype(np.int64)
        columns["_img_height"] = fov_meta["_img_height"].to_numpy()[fov]
        columns["_img_width"] = fov_meta["_img_width"].to_numpy()[fov]
        return pd.DataFrame(columns, copy=False)

    # ------------------------------------------------------------------ lineage
    @staticmethod
    def _reconstruct_lineage(tracks: pd.DataFrame) -> pd.DataFrame:
        """Add ``lineage_id``: the ``global_track_id`` of each track's root ancestor in its FOV.

        Parents come from ``parent_track_id`` and only count when they name a track of the same
        experiment and FOV; missing parents (NaN, -1, unknown ids) make a track its own root.
        Roots are found by vectorised pointer doubling; a parent cycle is collapsed onto its
        smallest member. The column is added to ``tracks`` in place, which is returned.
        """
        if tracks.empty:
            tracks["lineage_id"] = pd.Series(dtype=object)
            return tracks
        if "parent_track_id" not in tracks.columns:
            tracks["lineage_id"] = tracks["global_track_id"]
            return tracks
        exp_codes = pd.factorize(tracks["experiment"])[0].astype(np.int64)
        fov_codes = pd.factorize(tracks["fov_name"])[0].astype(np.int64)
        fov_codes = exp_codes * (fov_codes.max() + 1) + fov_codes
        track_ids = tracks["track_id"].to_numpy(dtype=np.int64)
        stride = int(track_ids.max()) + 1
        row_node, node_keys = pd.factorize(fov_codes * stride + track_ids, sort=True)
        first_row = np.empty(len(node_keys), dtype=np.int64)
        first_row[row_node[::-1]] = np.arange(len(row_node))[::-1]
        parent_ids = tracks["parent_track_id"].to_numpy(dtype=float)[first_row]
        node_fov = fov_codes[first_row]
        has_parent = np.isfinite(parent_ids) & (parent_ids >= 0) & (parent_ids < stride)
        parent_ids = np.where(has_parent, parent_ids, 0)
        has_parent &= parent_ids == np.floor(parent_ids)
        parent_keys = node_fov * stride + parent_ids.astype(np.int64)
        found = np.searchsorted(node_keys, parent_keys).clip(max=len(node_keys) - 1)
        has_parent &= node_keys[found] == parent_keys
        nodes = np.arange(len(node_keys))
        pointer = np.where(has_parent, found, nodes)
        root = MultiExperimentIndex._follow_to_roots(pointer)
        node_gid = tracks["global_track_id"].to_numpy(dtype=object)[first_row]
        tracks["lineage_id"] = node_gid[root][row_node]
        return tracks

    @staticmethod
    def _follow_to_roots(pointer: np.ndarray) -> np.ndarray:
        """Root of every node of a parent-pointer forest (roots point to themselves).

        Pointer doubling: after k rounds each node points 2**k steps up. Nodes that end on a cycle
        instead of a root get the smallest node id of that cycle.
        """
        n = len(pointer)
        is_root = pointer == np.arange(n)
        smallest = np.minimum(np.arange(n), pointer)
        for _ in range(max(1, int(np.ceil(np.log2(max(n, 2))))) + 1):
            smallest = np.minimum(smallest, smallest[pointer])
            pointer = pointer[pointer]
        on_cycle = ~is_root[pointer]
        if on_cycle.any():
            _logger.warning("parent_track_id forms %d cyclic track chains; collapsing each cycle.", on_cycle.sum())
        return np.where(on_cycle, smallest[pointer], pointer)

    # ------------------------------------------------------------------ borders
    def _clamp_borders(self, tracks: pd.DataFrame) -> pd.DataFrame:
        """Drop centroids outside the image and clamp the rest so a full patch fits."""
        y_half, x_half = self.yx_patch_size[0] // 2, self.yx_patch_size[1] // 2
        height = tracks.pop("_img_height").to_numpy(dtype=float)
        width = tracks.pop("_img_width").to_numpy(dtype=float)
        y = tracks["y"].to_numpy(dtype=float)
        x = tracks["x"].to_numpy(dtype=float)
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        if not inside.all():
            tracks = tracks.loc[inside].reset_index(drop=True)
        tracks["y_clamp"] = np.clip(y[inside], y_half, height[inside] - y_half)
        tracks["x_clamp"] = np.clip(x[inside], x_half, width[inside] - x_half)
        y0 = tracks["y_clamp"].to_numpy(dtype=float).astype(np.int64) - y_half
        x0 = tracks["x_clamp"].to_numpy(dtype=float).astype(np.int64) - x_half
        self.patch_origins = np.stack(
            [
                np.clip(y0, 0, height[inside].astype(np.int64) - self.yx_patch_size[0]),
                np.clip(x0, 0, width[inside].astype(np.int64) - self.yx_patch_size[1]),
            ],
            axis=1,
        )
        return tracks

    # ------------------------------------------------------------------ anchors
    def _lineage_lookup(self) -> LineageLookup:
        """The ``(lineage, t)`` keys of ``tracks``, with room for every experiment's tau offsets."""
        lineage, _ = pd.factorize(self.tracks["lineage_id"])
        t = self.tracks["t"].to_numpy(dtype=np.int64)
        max_shift = max((abs(v) for pair in self.tau_frames.values() for v in pair), default=0)
        stride = (int(t.max()) if len(t) else 0) + max_shift + 1
        return LineageLookup(lineage, t, stride)

    def row_tau_frames(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(tau_min, tau_max)`` in frames of the experiment of each row of ``tracks``."""
        experiments = self.tracks["experiment"].to_numpy(dtype=object)[rows]
        codes, names = pd.factorize(experiments)
        frames = np.array([self.tau_frames[name] for name in names], dtype=np.int64).reshape(-1, 2)
        return frames[codes, 0], frames[codes, 1]

    def _compute_anchor_rows(self) -> np.ndarray:
        """Rows with a same-lineage observation ``tau`` frames later, for a non-zero tau in range."""
        if self.tracks.empty:
            return np.zeros(0, dtype=np.int64)
        tau_min, tau_max = self.row_tau_frames(np.arange(len(self.tracks)))
        t = self.tracks["t"].to_numpy(dtype=np.int64)
        keys = self.lineage.keys
        valid = np.zeros(len(self.tracks), dtype=bool)
        for tau in range(int(tau_min.min()), int(tau_max.max()) + 1):
            if tau == 0:
                continue
            candidate = np.flatnonzero((tau_min <= tau) & (tau <= tau_max) & ~valid & (t + tau >= 0))
            valid[candidate[self.lineage.contains(keys[candidate] + tau)]] = True
        return np.flatnonzero(valid)

    def experiments_without_anchors(self) -> list[str]:
        """Experiments of the registry that have no valid anchor.

        With ``include_fovs`` (a validation split by FOV, which need not touch every experiment) an
        empty list unless no experiment has any anchor.
        """
        names = [exp.name for exp in self.registry.experiments]
        if self.include_fovs is not None:
            return [] if len(self.valid_anchors) else names
        present = set(self.valid_anchors["experiment"])
        return [name for name in names if name not in present]

    # ------------------------------------------------------------------ views
    @property
    def experiment_groups(self) -> dict[str, np.ndarray]:
        """Row indices of ``tracks`` per experiment."""
        return {str(k): np.asarray(v) for k, v in self.tracks.groupby("experiment", sort=True).indices.items()}

    @property
    def condition_groups(self) -> dict[str, np.ndarray]:
        """Row indices of ``tracks`` per condition."""
        return {str(k): np.asarray(v) for k, v in self.tracks.groupby("condition", sort=True).indices.items()}

    def summary(self) -> str:
        """Multi-line description: totals, then observations, anchors and conditions per experiment."""
        n_exp = len(self.registry.experiments)
        lines = [
            f"MultiExperimentIndex: {n_exp} experiments, {len(self.tracks)} total observations, "
            f"{len(self.valid_anchors)} valid anchors"
        ]
        obs_per_exp = self.tracks["experiment"].value_counts() if len(self.tracks) else pd.Series(dtype=int)
        anchors_per_exp = (
            self.valid_anchors["experiment"].value_counts() if len(self.valid_anchors) else pd.Series(dtype=int)
        )
        cond_counts = (
            self.tracks.groupby(["experiment", "condition"]).size() if len(self.tracks) else pd.Series(dtype=int)
        )
        for exp in self.registry.experiments:
            conds = cond_counts[exp.name] if exp.name in obs_per_exp.index else pd.Series(dtype=int)
            cond_text = ", ".join(f"{cond}({n})" for cond, n in conds.items())
            lines.append(
                f"  {exp.name}: {obs_per_exp.get(exp.name, 0)} observations, "
                f"{anchors_per_exp.get(exp.name, 0)} anchors, conditions: {cond_text}"
            )
        return "\n".join(lines)
