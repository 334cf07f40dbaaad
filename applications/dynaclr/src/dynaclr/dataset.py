"""Anchor/positive cell patches across experiments, with positives that follow lineage through divisions.

``MultiExperimentTripletDataset`` serves whole batches (``__getitems__``): for every anchor of
``MultiExperimentIndex.valid_anchors`` it draws a time offset tau (in frames, biased toward short
offsets) and picks an observation of the same lineage — the same cell, or a daughter after a
division — at ``t + tau``; anchors and positives are read in one tensorstore call. NT-Xent uses the
other cells of the batch as negatives, so no negatives are read.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dynaclr.tau_sampling import tau_distribution
from viscy_data._reader import DEFAULT_CACHE_POOL_BYTES, PositionArrays
from viscy_data._typing import INDEX_COLUMNS
from viscy_data._utils import _read_norm_meta
from viscy_data.cell_index import MultiExperimentIndex
from viscy_data.optional import require

__all__ = ["MultiExperimentTripletDataset"]

_logger = logging.getLogger(__name__)


def generic_channel_names(n_channels: int) -> list[str]:
    """Model-side channel keys ``["ch_0", ..., "ch_{n-1}"]`` shared by every experiment."""
    return [f"ch_{i}" for i in range(n_channels)]


def _position_keys(frame: pd.DataFrame) -> pd.MultiIndex:
    """``(experiment, fov_name)`` of every row: FOV names repeat across plates, so both identify a position."""
    return pd.MultiIndex.from_arrays([frame["experiment"].astype(str), frame["fov_name"].astype(str)])


# columns of the cell index that locate a patch or repeat another column: not carried by the fit-mode index
_UNCARRIED_COLUMNS = ("position", "lineage_id", "y_clamp", "x_clamp", "well_name", "fluorescence_channel")


def _batch_index(anchors: pd.DataFrame, rows: np.ndarray) -> dict[str, Tensor | list]:
    """Collated index of the anchor ``rows``: every carried column (numbers as tensors), plus ``dataset_index``."""
    index: dict[str, Tensor | list] = {}
    for name in anchors.columns:
        if name in _UNCARRIED_COLUMNS:
            continue
        values = anchors[name].to_numpy()[rows]
        index[name] = torch.from_numpy(values) if values.dtype.kind in "biuf" else values.tolist()
    index["dataset_index"] = torch.from_numpy(rows)
    return index


class _PatchTable:
    """Per-row arrays of a tracks table needed to read patches: position, time, patch origin."""

    def __init__(self, frame: pd.DataFrame, positions: pd.MultiIndex, shapes: np.ndarray, yx_patch_size) -> None:
        self.position = positions.get_indexer(_position_keys(frame))
        self.t = frame["t"].to_numpy(dtype=np.int64)
        height, width = shapes[self.position, 3], shapes[self.position, 4]
        y0 = frame["y_clamp"].to_numpy(dtype=float).astype(np.int64) - yx_patch_size[0] // 2
        x0 = frame["x_clamp"].to_numpy(dtype=float).astype(np.int64) - yx_patch_size[1] // 2
        self.y0 = np.clip(y0, 0, height - yx_patch_size[0])
        self.x0 = np.clip(x0, 0, width - yx_patch_size[1])


class MultiExperimentTripletDataset(Dataset):
    """Batched anchor and positive patches drawn from a ``MultiExperimentIndex``.

    Parameters
    ----------
    index : MultiExperimentIndex
        Tracks, valid anchors, patch geometry and the experiment registry.
    fit : bool
        Return anchors and positives over ``index.valid_anchors`` (True), or anchors with their
        ``index`` records over every observation of ``index.tracks`` for prediction (False).
    tau_range_hours : tuple[float, float]
        Range of anchor-positive time offsets in hours (converted per experiment to frames).
    tau_decay_rate : float
        Exponential bias of tau toward the lower bound (0 = uniform).
    return_negative : bool | None
        Deprecated and ignored: NT-Xent uses in-batch negatives, so no negative patches are read (explicit
        negatives come from ``viscy_data.triplet.TripletDataModule(return_negative=True)``); setting it emits
        a DeprecationWarning.
    cache_pool_bytes : int
        Bound in bytes of the decoded-chunk cache shared by every reader of this process asking
        for the same bound (default 4 GiB; 0 turns it off), see ``viscy_data._reader.shared_context``.
    seed : int
        Seed of the positive draws: a given batch of indices gets the same positives in every run,
        whatever the loader's thread order.

    Attributes
    ----------
    fov_norm_meta : dict[tuple[str, str], dict | None]
        Normalization metadata of every ``(experiment, fov_name)``, keyed by ``ch_i`` (None where the
        FOV has none).

    Notes
    -----
    Normalization metadata is re-keyed from each plate's channel names to the generic ``ch_i``
    keys (source position ``i``), so transforms configured with ``keys: [ch_0]`` find their
    statistics whatever the experiment, and returned collated with ``(B,)`` leaves (or None).
    """

    def __init__(
        self,
        index: MultiExperimentIndex,
        fit: bool = True,
        tau_range_hours: tuple[float, float] = (0.5, 2.0),
        tau_decay_rate: float = 2.0,
        return_negative: bool | None = None,
        cache_pool_bytes: int = DEFAULT_CACHE_POOL_BYTES,
        seed: int = 0,
    ) -> None:
        super().__init__()
        require("tensorstore", "MultiExperimentTripletDataset", "triplet")
        self.index = index
        self.fit = fit
        self.tau_range_hours = tuple(tau_range_hours)
        self.tau_decay_rate = tau_decay_rate
        if return_negative is not None:
            warnings.warn(
                "MultiExperimentTripletDataset(return_negative=...) is deprecated and ignored: NT-Xent losses use "
                "in-batch negatives; use viscy_data.triplet.TripletDataModule(return_negative=True) for explicit ones.",
                DeprecationWarning,
                stacklevel=2,
            )
        self.cache_pool_bytes = cache_pool_bytes
        self.seed = seed
        self.anchors = index.valid_anchors if fit else index.tracks
        if len(self.anchors) == 0:
            what = "valid anchors" if fit else "tracked cells"
            raise ValueError(f"MultiExperimentTripletDataset: the index has no {what}.\n{index.summary()}")
        registry = index.registry
        tracks = index.tracks
        codes, uniques = pd.factorize(_position_keys(tracks))
        first_rows = np.unique(codes, return_index=True)[1]
        positions = tracks["position"].to_numpy()[first_rows].tolist()
        self.arrays = PositionArrays(positions, "0", cache_pool_bytes, owner="MultiExperimentTripletDataset")
        shapes = np.array(self.arrays.shapes)
        self._tracks_table = _PatchTable(tracks, uniques, shapes, index.yx_patch_size)
        self._anchor_table = _PatchTable(self.anchors, uniques, shapes, index.yx_patch_size)
        experiments = tracks["experiment"].to_numpy()[first_rows]
        self._position_channels = [list(registry.channel_maps[e].values()) for e in experiments]
        names = generic_channel_names(registry.num_source_channels)
        position_metas = [
            self._generic_norm_meta(position, registry.get_experiment(e).source_channel, names)
            for position, e in zip(positions, experiments, strict=True)
        ]
        fov_names = tracks["fov_name"].to_numpy()[first_rows]
        self.fov_norm_meta = {
            (str(e), str(fov)): meta for e, fov, meta in zip(experiments, fov_names, position_metas, strict=True)
        }
        self._position_norm_meta = position_metas
        if fit:
            self._build_lineage_lookup()

    @staticmethod
    def _generic_norm_meta(position, source_channel: list[str], names: list[str]) -> dict | None:
        meta = _read_norm_meta(position)
        if meta is None:
            return None
        return {name: meta[channel] for name, channel in zip(names, source_channel, strict=True) if channel in meta}

    def _build_lineage_lookup(self) -> None:
        """Sorted ``(lineage, t)`` keys of every observation, and each anchor's key and tau range."""
        tracks = self.index.tracks
        lineage_codes, lineages = pd.factorize(tracks["lineage_id"])
        t = tracks["t"].to_numpy(dtype=np.int64)
        experiments = list(dict.fromkeys(tracks["experiment"]))
        frames = {e: self.index.registry.tau_range_frames(e, self.tau_range_hours) for e in experiments}
        max_shift = max(abs(v) for pair in frames.values() for v in pair)
        self._stride = int(t.max()) + max_shift + 1
        keys = lineage_codes.astype(np.int64) * self._stride + t
        self._sorted_rows = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._sorted_rows]
        anchor_lineage = lineages.get_indexer(self.anchors["lineage_id"])
        self._anchor_t = self.anchors["t"].to_numpy(dtype=np.int64)
        self._anchor_keys = anchor_lineage.astype(np.int64) * self._stride + self._anchor_t
        exp_codes, exp_names = pd.factorize(self.anchors["experiment"])
        self._anchor_experiment = exp_codes
        self._tau_frames = [frames[e] for e in exp_names]

    def __len__(self) -> int:
        return len(self.anchors)

    def _rng(self, indices: np.ndarray) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(indices.astype(np.int64).tobytes())])

    def _draw_taus(self, anchors: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tau of every anchor, plus the anchors' ``(tau_min, tau_max)`` frame ranges."""
        taus = np.zeros(len(anchors), dtype=np.int64)
        tau_min, tau_max = np.zeros_like(taus), np.zeros_like(taus)
        experiment = self._anchor_experiment[anchors]
        for e in np.unique(experiment):
            members = experiment == e
            lo, hi = self._tau_frames[e]
            tau_min[members], tau_max[members] = lo, hi
            if lo == hi:
                taus[members] = lo
            else:
                candidates, weights = tau_distribution(lo, hi, self.tau_decay_rate)
                taus[members] = rng.choice(candidates, size=int(members.sum()), p=weights)
        return taus, tau_min, tau_max

    def _pick(self, keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly chosen observation row per key, or -1 where no observation has that key."""
        low = np.searchsorted(self._sorted_keys, keys, side="left")
        high = np.searchsorted(self._sorted_keys, keys, side="right")
        chosen = low + (rng.random(len(keys)) * (high - low)).astype(np.int64)
        return np.where(high > low, self._sorted_rows[np.minimum(chosen, len(self._sorted_rows) - 1)], -1)

    def _sample_positives(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows of ``index.tracks`` of the same lineage ``tau`` frames after each anchor.

        The drawn tau is used when the lineage has an observation there (the cell itself or a
        daughter); otherwise the smallest non-zero tau in range that has one.
        """
        taus, tau_min, tau_max = self._draw_taus(anchors, rng)
        keys, t = self._anchor_keys[anchors], self._anchor_t[anchors]
        positives = np.where(t + taus >= 0, self._pick(keys + taus, rng), -1)
        for tau in range(int(tau_min.min()), int(tau_max.max()) + 1):
            missing = np.flatnonzero((positives < 0) & (tau_min <= tau) & (tau <= tau_max) & (t + tau >= 0))
            if tau == 0 or len(missing) == 0:
                continue
            positives[missing] = self._pick(keys[missing] + tau, rng)
        if np.any(positives < 0):
            bad = self.anchors.iloc[anchors[positives < 0][:5]][["experiment", "global_track_id", "t"]]
            raise ValueError(
                f"No same-lineage positive within tau_range_hours={self.tau_range_hours} for anchors:\n{bad}"
            )
        return positives

    def _read(self, table: _PatchTable, rows: np.ndarray) -> list[tuple[int, tuple]]:
        height, width = self.index.yx_patch_size
        return [
            (
                int(p),
                (
                    int(t),
                    self._position_channels[p],
                    self.index.z_range,
                    slice(int(y), int(y) + height),
                    slice(int(x), int(x) + width),
                ),
            )
            for p, t, y, x in zip(table.position[rows], table.t[rows], table.y0[rows], table.x0[rows], strict=True)
        ]

    def _norm_meta_of(self, table: _PatchTable, rows: np.ndarray) -> list[dict | None]:
        """The normalization metadata of each sample's FOV (None where the FOV has none)."""
        return [self._position_norm_meta[position] for position in table.position[rows].tolist()]

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        """Read a whole batch.

        Parameters
        ----------
        indices : list[int]
            Row positions into the anchors (``valid_anchors`` in fit mode, ``tracks`` otherwise).

        Returns
        -------
        dict
            ``anchor`` ``(B, C, Z, Y, X)`` in the store dtype and ``anchor_norm_meta``; in fit mode
            ``positive``, ``positive_norm_meta`` and ``index``, a dict of the anchors' columns (the
            tracks tables' columns, extra ones such as ``infection_state`` included, the experiment,
            condition and ``global_track_id``; numbers as ``(B,)`` tensors) plus ``dataset_index``, the
            anchors' positions in the dataset; in predict mode ``index``, a list of B dicts of the
            ``INDEX_COLUMNS`` present. Each ``*_norm_meta`` is a list of B entries, the sample's
            FOV metadata keyed by generic channel name, or None where the FOV has none.
        """
        anchors = np.asarray(indices, dtype=np.int64)
        regions = self._read(self._anchor_table, anchors)
        if self.fit:
            positives = self._sample_positives(anchors, self._rng(anchors))
            regions += self._read(self._tracks_table, positives)
        patches: Tensor = torch.from_numpy(self.arrays.read(regions))
        batch: dict[str, Any] = {
            "anchor": patches[: len(anchors)],
            "anchor_norm_meta": self._norm_meta_of(self._anchor_table, anchors),
        }
        if self.fit:
            batch["positive"] = patches[len(anchors) :]
            batch["positive_norm_meta"] = self._norm_meta_of(self._tracks_table, positives)
            batch["index"] = _batch_index(self.anchors, anchors)
        else:
            columns = [c for c in INDEX_COLUMNS if c in self.anchors.columns]
            batch["index"] = self.anchors.iloc[anchors][columns].to_dict("records")
        return batch
