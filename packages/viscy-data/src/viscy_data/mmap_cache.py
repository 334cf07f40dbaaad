"""Whole-volume cache in a memory-mapped file on local scratch, filled while the first epoch reads the plate.

Each (FOV, time) volume is read from the OME-Zarr store once, preprocessed (e.g. normalised), and
written to a ``tensordict.MemoryMappedTensor`` shared by all loader workers; later epochs read the
memory map. Needs the ``mmap`` extra (tensordict).
"""

from __future__ import annotations

import os
import tempfile
from multiprocessing.managers import DictProxy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from iohub.ngff import Position
from monai.data import set_track_meta
from torch import Tensor

from viscy_data._typing import DictTransform, NormMeta
from viscy_data._utils import _ensure_channel_list, _read_norm_meta
from viscy_data.distributed import get_rank
from viscy_data.gpu_aug import GPUTransformDataModule, StoredTransforms, fit_positions
from viscy_data.io import WORKER_CONTEXT, channel_indices, fov_name, store_path
from viscy_data.normalization import check_norm_meta as _check_norm_meta
from viscy_data.optional import require
from viscy_data.select import SelectWell
from viscy_transforms import Compose

if TYPE_CHECKING:
    from tensordict import MemoryMappedTensor

__all__ = ["MmappedDataModule", "MmappedDataset"]

_INSTALL = "pip install 'viscy-data[mmap]'"


class MmappedDataset(torch.utils.data.Dataset):
    """One item per (FOV, time): the preprocessed ``(C, Z, Y, X)`` volume, cached in a memory map.

    Parameters
    ----------
    positions : list[Position]
        FOVs to read; ``buffer`` row ``i`` holds item ``i`` (FOV-major, then time).
    channel_names : list[str]
        Channels to read.
    cache_map : DictProxy
        Shared dict marking the items already written to ``buffer``.
    buffer : MemoryMappedTensor
        ``(n_items, C, Z, Y, X)`` float32 memory map shared by the workers.
    preprocess_transforms : Compose | None
        Applied once to ``{channel: (1, Z, Y, X)}`` (plus ``norm_meta``) before caching; must keep the shape.
    cpu_transform : Compose | None
        Applied to ``{channel: (1, Z, Y, X)}`` on every read.
    array_key : str
        Multiscale level to read.
    load_normalization_metadata : bool
        Give the preprocessing transforms the FOV's ``norm_meta``.
    """

    def __init__(
        self,
        positions: list[Position],
        channel_names: list[str],
        cache_map: DictProxy,
        buffer: MemoryMappedTensor,
        preprocess_transforms: Compose | None = None,
        cpu_transform: Compose | None = None,
        array_key: str = "0",
        load_normalization_metadata: bool = True,
    ) -> None:
        require("tensordict", "MmappedDataset", _INSTALL)
        super().__init__()
        if not positions:
            raise ValueError("MmappedDataset needs at least one FOV; the position list is empty.")
        self.positions = positions
        self.channel_names = _ensure_channel_list(channel_names)
        self._channel_indices = channel_indices(positions, self.channel_names)
        self.array_key = array_key
        n_frames = np.array([position[array_key].frames for position in positions])
        self._fov_of_item = np.repeat(np.arange(len(positions)), n_frames)
        self._t_of_item = np.concatenate([np.arange(n) for n in n_frames])
        if len(buffer) < len(self) or tuple(buffer.shape[1:2]) != (len(self.channel_names),):
            raise ValueError(
                f"Buffer of shape {tuple(buffer.shape)} cannot hold {len(self)} volumes of "
                f"{len(self.channel_names)} channels"
            )
        self.cache_map = cache_map
        self.buffer = buffer
        self.preprocess_transforms = preprocess_transforms
        self.cpu_transform = cpu_transform
        self.norm_metas: list[NormMeta | None] = (
            [_read_norm_meta(position) for position in positions] if load_normalization_metadata else []
        )
        self.load_normalization_metadata = load_normalization_metadata
        cache_map.update(dict.fromkeys(range(len(self)), None))

    def __len__(self) -> int:
        return len(self._fov_of_item)

    def _split(self, volume: Tensor) -> dict[str, Any]:
        return {name: volume[i : i + 1] for i, name in enumerate(self.channel_names)}

    def _preprocess_volume(self, volume: Tensor, fov: int) -> Tensor:
        """Apply the preprocessing transforms channel-wise; the volume must keep its shape."""
        if self.preprocess_transforms is None:
            return volume
        channels = self._split(volume)
        if self.load_normalization_metadata and self.norm_metas[fov] is not None:
            channels["norm_meta"] = self.norm_metas[fov]
        channels = self.preprocess_transforms(channels)
        channel_shape = (1, *volume.shape[1:])
        for name in self.channel_names:
            if channels[name].shape != channel_shape:
                raise ValueError(
                    f"Preprocessing transforms changed the shape of channel '{name}' of FOV "
                    f"'{fov_name(self.positions[fov])}' from {channel_shape} to {tuple(channels[name].shape)}; "
                    "they must keep it"
                )
        return torch.cat([channels[name] for name in self.channel_names])

    def _cache(self, index: int) -> None:
        """Read, preprocess and write one volume to the memory map."""
        fov, t = int(self._fov_of_item[index]), int(self._t_of_item[index])
        volume = self.positions[fov][self.array_key].oindex[t, self._channel_indices]
        volume = torch.from_numpy(np.asarray(volume, dtype=np.float32))
        self.buffer[index] = self._preprocess_volume(volume, fov)
        self.cache_map[index] = True

    def _sample(self, volume: Tensor) -> list[dict[str, Tensor]]:
        channels = self._split(volume)
        transformed = self.cpu_transform(channels) if self.cpu_transform else channels
        return transformed if isinstance(transformed, list) else [transformed]

    def __getitem__(self, index: int) -> list[dict[str, Tensor]]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[list[dict[str, Tensor]]]:
        """Fill the cache for missing items, then gather the batch from the memory map in one indexing call."""
        indices = [int(index) for index in indices]
        for index in indices:
            if self.cache_map.get(index) is None:
                self._cache(index)
        volumes = self.buffer[torch.as_tensor(indices)]
        return [self._sample(volume) for volume in volumes]


