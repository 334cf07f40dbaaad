"""Anchor/positive cell patches across experiments, with positives that follow lineage through divisions.

``MultiExperimentTripletDataset`` serves whole batches (``__getitems__``): for every anchor of
``MultiExperimentIndex.valid_anchors`` it draws a time offset tau (in frames, biased toward short
offsets) and picks an observation of the same lineage — the same cell, or a daughter after a
division — at ``t + tau``; anchors and positives are read in one batched read. NT-Xent uses the
other cells of the batch as negatives, so no negatives are read. The tau range in frames, the
lineage/time lookup, the positions and the patch origins are the index's: nothing is recomputed here.
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

from viscy_data._typing import INDEX_COLUMNS
from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.tau_sampling import tau_distribution
from viscy_data.io import DEFAULT_CACHE_POOL_BYTES, PositionArrays
from viscy_data.normalization import read_norm_meta
from viscy_data.optional import require
from viscy_data.patches import PatchReader

__all__ = ["MultiExperimentTripletDataset"]

_logger = logging.getLogger(__name__)


def generic_channel_names(n_channels: int) -> list[str]:
    """Model-side channel keys ``["ch_0", ..., "ch_{n-1}"]`` shared by every experiment."""
    return [f"ch_{i}" for i in range(n_channels)]


# columns of the cell index that locate a patch or repeat another column: not carried by the fit-mode index
_UNCARRIED_COLUMNS = ("position_idx", "lineage_id", "y_clamp", "x_clamp", "well_name", "fluorescence_channel")


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
        Range of anchor-positive time offsets in hours; in fit mode it must be the index's
        ``tau_range_hours`` (the index converts it to frames and selects the anchors with it).
    tau_decay_rate : float
        Exponential bias of tau toward the lower bound (0 = uniform).
    return_negative : bool | None
        Deprecated and ignored: NT-Xent uses in-batch negatives, so no negative patches are read (explicit
        negatives come from ``viscy_data.triplet.TripletDataModule(return_negative=True)``); setting it emits
        a DeprecationWarning.
    cache_pool_bytes : int
        Bound in bytes of the decoded-chunk cache shared by every reader of this process asking
        for the same bound (default 4 GiB; 0 turns it off), see ``viscy_data.io.shared_context``.
    seed : int
        Seed of the positive draws: a given batch of indices gets the same positives in every run,
        whatever the loader's thread order.

    Attributes
    ----------
    fov_norm_meta : dict[tuple[str, str], dict | None]
        Normalization metadata of every ``(experiment, fov_name)``, keyed by ``ch_i`` (None where the
        FOV has none).

    Raises
    ------
    ValueError
        In fit mode, if an experiment of the index has no valid anchor (see
        ``MultiExperimentIndex.experiments_without_anchors``) or ``tau_range_hours`` differs from the
        index's; in predict mode, if the index has no tracked cell.

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
        self._check_anchors()
        registry = index.registry
        tracks = index.tracks
        self.arrays = PositionArrays(index.positions, "0", cache_pool_bytes, owner="MultiExperimentTripletDataset")
        self._position = tracks["position_idx"].to_numpy(dtype=np.int64)
        self._t = tracks["t"].to_numpy(dtype=np.int64)
        self._anchor_rows = index.anchor_rows if fit else np.arange(len(tracks))
        experiments = [experiment for experiment, _ in index.position_keys]
        self._position_channels = [list(registry.channel_maps[e].values()) for e in experiments]
        self._patches = PatchReader(self.arrays, self._position_channels, index.z_range, index.yx_patch_size)
        names = generic_channel_names(registry.num_source_channels)
        self._position_norm_meta = [
            self._generic_norm_meta(position, registry.get_experiment(e).source_channel, names)
            for position, e in zip(index.positions, experiments, strict=True)
        ]
        self.fov_norm_meta = dict(zip(index.position_keys, self._position_norm_meta, strict=True))
        if fit:
            exp_codes, exp_names = pd.factorize(self.anchors["experiment"])
            self._anchor_experiment = exp_codes
            self._tau_frames = [index.tau_frames[e] for e in exp_names]

    def _check_anchors(self) -> None:
        index = self.index
        if not self.fit:
            if len(self.anchors) == 0:
                raise ValueError(f"MultiExperimentTripletDataset: the index has no tracked cells.\n{index.summary()}")
            return
        if self.tau_range_hours != index.tau_range_hours:
            raise ValueError(
                f"MultiExperimentTripletDataset: tau_range_hours={self.tau_range_hours} differs from the index's "
                f"tau_range_hours={index.tau_range_hours}, which selected the anchors; pass the same range."
            )
        empty = index.experiments_without_anchors()
        if empty:
            raise ValueError(
                f"Experiments {empty} have no valid anchors (no same-lineage observation within "
                f"tau_range={index.tau_range_hours} hours, or no tracks after well/FOV filters).\n{index.summary()}"
            )

    @staticmethod
    def _generic_norm_meta(position, source_channel: list[str], names: list[str]) -> dict | None:
        meta = read_norm_meta(position)
        if meta is None:
            return None
        return {name: meta[channel] for name, channel in zip(names, source_channel, strict=True) if channel in meta}

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

    def _sample_positives(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows of ``index.tracks`` of the same lineage ``tau`` frames after each anchor.

        The drawn tau is used when the lineage has an observation there (the cell itself or a
        daughter); otherwise the smallest non-zero tau in range that has one.
        """
        taus, tau_min, tau_max = self._draw_taus(anchors, rng)
        rows = self._anchor_rows[anchors]
        lineage = self.index.lineage
        keys, t = lineage.keys[rows], self._t[rows]
        positives = np.where(t + taus >= 0, lineage.pick(keys + taus, rng), -1)
        for tau in range(int(tau_min.min()), int(tau_max.max()) + 1):
            missing = np.flatnonzero((positives < 0) & (tau_min <= tau) & (tau <= tau_max) & (t + tau >= 0))
            if tau == 0 or len(missing) == 0:
                continue
            positives[missing] = lineage.pick(keys[missing] + tau, rng)
        if np.any(positives < 0):
            bad = self.anchors.iloc[anchors[positives < 0][:5]][["experiment", "global_track_id", "t"]]
            raise ValueError(
                f"No same-lineage positive within tau_range_hours={self.tau_range_hours} for anchors:\n{bad}"
            )
        return positives

    def _origins(self, rows: np.ndarray) -> np.ndarray:
        """``(4, N)`` position index, t, y0 and x0 of the patches of ``index.tracks`` rows ``rows``."""
        origins = self.index.patch_origins[rows]
        return np.stack([self._position[rows], self._t[rows], origins[:, 0], origins[:, 1]])

    def _norm_meta_of(self, rows: np.ndarray) -> list[dict | None]:
        """The normalization metadata of the FOV of each ``index.tracks`` row (None where it has none)."""
        return [self._position_norm_meta[position] for position in self._position[rows].tolist()]

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
        anchor_rows = self._anchor_rows[anchors]
        origins = self._origins(anchor_rows)
        if self.fit:
            positives = self._sample_positives(anchors, self._rng(anchors))
            origins = np.concatenate([origins, self._origins(positives)], axis=1)
        patches: Tensor = self._patches.read(*origins)
        batch: dict[str, Any] = {
            "anchor": patches[: len(anchors)],
            "anchor_norm_meta": self._norm_meta_of(anchor_rows),
        }
        if self.fit:
            batch["positive"] = patches[len(anchors) :]
            batch["positive_norm_meta"] = self._norm_meta_of(positives)
            batch["index"] = _batch_index(self.anchors, anchors)
        else:
            columns = [c for c in INDEX_COLUMNS if c in self.anchors.columns]
            batch["index"] = self.anchors.iloc[anchors][columns].to_dict("records")
        return batch
