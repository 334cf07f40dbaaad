"""Batch sampler composing experiment, condition and time axes for contrastive training.

``FlexibleBatchSampler`` yields lists of row positions into a ``valid_anchors`` table. Every batch is
planned as a grid of *cells* — condition × {own experiment, leaked from other experiments} ×
{focal time window, rest of the time course} — whose sizes follow ``condition_ratio``, ``leaky`` and
``temporal_global_fraction``, so the axes compose instead of overriding each other.

Each cell draws from *leaves*: the anchors sharing one (experiment, condition, hours post infection)
value. A leaf is consumed without replacement through a shuffled cycle, so no anchor repeats in a
batch unless the batch asks more of a pool than it holds, and over an epoch every anchor of a pool is
drawn about equally often. Building a batch touches only the leaves of its cells, never all anchors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
from torch.utils.data import Sampler

__all__ = ["FlexibleBatchSampler"]

_logger = logging.getLogger(__name__)

_HPI_TOLERANCE = 1e-9


def _apportion(total: int, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` into integer counts whose expected values are ``total * fractions`` exactly.

    Systematic rounding: each count is the floor or the ceiling of its share, and they sum to
    ``total``; shares that are whole numbers are reproduced exactly.
    """
    cumulative = np.cumsum(fractions) * total
    cumulative[-1] = total
    edges = np.floor(np.concatenate(([0.0], cumulative)) + rng.random())
    return np.diff(edges).astype(np.int64)


class _CellPlan(NamedTuple):
    """The leaves of every cell of a batch layout, concatenated cell after cell."""

    leaves: np.ndarray
    sizes: np.ndarray
    cell_of_leaf: np.ndarray
    cell_leaf_range: np.ndarray
    leaf_end: np.ndarray
    totals: np.ndarray
    cell_start: np.ndarray
    cell_end: np.ndarray
    overlapping: bool
    unique_leaves: np.ndarray
    inverse: np.ndarray

    @classmethod
    def from_cells(cls, cells: list[np.ndarray], leaf_size: np.ndarray) -> _CellPlan:
        lengths = np.array([len(c) for c in cells], dtype=np.int64)
        leaves = np.concatenate(cells).astype(np.int64)
        sizes = leaf_size[leaves]
        cell_of_leaf = np.repeat(np.arange(len(cells)), lengths)
        leaf_bounds = np.concatenate(([0], np.cumsum(lengths)))
        totals = np.bincount(cell_of_leaf, weights=sizes, minlength=len(cells)).astype(np.int64)
        cell_end = np.cumsum(totals)
        unique_leaves, inverse = np.unique(leaves, return_inverse=True)
        return cls(
            leaves=leaves,
            sizes=sizes,
            cell_of_leaf=cell_of_leaf,
            cell_leaf_range=np.stack([leaf_bounds[:-1], leaf_bounds[1:]], axis=1),
            leaf_end=np.cumsum(sizes),
            totals=totals,
            cell_start=cell_end - totals,
            cell_end=cell_end,
            overlapping=len(unique_leaves) < len(leaves),
            unique_leaves=unique_leaves,
            inverse=inverse,
        )


