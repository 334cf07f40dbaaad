"""DataModules whose augmentations run on the GPU, with an in-memory cache of whole (C, Z, Y, X) volumes."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from multiprocessing.managers import DictProxy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from iohub.ngff import Position, open_ome_zarr
from lightning.pytorch import LightningDataModule
from monai.data import set_track_meta
from monai.data.utils import list_data_collate
from torch.utils.data import DataLoader, Dataset

from viscy_data._typing import DictTransform, NormMeta
from viscy_data._utils import _ensure_channel_list, _read_norm_meta
from viscy_data.distributed import ShardedDistributedSampler, is_distributed
from viscy_data.io import WORKER_CONTEXT, PositionArrays, channel_indices, fov_name
from viscy_data.select import SelectWell
from viscy_transforms import Compose

__all__ = [
    "CachedOmeZarrDataModule",
    "CachedOmeZarrDataset",
    "GPUTransformDataModule",
    "StoredTransforms",
    "fit_positions",
]

_logger = logging.getLogger(__name__)


class GPUTransformDataModule(ABC, LightningDataModule):
    """Base DataModule that loads with light CPU transforms and exposes GPU transforms for the model.

    Subclasses set ``train_dataset``, ``val_dataset``, ``batch_size``, ``num_workers``, ``pin_memory``
    and ``prefetch_factor`` (None if unset). GPU transforms are not applied here: the LightningModule
    (or engine) applies them to the transferred batch.
    """

    train_dataset: Dataset
    val_dataset: Dataset
    batch_size: int
    num_workers: int
    pin_memory: bool
    prefetch_factor: int | None

    def _maybe_sampler(self, dataset: Dataset, shuffle: bool) -> ShardedDistributedSampler | None:
        """A sharded distributed sampler when running under torch.distributed, else None."""
        if is_distributed():
            return ShardedDistributedSampler(dataset, shuffle=shuffle)
        return None

    def _dataloader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        sampler = self._maybe_sampler(dataset, shuffle)
        workers = self.num_workers > 0
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            persistent_workers=workers,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            drop_last=False,
            collate_fn=list_data_collate,
            prefetch_factor=getattr(self, "prefetch_factor", None) if workers else None,
            multiprocessing_context=WORKER_CONTEXT if workers else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._dataloader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._dataloader(self.val_dataset, shuffle=False)

    @property
    @abstractmethod
    def train_cpu_transforms(self) -> Compose:
        """Per-sample transforms run in the loader for training."""

    @property
    @abstractmethod
    def train_gpu_transforms(self) -> Compose:
        """Batched transforms run on the device for training."""

    @property
    @abstractmethod
    def val_cpu_transforms(self) -> Compose:
        """Per-sample transforms run in the loader for validation."""

    @property
    @abstractmethod
    def val_gpu_transforms(self) -> Compose:
        """Batched transforms run on the device for validation."""


def fit_positions(module: SelectWell, data_path: Path, stage: str) -> list[Position]:
    """The FOVs of the plate ``data_path`` kept by the module's well and FOV filters, for ``fit``/``validate``.

    Raises
    ------
    NotImplementedError
        For any other stage.
    FileNotFoundError
        If the plate does not exist.
    """
    if stage not in ("fit", "validate"):
        raise NotImplementedError("Only fit and validate stages are supported.")
    if not data_path.exists():
        raise FileNotFoundError(f"OME-Zarr store not found: {data_path}")
    return module._filter_fit_fovs(open_ome_zarr(data_path, mode="r", layout="hcs"))


class StoredTransforms:
    """The four transform properties of :class:`GPUTransformDataModule`, as Compose objects built once.

    Put it before ``GPUTransformDataModule`` in the bases and call :meth:`_store_transforms` in ``__init__``.
    """

    def _store_transforms(
        self,
        train_cpu: list[DictTransform] | None,
        val_cpu: list[DictTransform] | None,
        train_gpu: list[DictTransform] | None,
        val_gpu: list[DictTransform] | None,
    ) -> None:
        """Compose each list of transforms (None for none)."""
        self._train_cpu_transforms = Compose(train_cpu or [])
        self._val_cpu_transforms = Compose(val_cpu or [])
        self._train_gpu_transforms = Compose(train_gpu or [])
        self._val_gpu_transforms = Compose(val_gpu or [])

    @property
    def train_cpu_transforms(self) -> Compose:
        """Per-sample transforms run in the loader for training."""
        return self._train_cpu_transforms

    @property
    def train_gpu_transforms(self) -> Compose:
        """Batched transforms run on the device for training."""
        return self._train_gpu_transforms

    @property
    def val_cpu_transforms(self) -> Compose:
        """Per-sample transforms run in the loader for validation."""
        return self._val_cpu_transforms

    @property
    def val_gpu_transforms(self) -> Compose:
        """Batched transforms run on the device for validation."""
        return self._val_gpu_transforms


class CachedOmeZarrDataset(Dataset):
    """One item per (FOV, timepoint): the whole ``(C, Z, Y, X)`` volume, cached in a shared dict.

    Parameters
    ----------
    positions : list[Position]
        FOVs to read.
    channel_names : list[str]
        Channels to read.
    cache_map : DictProxy
        Shared dict (``multiprocessing.Manager().dict()``) holding decoded volumes across workers.
    transform : Compose | None
        Per-sample CPU transform applied to ``{channel: (1, Z, Y, X)}`` (plus ``norm_meta``).
    array_key : str
        Multiscale level to read.
    load_normalization_metadata : bool
        Add the FOV's ``norm_meta`` to each sample.
    skip_cache : bool
        Read every time without caching.
    """

    def __init__(
        self,
        positions: list[Position],
        channel_names: list[str],
        cache_map: DictProxy,
        transform: Compose | None = None,
        array_key: str = "0",
        load_normalization_metadata: bool = True,
        skip_cache: bool = False,
    ) -> None:
        super().__init__()
        if not positions:
            raise ValueError("CachedOmeZarrDataset needs at least one FOV; the position list is empty.")
        self.channel_names = _ensure_channel_list(channel_names)
        self._channel_indices = channel_indices(positions, self.channel_names)
        self.arrays = PositionArrays(
            positions, array_key, owner=type(self).__name__, extra="triplet", zarr_fallback=True
        )
        self.fov_names = [fov_name(position) for position in positions]
        frames = np.asarray([shape[0] for shape in self.arrays.shapes])
        self._fov_of_item = np.repeat(np.arange(len(positions)), frames)
        self._t_of_item = np.concatenate([np.arange(n) for n in frames])
        self.norm_metas: list[NormMeta | None] = (
            [_read_norm_meta(position) for position in positions] if load_normalization_metadata else []
        )
        self.load_normalization_metadata = load_normalization_metadata
        self.transform = transform
        self.cache_map = cache_map
        self.skip_cache = skip_cache
        if not skip_cache:
            cache_map.update(dict.fromkeys(range(len(self)), None))

    def __len__(self) -> int:
        return len(self._fov_of_item)

    def _sample(self, index: int, volume: torch.Tensor) -> list[dict[str, Any]]:
        fov = int(self._fov_of_item[index])
        sample: dict[str, Any] = {name: volume[i : i + 1] for i, name in enumerate(self.channel_names)}
        if self.load_normalization_metadata and self.norm_metas[fov] is not None:
            sample["norm_meta"] = self.norm_metas[fov]
        transformed = self.transform(sample) if self.transform else sample
        return transformed if isinstance(transformed, list) else [transformed]

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[list[dict[str, Any]]]:
        """Volumes of a batch: cached ones from the shared dict, the rest read in one batched call."""
        indices = [int(index) for index in indices]
        volumes = {} if self.skip_cache else {i: self.cache_map.get(i) for i in indices}
        missing = [i for i in indices if volumes.get(i) is None]
        by_shape: dict[tuple, list[int]] = {}
        for i in missing:
            by_shape.setdefault(self.arrays.shapes[self._fov_of_item[i]][2:], []).append(i)
        for members in by_shape.values():
            regions = [(int(self._fov_of_item[i]), (int(self._t_of_item[i]), self._channel_indices)) for i in members]
            read = torch.from_numpy(np.asarray(self.arrays.read(regions), dtype=np.float32))
            for i, volume in zip(members, read, strict=True):
                volumes[i] = volume
                if not self.skip_cache:
                    self.cache_map[i] = volume
        return [self._sample(i, volumes[i]) for i in indices]


class CachedOmeZarrDataModule(StoredTransforms, GPUTransformDataModule, SelectWell):
    """GPU-augmentation DataModule over cached whole volumes of an HCS plate.

    Parameters
    ----------
    data_path : Path
        HCS OME-Zarr plate.
    channels : str | list[str]
        Channels to read.
    batch_size, num_workers : int
        Loader settings (workers are spawned processes sharing the cache).
    split_ratio : float
        Fraction of FOVs used for training.
    train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms : list[DictTransform]
        Transform lists, exposed as ``Compose`` properties.
    pin_memory : bool
        Pin loaded batches.
    skip_cache : bool
        Disable the shared cache.
    include_wells, exclude_fovs : list[str] | None
        Well and FOV filters.
    prefetch_factor : int | None
        Batches prefetched per worker.
    """

    def __init__(
        self,
        data_path: Path,
        channels: str | list[str],
        batch_size: int,
        num_workers: int,
        split_ratio: float,
        train_cpu_transforms: list[DictTransform],
        val_cpu_transforms: list[DictTransform],
        train_gpu_transforms: list[DictTransform],
        val_gpu_transforms: list[DictTransform],
        pin_memory: bool = True,
        skip_cache: bool = False,
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        prefetch_factor: int | None = None,
    ) -> None:
        super().__init__()
        self.data_path = Path(data_path)
        self.channels = _ensure_channel_list(channels)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_ratio = split_ratio
        self._store_transforms(train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms)
        self.pin_memory = pin_memory
        self.skip_cache = skip_cache
        self._include_wells = include_wells
        self._exclude_fovs = exclude_fovs
        self.prefetch_factor = prefetch_factor

    def setup(self, stage: str) -> None:
        """Split the filtered FOVs into train and validation datasets with separate caches."""
        positions = fit_positions(self, self.data_path, stage)
        set_track_meta(False)
        shuffled = [positions[i] for i in torch.randperm(len(positions)).tolist()]
        n_train = int(len(shuffled) * self.split_ratio)
        self._manager = WORKER_CONTEXT.Manager()
        settings = {"channel_names": self.channels, "skip_cache": self.skip_cache}
        self.train_dataset = CachedOmeZarrDataset(
            shuffled[:n_train], cache_map=self._manager.dict(), transform=self.train_cpu_transforms, **settings
        )
        self.val_dataset = CachedOmeZarrDataset(
            shuffled[n_train:], cache_map=self._manager.dict(), transform=self.val_cpu_transforms, **settings
        )
        _logger.info(f"Cached OME-Zarr: {n_train} training and {len(shuffled) - n_train} validation FOVs.")
