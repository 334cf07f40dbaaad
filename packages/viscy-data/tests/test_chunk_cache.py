"""The decoded-chunk cache shared by the readers of a process (``viscy_data.io.shared_context``)."""

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorstore as ts
from iohub.ngff import open_ome_zarr

from viscy_data.io import PositionArrays
from viscy_data.testing import write_hcs_plate


def _chunks_decoded() -> int:
    """Chunks tensorstore has read from storage and decoded in this process so far.

    Revalidating a cached chunk (``recheck_cached_data``) reads no bytes and counts as "unchanged".
    """
    for metric in ts.experimental_collect_matching_metrics("/tensorstore/cache/kvs_cache_read"):
        return sum(value["value"] for value in metric["values"] if value.get("category") == "changed")
    return 0


@pytest.fixture(params=["0.4", "0.5"])
def plate(tmp_path, request):
    data = {"A/1/0": np.arange(6 * 2 * 64 * 64, dtype=np.uint16).reshape(6, 2, 1, 64, 64)}
    path = tmp_path / "plate.zarr"
    write_hcs_plate(path, positions=list(data), shape=(6, 1, 64, 64), dtype=np.uint16, data=data, version=request.param)
    return path, data["A/1/0"]


def _arrays(path, cache_pool_bytes):
    positions = [position for _, position in open_ome_zarr(path, mode="r").positions()]
    arrays = PositionArrays(positions, "0", cache_pool_bytes)
    arrays.handle(0)  # open now, so that reading the array metadata is not counted below
    return arrays


def _patch(t, y, x):
    return 0, (t, [0, 1], slice(0, 1), slice(y, y + 8), slice(x, x + 8))


def test_readers_with_the_same_bound_share_decoded_chunks(plate):
    path, _ = plate
    train, val = _arrays(path, 1 << 20), _arrays(path, 1 << 20)
    train.read([_patch(0, 0, 0)])
    before = _chunks_decoded()
    val.read([_patch(0, 30, 30), _patch(0, 10, 50)])
    assert _chunks_decoded() == before  # both channels of frame 0 came from the cache filled by `train`


def test_cache_off_decodes_every_batch_but_each_chunk_once_per_batch(plate):
    path, _ = plate
    arrays = _arrays(path, 0)
    before = _chunks_decoded()
    arrays.read([_patch(1, 0, 0), _patch(1, 20, 20), _patch(1, 40, 8)])
    assert _chunks_decoded() - before == 2  # one read per channel chunk, shared by the 3 patches
    arrays.read([_patch(1, 0, 0)])
    assert _chunks_decoded() - before == 4


def test_concurrent_reads_through_an_evicting_cache_return_the_right_pixels(plate):
    path, image = plate
    arrays = _arrays(path, 3 * 64 * 64 * 2)  # room for 3 of the 12 chunks: constant eviction
    rng = np.random.default_rng(0)
    requests = rng.integers(0, [6, 56, 56], size=(200, 3))

    def read(request):
        t, y, x = (int(v) for v in request)
        return arrays.read([_patch(t, y, x)])[0], image[t, :, :1, y : y + 8, x : x + 8]

    with ThreadPoolExecutor(4) as pool:
        for got, expected in pool.map(read, requests):
            np.testing.assert_array_equal(got, expected)


@pytest.fixture
def small_waves(monkeypatch):
    """Waves of at most 3 chunks of the 64 x 64 uint16 test plate (one CPU: no per-CPU minimum)."""
    monkeypatch.setattr("viscy_data.io.READ_WAVE_BYTES", 3 * 64 * 64 * 2)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")


def test_reads_in_bounded_waves_return_the_regions_in_order(plate, small_waves):
    path, image = plate
    arrays = _arrays(path, 0)
    rng = np.random.default_rng(1)
    requests = [tuple(int(v) for v in row) for row in rng.integers(0, [6, 56, 56], size=(40, 3))]
    regions = [_patch(t, y, x) for t, y, x in requests]
    waves = arrays._waves(regions)
    assert len(waves) > 1
    assert sorted(i for wave in waves for i in wave) == list(range(len(regions)))
    for wave in waves:
        chunks = {chunk for i in wave for chunk in arrays._chunks_of(*regions[i])}
        assert len(chunks) <= 3  # 2 channel chunks per frame: at most one frame and a half per wave
    got = arrays.read(regions)
    expected = np.stack([image[t, :, :1, y : y + 8, x : x + 8] for t, y, x in requests])
    np.testing.assert_array_equal(got, expected)


def test_waves_alternate_direction_so_the_last_frames_read_are_read_first(plate, small_waves):
    path, _ = plate
    arrays = _arrays(path, 0)
    regions = [_patch(t, 0, 0) for t in (3, 0, 5, 1)]
    first, second = arrays._waves(regions), arrays._waves(regions)
    frames = [[regions[i][1][0] for wave in waves for i in wave] for waves in (first, second)]
    assert frames == [[0, 1, 3, 5], [5, 3, 1, 0]]


def test_the_patches_of_a_frame_share_one_wave_so_its_chunks_are_decoded_once(plate, small_waves):
    path, _ = plate
    arrays = _arrays(path, 0)
    regions = [_patch(t, y, y) for y in (0, 20, 40) for t in (2, 0, 1)]
    waves = arrays._waves(regions)
    assert [sorted({regions[i][1][0] for i in wave}) for wave in waves] == [[0], [1], [2]]
    chunks = [{chunk for i in wave for chunk in arrays._chunks_of(*regions[i])} for wave in waves]
    assert sum(len(wave_chunks) for wave_chunks in chunks) == len(set().union(*chunks)) == 6


