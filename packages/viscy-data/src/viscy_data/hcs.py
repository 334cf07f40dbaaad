"""Sliding-window datasets and the Lightning DataModule for image-to-image (virtual staining) training."""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from iohub.ngff import Plate, Position, open_ome_zarr
from lightning.pytorch import LightningDataModule
from monai.data import set_track_meta
from monai.transforms import CenterSpatialCropd, MultiSampleTrait, RandAffined
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from viscy_data._typing import ChannelMap, DictTransform, HCSStackIndex, NormMeta, Sample
from viscy_data._utils import (
    _collate_samples,
    _ensure_channel_list,
    _read_norm_meta,
    _search_int_in_str,
)
from viscy_data.io import WORKER_CONTEXT, PositionArrays, channel_indices, fov_name, store_path
from viscy_data.normalization import check_norm_meta as _check_norm_meta
from viscy_transforms import Compose, MapTransform

__all__ = ["HCSDataModule", "MaskTestDataset", "SlidingWindowDataset"]

_logger = logging.getLogger(__name__)


class SlidingWindowDataset(Dataset):
    """Z windows of every timepoint of every FOV, read from OME-Zarr positions.

    Parameters
    ----------
    positions : list[Position]
        FOVs to read.
    channels : ChannelMap
        Source (and optional target) channel names.
    z_window_size : int
        Number of Z slices per window.
    array_key : str
        Multiscale level to read.
    transform : DictTransform | None
        Per-sample dictionary transform applied to ``{channel: (1, Z, Y, X)}`` (plus ``norm_meta``).
    load_normalization_metadata : bool
        Add each FOV's ``norm_meta`` to the samples (when every FOV has it).
    """

    def __init__(
        self,
        positions: list[Position],
        channels: ChannelMap,
        z_window_size: int,
        array_key: str = "0",
        transform: DictTransform | None = None,
        load_normalization_metadata: bool = True,
    ) -> None:
        super().__init__()
        if not positions:
            raise ValueError("SlidingWindowDataset needs at least one FOV; the position list is empty.")
        self.source_ch = _ensure_channel_list(channels["source"])
        self.target_ch = _ensure_channel_list(channels["target"]) if "target" in channels else None
        self.channel_names = self.source_ch + (self.target_ch or [])
        self._channel_indices = channel_indices(positions, self.channel_names)
        self.z_window_size = z_window_size
        self.transform = transform
        self.arrays = PositionArrays(
            positions, array_key, owner=type(self).__name__, extra="triplet", zarr_fallback=True
        )
        self.fov_names = [fov_name(position) for position in positions]
        windows = []
        for position, (n_t, _, n_z, _, _) in zip(positions, self.arrays.shapes, strict=True):
            if n_z < z_window_size:
                raise IndexError(
                    f"Z window size {z_window_size} is larger than the number of Z slices ({n_z}) "
                    f"of FOV '{fov_name(position)}' in store '{store_path(position)}'."
                )
            windows.append(n_t * (n_z - z_window_size + 1))
        self._windows_per_fov = np.asarray(windows)
        self._window_starts = np.concatenate([[0], np.cumsum(windows)])
        self.norm_metas: list[NormMeta | None] = [_read_norm_meta(position) for position in positions]
        self._with_norm_meta = load_normalization_metadata and all(meta is not None for meta in self.norm_metas)

    def __len__(self) -> int:
        return int(self._window_starts[-1])

    def _locate(self, index: int) -> tuple[int, int, int]:
        """Map a global window index to ``(fov index, t, z)``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"Window index {index} out of range for {len(self)} windows.")
        index %= len(self)
        fov = int(np.searchsorted(self._window_starts, index, side="right") - 1)
        n_z = self.arrays.shapes[fov][2] - self.z_window_size + 1
        t, z = divmod(index - int(self._window_starts[fov]), n_z)
        return fov, t, z

    def _region(self, fov: int, t: int, z: int) -> tuple:
        return (slice(t, t + 1), self._channel_indices, slice(z, z + self.z_window_size))

    def _sample(self, fov: int, t: int, z: int, stack: Tensor) -> Sample:
        """Build one sample from a ``(1, C, Z, Y, X)`` float tensor and apply the transform."""
        channels: dict[str, Any] = {name: stack[:, i] for i, name in enumerate(self.channel_names)}
        if self.target_ch:
            channels["weight"] = channels[self.target_ch[0]]
        if self._with_norm_meta:
            channels["norm_meta"] = self.norm_metas[fov]
        transformed = self.transform(channels) if self.transform else channels
        crops = transformed if isinstance(transformed, list) else [transformed]
        samples: list[Sample] = []
        for crop in crops:
            sample: Sample = {"index": HCSStackIndex(self.arrays.array_names[fov], t, z)}
            sample["source"] = self._stack(crop, self.source_ch)
            if self.target_ch:
                sample["target"] = self._stack(crop, self.target_ch)
            if self._with_norm_meta:
                sample["norm_meta"] = self.norm_metas[fov]
            samples.append(sample)
        if not isinstance(transformed, list):
            return samples[0]
        # multi-sample crops: one list per key, flattened into the batch by ``_collate_samples``
        return {key: [sample[key] for sample in samples] for key in samples[0]}

    @staticmethod
    def _stack(channels: dict[str, Tensor], names: list[str]) -> Tensor:
        return torch.cat([channels[name] for name in names], dim=0)

    def __getitem__(self, index: int) -> Sample:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[Sample]:
        """Read the windows of a whole batch in one call, then build (and transform) each sample."""
        located = [self._locate(int(index)) for index in indices]
        samples: list[Sample | None] = [None] * len(located)
        by_shape: dict[tuple, list[int]] = {}
        for i, (fov, _, _) in enumerate(located):
            by_shape.setdefault(self.arrays.shapes[fov][3:], []).append(i)
        for members in by_shape.values():
            stacks = self.arrays.read([(located[i][0], self._region(*located[i])) for i in members])
            stacks = torch.from_numpy(np.asarray(stacks, dtype=np.float32))
            for i, stack in zip(members, stacks, strict=True):
                samples[i] = self._sample(*located[i], stack)
        return samples


class MaskTestDataset(SlidingWindowDataset):
    """Sliding-window test dataset that also returns Cellpose ground-truth masks (``*cp_masks.png``).

    Mask files are matched by FOV number (``_p<NNN>``) and Z slice (``_z<N>``) in their names; the
    mask of the centre slice of a window is returned as ``"labels"`` when it exists.
    """

    def __init__(
        self,
        positions: list[Position],
        channels: ChannelMap,
        z_window_size: int,
        transform: DictTransform | None = None,
        ground_truth_masks: str | None = None,
    ) -> None:
        super().__init__(positions, channels, z_window_size, transform=transform)
        self.masks: dict[tuple[int, int, int], Path] = {}
        for mask_path in sorted(Path(ground_truth_masks).glob("*cp_masks.png")) if ground_truth_masks else []:
            position = int(_search_int_in_str(r"(?<=_p)\d{3}", mask_path.name))
            z = int(_search_int_in_str(r"(?<=_z)\d+", mask_path.name))
            self.masks[(position, 0, z)] = mask_path
        _logger.info(f"Found {len(self.masks)} ground-truth masks in {ground_truth_masks}.")

    def _sample(self, fov: int, t: int, z: int, stack: Tensor) -> Sample:
        sample = super()._sample(fov, t, z, stack)
        key = (int(self.fov_names[fov].split("/")[-1]), t, z + self.z_window_size // 2)
        if key in self.masks:
            import imageio.v3 as iio

            sample["labels"] = torch.from_numpy(iio.imread(self.masks[key]).astype(np.int16))
        return sample


class HCSDataModule(LightningDataModule):
    """Lightning DataModule of sliding Z windows from an HCS OME-Zarr plate (source → target).

    Parameters
    ----------
    data_path : str
        HCS plate (or a single position of one, for prediction).
    source_channel, target_channel : str | Sequence[str]
        Input and target channel names.
    z_window_size : int
        Z slices per sample.
    split_ratio : float
        Fraction of FOVs used for training (the rest validate).
    batch_size : int
        Samples per batch.
    num_workers : int
        DataLoader worker processes (forked from a clean forkserver: tensorstore is not fork-safe).
    target_2d : bool
        Keep only the centre Z slice of the target.
    yx_patch_size : tuple[int, int]
        Final YX size of training and validation patches.
    normalizations, augmentations : list[MapTransform] | None
        Per-sample dictionary transforms (normalizations are also used to validate, test and predict).
    caching : bool
        Copy the plate to a local cache directory before training.
    ground_truth_masks : Path | None
        Directory of Cellpose masks for testing.
    persistent_workers, prefetch_factor, pin_memory
        Passed to the DataLoaders.
    array_key : str
        Multiscale level to read.
    """

    def __init__(
        self,
        data_path: str,
        source_channel: str | Sequence[str],
        target_channel: str | Sequence[str],
        z_window_size: int,
        split_ratio: float = 0.8,
        batch_size: int = 16,
        num_workers: int = 8,
        target_2d: bool = False,
        yx_patch_size: tuple[int, int] = (256, 256),
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        caching: bool = False,
        ground_truth_masks: Path | None = None,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        array_key: str = "0",
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.data_path = Path(data_path)
        self.source_channel = _ensure_channel_list(source_channel)
        self.target_channel = _ensure_channel_list(target_channel)
        self.z_window_size = z_window_size
        self.split_ratio = split_ratio
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.target_2d = target_2d
        self.yx_patch_size = tuple(yx_patch_size)
        self.normalizations = list(normalizations or [])
        self.augmentations = list(augmentations or [])
        self.caching = caching
        self.ground_truth_masks = ground_truth_masks
        self.persistent_workers = persistent_workers
        self.prefetch_factor = prefetch_factor
        self.array_key = array_key
        self.pin_memory = pin_memory
        self.train_patches_per_stack = 1
        self.prepare_data_per_node = True

    @property
    def cache_path(self) -> Path:
        """Local copy of the plate used when ``caching`` is on."""
        return Path(tempfile.gettempdir()) / os.getenv("SLURM_JOB_ID", "viscy_cache") / self.data_path.name

    @property
    def maybe_cached_data_path(self) -> Path:
        """The cache path when caching, else the data path."""
        return self.cache_path if self.caching else self.data_path

    @property
    def _base_dataset_settings(self) -> dict[str, Any]:
        return {
            "channels": {"source": self.source_channel},
            "z_window_size": self.z_window_size,
            "array_key": self.array_key,
        }

    def prepare_data(self) -> None:
        """Copy the plate to the local cache (only when caching); existing files are kept."""
        if not self.caching:
            return
        _logger.info(f"Caching dataset {self.data_path} to {self.cache_path}.")
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.data_path, self.cache_path, dirs_exist_ok=True)

    def setup(self, stage: str) -> None:
        """Build the datasets of a stage (``fit``, ``validate``, ``test`` or ``predict``)."""
        if stage in ("fit", "validate"):
            self._setup_fit()
        elif stage == "test":
            self._setup_test()
        elif stage == "predict":
            self._setup_predict()
        else:
            raise NotImplementedError(f"{stage} stage")

    def _open_plate(self, path: Path) -> Plate:
        if not path.exists():
            raise FileNotFoundError(f"OME-Zarr store not found: {path}")
        return open_ome_zarr(path, mode="r", layout="hcs")

    def _final_crop(self) -> CenterSpatialCropd:
        return CenterSpatialCropd(
            keys=self.source_channel + self.target_channel, roi_size=(self.z_window_size, *self.yx_patch_size)
        )

    def _fit_transform(self) -> tuple[Compose, Compose]:
        self._train_transform()
        final_crop = [self._final_crop()]
        train = Compose(self.normalizations + self.augmentations + final_crop)
        val = Compose(self.normalizations + final_crop)
        return train, val

    def _check_positions(self, positions: list[Position], check_patch: bool) -> None:
        """Validate metadata needed by normalizations and the patch size before any reading."""
        if not positions:
            raise ValueError(f"No FOVs left in store '{self.data_path}' after filtering.")
        _check_norm_meta(self.normalizations, {fov_name(p): _read_norm_meta(p) for p in positions}, str(self.data_path))
        if check_patch:
            for position in positions:
                image = position[self.array_key]
                if image.height < self.yx_patch_size[0] or image.width < self.yx_patch_size[1]:
                    raise ValueError(
                        f"yx_patch_size {self.yx_patch_size} is larger than FOV '{fov_name(position)}' "
                        f"({image.height}x{image.width}) in store '{self.data_path}'."
                    )

    def _split_positions(self, positions: list[Position]) -> tuple[list[Position], list[Position]]:
        """Shuffle FOVs with the global torch RNG and split them by ``split_ratio``."""
        shuffled = [positions[i] for i in torch.randperm(len(positions)).tolist()]
        n_train = int(len(shuffled) * self.split_ratio)
        return shuffled[:n_train], shuffled[n_train:]

    def _setup_fit(self) -> None:
        train_transform, val_transform = self._fit_transform()
        plate = self._open_plate(self.maybe_cached_data_path)
        positions = [position for _, position in plate.positions()]
        self._check_positions(positions, check_patch=True)
        set_track_meta(False)
        train_positions, val_positions = self._split_positions(positions)
        settings = self._base_dataset_settings
        settings["channels"]["target"] = self.target_channel
        train_z_window = self.z_window_size
        if self.train_z_scale_range[1] > 0:
            expanded = math.ceil(self.z_window_size * (1 + self.train_z_scale_range[1]))
            train_z_window = expanded - expanded % 2
        self.train_dataset = SlidingWindowDataset(
            train_positions, transform=train_transform, **(settings | {"z_window_size": train_z_window})
        )
        self.val_dataset = SlidingWindowDataset(val_positions, transform=val_transform, **settings)

    def _setup_test(self) -> None:
        if self.batch_size != 1:
            _logger.warning(f"Ignoring batch size {self.batch_size} in test stage.")
        plate = self._open_plate(self.data_path)
        positions = [position for _, position in plate.positions()]
        self._check_positions(positions, check_patch=False)
        settings = self._base_dataset_settings
        settings["channels"]["target"] = self.target_channel
        if self.ground_truth_masks:
            settings.pop("array_key")
            self.test_dataset = MaskTestDataset(
                positions,
                transform=Compose(self.normalizations),
                ground_truth_masks=self.ground_truth_masks,
                **settings,
            )
        else:
            self.test_dataset = SlidingWindowDataset(positions, transform=Compose(self.normalizations), **settings)

    def _positions_maybe_single(self) -> list[Position]:
        """All positions of the plate, or the one position if ``data_path`` is a single FOV."""
        node = open_ome_zarr(self.data_path, mode="r")
        if isinstance(node, Position):
            name = "/".join(self.data_path.resolve().parts[-3:])
            try:
                plate = open_ome_zarr(self.data_path.resolve().parents[2], mode="r", layout="hcs")
                return [plate[name]]
            except Exception as error:
                raise FileNotFoundError("Parent HCS store not found for single FOV input.") from error
        return [position for _, position in node.positions()]

    def _setup_predict(self) -> None:
        set_track_meta(True)
        if self.caching:
            _logger.warning("Caching is ignored in predict stage.")
        positions = self._positions_maybe_single()
        self._check_positions(positions, check_patch=False)
        self.predict_dataset = SlidingWindowDataset(
            positions, transform=Compose(self.normalizations), **self._base_dataset_settings
        )

    def _train_transform(self) -> None:
        """Inspect augmentations: Z scaling range of RandAffined and samples per stack of multi-sample crops."""
        self.train_patches_per_stack = 1
        z_scale_range = (0.0, 0.0)
        affines = [aug for aug in self.augmentations if isinstance(aug, RandAffined)]
        if len(affines) > 1:
            raise ValueError("Only one RandAffined augmentation is allowed.")
        if affines:
            scale = affines[0].rand_affine.rand_affine_grid.scale_range[0]
            z_scale_range = (-scale, scale) if isinstance(scale, (int, float)) else tuple(scale)
            if z_scale_range[0] > 0 or z_scale_range[1] < 0:
                raise ValueError(f"Invalid scaling range: {z_scale_range}")
        for aug in self.augmentations:
            if isinstance(aug, MultiSampleTrait):
                num_samples = aug.cropper.num_samples
                if self.batch_size % num_samples != 0:
                    raise ValueError(
                        "Batch size must be divisible by `num_samples` per stack. "
                        f"Got batch size {self.batch_size} and num_samples {num_samples}."
                    )
                self.train_patches_per_stack = num_samples
        self.train_z_scale_range = z_scale_range

    def _loader_kwargs(self) -> dict[str, Any]:
        workers = self.num_workers > 0
        return {
            "num_workers": self.num_workers,
            "prefetch_factor": self.prefetch_factor if workers else None,
            "persistent_workers": self.persistent_workers and workers,
            "pin_memory": self.pin_memory,
            "multiprocessing_context": WORKER_CONTEXT if workers else None,
        }

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size // self.train_patches_per_stack,
            shuffle=True,
            collate_fn=_collate_samples,
            drop_last=True,
            **self._loader_kwargs(),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=self.batch_size, shuffle=False, **self._loader_kwargs())

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=1, shuffle=False, **self._loader_kwargs())

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.predict_dataset, batch_size=self.batch_size, shuffle=False, **self._loader_kwargs())

    def on_before_batch_transfer(self, batch: Sample | Tensor, dataloader_idx: int) -> Sample | Tensor:
        """Keep the centre Z slice of the target when ``target_2d`` (not when predicting)."""
        predicting = self.trainer is not None and self.trainer.predicting
        if predicting or isinstance(batch, Tensor):
            return batch
        if self.target_2d and "target" in batch:
            z_index = self.z_window_size // 2
            batch["target"] = batch["target"][:, :, z_index : z_index + 1]
        return batch
