"""Cell-patch throughput on the layout of real plates, against the tensorstore floor.

Writes with iohub an HCS plate of ``--fovs`` FOVs x 2 channels x ``--timepoints`` x 1 z x ``--size`` ^ 2
uint16 frames, one blosc-zstd chunk per (t, c, z) frame (what microscope pipelines write), with
``--cells`` random-walk tracks per FOV, plus its ``rechunk_plate`` copy with ``--patch-chunk`` ^ 2 chunks.
Each loader reads ``--batches`` batches of ``--batch-size`` anchors with their positives (NT-Xent: no
negatives) of ``--patch`` ^ 2 pixels, after ``--warmup`` batches:

- ``TripletDataModule`` (``time_interval="any"``: the positive is the anchor's patch, augmented later),
- ``MultiExperimentDataModule`` (positives of the same lineage 0.5-2 h later, read with the anchors),

each with the decoded-chunk cache off (``cache_pool_bytes=0``) and on (``--cache-mib``), on the
whole-frame and on the patch-aligned plate, and ``MultiExperimentDataModule`` with
``group_by_fov_fraction`` (``--group-fraction``). The floor of a run reads, for every batch, each chunk
its patches touch once, with one tensorstore call per batch and no cache.

Columns: patches/s (anchors + positives), MiB decoded per patch (chunks tensorstore read from disk and
decoded, times their decoded size), CPU ms per patch (process CPU time over all threads), load average,
and the RSS of the loader's process: peak during the run, at its start, and after the imports. Each
loader runs in its own fresh ``spawn`` process (its runs one after another, the peak reset between
runs); the floors run in the parent. The last lines give the ratios of the issue's goals, measured in
the same run.

Run: ``python benchmarks/data_loading.py --layout realistic [--fovs 8 --timepoints 30 --cache-mib 2048
--batches 5 --runs frames-off frames-on ... --data-dir /tmp/plates]`` (``--data-dir`` writes the plates
once and reuses them; a full-size plate takes ~2.5 min to write and rechunk on 2 CPUs).

Memory, measured at the full size (8 FOVs x 30 t, 3840 MiB decoded, 5 batches, fresh process per loader,
import RSS 0.92 GiB): the peak RSS is the imports, the cache in use, and the chunks being fetched and decoded.
Before ``viscy_data.io.mmap_large_buffers`` glibc's thread arenas kept 1.9 / 2.7 GiB (Triplet / Multi) of
freed chunks on top. One tensorstore call per batch then held 0.4-0.7 GiB of chunks in flight above a 2 GiB
cache (1.3-1.5 GiB without a cache); reading in waves of ``viscy_data.io.READ_WAVE_BYTES`` holds ~0.2 GiB:
peak 3.21 / 3.24 GiB with a 2 GiB cache, 4.36 / 4.83 GiB with the default 4 GiB (the whole plate cached),
1.21 / 1.22 GiB without a cache.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorstore as ts
import yaml
from iohub.ngff import open_ome_zarr

from viscy_data import io as data_io
from viscy_data.rechunk import rechunk_plate
from viscy_data.testing import random_walk_tracks, write_tracks

CHANNELS = ["Phase3D", "GFP"]
_LABELS = {"triplet": "TripletDataModule", "multi": "MultiExperimentDataModule"}


def _fov_names(n_fovs: int) -> list[str]:
    """FOVs alternate between wells A/1 (uninfected) and B/1 (infected)."""
    return [f"{'AB'[i % 2]}/1/{i // 2}" for i in range(n_fovs)]


def write_plate(root: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """Write the whole-frame plate and its tracks; return the plate and the tracks root."""
    plate_path, tracks = root / "plate.zarr", root / "tracks"
    rng = np.random.default_rng(0)
    size = args.size
    with open_ome_zarr(plate_path, layout="hcs", mode="w-", channel_names=CHANNELS, version=args.version) as plate:
        for i, name in enumerate(_fov_names(args.fovs)):
            row, column, fov = name.split("/")
            array = plate.create_position(row, column, fov).create_zeros(
                "0", (args.timepoints, 2, 1, size, size), np.uint16, chunks=(1, 1, 1, size, size)
            )
            background = rng.normal(1000, 150, size=(2, 1, size, size))
            for t in range(args.timepoints):
                array[t] = (background + rng.normal(0, 40, size=background.shape)).astype(np.uint16)
            table = random_walk_tracks(args.cells, args.timepoints, (size, size), margin=args.patch // 2 + 1, seed=i)
            write_tracks(tracks, name, table)
    return plate_path, tracks


def write_experiments_yaml(root: Path, plate: Path, tracks: Path, name: str) -> Path:
    entry = {
        "name": "bench",
        "data_path": str(plate),
        "tracks_path": str(tracks),
        "channel_names": CHANNELS,
        "source_channel": CHANNELS,
        "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
        "interval_minutes": 30.0,
    }
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump({"experiments": [entry]}))
    return path


def _metric(name: str, category: str | None = None) -> int:
    for metric in ts.experimental_collect_matching_metrics(name):
        if metric["name"] == name:
            return sum(v.get("value", 0) for v in metric["values"] if category is None or v.get("category") == category)
    return 0


def _chunks_decoded() -> int:
    return _metric("/tensorstore/cache/kvs_cache_read", "changed")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        return 1024 * next(int(line.split()[1]) for line in f if line.startswith(f"{key}:"))


def _rss() -> int:
    return _status_bytes("VmRSS")


def _peak_rss() -> int:
    return _status_bytes("VmHWM")


def _datamodule(kind: str, plate: Path, tracks: Path, yaml_path: Path, cache: int, args, group: float = 0.0):
    if kind == "triplet":
        from viscy_data.triplet import TripletDataModule

        return TripletDataModule(
            str(plate),
            str(tracks),
            CHANNELS,
            z_range=(0, 1),
            initial_yx_patch_size=(args.patch, args.patch),
            final_yx_patch_size=(args.patch, args.patch),
            split_ratio=(args.fovs - 1) / args.fovs,
            batch_size=args.batch_size,
            num_workers=1,
            return_negative=False,
            cache_pool_bytes=cache,
        )
    from dynaclr.datamodule import MultiExperimentDataModule

    return MultiExperimentDataModule(
        str(yaml_path),
        z_range=(0, 1),
        yx_patch_size=(args.patch, args.patch),
        final_yx_patch_size=(args.patch, args.patch),
        val_experiments=[],
        batch_size=args.batch_size,
        num_workers=1,
        cache_pool_bytes=cache,
        group_by_fov_fraction=group,
    )


def _endless(dm):
    """Train batches over as many epochs as needed."""
    while True:
        yield from dm.train_dataloader()


def _time_batches(loader, n: int) -> dict:
    decoded, patches = _chunks_decoded(), 0
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        batch = next(loader)
        patches += len(batch["anchor"]) + len(batch["positive"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    decoded = _chunks_decoded() - decoded
    return {"wall": wall, "cpu": cpu, "patches": patches, "decoded": decoded, "load": os.getloadavg()[0]}


def run_loader(kind, plate, tracks, yaml_path, cache, args, group=0.0) -> dict:
    """Time ``args.batches`` train batches after ``args.warmup`` (``cold``) and, with a cache, the same number
    of batches after one whole epoch (``warm``, the steady state of training); record each batch's reads.

    ``baseline`` is the RSS of the process when the run starts, ``peak_rss`` its peak RSS during the run."""
    data_io._CONTEXTS.clear()  # a fresh, cold cache for every run
    gc.collect()
    _reset_peak_rss()
    baseline = _rss()
    dm = _datamodule(kind, plate, tracks, yaml_path, cache, args, group)
    dm.setup("fit")
    arrays = dm.train_dataset.arrays
    reads: list[list] = []
    read = arrays.read

    def recording_read(regions):
        reads.append(list(regions))
        return read(regions)

    arrays.read = recording_read
    per_epoch = len(dm.train_dataloader())
    loader = _endless(dm)
    for _ in range(args.warmup):
        next(loader)
    results = {"cold": _time_batches(loader, args.batches)}
    results["cold"]["reads"] = reads[args.warmup : args.warmup + args.batches]
    if cache:
        for _ in range(max(per_epoch - args.warmup - args.batches, 0)):
            next(loader)
        results["warm"] = _time_batches(loader, args.batches)
    for result in results.values():
        result["peak_rss"], result["baseline"] = _peak_rss(), baseline
    results["specs"] = arrays._specs
    del loader, dm
    return results


def _run_loaders(kind: str, jobs: list[tuple]) -> tuple[int, list[dict]]:
    """RSS after importing the data module of ``kind``, and :func:`run_loader` of each job, one after another."""
    if kind == "multi":
        import dynaclr.datamodule  # noqa: F401
    else:
        import viscy_data.triplet  # noqa: F401
    imports = _rss()
    return imports, [run_loader(kind, *job) for job in jobs]


def run_loaders_process(kind: str, jobs: list[tuple]) -> tuple[int, list[dict]]:
    """:func:`_run_loaders` in a fresh ``spawn`` process, so its RSS is that loader's alone."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_loaders, (kind, jobs))