class MmappedDataModule(StoredTransforms, GPUTransformDataModule, SelectWell):
    """GPU-augmentation DataModule over an HCS plate cached (after preprocessing) in memory-mapped files.

    Parameters
    ----------
    data_path : Path
        HCS OME-Zarr plate.
    channels : str | list[str]
        Channels to read.
    batch_size, num_workers : int
        Loader settings.
    split_ratio : float
        Fraction of FOVs used for training (FOVs are shuffled with the global torch RNG).
    preprocess_transforms : list[DictTransform]
        Applied once per volume before caching (must keep the shape).
    train_cpu_transforms, val_cpu_transforms : list[DictTransform]
        Applied to each read.
    train_gpu_transforms, val_gpu_transforms : list[DictTransform]
        Batched transforms exposed for the LightningModule to run on device.
    pin_memory : bool
        Pin loaded batches.
    prefetch_factor : int | None
        Batches prefetched per worker (ignored without workers).
    array_key : str
        Multiscale level to read.
    scratch_dir : Path | None
        Fast local folder for the memory maps (default: the system temporary folder).
    include_wells, exclude_fovs : list[str] | None
        Well and FOV filters.
    """

    def __init__(
        self,
        data_path: Path,
        channels: str | list[str],
        batch_size: int,
        num_workers: int,
        split_ratio: float,
        preprocess_transforms: list[DictTransform],
        train_cpu_transforms: list[DictTransform],
        val_cpu_transforms: list[DictTransform],
        train_gpu_transforms: list[DictTransform],
        val_gpu_transforms: list[DictTransform],
        pin_memory: bool = True,
        prefetch_factor: int | None = None,
        array_key: str = "0",
        scratch_dir: Path | None = None,
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
    ) -> None:
        require("tensordict", "MmappedDataModule", _INSTALL)
        super().__init__()
        self.data_path = Path(data_path)
        self.channels = _ensure_channel_list(channels)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.split_ratio = split_ratio
        self._preprocessing_transforms = Compose(preprocess_transforms)
        self._store_transforms(train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms)
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor if num_workers > 0 else None
        self.array_key = array_key
        self.scratch_dir = Path(scratch_dir) if scratch_dir is not None else None
        self._include_wells = include_wells
        self._exclude_fovs = exclude_fovs
        self.prepare_data_per_node = True

    @property
    def preprocessing_transforms(self) -> Compose:
        return self._preprocessing_transforms

    @property
    def cache_dir(self) -> Path:
        """``<scratch>/<SLURM_JOB_ID or viscy_cache>/<rank>/<plate name>``, created if needed."""
        scratch = self.scratch_dir or Path(tempfile.gettempdir())
        cache_dir = scratch / os.getenv("SLURM_JOB_ID", "viscy_cache") / str(get_rank()) / self.data_path.name
        cache_dir.mkdir(parents=True, exist_ok=True)
        return cache_dir

    def _volume_shape(self, positions: list[Position]) -> tuple[int, ...]:
        """The common ``(T, Z, Y, X)`` of all FOVs (the memory map holds equally shaped volumes)."""
        shapes = {fov_name(position): position[self.array_key].shape for position in positions}
        first_name, first_shape = next(iter(shapes.items()))
        for name, shape in shapes.items():
            if (shape[0], *shape[2:]) != (first_shape[0], *first_shape[2:]):
                raise ValueError(
                    f"FOV '{name}' of {self.data_path} has shape {shape} but '{first_name}' has {first_shape}; "
                    "MmappedDataModule needs the same (T, Z, Y, X) in every FOV"
                )
        return (first_shape[0], *first_shape[2:])

    def _buffer(self, name: str, n_fovs: int, volume_shape: tuple[int, ...]) -> MemoryMappedTensor:
        from tensordict import MemoryMappedTensor

        n_frames, *zyx = volume_shape
        filename = self.cache_dir / f"{name}.mmap"
        filename.unlink(missing_ok=True)
        return MemoryMappedTensor.empty(
            (n_fovs * n_frames, len(self.channels), *zyx), dtype=torch.float32, filename=filename
        )

    def setup(self, stage: str) -> None:
        """Split the filtered FOVs and allocate one memory map and cache map per split.

        Parameters
        ----------
        stage : str
            ``"fit"`` or ``"validate"``.
        """
        positions = fit_positions(self, self.data_path, stage)
        require("tensordict", "MmappedDataModule", _INSTALL)
        for position in positions:
            if self.array_key not in position.array_keys():
                raise KeyError(f"FOV '{fov_name(position)}' of {store_path(position)} has no array '{self.array_key}'")
        volume_shape = self._volume_shape(positions)
        _check_norm_meta(
            self.preprocessing_transforms.transforms,
            {fov_name(position): _read_norm_meta(position) for position in positions},
            str(self.data_path),
        )
        set_track_meta(False)
        shuffled = [positions[i] for i in torch.randperm(len(positions)).tolist()]
        n_train = int(len(shuffled) * self.split_ratio)
        if n_train == 0 or n_train == len(shuffled):
            raise ValueError(
                f"split_ratio {self.split_ratio} of {len(shuffled)} FOVs in {self.data_path} leaves no training "
                "or no validation FOV"
            )
        manager = WORKER_CONTEXT.Manager()
        settings = {"channel_names": self.channels, "array_key": self.array_key}
        self.train_dataset = MmappedDataset(
            shuffled[:n_train],
            cache_map=manager.dict(),
            buffer=self._buffer("train", n_train, volume_shape),
            preprocess_transforms=self.preprocessing_transforms,
            cpu_transform=self.train_cpu_transforms,
            **settings,
        )
        self.val_dataset = MmappedDataset(
            shuffled[n_train:],
            cache_map=manager.dict(),
            buffer=self._buffer("val", len(shuffled) - n_train, volume_shape),
            preprocess_transforms=self.preprocessing_transforms,
            cpu_transform=self.val_cpu_transforms,
            **settings,
        )
