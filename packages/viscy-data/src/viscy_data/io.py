"""Batched, process-safe reading of OME-Zarr position arrays with tensorstore.

Readers that allow it fall back to zarr-python when tensorstore is not installed (the base install),
reading the regions of a batch one after another.

Handles are opened lazily in the process that reads and are keyed by its pid, and they are dropped
when the reader is pickled, so a reader can be shipped to DataLoader worker processes. tensorstore
aborts a process that forks after using it (and zarr-python's event loop is not fork-safe either), so
process-based loaders use :func:`worker_context`: workers fork from a clean ``forkserver`` that has
preloaded the data modules, which is safe and avoids re-importing torch in every worker. Thread-based
loaders share one set of handles.
"""

from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from viscy_data.optional import require

if TYPE_CHECKING:
    from iohub.ngff import Position

_WORKER_PRELOAD = ["viscy_data.hcs"]


def worker_context() -> multiprocessing.context.BaseContext:
    """Multiprocessing context for DataLoader workers and managers: a forkserver preloading viscy_data.

    A plain ``fork`` of a process that used tensorstore aborts; the forkserver process never reads data.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_WORKER_PRELOAD)
    return context


WORKER_CONTEXT = worker_context()
"""Context passed as ``multiprocessing_context`` to process-based DataLoaders (see :func:`worker_context`)."""

DEFAULT_CACHE_POOL_BYTES = 4 * 1024**3
"""Default bound of the decoded-chunk cache of the tensorstore-based data modules (4 GiB).

It holds a whole decoded plate of 8 FOVs x 30 timepoints x 2 channels of 2048 x 2048 uint16 frames.
"""

READ_WAVE_BYTES = 128 * 1024**2
"""Decoded bytes of the chunks one wave of a batched read touches (at least two chunks per CPU), see
:meth:`PositionArrays.read`."""

MMAP_THRESHOLD_BYTES = 1024**2
"""Heap buffers of at least this size (chunks) get their own ``mmap``, see :func:`mmap_large_buffers`."""

_M_MMAP_THRESHOLD = -3  # mallopt parameter of glibc's malloc.h

_CONTEXTS: dict[tuple[int, int], Any] = {}
_CONTEXTS_LOCK = threading.Lock()


def _cpu_count() -> int:
    """CPUs available to this job (``SLURM_CPUS_PER_TASK`` if set)."""
    return int(os.environ.get("SLURM_CPUS_PER_TASK") or os.cpu_count() or 4)


def store_path(node: Any) -> str:
    """Path of the store holding an iohub node (plate, well or position), for error messages."""
    store = node.zgroup.store
    return str(getattr(store, "root", store))


def fov_name(position: Position) -> str:
    """Name of a position without leading slash, e.g. ``"A/1/0"``."""
    return position.zgroup.name.strip("/")


def channel_indices(positions: Sequence[Position], channel_names: list[str]) -> list[int]:
    """Resolve channel names on every position, raising if one is missing or ordered differently."""
    indices = None
    for position in positions:
        missing = [name for name in channel_names if name not in position.channel_names]
        if missing:
            raise ValueError(
                f"Channels {missing} not found in FOV '{fov_name(position)}' of store '{store_path(position)}'; "
                f"available channels: {position.channel_names}."
            )
        fov_indices = [position.channel_names.index(name) for name in channel_names]
        if indices is not None and fov_indices != indices:
            raise ValueError(f"FOV '{fov_name(position)}' orders channels {channel_names} differently from others.")
        indices = fov_indices
    return indices or []


def mmap_large_buffers() -> None:
    """Have glibc serve heap buffers of :data:`MMAP_THRESHOLD_BYTES` or more with their own ``mmap``.

    tensorstore decodes chunks on its thread pool. glibc raises its mmap threshold to the size of the
    first such buffer freed, so later whole-frame chunks (8 MiB at 2048 x 2048 uint16) are carved out
    of per-thread arenas, which keep the memory when the chunk is freed or evicted: on the realistic
    benchmark RSS grew by up to 2.7 GiB more than the cache held, all of it free memory of the
    arenas. With a fixed threshold a freed chunk goes back to the system at once. Does nothing
    outside glibc, or when the user set ``MALLOC_MMAP_THRESHOLD_``.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    libc = ctypes.CDLL(None)
    if hasattr(libc, "gnu_get_libc_version"):
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def shared_context(cache_pool_bytes: int) -> Any:
    """The tensorstore context of this process for a decoded-chunk cache of ``cache_pool_bytes``.

    Every reader of the process asking for the same bound gets the same context, so the train and
    validation datasets of a data module (and all loader threads) share one cache: a chunk touched by
    several cells, or by an anchor and its positive, is decoded once while it stays in the cache.
    tensorstore's ``cache_pool`` is thread-safe and evicts the least recently used chunks beyond
    ``total_bytes_limit``; with 0, chunks are still decoded once per batched read, but not kept.

    Parameters
    ----------
    cache_pool_bytes : int
        Bound of the cache in bytes, ``>= 0``.
    """
    import tensorstore as ts

    key = (os.getpid(), int(cache_pool_bytes))
    with _CONTEXTS_LOCK:
        if key not in _CONTEXTS:
            mmap_large_buffers()
            _CONTEXTS[key] = ts.Context(
                {
                    "data_copy_concurrency": {"limit": _cpu_count()},
                    "cache_pool": {"total_bytes_limit": int(cache_pool_bytes)},
                }
            )
        return _CONTEXTS[key]