def run_floor(run: dict) -> dict:
    """Read every batch's patches with one tensorstore call per batch, without a cache."""
    limits = {"data_copy_concurrency": {"limit": data_io._cpu_count()}, "cache_pool": {"total_bytes_limit": 0}}
    context = ts.Context(limits)
    handles = [ts.open(spec, context=context, read=True).result() for spec in run["specs"]]
    cold = run["cold"]
    decoded = _chunks_decoded()
    wall, cpu = time.perf_counter(), time.process_time()
    for regions in cold["reads"]:
        ts.stack([handles[p].oindex[expression].translate_to[0] for p, expression in regions]).read().result()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    decoded = _chunks_decoded() - decoded
    return {"wall": wall, "cpu": cpu, "patches": cold["patches"], "decoded": decoded, "load": os.getloadavg()[0]} | {
        "peak_rss": 0,
        "baseline": 0,
    }


def _row(name: str, result: dict, chunk_bytes: int) -> str:
    n = result["patches"]
    rss = ""
    if result["peak_rss"]:
        rss = "".join(f"{result[key] / 2**30:>9.2f}" for key in ("peak_rss", "baseline", "imports"))
    return (
        f"{name:<60}{result['wall']:>8.2f}{n / result['wall']:>10.0f}"
        f"{result['decoded'] * chunk_bytes / 2**20 / n:>11.2f}{1000 * result['cpu'] / n:>10.2f}"
        f"{result['load']:>6.1f}{rss}"
    )


