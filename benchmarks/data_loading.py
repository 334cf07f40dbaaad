"""Triplet batch throughput of ``TripletDataModule`` against the raw chunk-decoding floor.

Writes a synthetic HCS plate (4 FOVs x 20 timepoints x 2 channels x 1 x 512 x 512, float32, one
chunk per (t, c) image) with 200 random-walk tracks, then times

- ``loader``: the train loader of ``TripletDataModule`` (batch 64, 160 x 160 patches,
  ``time_interval=1`` so anchor, positive and negative are all read from disk), and
- ``floor``: reading and decoding the same bytes as whole raw chunks: the distinct chunks touched by
  each of those batches, read with tensorstore (one call per batch) and with plain file reads plus
  the codec on a thread pool; the faster of the two is the floor.

Run: ``python benchmarks/data_loading.py [--batches 20] [--workdir DIR]``.

``--layout realistic`` measures the shape of real plates instead (see ``benchmarks/data_loading_realistic.py``):
OME-Zarr written with iohub, uint16 2048 x 2048 frames, one blosc-zstd chunk per (t, c, z) frame, ~40
cells per frame, batches of 128 anchor + positive pairs (NT-Xent) of 160 x 160, for ``TripletDataModule``
and ``MultiExperimentDataModule``, with and without the decoded-chunk cache, and after ``rechunk_plate``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import zarr

from viscy_data.testing import random_walk_tracks, write_hcs_plate, write_tracks
from viscy_data.triplet import TripletDataModule

POSITIONS = ["A/1/0", "A/1/1", "A/2/0", "A/2/1"]
SHAPE = (20, 1, 512, 512)  # T, Z, Y, X
CHANNELS = ["Phase3D", "GFP"]
N_TRACKS = 200
BATCH = 64
PATCH = (160, 160)


def write_dataset(root: Path) -> tuple[Path, Path]:
    """Write the plate and per-FOV tracks tables (50 tracks per FOV)."""
    plate, tracks = root / "plate.zarr", root / "tracks"
    write_hcs_plate(plate, positions=POSITIONS, channel_names=CHANNELS, shape=SHAPE)
    for i, name in enumerate(POSITIONS):
        table = random_walk_tracks(N_TRACKS // len(POSITIONS), SHAPE[0], SHAPE[2:], margin=PATCH[0] // 2 + 1, seed=i)
        write_tracks(tracks, name, table)
    return plate, tracks


class Timer:
    """Wall-clock and process CPU seconds (all threads) of a block; CPU time is robust to a busy machine."""

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def time_loader(plate: Path, tracks: Path, n_batches: int) -> tuple[Timer, int, list[set]]:
    """Timing of ``n_batches`` train batches, patches read, and the chunks each batch touched."""
    torch.manual_seed(0)
    dm = TripletDataModule(
        str(plate),
        str(tracks),
        CHANNELS,
        z_range=(0, 1),
        initial_yx_patch_size=PATCH,
        final_yx_patch_size=PATCH,
        batch_size=BATCH,
        num_workers=1,
        time_interval=1,
        split_ratio=0.75,
    )
    dm.setup("fit")
    dataset = dm.train_dataset
    touched: list[set] = []
    read_rows = dataset._read_patches

    def recording_read(rows):
        frame = dataset.tracks.iloc[rows]
        fovs = frame["fov_name"].to_numpy()
        touched.append({(f, t, c) for f, t in zip(fovs, frame["t"].to_numpy(), strict=True) for c in range(2)})
        return read_rows(rows)

    dataset._read_patches = recording_read
    loader = iter(dm.train_dataloader())
    next(loader)  # warm up: open handles, start threads
    touched.clear()
    patches = 0
    with Timer() as timer:
        for _ in range(n_batches):
            batch = next(loader)
            patches += sum(len(batch[k]) for k in ("anchor", "positive", "negative"))
    return timer, patches, touched[:n_batches]


def floor_tensorstore(plate: Path, touched: list[set]) -> Timer:
    """Seconds to read the touched whole chunks of each batch, one tensorstore call per batch."""
    import tensorstore as ts

    context = ts.Context({"data_copy_concurrency": {"limit": os.cpu_count()}})
    driver = "zarr2" if zarr.open_group(plate, mode="r").metadata.zarr_format == 2 else "zarr3"
    handles = {
        name: ts.open(
            {"driver": driver, "kvstore": {"driver": "file", "path": str(plate / name / "0")}},
            context=context,
            read=True,
        ).result()
        for name in POSITIONS
    }
    with Timer() as timer:
        for chunks in touched:
            views = [handles[f][t, c, 0].translate_to[0] for f, t, c in sorted(chunks)]
            ts.stack(views).read().result()
    return timer


def floor_files(plate: Path, touched: list[set]) -> Timer:
    """Seconds to read the touched chunk files and decode them with the array's codecs on a thread pool."""
    arrays = {name: zarr.open_array(plate / name / "0", mode="r") for name in POSITIONS}

    def read_chunk(chunk):
        f, t, c = chunk
        return arrays[f].blocks[t, c]

    with Timer() as timer, ThreadPoolExecutor(os.cpu_count()) as pool:
        for chunks in touched:
            list(pool.map(read_chunk, sorted(chunks)))
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=["today", "realistic"], default="today")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    args, rest = parser.parse_known_args()
    if args.layout == "realistic":
        from data_loading_realistic import main as realistic_main

        realistic_main(rest, batches=args.batches, workdir=args.workdir)
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        plate, tracks = write_dataset(Path(tmp))
        loader, patches, touched = time_loader(plate, tracks, args.batches)
        timings = {
            "TripletDataModule train loader": loader,
            "floor: tensorstore whole chunks": floor_tensorstore(plate, touched),
            "floor: file read + codec (threads)": floor_files(plate, touched),
        }
    chunk_mib = SHAPE[2] * SHAPE[3] * 4 / 2**20
    n_chunks = sum(len(c) for c in touched)
    floors = list(timings.values())[1:]
    print(
        f"{args.batches} batches of {BATCH} triplets ({patches} patches of 2x1x{PATCH[0]}x{PATCH[1]}), "
        f"{n_chunks} chunks of {chunk_mib:.0f} MiB touched, {os.cpu_count()} CPUs"
    )
    print(f"{'method':<36}{'wall s':>8}{'patches/s':>11}{'MiB/s':>8}{'CPU s':>8}{'patches/CPU-s':>15}")
    for name, timer in timings.items():
        print(
            f"{name:<36}{timer.wall:>8.2f}{patches / timer.wall:>11.0f}{n_chunks * chunk_mib / timer.wall:>8.0f}"
            f"{timer.cpu:>8.2f}{patches / timer.cpu:>15.0f}"
        )
    wall_ratio = loader.wall / min(t.wall for t in floors)
    cpu_ratio = loader.cpu / min(t.cpu for t in floors)
    load = os.getloadavg()[0]
    print(f"loader / floor: {wall_ratio:.2f}x wall-clock, {cpu_ratio:.2f}x CPU time (load average {load:.1f})")


if __name__ == "__main__":
    main()
