"""Two tiny real experiments (plates, tracks CSVs, experiments.yml) for the multi-experiment tests.

Pixel values encode where they come from, so tests can check patches independently:
``value = plate_offset + 10000 * t + 1000 * c + 32 * y + x`` (exp_a offset 0, exp_b offset 500000).
Both plates use the same FOV names, so a reader keyed by FOV name alone would mix them up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from viscy_data.testing import write_hcs_plate, write_tracks

SHAPE = (8, 2, 32, 32)  # T, Z, Y, X
FOVS = ("A/1/0", "B/1/0")
OFFSETS = {"exp_a": 0, "exp_b": 500000}
CHANNELS = {"exp_a": ["Phase3D", "Mito", "GFP"], "exp_b": ["Phase3D", "RFP"]}
SOURCES = {"exp_a": ["Phase3D", "GFP"], "exp_b": ["Phase3D", "RFP"]}
INTERVALS = {"exp_a": 30.0, "exp_b": 15.0}


def pixel_value(experiment: str, t: int, c: int, y: int, x: int) -> float:
    """Value written at ``(t, c, any z, y, x)`` of ``experiment``'s plate."""
    return OFFSETS[experiment] + 10000 * t + 1000 * c + 32 * y + x


def _image(experiment: str) -> np.ndarray:
    n_t, n_z, n_y, n_x = SHAPE
    t, c, z, y, x = np.meshgrid(
        np.arange(n_t),
        np.arange(len(CHANNELS[experiment])),
        np.arange(n_z),
        np.arange(n_y),
        np.arange(n_x),
        indexing="ij",
    )
    return (OFFSETS[experiment] + 10000 * t + 1000 * c + 32 * y + x).astype(np.float32)


def division_tracks() -> pd.DataFrame:
    """Track 0 (t 0-3) divides into tracks 1 and 2 (t 4-7); track 3 lives t 0-7; track 4 only t 0."""
    rows = [(0, t, -1, 16, 16) for t in range(4)]
    rows += [(1, t, 0, 10, 10) for t in range(4, 8)]
    rows += [(2, t, 0, 22, 22) for t in range(4, 8)]
    rows += [(3, t, -1, 12, 20) for t in range(8)]
    rows += [(4, 0, -1, 20, 12)]
    table = pd.DataFrame(rows, columns=["track_id", "t", "parent_track_id", "y", "x"])
    table["id"] = np.arange(len(table))
    table["parent_id"] = -1
    table["z"] = 0
    return table


def steady_tracks(n_tracks: int = 3) -> pd.DataFrame:
    """``n_tracks`` cells present at every frame, at fixed distinct positions."""
    rows = [(k, t, -1, 8 + 6 * k, 24 - 5 * k) for k in range(n_tracks) for t in range(SHAPE[0])]
    table = pd.DataFrame(rows, columns=["track_id", "t", "parent_track_id", "y", "x"])
    table["id"] = np.arange(len(table))
    table["parent_id"] = -1
    table["z"] = 0
    return table


def write_two_experiment_plates(root: Path, normalization: bool = True) -> dict[str, Path]:
    """Write exp_a (30 min, GFP; FOV A/1/0 has a division) and exp_b (15 min, RFP) plus experiments.yml.

    ``normalization=False`` writes the plates without normalization metadata.
    """
    entries = []
    for name in ("exp_a", "exp_b"):
        data_path = root / f"{name}.zarr"
        tracks_path = root / f"{name}_tracks"
        image = _image(name)
        write_hcs_plate(
            data_path,
            positions=FOVS,
            channel_names=CHANNELS[name],
            shape=SHAPE,
            data={f: image for f in FOVS},
            normalization=normalization,
        )
        write_tracks(tracks_path, "A/1/0", division_tracks() if name == "exp_a" else steady_tracks())
        write_tracks(tracks_path, "B/1/0", steady_tracks())
        entries.append(
            {
                "name": name,
                "data_path": str(data_path),
                "tracks_path": str(tracks_path),
                "channel_names": CHANNELS[name],
                "source_channel": SOURCES[name],
                "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
                "interval_minutes": INTERVALS[name],
                "start_hpi": 3.0 if name == "exp_a" else 2.0,
                "organelle": "ER",
                "date": "2025-07-22",
                "moi": 1.0,
            }
        )
    experiments_yaml = root / "experiments.yml"
    experiments_yaml.write_text(yaml.safe_dump({"experiments": entries}))
    return {"root": root, "experiments_yaml": experiments_yaml}