_RUNS = ("frames-off", "frames-on", "patches-off", "patches-on", "group-off", "group-on")


def _write_or_reuse(root: Path, args) -> dict:
    """Plates, tracks and experiments files under ``root``, written unless already there."""
    plate, patches, tracks = root / "plate.zarr", root / "patches.zarr", root / "tracks"
    timing = f"reused from {root}"
    if not plate.exists():
        start = time.perf_counter()
        write_plate(root, args)
        written = time.perf_counter() - start
        start = time.perf_counter()
        rechunk_plate(plate, patches, chunks=(1, 1, 1, args.patch_chunk, args.patch_chunk))
        rechunked = time.perf_counter() - start
        timing = f"written in {written:.0f} s, rechunked to {args.patch_chunk}^2 (verified) in {rechunked:.0f} s"
    return {
        "tracks": tracks,
        "timing": timing,
        "frames": (plate, write_experiments_yaml(root, plate, tracks, "frames"), args.size),
        "patches": (patches, write_experiments_yaml(root, patches, tracks, "patches"), args.patch_chunk),
    }


def _runs(kind: str, setup: dict, cache: int, args) -> dict[str, tuple[dict, int]]:
    """Every requested run of one loader, in one fresh process: ``{name: (result, decoded bytes of a chunk)}``."""
    label, runs = _LABELS[kind], []
    for run in args.runs:
        layout, mode = run.split("-")
        group = args.group_fraction if layout == "group" else 0.0
        if group and kind != "multi":
            continue
        path, yaml_path, chunk_yx = setup["patches" if layout == "patches" else "frames"]
        name = f"{label} {'patch-aligned' if layout == 'patches' else 'whole-frame'}"
        name += f", group {group}" if group else ""
        job = (path, setup["tracks"], yaml_path, cache if mode == "on" else 0, args, group)
        runs.append((name, mode, group, chunk_yx**2 * 2, job))
    imports, measured_runs = run_loaders_process(kind, [job for *_, job in runs])
    results = {}
    for (name, mode, group, chunk_bytes, _), measured in zip(runs, measured_runs, strict=True):
        for result in measured.values():
            if isinstance(result, dict):
                result["imports"] = imports
        if mode == "off":
            results[f"{name}, no cache"] = (measured["cold"], chunk_bytes)
            if not group:
                results[f"  floor of {name}"] = (run_floor(measured), chunk_bytes)
        else:
            results[f"{name}, cache, cold"] = (measured["cold"], chunk_bytes)
            results[f"{name}, cache, warm"] = (measured["warm"], chunk_bytes)
    return results


