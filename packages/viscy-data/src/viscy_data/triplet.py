"""Triplet (anchor, positive, negative) cell patches from tracked OME-Zarr plates, for contrastive learning.

Patches are read a whole batch at a time (one batched read per batch, ``__getitems__``, with
:class:`viscy_data.patches.PatchReader`) by a thread-based loader; normalizations and augmentations
run batched on the device in ``on_after_batch_transfer``
(:class:`viscy_data.batch_transforms.TripletBatchTransform`). DynaCLR's multi-experiment data module
shares both.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from iohub.ngff import Position, open_ome_zarr
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import Dataset

from viscy_data._typing import INDEX_COLUMNS, TripletSample
from viscy_data._utils import _ensure_channel_list
from viscy_data.batch_transforms import IMAGE_KEYS, TripletBatchTransform
from viscy_data.batch_transforms import identity_collate as _identity
from viscy_data.io import (
    DEFAULT_CACHE_POOL_BYTES,
    PositionArrays,
    channel_indices,
    fov_name,
    store_path,
)
from viscy_data.nonfinite import NonFinitePolicy, check_nonfinite_policy
from viscy_data.normalization import check_norm_meta as _check_norm_meta
from viscy_data.normalization import index_norm_meta as _index_norm_meta
from viscy_data.normalization import read_norm_meta as _read_norm_meta
from viscy_data.normalization import stack_norm_meta as _stack_norm_meta
from viscy_data.optional import require
from viscy_data.patches import PatchReader
from viscy_data.select import _filter_fovs, _filter_wells
from viscy_transforms import MapTransform

_INSTALL = "pip install 'viscy-data[triplet]'"

if TYPE_CHECKING:
    import pandas as pd
    from monai.data import ThreadDataLoader


__all__ = ["TripletDataModule", "TripletDataset"]

_logger = logging.getLogger(__name__)

REQUIRED_TRACK_COLUMNS = ["track_id", "t", "y", "x"]
_OPTIONAL_INDEX_COLUMNS = ("z", "y", "x")
_NEGATIVE_DRAWS = 16


def _check_track_columns(table: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise if a tracks table lacks required columns."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"Tracks table of {source} lacks required columns {missing}; columns: {list(table.columns)}.")


class TripletDataset(Dataset):
    """Batches of cell-centred patches with a positive and a negative for each anchor.

    Parameters
    ----------
    positions : list[Position]
        FOVs, aligned with ``tracks_tables``.
    tracks_tables : list[pd.DataFrame]
        One tracks table per FOV with at least ``track_id, t, y, x`` (centroids in pixels).
    channel_names : list[str]
        Channels to read.
    initial_yx_patch_size : tuple[int, int]
        YX size of the patches read (before augmentation and final crop).
    z_range : slice
        Z slices to read.
    fit : bool
        Return positives and negatives (True) or the cell ``index`` for prediction (False).
    predict_cells : bool
        Keep only the cells given by ``include_fov_names`` / ``include_track_ids`` (pairwise).
    include_fov_names, include_track_ids : list | None
        Pairs of FOV name and track id kept when ``predict_cells``.
    time_interval : "any" | int
        Positive is the same cell (augmented differently) for ``"any"``, or the same track
        ``time_interval`` frames later.
    return_negative : bool
        Also return a patch of a different track.
    cache_pool_bytes : int
        Bound in bytes of the decoded-chunk cache shared by every reader of this process asking
        for the same bound (default 4 GiB; 0 turns it off), see ``viscy_data.io.shared_context``.
    """

    def __init__(
        self,
        positions: list[Position],
        tracks_tables: list[pd.DataFrame],
        channel_names: list[str],
        initial_yx_patch_size: tuple[int, int],
        z_range: slice,
        fit: bool = True,
        predict_cells: bool = False,
        include_fov_names: list[str] | None = None,
        include_track_ids: list[int] | None = None,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        cache_pool_bytes: int = DEFAULT_CACHE_POOL_BYTES,
    ) -> None:
        super().__init__()
        require("pandas", "TripletDataset", _INSTALL)
        require("tensorstore", "TripletDataset", _INSTALL)
        if len(positions) != len(tracks_tables):
            raise ValueError(f"Got {len(positions)} positions but {len(tracks_tables)} tracks tables.")
        if not positions:
            raise ValueError("TripletDataset needs at least one FOV; the position list is empty.")
        self.arrays = PositionArrays(positions, "0", cache_pool_bytes, owner="TripletDataset", extra="triplet")
        self.positions = positions
        self.channel_names = list(channel_names)
        self.channel_indices = channel_indices(positions, self.channel_names)
        self.yx_patch_size = tuple(initial_yx_patch_size)
        self.z_range = z_range
        self._patches = PatchReader(self.arrays, [self.channel_indices] * len(positions), z_range, self.yx_patch_size)
        self.fit = fit
        self.predict_cells = predict_cells
        self.include_fov_names = include_fov_names or []
        self.include_track_ids = include_track_ids or []
        self.time_interval = time_interval
        self.return_negative = return_negative
        self.tracks = self._filter_tracks(tracks_tables)
        if predict_cells:
            self.tracks = self._specific_cells(self.tracks)
        self._track_codes = self.tracks.groupby(["fov_index", "track_id"], sort=False).ngroup().to_numpy()
        self.valid_anchors = self._filter_anchors(self.tracks)
        if len(self.valid_anchors) == 0:
            raise ValueError(
                f"No valid anchors in FOVs {[fov_name(p) for p in positions]} of store '{store_path(positions[0])}' "
                f"(patch {self.yx_patch_size}, time_interval={time_interval}): every cell is too close to the border "
                "or lacks a partner at t + time_interval."
            )
        self._norm_meta = _stack_norm_meta([_read_norm_meta(position) for position in positions])

    def _filter_tracks(self, tables: list[pd.DataFrame]) -> pd.DataFrame:
        """Concatenate the FOV tables, dropping cells whose patch would cross the image border."""
        import pandas as pd

        half_y, half_x = self.yx_patch_size[0] // 2, self.yx_patch_size[1] // 2
        filtered = []
        for index, (position, table) in enumerate(zip(self.positions, tables, strict=True)):
            name = fov_name(position)
            source = f"FOV '{name}' of store '{store_path(position)}'"
            columns = REQUIRED_TRACK_COLUMNS if self.fit else [c for c in INDEX_COLUMNS[1:] if c not in ("z",)]
            _check_track_columns(table, columns, source)
            _, _, n_z, height, width = self.arrays.shapes[index]
            if self.z_range.stop is not None and self.z_range.stop > n_z:
                raise ValueError(f"Z range {self.z_range} exceeds image with Z={n_z} in {source}.")
            if self.yx_patch_size[0] >= height or self.yx_patch_size[1] >= width:
                raise ValueError(
                    f"initial_yx_patch_size {self.yx_patch_size} is not smaller than {source} ({height}x{width})."
                )
            inside = table["y"].between(half_y, height - half_y, inclusive="neither") & table["x"].between(
                half_x, width - half_x, inclusive="neither"
            )
            kept = table.loc[inside].copy()
            kept["position"] = [position] * len(kept)
            kept["fov_name"] = name
            kept["fov_index"] = index
            kept["global_track_id"] = name + "_" + kept["track_id"].astype(str)
            filtered.append(kept)
        return pd.concat(filtered, ignore_index=True)

    def _specific_cells(self, tracks: pd.DataFrame) -> pd.DataFrame:
        """Keep the rows of the (FOV name, track id) pairs to predict."""
        import pandas as pd

        wanted = pd.MultiIndex.from_arrays([self.include_fov_names, self.include_track_ids])
        keep = pd.MultiIndex.from_frame(tracks[["fov_name", "track_id"]]).isin(wanted)
        _logger.info(f"Predicting cells {list(wanted)}: {int(keep.sum())} rows.")
        return tracks.loc[keep].reset_index(drop=True)

    def _row_lookup(self, fov_index: np.ndarray, track_id: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Row positions in ``tracks`` of (FOV, track, t) keys, -1 where absent."""
        import pandas as pd

        if not hasattr(self, "_row_index"):
            self._row_index = pd.MultiIndex.from_frame(self.tracks[["fov_index", "track_id", "t"]])
            self._row_positions = np.arange(len(self.tracks))
            unique = ~self._row_index.duplicated()
            self._row_index, self._row_positions = self._row_index[unique], self._row_positions[unique]
        found = self._row_index.get_indexer(pd.MultiIndex.from_arrays([fov_index, track_id, t]))
        return np.where(found >= 0, self._row_positions[found], -1)

    def _filter_anchors(self, tracks: pd.DataFrame) -> pd.DataFrame:
        """Anchors are all rows, or (for an integer interval) rows whose track exists ``time_interval`` later."""
        if self.time_interval == "any" or not self.fit:
            self._anchor_rows = np.arange(len(tracks))
        else:
            partner = self._row_lookup(tracks["fov_index"], tracks["track_id"], tracks["t"] + self.time_interval)
            self._anchor_rows = np.flatnonzero(partner >= 0)
        return tracks.iloc[self._anchor_rows].reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.valid_anchors)

    def _sample_negatives(self, anchor_rows: np.ndarray) -> np.ndarray:
        """One random row of a different track per anchor (at ``t + time_interval`` for an integer interval)."""
        codes = self._track_codes
        if self.time_interval == "any":
            low, high = np.zeros(len(anchor_rows), dtype=int), np.full(len(anchor_rows), len(codes))
            order = np.arange(len(codes))
        else:
            if not hasattr(self, "_t_order"):
                self._t_order = np.argsort(self.tracks["t"].to_numpy(), kind="stable")
                self._t_sorted = self.tracks["t"].to_numpy()[self._t_order]
            target_t = self.tracks["t"].to_numpy()[anchor_rows] + self.time_interval
            low = np.searchsorted(self._t_sorted, target_t, side="left")
            high = np.searchsorted(self._t_sorted, target_t, side="right")
            order = self._t_order
        if np.any(high <= low):
            raise ValueError(f"No negative candidates at t + {self.time_interval} for some anchors.")
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        negatives = np.full(len(anchor_rows), -1)
        pending = np.arange(len(anchor_rows))
        for _ in range(_NEGATIVE_DRAWS):
            draws = order[low[pending] + (rng.random(len(pending)) * (high - low)[pending]).astype(int)]
            accepted = codes[draws] != codes[anchor_rows[pending]]
            negatives[pending[accepted]] = draws[accepted]
            pending = pending[~accepted]
            if len(pending) == 0:
                return negatives
        for i in pending:
            candidates = order[low[i] : high[i]]
            candidates = candidates[codes[candidates] != codes[anchor_rows[i]]]
            if len(candidates) == 0:
                raise ValueError(f"No negative candidate for anchor row {anchor_rows[i]}: no other track at that time.")
            negatives[i] = rng.choice(candidates)
        return negatives

    def _read_patches(self, rows: np.ndarray) -> Tensor:
        """Read the patches centred on ``rows`` of ``tracks`` in one batched read: ``(N, C, Z, Y, X)``."""
        fov_index, t, y, x = (self.tracks[name].to_numpy()[rows] for name in ("fov_index", "t", "y", "x"))
        return self._patches.read(fov_index, t, y - self.yx_patch_size[0] // 2, x - self.yx_patch_size[1] // 2)

    def _norm_meta_of(self, rows: np.ndarray) -> dict | None:
        """Per-sample normalization metadata of ``rows`` (leaves of shape ``(N,)``), or None."""
        fov_index = torch.from_numpy(self.tracks["fov_index"].to_numpy()[rows])
        return _index_norm_meta(self._norm_meta, fov_index)

    def __getitems__(self, indices: list[int]) -> TripletSample:
        """Return the whole batch as one dict.

        Keys: ``anchor`` ``(B, C, Z, Y, X)`` in the store dtype and ``anchor_norm_meta``; in fit mode
        ``positive`` / ``positive_norm_meta`` and, if ``return_negative``, ``negative`` /
        ``negative_norm_meta``; in predict mode ``index``, a list of B dicts of the INDEX_COLUMNS present.
        Normalization metadata is collated (``{channel: {level: {stat: (B,) tensor}}}``) or None.
        """
        anchor_rows = self._anchor_rows[np.asarray(indices, dtype=int)]
        groups = {"anchor": anchor_rows}
        if self.fit and self.time_interval != "any":
            anchors = self.tracks.iloc[anchor_rows]
            groups["positive"] = self._row_lookup(
                anchors["fov_index"], anchors["track_id"], anchors["t"] + self.time_interval
            )
        if self.fit and self.return_negative:
            groups["negative"] = self._sample_negatives(anchor_rows)
        patches = self._read_patches(np.concatenate(list(groups.values()))).split(len(anchor_rows))
        batch: dict[str, Any] = {}
        for (key, rows), patch in zip(groups.items(), patches, strict=True):
            batch[key] = patch
            batch[f"{key}_norm_meta"] = self._norm_meta_of(rows)
        if self.fit and self.time_interval == "any":
            batch["positive"] = batch["anchor"].clone()
            batch["positive_norm_meta"] = batch["anchor_norm_meta"]
        if not self.fit:
            columns = [c for c in INDEX_COLUMNS if c in self.tracks.columns]
            batch["index"] = self.tracks.iloc[anchor_rows][columns].to_dict("records")
        return batch


class TripletDataModule(LightningDataModule):
    """Lightning DataModule of cell triplets from an HCS plate and per-FOV tracks CSVs.

    Parameters
    ----------
    data_path : str
        HCS OME-Zarr plate.
    tracks_path : str
        Root of the tracks tables, one ``<tracks_path>/<row>/<col>/<fov>/*.csv`` per FOV.
    source_channel : str | Sequence[str]
        Channels to read.
    z_range : tuple[int, int]
        Z slices ``[start, stop)`` to read.
    initial_yx_patch_size, final_yx_patch_size : tuple[int, int]
        YX size read, and YX size after the final centre crop.
    split_ratio : float
        Fraction of FOVs used for training.
    batch_size, num_workers : int
        Loader settings (workers are threads; more than 1 rarely helps).
    normalizations, augmentations : list[MapTransform] | None
        Dictionary transforms applied batched, per channel, on the device.
    augment_validation : bool
        Augment validation batches too.
    caching : bool | None
        Deprecated and ignored (triplets always read ``data_path``; ``cache_pool_bytes`` sizes their
        decoded-chunk cache); setting it emits a DeprecationWarning.
    fit_include_wells, fit_exclude_fovs : list[str] | None
        Well and FOV filters.
    predict_cells, include_fov_names, include_track_ids
        Restrict prediction to given (FOV name, track id) pairs.
    time_interval : "any" | int
        See :class:`TripletDataset`.
    return_negative : bool
        Return negatives in fit mode.
    persistent_workers, prefetch_factor, pin_memory
        Passed to the loaders.
    z_window_size : int | None
        Z size after the final crop (default: the z_range length).
    cache_pool_bytes : int
        Bound in bytes of the decoded-chunk cache shared by every reader of this process asking
        for the same bound (default 4 GiB; 0 turns it off), see ``viscy_data.io.shared_context``.
    nonfinite : {"raise", "zero"}
        What to do with NaN/Inf pixels of a batch, checked on the device once per batch before the
        transforms: ``"raise"`` a ``ValueError``, or ``"zero"`` them (see :mod:`viscy_data.nonfinite`).
    """

    def __init__(
        self,
        data_path: str,
        tracks_path: str,
        source_channel: str | Sequence[str],
        z_range: tuple[int, int],
        initial_yx_patch_size: tuple[int, int] = (512, 512),
        final_yx_patch_size: tuple[int, int] = (224, 224),
        split_ratio: float = 0.8,
        batch_size: int = 16,
        num_workers: int = 1,
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        augment_validation: bool = True,
        caching: bool | None = None,
        fit_include_wells: list[str] | None = None,
        fit_exclude_fovs: list[str] | None = None,
        predict_cells: bool = False,
        include_fov_names: list[str] | None = None,
        include_track_ids: list[int] | None = None,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
        z_window_size: int | None = None,
        cache_pool_bytes: int = DEFAULT_CACHE_POOL_BYTES,
        nonfinite: NonFinitePolicy = "raise",
    ) -> None:
        super().__init__()
        require("pandas", "TripletDataModule", _INSTALL)
        require("tensorstore", "TripletDataModule", _INSTALL)
        check_nonfinite_policy(nonfinite, type(self).__name__)
        if num_workers > 1:
            warnings.warn("Using more than 1 thread worker will likely degrade performance.", stacklevel=2)
        if caching is not None:
            warnings.warn(
                "TripletDataModule(caching=...) is deprecated and ignored: triplets always read data_path; "
                "use cache_pool_bytes to size the decoded-chunk cache instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        if any(f > i for f, i in zip(final_yx_patch_size, initial_yx_patch_size, strict=True)):
            raise ValueError(
                f"final_yx_patch_size {tuple(final_yx_patch_size)} exceeds initial_yx_patch_size "
                f"{tuple(initial_yx_patch_size)}."
            )
        self.data_path = Path(data_path)
        self.tracks_path = Path(tracks_path)
        self.source_channel = _ensure_channel_list(source_channel)
        self.z_range = slice(*z_range)
        self.z_window_size = z_window_size or (z_range[1] - z_range[0])
        self.initial_yx_patch_size = tuple(initial_yx_patch_size)
        self.final_yx_patch_size = tuple(final_yx_patch_size)
        self.split_ratio = split_ratio
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.normalizations = list(normalizations or [])
        self.augmentations = list(augmentations or [])
        self.augment_validation = augment_validation
        self.caching = False  # deprecated knob: triplets never copy the plate
        self._include_wells = fit_include_wells
        self._exclude_fovs = fit_exclude_fovs
        self.predict_cells = predict_cells
        self.include_fov_names = include_fov_names
        self.include_track_ids = include_track_ids
        self.time_interval = time_interval
        self.return_negative = return_negative
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self._cache_pool_bytes = cache_pool_bytes
        self.nonfinite = nonfinite
        roi_size = (self.z_window_size, *self.final_yx_patch_size)
        self._batch_transform = TripletBatchTransform(
            self.source_channel, self.normalizations, self.augmentations, roi_size, nonfinite, type(self).__name__
        )

    @property
    def _base_dataset_settings(self) -> dict[str, Any]:
        return {
            "channel_names": self.source_channel,
            "z_range": self.z_range,
            "time_interval": self.time_interval,
            "cache_pool_bytes": self._cache_pool_bytes,
        }

    def _read_tracks(self, position: Position) -> pd.DataFrame:
        """Read the first CSV of ``<tracks_path>/<fov_name>/`` as integers."""
        pd = require("pandas", "TripletDataModule", _INSTALL)
        name = fov_name(position)
        csv_paths = sorted((self.tracks_path / name).glob("*.csv"))
        if not csv_paths:
            raise FileNotFoundError(f"No tracks CSV for FOV '{name}' in {self.tracks_path / name}.")
        table = pd.read_csv(csv_paths[0])
        _check_track_columns(table, REQUIRED_TRACK_COLUMNS, f"'{csv_paths[0]}'")
        try:
            return table.astype(int)
        except (TypeError, ValueError) as error:
            raise ValueError(f"Tracks table '{csv_paths[0]}' has non-integer values: {error}") from error

    def setup(self, stage: str) -> None:
        """Build the datasets of a stage: train and validation for ``fit``/``validate``, or ``predict``."""
        if stage == "predict":
            self._setup_predict()
        elif stage in ("fit", "validate"):
            self._setup_fit()
        else:
            unsupported = "Self-supervised model does not support testing" if stage == "test" else f"{stage} stage"
            raise NotImplementedError(unsupported)

    def _align_tracks_tables_with_positions(self) -> tuple[list[Position], list[pd.DataFrame]]:
        """Filtered FOVs of the plate and their tracks tables, in the same order."""
        if not self.data_path.exists():
            raise FileNotFoundError(f"OME-Zarr store not found: {self.data_path}")
        plate = open_ome_zarr(self.data_path, mode="r", layout="hcs")
        positions = [
            fov for well in _filter_wells(plate, self._include_wells) for fov in _filter_fovs(well, self._exclude_fovs)
        ]
        if not positions:
            raise ValueError(
                f"No FOVs left in store '{self.data_path}' after include_wells={self._include_wells}, "
                f"exclude_fovs={self._exclude_fovs}."
            )
        _check_norm_meta(self.normalizations, {fov_name(p): _read_norm_meta(p) for p in positions}, str(self.data_path))
        return positions, [self._read_tracks(position) for position in positions]

    def _setup_fit(self) -> None:
        from monai.data import set_track_meta

        positions, tables = self._align_tracks_tables_with_positions()
        set_track_meta(False)
        order = torch.randperm(len(positions)).tolist()
        positions, tables = [positions[i] for i in order], [tables[i] for i in order]
        n_train = int(len(positions) * self.split_ratio)
        if n_train == 0 or n_train == len(positions):
            raise ValueError(
                f"split_ratio {self.split_ratio} of {len(positions)} FOVs in '{self.data_path}' leaves no "
                "training or no validation FOV."
            )
        settings = self._base_dataset_settings | {
            "fit": True,
            "return_negative": self.return_negative,
            "initial_yx_patch_size": self.initial_yx_patch_size,
        }
        self.train_dataset = TripletDataset(positions[:n_train], tables[:n_train], **settings)
        self.val_dataset = TripletDataset(positions[n_train:], tables[n_train:], **settings)

    def _setup_predict(self) -> None:
        from monai.data import set_track_meta

        set_track_meta(True)
        positions, tables = self._align_tracks_tables_with_positions()
        self.predict_dataset = TripletDataset(
            positions,
            tables,
            fit=False,
            predict_cells=self.predict_cells,
            include_fov_names=self.include_fov_names,
            include_track_ids=self.include_track_ids,
            initial_yx_patch_size=self.initial_yx_patch_size,
            **self._base_dataset_settings,
        )

    def _loader(self, dataset: Dataset, shuffle: bool) -> ThreadDataLoader:
        from monai.data import ThreadDataLoader

        return ThreadDataLoader(
            dataset,
            use_thread_workers=True,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            prefetch_factor=self.prefetch_factor if self.num_workers else None,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            pin_memory=self.pin_memory,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=_identity,
        )

    def train_dataloader(self) -> ThreadDataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> ThreadDataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    def predict_dataloader(self) -> ThreadDataLoader:
        return self._loader(self.predict_dataset, shuffle=False)

    def _augmented_keys(self) -> tuple[str, ...]:
        """Batch keys to augment: none when predicting or for un-augmented validation, and not the
        anchor when positives are the same cell."""
        if self.trainer is not None:
            if self.trainer.predicting:
                return ()
            if self.trainer.validating and not self.augment_validation:
                return ()
        if self.time_interval in ("any", 0):
            return tuple(key for key in IMAGE_KEYS if key != "anchor")
        return IMAGE_KEYS

    def on_after_batch_transfer(self, batch: TripletSample | Tensor, dataloader_idx: int) -> TripletSample | Tensor:
        """Check non-finite pixels, then normalise, augment and crop each patch of the batch on its device."""
        return self._batch_transform(batch, augment=self._augmented_keys())