class PositionArrays:
    """Lazily opened tensorstore handles of array ``array_key`` of each position.

    Parameters
    ----------
    positions : Sequence[Position]
        iohub positions (of one or several plates).
    array_key : str
        Multiscale level to read, ``"0"`` for full resolution.
    cache_pool_bytes : int
        Bound in bytes of the decoded-chunk cache (0 disables caching across reads), see
        :func:`shared_context`.
    owner : str
        Class using the reader, named in the ImportError if tensorstore is missing.
    extra : str
        Extra of ``viscy-data`` providing tensorstore for that class.
    zarr_fallback : bool
        Read with zarr-python when tensorstore is not installed, instead of raising an ImportError.
    """

    def __init__(
        self,
        positions: Sequence[Position],
        array_key: str = "0",
        cache_pool_bytes: int = 0,
        owner: str = "PositionArrays",
        extra: str = "triplet",
        zarr_fallback: bool = False,
    ) -> None:
        if cache_pool_bytes < 0:
            raise ValueError(f"cache_pool_bytes must be >= 0 (0 turns the chunk cache off), got {cache_pool_bytes}.")
        self.uses_tensorstore = True
        try:
            require("tensorstore", owner, extra)
        except ImportError:
            if not zarr_fallback:
                raise
            self.uses_tensorstore = False
        self._specs: list[dict[str, Any]] = []
        self._paths: list[str] = []
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[np.dtype] = []
        self.array_names: list[str] = []
        for position in positions:
            if array_key not in position.array_keys():
                raise KeyError(
                    f"Position '{fov_name(position)}' of store '{store_path(position)}' has no array "
                    f"'{array_key}'; arrays: {list(position.array_keys())}."
                )
            array = position[array_key]
            driver = "zarr2" if array.metadata.zarr_format == 2 else "zarr3"
            path = Path(store_path(position)) / array.path.strip("/")
            self._specs.append({"driver": driver, "kvstore": {"driver": "file", "path": str(path)}})
            self._paths.append(str(path))
            self.shapes.append(tuple(array.shape))
            self.dtypes.append(np.dtype(array.dtype))
            self.array_names.append(array.name)
        self._cache_pool_bytes = cache_pool_bytes
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._context = None
        self._handles: dict[int, Any] = {}
        self._read_chunks: dict[int, tuple[tuple[int, ...], int]] = {}  # read-chunk shape and decoded bytes
        self._backwards = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_lock=None, _pid=None, _context=None, _handles={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._specs)

    def handle(self, index: int) -> Any:
        """Return the tensorstore (or zarr) array of position ``index``, opening it in this process if needed."""
        pid = os.getpid()
        if self._pid == pid and index in self._handles:
            return self._handles[index]
        with self._lock:
            if self._pid != pid:
                self._context = self._new_context()
                self._handles = {}
                self._pid = pid
            if index not in self._handles:
                self._handles[index] = self._open(index)
            return self._handles[index]

    def _new_context(self) -> Any:
        return shared_context(self._cache_pool_bytes) if self.uses_tensorstore else None

    def _open(self, index: int) -> Any:
        if not self.uses_tensorstore:
            import zarr

            return zarr.open_array(self._paths[index], mode="r")
        import tensorstore as ts

        return ts.open(self._specs[index], context=self._context, read=True, recheck_cached_data="open").result()

    def read(self, regions: Sequence[tuple[int, tuple]]) -> np.ndarray:
        """Read equally shaped regions in batched calls, a bounded number of chunks at a time.

        The regions are read in waves of tensorstore calls, each touching chunks of about
        :data:`READ_WAVE_BYTES` decoded (one call when they all fit), with the next wave in flight
        while one is copied out. This bounds the memory of the chunks being fetched and decoded to
        about two waves, where one call for a whole batch of 2048 x 2048 frames would hold a GiB or
        more. Waves follow the order of the chunks, ``(position, t, c, z, y, x)``, alternately forwards
        and backwards from one read to the next: the frames last read, still in the cache, are read
        first (the same order every time would evict each frame just before it is needed again).

        Parameters
        ----------
        regions : Sequence[tuple[int, tuple]]
            ``(position index, index expression)`` pairs; an index expression is applied with
            orthogonal indexing (``oindex``) to the ``(T, C, Z, Y, X)`` array.

        Returns
        -------
        np.ndarray
            The regions stacked along a new first axis, in the store dtype.
        """
        if not self.uses_tensorstore:
            return np.stack([self.handle(index).oindex[expression] for index, expression in regions])
        import tensorstore as ts

        waves = self._waves(regions)
        if len(waves) == 1:
            return ts.stack([self._view(*region) for region in regions]).read().result()
        output = None
        in_flight: deque = deque()
        for position, wave in enumerate(waves):
            in_flight.append((wave, ts.stack([self._view(*regions[i]) for i in wave]).read()))
            while in_flight and (len(in_flight) == 2 or position == len(waves) - 1):
                rows, future = in_flight.popleft()
                values = future.result()
                if output is None:
                    output = np.empty((len(regions), *values.shape[1:]), dtype=values.dtype)
                output[rows] = values
        return output

    def _view(self, index: int, expression: tuple) -> Any:
        return self.handle(index).oindex[expression].translate_to[0]

    def _waves(self, regions: Sequence[tuple[int, tuple]]) -> list[list[int]]:
        """Region indices grouped in waves of at most :data:`READ_WAVE_BYTES` of distinct chunks."""
        chunks = [self._chunks_of(index, expression) for index, expression in regions]
        order = sorted(range(len(regions)), key=lambda i: chunks[i][0], reverse=self._backwards)
        self._backwards = not self._backwards
        min_chunks_per_wave = 2 * _cpu_count()
        waves: list[list[int]] = [[]]
        in_wave: set[tuple[int, ...]] = set()
        wave_bytes = 0
        for i in order:
            new = set(chunks[i]) - in_wave
            chunk_bytes = self._read_chunks[regions[i][0]][1]
            budget = max(READ_WAVE_BYTES, min_chunks_per_wave * chunk_bytes)
            if waves[-1] and wave_bytes + len(new) * chunk_bytes > budget:
                waves.append([])
                in_wave, wave_bytes = set(), 0
                new = set(chunks[i])
            waves[-1].append(i)
            in_wave |= new
            wave_bytes += len(new) * chunk_bytes
        return waves

    def _chunks_of(self, index: int, expression: tuple) -> list[tuple[int, ...]]:
        """Grid coordinates ``(index, ...)`` of the chunks (tensorstore read chunks) a region touches, sorted."""
        if index not in self._read_chunks:
            chunk_shape = tuple(int(size) for size in self.handle(index).chunk_layout.read_chunk.shape)
            self._read_chunks[index] = (chunk_shape, int(np.prod(chunk_shape)) * self.dtypes[index].itemsize)
        shape, chunk_shape = self.shapes[index], self._read_chunks[index][0]
        expression = tuple(expression) + (slice(None),) * (len(shape) - len(expression))
        per_axis = []
        for size, step, entry in zip(shape, chunk_shape, expression, strict=True):
            if isinstance(entry, slice):
                start, stop, _ = entry.indices(size)
                per_axis.append(range(start // step, (stop - 1) // step + 1) if stop > start else range(0))
            else:
                per_axis.append(sorted({int(i) % size // step for i in np.atleast_1d(entry)}))
        return [(index, *coordinates) for coordinates in itertools.product(*per_axis)] or [(index,)]