def main(argv: list[str], batches: int, workdir: Path | None) -> None:
    parser = argparse.ArgumentParser(prog="data_loading.py --layout realistic", description=__doc__.splitlines()[0])
    parser.add_argument("--fovs", type=int, default=8)
    parser.add_argument("--timepoints", type=int, default=30)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--cells", type=int, default=40, help="tracked cells per FOV (and frame)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--patch", type=int, default=160)
    parser.add_argument("--patch-chunk", type=int, default=256)
    parser.add_argument("--cache-mib", type=int, default=data_io.DEFAULT_CACHE_POOL_BYTES // 2**20)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--group-fraction", type=float, default=0.5)
    parser.add_argument("--version", choices=["0.4", "0.5"], default="0.4")
    parser.add_argument("--loaders", nargs="+", choices=["triplet", "multi"], default=["triplet", "multi"])
    parser.add_argument("--runs", nargs="+", choices=_RUNS, default=list(_RUNS), help="which runs (default all)")
    parser.add_argument("--data-dir", type=Path, default=None, help="write the plates here once and reuse them")
    args = parser.parse_args(argv)
    args.batches = batches
    cache = args.cache_mib * 2**20
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = args.data_dir or Path(tmp)
        setup = _write_or_reuse(root, args)
        results = {}
        for kind in args.loaders:
            results.update(_runs(kind, setup, cache, args))
    plate_mib = args.fovs * args.timepoints * 2 * args.size**2 * 2 / 2**20
    print(
        f"plate: {args.fovs} FOVs x 2 ch x {args.timepoints} t x 1 z x {args.size}^2 uint16, blosc-zstd, OME-Zarr "
        f"{args.version}, {plate_mib:.0f} MiB decoded, {setup['timing']}; {args.cells} cells/FOV; {batches} batches of "
        f"{args.batch_size} anchors + positives of {args.patch}^2 after {args.warmup} warm-up; cache {args.cache_mib} "
        f"MiB; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; each loader in its own fresh "
        "process (RSS: peak of the run, at its start, after the imports)"
    )
    print(
        f"{'run':<60}{'wall s':>8}{'patch/s':>10}{'MiB dec/p':>11}{'CPU ms/p':>10}{'load':>6}"
        f"{'peak GiB':>9}{'start':>9}{'imports':>9}"
    )
    for name, (result, chunk_bytes) in results.items():
        print(_row(name, result, chunk_bytes))
    _print_ratios(results, cache, args)


def _rate(run: dict) -> float:
    return run["patches"] / run["wall"]


def _print_ratios(results, cache: int, args) -> None:
    for kind in args.loaders:
        label = _LABELS[kind]

        def get(name, label=label):
            return results.get(f"{label} {name}", (None,))[0]

        off, floor, warm, cold = (
            get(n) for n in ("whole-frame, no cache", "", "whole-frame, cache, warm", "whole-frame, cache, cold")
        )
        floor = results.get(f"  floor of {label} whole-frame", (None,))[0]
        aligned_off, aligned_cold = get("patch-aligned, no cache"), get("patch-aligned, cache, cold")
        lines = []
        if off and warm:
            lines.append(
                f"cache / no cache {_rate(warm) / _rate(off):.2f}x patches/s warm, "
                f"{_rate(cold) / _rate(off):.2f}x cold (goal >= 3)"
            )
        if off and floor:
            warm_ratio = f"{warm['wall'] / floor['wall']:.2f}x with warm cache, " if warm else ""
            lines.append(f"wall / floor {warm_ratio}{off['wall'] / floor['wall']:.2f}x without (goal <= 2)")
        if off and aligned_off:
            lines.append(
                f"patch-aligned / whole-frame {_rate(aligned_off) / _rate(off):.2f}x without cache (goal >= 5)"
            )
        if cold and aligned_cold:
            lines.append(f"{_rate(aligned_cold) / _rate(cold):.2f}x with a cold cache")
        cached = [r for n in ("whole-frame, cache, warm", "patch-aligned, cache, warm") if (r := get(n))]
        if cached:
            peak = max(cached, key=lambda r: r["peak_rss"])
            growth = (peak["peak_rss"] - peak["baseline"]) / 2**30
            lines.append(
                f"peak RSS {peak['peak_rss'] / 2**30:.2f} GiB, {growth:.2f} above the run's start "
                f"(goal < cache + 1 GiB = {(cache + 2**30) / 2**30:.2f})"
            )
        print(f"{label}: " + "; ".join(lines))