def test_chunks_of_a_region_follow_the_read_chunk_grid(tmp_path):
    data = {"A/1/0": np.zeros((2, 2, 1, 64, 64), dtype=np.uint16)}
    path = tmp_path / "tiled.zarr"
    write_hcs_plate(path, positions=list(data), shape=(2, 1, 64, 64), dtype=np.uint16, data=data)
    with open_ome_zarr(path, mode="r+") as plate:  # rewrite the array with 16 x 16 chunks
        position = plate["A/1/0"]
        del position["0"]
        position.create_zeros("0", (2, 2, 1, 64, 64), np.uint16, chunks=(1, 1, 1, 16, 16))
    arrays = _arrays(path, 0)
    chunks = arrays._chunks_of(0, (1, [1], slice(0, 1), slice(10, 40), slice(48, 64)))
    assert chunks == [(0, 1, 1, 0, y, 3) for y in (0, 1, 2)]
    assert arrays._chunks_of(0, (0,)) == [(0, 0, c, 0, y, x) for c in (0, 1) for y in range(4) for x in range(4)]


def test_negative_bound_is_refused(plate):
    with pytest.raises(ValueError, match="cache_pool_bytes must be >= 0"):
        _arrays(plate[0], -1)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from iohub.ngff import open_ome_zarr
    from viscy_data.io import PositionArrays

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def peak():
        with open("/proc/self/status") as f:
            return 1024 * next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

    path, n_t, bounds = sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3:]]
    positions = [p for _, p in open_ome_zarr(path, mode="r").positions()]
    results = []
    for bound in bounds:
        arrays = PositionArrays(positions, "0", bound)
        arrays.read([(0, (0, [0], slice(0, 1), slice(0, 8), slice(0, 8)))])  # open handles, start threads
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        base = rss()
        for repeat in range(2):
            for t in range(n_t):
                arrays.read([(0, (t, [0], slice(0, 1), slice(y, y + 64), slice(0, 64))) for y in (0, 500, 900)])
        results.append({"peak_growth": peak() - base, "growth": rss() - base})
    print(json.dumps(results))
    """
)


def _distinct_frames_plate(tmp_path, n_t: int):
    """A one-FOV plate of ``n_t`` 1024 x 1024 uint16 frames (2 MiB chunks), frame ``t`` filled with ``t``."""
    frames = np.broadcast_to(np.arange(n_t, dtype=np.uint16)[:, None, None, None, None], (n_t, 1, 1, 1024, 1024))
    path = tmp_path / "plate.zarr"
    write_hcs_plate(
        path,
        positions=["A/1/0"],
        channel_names=["Phase3D"],
        shape=(n_t, 1, 1024, 1024),
        dtype=np.uint16,
        data={"A/1/0": frames},
        normalization=False,
    )
    return path


def _run_script(script: str, *args) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (its own RSS) with ``args`` as ``sys.argv[1:]``."""
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=300, check=True
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc")
def test_memory_never_exceeds_the_cache_bound(tmp_path):
    """Reading 64 MiB of distinct chunks twice through an 8 MiB cache keeps the peak RSS growth within the
    bound plus a few chunks in flight.

    The same reads through a 1 GiB cache keep every chunk resident, which shows the measure sees cached chunks.
    """
    n_t, chunk_bytes = 32, 1024 * 1024 * 2
    path = _distinct_frames_plate(tmp_path, n_t)
    bound = 8 * 2**20
    result = _run_script(_MEMORY_SCRIPT, path, n_t, bound, 2**30)
    bounded, unbounded = json.loads(result.stdout.strip().splitlines()[-1])
    assert bounded["peak_growth"] < bound + 8 * chunk_bytes, bounded
    assert unbounded["growth"] > 0.8 * n_t * chunk_bytes, unbounded


_RELEASE_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from concurrent.futures import ThreadPoolExecutor
    from iohub.ngff import open_ome_zarr
    from viscy_data.io import PositionArrays

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    path, n_t, bound = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    positions = [p for _, p in open_ome_zarr(path, mode="r").positions()]
    arrays = PositionArrays(positions, "0", bound)
    arrays.read([(0, (0, [0], slice(0, 1), slice(0, 8), slice(0, 8)))])  # open handles, start threads
    base = rss()

    def read(t0):
        arrays.read([(0, (t, [0], slice(0, 1), slice(0, 64), slice(0, 64))) for t in range(t0, t0 + 4)])

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            list(pool.map(read, range(0, n_t, 4)))
    print(json.dumps({"growth": rss() - base}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the RSS from /proc")
def test_evicted_chunks_are_given_back_to_the_system(tmp_path):
    """Concurrent batched reads of 128 MiB of distinct chunks through an 8 MiB cache leave the RSS at most the
    bound plus a few chunks above what it was: evicted chunks are not kept by the allocator's thread arenas."""
    n_t, chunk_bytes = 64, 1024 * 1024 * 2
    path = _distinct_frames_plate(tmp_path, n_t)
    bound = 8 * 2**20
    result = _run_script(_RELEASE_SCRIPT, path, n_t, bound)
    growth = json.loads(result.stdout.strip().splitlines()[-1])["growth"]
    assert growth < bound + 4 * chunk_bytes, growth
