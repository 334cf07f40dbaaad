"""Benchmark of the multi-experiment sampling stack at 1,000,000 cell observations.

Writes 4 experiments x 2 conditions (2 wells x 4 FOVs each, 625 tracks x 50 frames per FOV, a fifth
of the tracks with a parent) as real HCS plates (empty arrays) with per-FOV tracks CSVs, then times:

- ``MultiExperimentIndex`` construction from the tracks tables (CSV read, lineage, clamp, anchors);
- ``FlexibleBatchSampler`` construction, epoch start, and batches/s at batch 256 with every axis on
  (experiment-aware, condition-balanced, leaky 0.1, temporal enrichment).

Run: ``.venv/bin/python benchmarks/sampling.py`` (targets: index < 10 s, sampler > 2,000 batches/s).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from iohub.ngff import open_ome_zarr

from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry
from viscy_data.sampler import FlexibleBatchSampler
from viscy_data.testing import random_walk_tracks, write_tracks

EXPERIMENTS = {"exp_a": 30.0, "exp_b": 15.0, "exp_c": 20.0, "exp_d": 10.0}
WELLS = {"uninfected": "A/1", "infected": "B/1"}
FOVS_PER_WELL = 4
TRACKS, FRAMES, IMAGE = 625, 50, 256


def write_experiments(root: Path) -> ExperimentRegistry:
    """Write the synthetic plates and tracks; return their registry."""
    configs = []
    for e, (name, interval) in enumerate(EXPERIMENTS.items()):
        data_path, tracks_path = root / f"{name}.zarr", root / f"{name}_tracks"
        with open_ome_zarr(data_path, layout="hcs", mode="w-", channel_names=["Phase3D", "GFP"]) as plate:
            for w, well in enumerate(WELLS.values()):
                row, col = well.split("/")
                for f in range(FOVS_PER_WELL):
                    position = plate.create_position(row, col, str(f))
                    position.create_zeros("0", (FRAMES, 2, 1, IMAGE, IMAGE), np.float32, chunks=(1, 1, 1, IMAGE, IMAGE))
                    tracks = random_walk_tracks(TRACKS, FRAMES, (IMAGE, IMAGE), seed=100 * e + 10 * w + f, step=3.0)
                    daughters = tracks["track_id"] >= TRACKS - TRACKS // 5
                    tracks.loc[daughters, "parent_track_id"] = tracks.loc[daughters, "track_id"] - TRACKS // 5
                    write_tracks(tracks_path, f"{well}/{f}", tracks)
        configs.append(
            ExperimentConfig(
                name=name,
                data_path=str(data_path),
                tracks_path=str(tracks_path),
                channel_names=["Phase3D", "GFP"],
                source_channel=["Phase3D", "GFP"],
                condition_wells={cond: [well] for cond, well in WELLS.items()},
                interval_minutes=interval,
            )
        )
    return ExperimentRegistry(configs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3000, help="batches timed after the warm-up batch")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        registry = write_experiments(Path(tmp))
        start = time.perf_counter()
        index = MultiExperimentIndex(registry, slice(0, 1), (64, 64), tau_range_hours=(0.5, 2.0))
        rows.append(("MultiExperimentIndex build", f"{time.perf_counter() - start:.2f} s", "< 10 s"))
        rows.append(("  observations / valid anchors", f"{len(index.tracks):,} / {len(index.valid_anchors):,}", ""))
        start = time.perf_counter()
        sampler = FlexibleBatchSampler(
            index.valid_anchors,
            batch_size=256,
            experiment_aware=True,
            leaky=0.1,
            condition_balanced=True,
            temporal_enrichment=True,
            temporal_window_hours=2.0,
            temporal_global_fraction=0.3,
        )
        rows.append(("FlexibleBatchSampler init", f"{time.perf_counter() - start:.2f} s", ""))
        batches = iter(sampler)
        start = time.perf_counter()
        next(batches)
        rows.append(("  epoch start + first batch", f"{time.perf_counter() - start:.3f} s", ""))
        n = min(args.batches, len(sampler) - 1)
        start = time.perf_counter()
        for _ in range(n):
            next(batches)
        elapsed = time.perf_counter() - start
        rows.append(("FlexibleBatchSampler, batch 256, all axes", f"{n / elapsed:,.0f} batches/s", "> 2,000"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>22}  {target}")


if __name__ == "__main__":
    main()
