"""Seeded synthetic time-lapse experiments: real OME-Zarr plates, tracks tables and ground truth.

Cells are textured blobs that move by a random walk with drift; some divide into two daughter
tracks (``parent_track_id`` keeps the lineage); with ``min_distance`` cells that come too close push
each other apart. In the infected condition every cell switches state once, at a random time: its
reporter relocalises from the cytoplasm to the nucleus and its label-free texture changes slightly.
Per-cell brightness, size, texture and noise vary a lot, so the state is a subtle, structural signal
rather than an intensity shortcut.

Written per experiment, under ``<root>/<name>/``:

- ``plate.zarr``: HCS plate, array ``"0"`` in TCZYX, channels ``["Phase3D", <reporter>]``;
- ``tracks/<row>/<col>/<fov>/tracks.csv``: ``track_id, t, id, parent_track_id, parent_id, z, y, x,
  infection_state`` (an extra column that the cell index carries through to the batches);
- ``ground_truth.csv``: the tracks columns plus ``fov_name``, ``condition`` and ``infection_state``
  (0 = uninfected, 1 = infected, as ``LABEL_INFECTION_STATE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from iohub.ngff import open_ome_zarr

__all__ = ["SyntheticExperiment", "generate_experiment", "render_frame"]

TRACK_COLUMNS = ["track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"]


@dataclass
class SyntheticExperiment:
    """Description of one synthetic experiment.

    Parameters
    ----------
    name : str
        Experiment name (folder name and ``experiments.yml`` name).
    reporter : str
        Name of the fluorescence channel (differs between experiments).
    condition_wells : dict[str, list[str]]
        Condition label -> wells; cells in the ``"infected"`` condition switch state.
    fovs_per_well : int
        Positions per well.
    n_timepoints : int
        Frames per position.
    image_size : int
        Height and width of each frame.
    cells_per_fov : int
        Tracks started at frame 0 in each position.
    division_fraction : float
        Fraction of the initial cells that divide once.
    interval_minutes : float
        Time between frames.
    noise : float
        Standard deviation of the additive Gaussian noise (the signal peaks at about 1).
    relocalisation : float
        Strength of the infected state's reporter relocalisation, from 0 (none) to 1 (nucleus about three
        times brighter than the cytoplasm); the cell's total reporter intensity is kept.
    debris_per_frame : int
        Bright specks per frame, independent of the cells (debris, autofluorescence).
    gain_flicker : float
        Log-normal sigma of each cell's frame-to-frame reporter brightness fluctuation.
    border_margin : float
        Smallest distance of a centroid from the frame border, in pixels (cells are kept this far inside).
    cell_variability : float
        Spread of the per-lineage size, label-free brightness and texture (frequency and phase) around
        their means: 1 for the full ranges, 0 for identical cells (texture orientation always varies).
    min_distance : float
        Smallest distance between two centroids in a frame, in pixels: cells that come closer are pushed
        apart, as touching cells do not overlap (sisters start this far apart); 0 lets cells overlap.
    cell_radius : float
        Mean radius of a cell in pixels (its nucleus has 0.45 of it, daughters 0.8); the spread of the
        radii scales with it.
    seed : int
        Seed of every random draw.
    """

    name: str
    reporter: str
    condition_wells: dict[str, list[str]] = field(default_factory=lambda: {"uninfected": ["A/1"], "infected": ["A/2"]})
    fovs_per_well: int = 2
    n_timepoints: int = 16
    image_size: int = 128
    cells_per_fov: int = 12
    division_fraction: float = 0.25
    interval_minutes: float = 30.0
    noise: float = 0.08
    relocalisation: float = 1.0
    debris_per_frame: int = 0
    gain_flicker: float = 0.0
    border_margin: float = 4.0
    cell_variability: float = 1.0
    min_distance: float = 0.0
    cell_radius: float = 7.0
    seed: int = 0

    @property
    def channel_names(self) -> list[str]:
        """Channels of the plate: label-free first, then the reporter."""
        return ["Phase3D", self.reporter]


def _simulate_tracks(exp: SyntheticExperiment, infected: bool, rng: np.random.Generator) -> pd.DataFrame:
    """Random-walk tracks with divisions; one row per observation with per-cell appearance columns."""
    n_cells, n_t, size = exp.cells_per_fov, exp.n_timepoints, exp.image_size
    margin = exp.border_margin
    bounds = (margin, size - 1 - margin)
    start = rng.uniform(margin, size - margin, size=(n_cells, 2))
    drift = rng.normal(scale=0.4, size=(n_cells, 1, 2))
    steps = rng.normal(scale=1.0, size=(n_cells, n_t, 2)) + drift
    steps[:, 0] = 0.0
    path = np.clip(start[:, None, :] + np.cumsum(steps, axis=1), *bounds)
    switch = rng.integers(n_t // 10, n_t // 2 + 1, size=n_cells) if infected else np.full(n_cells, n_t + 1)
    division_time = np.where(
        rng.random(n_cells) < exp.division_fraction, rng.integers(n_t // 3, 2 * n_t // 3 + 1, size=n_cells), n_t
    )
    cell = np.repeat(np.arange(n_cells), n_t)
    t = np.tile(np.arange(n_t), n_cells)
    yx = path.reshape(-1, 2)
    divided = t >= division_time[cell]
    # Parents stop at their division; each splits into two daughters (tracks n_cells + 2i, n_cells + 2i + 1)
    # that move apart from the parent's position in opposite directions.
    daughter_rows = np.flatnonzero(divided)
    side = np.array([1.0, -1.0])
    offsets = (t[daughter_rows] - division_time[cell[daughter_rows]] + 2)[:, None] * 1.5
    angle = rng.uniform(0, np.pi, size=n_cells)[cell[daughter_rows]]
    direction = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    frames = []
    keep = ~divided
    frames.append(pd.DataFrame({"cell": cell[keep], "track_id": cell[keep], "t": t[keep], "yx": list(yx[keep])}))
    for k, s in enumerate(side):
        moved = np.clip(yx[daughter_rows] + s * offsets * direction, *bounds)
        frames.append(
            pd.DataFrame(
                {
                    "cell": cell[daughter_rows],
                    "track_id": n_cells + 2 * cell[daughter_rows] + k,
                    "t": t[daughter_rows],
                    "yx": list(moved),
                }
            )
        )
    tracks = pd.concat(frames, ignore_index=True)
    yx_all = np.stack(tracks.pop("yx").to_numpy())
    if exp.min_distance > 0:
        yx_all = _push_apart(yx_all, tracks["t"].to_numpy(), exp.min_distance, bounds)
    tracks["y"] = np.rint(yx_all[:, 0]).astype(int)
    tracks["x"] = np.rint(yx_all[:, 1]).astype(int)
    tracks["z"] = 0
    tracks["infection_state"] = (tracks["t"].to_numpy() >= switch[tracks["cell"].to_numpy()]).astype(int)
    tracks = tracks.sort_values(["track_id", "t"], ignore_index=True)
    tracks["id"] = np.arange(len(tracks))
    tracks["parent_track_id"] = np.where(tracks["track_id"].to_numpy() >= n_cells, tracks["cell"], -1)
    last_id = tracks.groupby("track_id")["id"].max()
    tracks["parent_id"] = tracks["parent_track_id"].map(last_id).fillna(-1).astype(int)
    return tracks


def _push_apart(
    yx: np.ndarray, t: np.ndarray, min_distance: float, bounds: tuple[float, float], iterations: int = 50
) -> np.ndarray:
    """Move the ``(N, 2)`` centroids of each frame ``t`` apart until no two are closer than ``min_distance``.

    Every iteration moves both cells of each too-close pair half their overlap apart along the line joining
    them (all pairs of a frame at once), then clips to ``bounds``; it stops when no pair is too close, or
    after ``iterations`` rounds.
    """
    yx = yx.astype(float).copy()
    for frame in np.unique(t):
        rows = np.flatnonzero(t == frame)
        points = yx[rows]
        # coincident centroids are separated along a fixed direction per pair
        index = np.arange(len(rows))
        first = np.minimum(index[:, None], index[None, :])
        fallback = np.sign(index[:, None] - index[None, :])[..., None] * np.stack([np.cos(first), np.sin(first)], -1)
        for _ in range(iterations):
            offset = points[:, None, :] - points[None, :, :]
            distance = np.linalg.norm(offset, axis=-1)
            np.fill_diagonal(distance, np.inf)
            overlap = np.clip(min_distance - distance, 0.0, None)
            if not overlap.any():
                break
            apart = distance > 0
            direction = np.where(apart[..., None], offset / np.where(apart, distance, 1.0)[..., None], fallback)
            points = np.clip(points + (overlap[..., None] / 2 * direction).sum(axis=1), *bounds)
        yx[rows] = points
    return yx


def _cell_appearance(
    n_cells: int, rng: np.random.Generator, variability: float = 1.0, radius: float = 7.0
) -> dict[str, np.ndarray]:
    """Per-lineage appearance: size, brightness, texture frequency/orientation/phase.

    ``variability`` scales the spread of every draw but the texture orientation around its mean.
    """

    def around(mean: float, half_width: float) -> np.ndarray:
        return mean + variability * rng.uniform(-half_width, half_width, n_cells)

    return {
        "radius": around(radius, 1.5 * radius / 7.0),
        "phase_gain": around(1.0, 0.4),
        "reporter_gain": rng.lognormal(0.0, 0.35, n_cells),
        "freq": around(0.8, 0.3),
        "theta": rng.uniform(0, np.pi, n_cells),
        "phi": around(np.pi, np.pi),
    }


def render_frame(
    centers: np.ndarray,
    state: np.ndarray,
    appearance: dict[str, np.ndarray],
    size: int,
    noise: float,
    rng: np.random.Generator,
    relocalisation: float = 1.0,
    debris_per_frame: int = 0,
) -> np.ndarray:
    """Render one ``(2, size, size)`` frame (label-free, reporter) of all cells at once.

    Parameters
    ----------
    centers : np.ndarray
        ``(N, 2)`` centroids ``(y, x)``.
    state : np.ndarray
        ``(N,)`` 0 (reporter in the cytoplasm) or 1 (reporter in the nucleus).
    appearance : dict[str, np.ndarray]
        ``(N,)`` arrays ``radius, phase_gain, reporter_gain, freq, theta, phi``.
    size : int
        Frame height and width.
    noise : float
        Standard deviation of the additive Gaussian noise.
    rng : np.random.Generator
        Source of the noise.
    relocalisation : float
        Strength of the reporter's move to the nucleus in state 1 (0 to 1), at constant total intensity.
    debris_per_frame : int
        Bright specks added at random places.

    Returns
    -------
    np.ndarray
        ``float32`` array of shape ``(2, size, size)``.
    """
    grid = np.arange(size, dtype=np.float32)
    dy = grid[None, :, None] - centers[:, 0, None, None]
    dx = grid[None, None, :] - centers[:, 1, None, None]
    dist = np.sqrt(dy**2 + dx**2)
    radius = appearance["radius"][:, None, None]
    body = 1.0 / (1.0 + np.exp((dist - radius) / 0.7))
    nucleus = 1.0 / (1.0 + np.exp((dist - 0.45 * radius) / 0.7))
    theta, freq, phi = (appearance[k][:, None, None] for k in ("theta", "freq", "phi"))
    along = dy * np.sin(theta) + dx * np.cos(theta)
    texture = np.cos(freq * along + phi)
    infected = state[:, None, None].astype(np.float32)
    granules = np.cos(2.3 * dy + phi) * np.cos(2.3 * dx - phi)
    phase = body * (0.6 + 0.25 * texture + 0.12 * infected * granules) - 0.35 * nucleus
    phase = phase * appearance["phase_gain"][:, None, None]
    cytoplasm = body - nucleus
    # Uninfected: cytoplasmic reporter (nucleus at 0.3). Infected: the nucleus brightens toward 2.0 and the
    # cytoplasm dims so that the cell's total reporter intensity is unchanged.
    nuclear_density = 0.3 + 1.7 * relocalisation * infected
    nuclear_area, cytoplasm_area = nucleus.sum(axis=(1, 2)), cytoplasm.sum(axis=(1, 2))
    total = cytoplasm_area + 0.3 * nuclear_area
    cytoplasm_density = (total[:, None, None] - nuclear_density * nuclear_area[:, None, None]) / np.maximum(
        cytoplasm_area[:, None, None], 1e-6
    )
    reporter = cytoplasm_density * cytoplasm + nuclear_density * nucleus
    reporter = reporter * appearance["reporter_gain"][:, None, None]
    frame = np.stack([phase.sum(axis=0), reporter.sum(axis=0)])
    if debris_per_frame:
        frame += _debris(debris_per_frame, size, rng)
    frame += rng.normal(scale=noise, size=frame.shape)
    return frame.astype(np.float32)


def _debris(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``(2, size, size)`` bright specks at random places: small, sharp, brighter in the reporter channel."""
    centers = rng.uniform(0, size, size=(count, 2))
    radius = rng.uniform(1.0, 2.5, size=count)[:, None, None]
    brightness = rng.lognormal(0.0, 0.5, size=(count, 2)) * np.array([0.4, 1.2])
    grid = np.arange(size, dtype=np.float32)
    dist2 = (grid[None, :, None] - centers[:, 0, None, None]) ** 2 + (
        grid[None, None, :] - centers[:, 1, None, None]
    ) ** 2
    specks = np.exp(-dist2 / (2 * radius**2))
    return np.einsum("nc,nyx->cyx", brightness, specks)