class FlexibleBatchSampler(Sampler[list[int]]):
    """Batch sampler over ``valid_anchors`` that balances experiments, conditions and time.

    Parameters
    ----------
    valid_anchors : pd.DataFrame
        Anchor table; yielded indices are row positions (``iloc``) into it.
    batch_size : int
        Indices per batch.
    experiment_aware : bool
        Draw each batch from one experiment (needs an ``experiment`` column).
    leaky : float
        Fraction of each batch drawn from the other experiments (``0 <= leaky < 1``); only with
        ``experiment_aware``.
    experiment_weights : dict[str, float] | None
        Relative probability of choosing each experiment (missing names get 0). Default: proportional
        to the experiment's number of anchors.
    condition_balanced : bool
        Split every part of the batch across the experiment's conditions (needs a ``condition``
        column).
    condition_ratio : dict[str, float] | None
        Relative share of each condition (missing names get an equal share). Default: equal shares.
    temporal_enrichment : bool
        Concentrate each batch around a focal ``hours_post_infection`` drawn uniformly from the
        experiment's time points (needs an ``hours_post_infection`` column).
    temporal_window_hours : float
        Half-width of the focal window, in hours (inclusive).
    temporal_global_fraction : float
        Fraction of each batch drawn from outside the focal window.
    num_replicas : int
        Number of distributed processes; each gets the same number of distinct batches.
    rank : int
        This process's rank, ``0 <= rank < num_replicas``.
    seed : int
        Base seed; batches are deterministic for a given ``(seed, epoch)``.
    drop_last : bool
        Only yield full batches without forced repeats: experiments with fewer anchors than
        ``batch_size`` are never chosen, and the epoch has ``N // batch_size`` batches. When False
        such experiments are sampled with repeats and the epoch has ``ceil(N / batch_size)`` batches.
    group_by_fov_fraction : float
        Fraction of each batch (``0 <= f <= 1``, default 0 = off) replaced by anchors of a few image
        frames, i.e. ``(experiment, fov_name, t)`` values (needs ``fov_name`` and ``t`` columns). The
        frames are those of ``group_by_fov_frames`` anchors the batch already drew, so the batch keeps
        its experiment; the rest of the batch is drawn as without grouping. Cells of one frame share
        the chunks they are read from, so a reader decodes fewer chunks per batch and its chunk cache
        is hit more often.
    group_by_fov_frames : int
        Number of frames the grouped part is drawn from.

    Notes
    -----
    With ``group_by_fov_fraction > 0``, the in-batch negatives of a contrastive loss include more
    cells of the same FOV, time point, well and condition as the anchor: harder negatives that share
    its imaging conditions (illumination, focus, density) rather than differ by them, and fewer
    distinct conditions and time points per batch. Neighbouring cells of one frame can overlap in
    their patches. Batches with the default 0 are exactly those of the sampler without the option.

    Lightning does not call ``set_epoch`` on a custom batch sampler, so each new iteration advances the
    epoch by one unless ``set_epoch`` was called since the previous iteration began.
    """

    def __init__(
        self,
        valid_anchors: pd.DataFrame,
        batch_size: int = 128,
        experiment_aware: bool = True,
        leaky: float = 0.0,
        experiment_weights: dict[str, float] | None = None,
        condition_balanced: bool = True,
        condition_ratio: dict[str, float] | None = None,
        temporal_enrichment: bool = False,
        temporal_window_hours: float = 2.0,
        temporal_global_fraction: float = 0.3,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        drop_last: bool = True,
        group_by_fov_fraction: float = 0.0,
        group_by_fov_frames: int = 4,
    ) -> None:
        self.valid_anchors = valid_anchors
        self.batch_size = batch_size
        self.experiment_aware = experiment_aware
        self.leaky = leaky
        self.experiment_weights = experiment_weights
        self.condition_balanced = condition_balanced
        self.condition_ratio = condition_ratio
        self.temporal_enrichment = temporal_enrichment
        self.temporal_window_hours = temporal_window_hours
        self.temporal_global_fraction = temporal_global_fraction
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.drop_last = drop_last
        self.group_by_fov_fraction = group_by_fov_fraction
        self.group_by_fov_frames = group_by_fov_frames
        self.epoch = 0
        self._epoch_was_set = False
        self._iterated = False
        self._validate()
        self._build_leaves()
        self._build_experiment_plans()
        self._build_frames()
        self._cell_cache: dict[tuple[int, int], _CellPlan] = {}
        if len(self) == 0:
            raise ValueError(
                f"FlexibleBatchSampler yields no batches: {self._num_eligible} eligible anchors, "
                f"batch_size={batch_size}, num_replicas={num_replicas}, drop_last={drop_last}."
            )

    # ------------------------------------------------------------------ setup
    def _validate(self) -> None:
        columns = list(self.valid_anchors.columns)
        if len(self.valid_anchors) == 0:
            raise ValueError("valid_anchors is empty: there is nothing to sample batches from.")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        required = [
            (self.experiment_aware, "experiment_aware", "experiment"),
            (self.condition_balanced, "condition_balanced", "condition"),
            (self.temporal_enrichment, "temporal_enrichment", "hours_post_infection"),
        ]
        grouped = self.group_by_fov_fraction > 0
        required += [(grouped, "group_by_fov_fraction > 0", column) for column in ("fov_name", "t")]
        for enabled, flag, column in required:
            if enabled and column not in columns:
                raise ValueError(f"{flag}=True requires '{column}' column in valid_anchors, but columns are: {columns}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size}")
        if not 0.0 <= self.leaky < 1.0:
            raise ValueError(f"leaky must be in [0, 1), got {self.leaky}")
        if not 0.0 <= self.temporal_global_fraction <= 1.0:
            raise ValueError(f"temporal_global_fraction must be in [0, 1], got {self.temporal_global_fraction}")
        if not 0.0 <= self.group_by_fov_fraction <= 1.0:
            raise ValueError(f"group_by_fov_fraction must be in [0, 1], got {self.group_by_fov_fraction}")
        if self.group_by_fov_frames < 1:
            raise ValueError(f"group_by_fov_frames must be a positive integer, got {self.group_by_fov_frames}")
        if self.temporal_window_hours < 0:
            raise ValueError(f"temporal_window_hours must be >= 0, got {self.temporal_window_hours}")
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {self.num_replicas=}, {self.rank=}"
            )
        if self.temporal_enrichment and self.valid_anchors["hours_post_infection"].isna().any():
            raise ValueError("temporal_enrichment=True requires hours_post_infection without NaN values")
        for name, weights in (
            ("experiment_weights", self.experiment_weights),
            ("condition_ratio", self.condition_ratio),
        ):
            if weights and any(w < 0 for w in weights.values()):
                raise ValueError(f"{name} must be non-negative, got {weights}")

    def _codes(self, enabled: bool, column: str) -> tuple[np.ndarray, list[str]]:
        if not enabled:
            return np.zeros(len(self.valid_anchors), dtype=np.int64), ["all"]
        codes, uniques = pd.factorize(self.valid_anchors[column].astype(str), sort=True)
        return codes.astype(np.int64), [str(u) for u in uniques]

    def _build_leaves(self) -> None:
        """Group anchors into leaves sorted by (experiment, condition, hpi); leaves are contiguous."""
        exp_codes, self._experiment_names = self._codes(self.experiment_aware, "experiment")
        cond_codes, self._condition_names = self._codes(self.condition_balanced, "condition")
        if self.temporal_enrichment:
            hpi = self.valid_anchors["hours_post_infection"].to_numpy(dtype=float)
            hpi_values, hpi_codes = np.unique(hpi, return_inverse=True)
        else:
            hpi_values, hpi_codes = np.zeros(1), np.zeros(len(self.valid_anchors), dtype=np.int64)
        n_cond, n_hpi = len(self._condition_names), len(hpi_values)
        key = (exp_codes * n_cond + cond_codes) * n_hpi + hpi_codes.astype(np.int64)
        self._sorted_anchors = np.argsort(key, kind="stable")
        sorted_key = key[self._sorted_anchors]
        starts = np.flatnonzero(np.diff(sorted_key, prepend=-1))
        leaf_key = sorted_key[starts]
        self._leaf_start = starts
        self._leaf_size = np.diff(np.append(starts, len(key)))
        self._leaf_of_sorted = np.repeat(np.arange(len(starts)), self._leaf_size)
        self._leaf_pair = leaf_key // n_hpi
        self._leaf_hpi = hpi_values[leaf_key % n_hpi]
        self._leaf_exp = self._leaf_pair // n_cond
        pairs = np.arange(len(self._experiment_names) * n_cond)
        lo = np.searchsorted(self._leaf_pair, pairs, side="left")
        hi = np.searchsorted(self._leaf_pair, pairs, side="right")
        self._pair_range = np.stack([lo, hi], axis=1).reshape(len(self._experiment_names), n_cond, 2)
        self._exp_sizes = np.bincount(exp_codes, minlength=len(self._experiment_names))

    def _build_frames(self) -> None:
        """Anchors grouped by image frame ``(experiment, fov_name, t)``, for ``group_by_fov_fraction``."""
        if self.group_by_fov_fraction == 0:
            return
        columns = [c for c in ("experiment", "fov_name", "t") if c in self.valid_anchors.columns]
        codes, _ = pd.factorize(pd.MultiIndex.from_frame(self.valid_anchors[columns]))
        self._frame_of = codes.astype(np.int64)
        self._frame_order = np.argsort(self._frame_of, kind="stable")
        self._frame_size = np.bincount(self._frame_of)
        self._frame_start = np.cumsum(self._frame_size) - self._frame_size

    def _build_experiment_plans(self) -> None:
        """Eligible experiments, their probabilities, and each one's condition × part fractions."""
        n_exp = len(self._experiment_names)
        sizes = self._exp_sizes
        too_small = sizes < self.batch_size
        for e in np.flatnonzero(too_small):
            action = "it is never chosen (drop_last=True)" if self.drop_last else "its batches repeat anchors"
            _logger.warning(
                "Experiment '%s' has %d samples, fewer than batch_size=%d; %s.",
                self._experiment_names[e],
                sizes[e],
                self.batch_size,
                action,
            )
        eligible = ~too_small if self.drop_last else sizes > 0
        if not eligible.any():
            raise ValueError(
                f"batch_size={self.batch_size} is larger than every anchor pool "
                f"({dict(zip(self._experiment_names, sizes.tolist(), strict=True))}) with drop_last=True; "
                "lower batch_size or set drop_last=False."
            )
        if self.experiment_aware and self.experiment_weights is not None:
            weights = np.array([self.experiment_weights.get(n, 0.0) for n in self._experiment_names], dtype=float)
        else:
            weights = sizes.astype(float)
        weights = np.where(eligible, weights, 0.0)
        if weights.sum() <= 0:
            raise ValueError(
                f"experiment_weights {self.experiment_weights} give zero total weight to the eligible "
                f"experiments {[n for n, ok in zip(self._experiment_names, eligible, strict=True) if ok]}"
            )
        self._exp_probs = weights / weights.sum()
        self._exp_cumulative = np.cumsum(self._exp_probs)
        self._num_eligible = int(sizes[eligible].sum())
        leak = self.leaky if self.experiment_aware else 0.0
        if leak > 0 and n_exp < 2:
            _logger.warning("leaky=%s has no other experiment to leak from; batches are single-experiment.", leak)
            leak = 0.0
        glob = self.temporal_global_fraction if self.temporal_enrichment else 0.0
        parts = np.array([(1 - leak) * (1 - glob), (1 - leak) * glob, leak * (1 - glob), leak * glob])
        self._exp_conditions: list[np.ndarray] = []
        self._exp_fractions: list[np.ndarray] = []
        for e in range(n_exp):
            conds = np.flatnonzero(self._pair_range[e, :, 1] > self._pair_range[e, :, 0])
            ratios = self._condition_shares(e, conds)
            self._exp_conditions.append(conds)
            self._exp_fractions.append(np.outer(ratios, parts).ravel())
        self._exp_hpi_values = [np.unique(self._leaf_hpi[self._leaf_exp == e]) for e in range(n_exp)]

    def _condition_shares(self, e: int, conds: np.ndarray) -> np.ndarray:
        if len(conds) == 0:
            return np.zeros(0)
        names = [self._condition_names[c] for c in conds]
        if self.condition_balanced and self.condition_ratio is not None:
            shares = np.array([self.condition_ratio.get(n, 1.0 / len(conds)) for n in names], dtype=float)
        else:
            shares = np.ones(len(conds))
        if shares.sum() <= 0:
            raise ValueError(
                f"condition_ratio {self.condition_ratio} gives zero total weight to the conditions {names} "
                f"of experiment '{self._experiment_names[e]}'"
            )
        return shares / shares.sum()

    # ------------------------------------------------------------------ cells
    def _leaf_ids(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        return np.concatenate([np.arange(lo, hi) for lo, hi in ranges]) if ranges else np.zeros(0, dtype=np.int64)

    def _window(self, e: int, c: int, focal: float | None) -> tuple[list, list, tuple[int, int]]:
        """Leaf ranges of pair (e, c) inside and outside the focal window, and the whole pair."""
        lo, hi = self._pair_range[e, c]
        if focal is None or hi == lo:
            return [(lo, hi)] if hi > lo else [], [], (lo, hi)
        hpi = self._leaf_hpi[lo:hi]
        a = lo + np.searchsorted(hpi, focal - self.temporal_window_hours - _HPI_TOLERANCE, side="left")
        b = lo + np.searchsorted(hpi, focal + self.temporal_window_hours + _HPI_TOLERANCE, side="right")
        inside = [(a, b)] if b > a else []
        outside = [(x, y) for x, y in ((lo, a), (b, hi)) if y > x]
        return inside, outside, (lo, hi)

    def _cells(self, e: int, focal_idx: int) -> _CellPlan:
        """Leaves of every (condition, part) cell of a batch from experiment ``e`` (memoised)."""
        key = (e, focal_idx)
        if key in self._cell_cache:
            return self._cell_cache[key]
        focal = self._exp_hpi_values[e][focal_idx] if self.temporal_enrichment else None
        others = [o for o in range(len(self._experiment_names)) if o != e]
        cells = []
        for c in self._exp_conditions[e]:
            inside, outside, whole = self._window(e, c, focal)
            own_all = [whole]
            leak_in, leak_out, leak_all = [], [], []
            for o in others:
                o_in, o_out, o_whole = self._window(o, c, focal)
                leak_in += o_in
                leak_out += o_out
                leak_all += [o_whole] if o_whole[1] > o_whole[0] else []
            if not leak_all:  # no other experiment has this condition: leak from any of theirs
                leak_all = [tuple(self._pair_range[o, k]) for o in others for k in range(len(self._condition_names))]
                leak_all = [r for r in leak_all if r[1] > r[0]]
            for ranges, fallback in ((inside, own_all), (outside, own_all), (leak_in, leak_all), (leak_out, leak_all)):
                cells.append(self._leaf_ids(ranges or fallback))
        plan = _CellPlan.from_cells(cells, self._leaf_size)
        self._cell_cache[key] = plan
        return plan

    # ------------------------------------------------------------------ drawing
    def _leaf_counts(self, plan: _CellPlan, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per-leaf draws of each cell, distributed like uniform sampling without replacement.

        A cell asking for more than its pool takes whole copies of it first; the remainder is a
        uniform subset of distinct positions of the cell's concatenated leaves.
        """
        totals = plan.totals
        if np.any((counts > 0) & (totals == 0)):
            raise RuntimeError("a batch cell has no anchors to draw from")
        full, rest = np.divmod(counts, np.maximum(totals, 1))
        leaf_counts = plan.sizes * full[plan.cell_of_leaf]
        dense = (rest > 0) & (2 * rest > totals)
        for cell in np.flatnonzero(dense):
            lo, hi = plan.cell_leaf_range[cell]
            leaf_counts[lo:hi] += rng.multivariate_hypergeometric(plan.sizes[lo:hi], int(rest[cell]))
        wanted = np.where(dense, 0, rest)
        n_wanted = int(wanted.sum())
        positions = np.zeros(0, dtype=np.int64)
        missing = wanted
        while positions.size < n_wanted:
            cell_of_draw = np.repeat(np.arange(len(totals)), missing)
            offsets = (rng.random(cell_of_draw.size) * totals[cell_of_draw]).astype(np.int64)
            positions = np.sort(np.concatenate([positions, plan.cell_start[cell_of_draw] + offsets]))
            positions = positions[np.diff(positions, prepend=-1) != 0]
            found = np.bincount(np.searchsorted(plan.cell_end, positions, side="right"), minlength=len(totals))
            missing = wanted - found
        leaf_of_draw = np.searchsorted(plan.leaf_end, positions, side="right")
        return leaf_counts + np.bincount(leaf_of_draw, minlength=len(plan.leaves))

    def _take(self, leaves: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Next ``counts`` anchors of each leaf's shuffled cycle (reshuffling leaves that run out).

        A leaf asked for more than it holds gives every anchor ``count // size`` times first.
        """
        sizes = self._leaf_size[leaves]
        copies, counts = np.divmod(counts, sizes)
        out = [np.tile(self._segment(leaf), n) for leaf, n in zip(leaves[copies > 0], copies[copies > 0], strict=True)]
        leaves, counts = leaves[counts > 0], counts[counts > 0]
        cursor = self._cursor[leaves]
        fits = cursor + counts <= self._leaf_size[leaves]
        fast_leaves, fast_counts = leaves[fits], counts[fits]
        block_offset = np.cumsum(fast_counts) - fast_counts
        first = np.repeat(self._leaf_start[fast_leaves] + cursor[fits] - block_offset, fast_counts)
        out.append(self._perm[first + np.arange(first.size)])
        self._cursor[fast_leaves] += fast_counts
        for leaf, count in zip(leaves[~fits], counts[~fits], strict=True):
            out.append(self._take_wrapping(int(leaf), int(count), rng))
        return np.concatenate(out)

    def _segment(self, leaf: int) -> np.ndarray:
        start = self._leaf_start[leaf]
        return self._perm[start : start + self._leaf_size[leaf]]

    def _take_wrapping(self, leaf: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """Finish the leaf's cycle, then start a new one that puts this batch's anchors last."""
        segment = self._segment(leaf)
        leftover = segment[self._cursor[leaf] :].copy()
        need = count - leftover.size
        fresh = rng.permutation(segment)
        repeated = np.isin(fresh, leftover)
        segment[:] = np.concatenate([fresh[~repeated], fresh[repeated]])
        self._cursor[leaf] = need
        return np.concatenate([leftover, segment[:need]])

    def _build_one_batch(self, rng: np.random.Generator) -> list[int]:
        e = 0
        if len(self._exp_probs) > 1:
            e = min(int(np.searchsorted(self._exp_cumulative, rng.random(), side="right")), len(self._exp_probs) - 1)
        focal_idx = int(rng.integers(len(self._exp_hpi_values[e]))) if self.temporal_enrichment else 0
        plan = self._cells(e, focal_idx)
        leaf_counts = self._leaf_counts(plan, _apportion(self.batch_size, self._exp_fractions[e], rng), rng)
        leaves = plan.leaves
        if plan.overlapping:  # fallback cells share leaves
            leaf_counts = np.bincount(plan.inverse, weights=leaf_counts).astype(np.int64)
            leaves = plan.unique_leaves
        drawn = leaf_counts > 0
        return self._take(leaves[drawn], leaf_counts[drawn], rng).tolist()

    def _group_by_frame(self, batch: list[int], rng: np.random.Generator) -> list[int]:
        """Replace ``group_by_fov_fraction`` of the batch by anchors of the frames of a few of its anchors."""
        batch = np.asarray(batch, dtype=np.int64)
        n_grouped = int(round(self.group_by_fov_fraction * len(batch)))
        if n_grouped == 0:
            return batch.tolist()
        order = rng.permutation(len(batch))
        kept, replaced = batch[order[: len(batch) - n_grouped]], batch[order[len(batch) - n_grouped :]]
        pool = kept if len(kept) else replaced
        seeds = rng.choice(pool, size=min(self.group_by_fov_frames, len(pool)), replace=False)
        frames = np.unique(self._frame_of[seeds])
        members = np.concatenate(
            [
                self._frame_order[s : s + n]
                for s, n in zip(self._frame_start[frames], self._frame_size[frames], strict=True)
            ]
        )
        chosen = rng.permutation(members[~np.isin(members, kept)])[:n_grouped]
        refill = replaced[~np.isin(replaced, chosen)][: n_grouped - len(chosen)]  # frames hold too few anchors
        return np.concatenate([kept, chosen, refill]).tolist()

    # ------------------------------------------------------------------ protocol
    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used to seed the next iteration."""
        self.epoch = epoch
        self._epoch_was_set = True

    def _batches_per_epoch(self) -> int:
        n = self._num_eligible
        if self.drop_last:
            return (n // self.batch_size) // self.num_replicas
        return math.ceil(math.ceil(n / self.batch_size) / self.num_replicas)

    def __len__(self) -> int:
        return self._batches_per_epoch()

    def _reset_cycles(self, rng: np.random.Generator) -> None:
        shuffle = np.argsort(self._leaf_of_sorted + rng.random(len(self._leaf_of_sorted)), kind="stable")
        self._perm = self._sorted_anchors[shuffle]
        self._cursor = np.zeros(len(self._leaf_size), dtype=np.int64)

    def __iter__(self) -> Iterator[list[int]]:
        if self._iterated and not self._epoch_was_set:
            self.epoch += 1
        self._iterated, self._epoch_was_set = True, False
        rng = np.random.default_rng([self.seed, self.epoch])
        self._reset_cycles(rng)
        per_rank = len(self)
        for i in range(per_rank * self.num_replicas):
            batch = self._build_one_batch(rng)
            if self.group_by_fov_fraction > 0:
                batch = self._group_by_frame(batch, rng)
            if i % self.num_replicas == self.rank:
                yield batch