def _render_position(tracks: pd.DataFrame, exp: SyntheticExperiment, rng: np.random.Generator) -> np.ndarray:
    """Render the ``(T, 2, 1, Y, X)`` movie of one position."""
    n_lineages = int(tracks["cell"].max()) + 1
    appearance = _cell_appearance(n_lineages, rng, exp.cell_variability, exp.cell_radius)
    movie = np.empty((exp.n_timepoints, 2, 1, exp.image_size, exp.image_size), dtype=np.float32)
    # Daughters look like their parent but are smaller.
    for t, frame_tracks in tracks.groupby("t"):
        lineage = frame_tracks["cell"].to_numpy()
        per_cell = {k: v[lineage] for k, v in appearance.items()}
        per_cell["radius"] = per_cell["radius"] * np.where(frame_tracks["parent_track_id"].to_numpy() >= 0, 0.8, 1.0)
        centers = frame_tracks[["y", "x"]].to_numpy(dtype=np.float32)
        state = frame_tracks["infection_state"].to_numpy()
        if exp.gain_flicker:
            per_cell["reporter_gain"] = per_cell["reporter_gain"] * rng.lognormal(0.0, exp.gain_flicker, len(lineage))
        movie[t, :, 0] = render_frame(
            centers, state, per_cell, exp.image_size, exp.noise, rng, exp.relocalisation, exp.debris_per_frame
        )
    return movie


def generate_experiment(root: str | Path, exp: SyntheticExperiment) -> dict[str, Path]:
    """Write one synthetic experiment (plate, tracks tables, ground truth).

    Parameters
    ----------
    root : str | Path
        Parent folder; the experiment is written to ``<root>/<exp.name>/``.
    exp : SyntheticExperiment
        What to generate.

    Returns
    -------
    dict[str, Path]
        ``data_path`` (the plate), ``tracks_path`` (root of the per-FOV CSVs) and ``ground_truth``.

    Raises
    ------
    FileExistsError
        If the experiment folder already exists.
    """
    out = Path(root) / exp.name
    if exp.image_size - 1 - 2 * exp.border_margin < 0:
        raise ValueError(
            f"SyntheticExperiment '{exp.name}': border_margin={exp.border_margin} leaves no room for cells in "
            f"frames of image_size={exp.image_size}; expected border_margin <= {(exp.image_size - 1) / 2}."
        )
    if out.exists():
        raise FileExistsError(f"Synthetic experiment folder already exists: {out}")
    rng = np.random.default_rng(exp.seed)
    data_path, tracks_path = out / "plate.zarr", out / "tracks"
    truth = []
    with open_ome_zarr(data_path, layout="hcs", mode="w-", channel_names=exp.channel_names) as plate:
        for condition, wells in exp.condition_wells.items():
            for well in wells:
                row, col = well.split("/")
                for fov in range(exp.fovs_per_well):
                    fov_name = f"{row}/{col}/{fov}"
                    tracks = _simulate_tracks(exp, infected=condition == "infected", rng=rng)
                    movie = _render_position(tracks, exp, rng)
                    position = plate.create_position(row, col, str(fov))
                    position.create_image("0", movie, chunks=(1, 1, 1, exp.image_size, exp.image_size))
                    csv_dir = tracks_path / fov_name
                    csv_dir.mkdir(parents=True)
                    tracks[[*TRACK_COLUMNS, "infection_state"]].to_csv(csv_dir / "tracks.csv", index=False)
                    truth.append(
                        tracks.assign(fov_name=fov_name, condition=condition)[
                            ["fov_name", "condition", *TRACK_COLUMNS, "infection_state"]
                        ]
                    )
    ground_truth = out / "ground_truth.csv"
    pd.concat(truth, ignore_index=True).to_csv(ground_truth, index=False)
    return {"data_path": data_path, "tracks_path": tracks_path, "ground_truth": ground_truth}
