"""CTMC-v1 (Cell Tracking with Mitosis Detection) single-channel DIC plates for GPU-augmented training."""

from __future__ import annotations

from pathlib import Path

from iohub.ngff import open_ome_zarr
from monai.data import set_track_meta
from torch.utils.data import Subset

from viscy_data.gpu_aug import CachedOmeZarrDataset, GPUTransformDataModule, StoredTransforms
from viscy_data.io import WORKER_CONTEXT
from viscy_transforms import Compose, MapTransform

__all__ = ["CTMCv1DataModule"]


class CTMCv1DataModule(StoredTransforms, GPUTransformDataModule):
    """Training and validation HCS stores of CTMC-v1, read whole and cached in memory.

    Every position of each store is used; validation keeps every ``val_subsample_ratio``-th volume.

    Parameters
    ----------
    train_data_path, val_data_path : str | Path
        HCS OME-Zarr stores for training and validation.
    train_cpu_transforms, val_cpu_transforms : list[MapTransform]
        Per-sample transforms run in the loader workers.
    train_gpu_transforms, val_gpu_transforms : list[MapTransform]
        Batched transforms exposed for the LightningModule to run on device.
    batch_size : int
        Volumes per batch.
    num_workers : int
        Loader worker processes (sharing the cache).
    val_subsample_ratio : int
        Keep one validation volume in this many.
    channel_name : str
        Channel to read.
    pin_memory : bool
        Pin loaded batches.
    """

    def __init__(
        self,
        train_data_path: str | Path,
        val_data_path: str | Path,
        train_cpu_transforms: list[MapTransform],
        val_cpu_transforms: list[MapTransform],
        train_gpu_transforms: list[MapTransform],
        val_gpu_transforms: list[MapTransform],
        batch_size: int = 16,
        num_workers: int = 8,
        val_subsample_ratio: int = 30,
        channel_name: str = "DIC",
        pin_memory: bool = True,
    ) -> None:
        super().__init__()
        if val_subsample_ratio < 1:
            raise ValueError(f"val_subsample_ratio must be a positive integer, got {val_subsample_ratio}")
        self.train_data_path = Path(train_data_path)
        self.val_data_path = Path(val_data_path)
        self._store_transforms(train_cpu_transforms, val_cpu_transforms, train_gpu_transforms, val_gpu_transforms)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_subsample_ratio = val_subsample_ratio
        self.channel_name = channel_name
        self.pin_memory = pin_memory
        self.prefetch_factor = None

    def _dataset(self, data_path: Path, transform: Compose, cache_map) -> CachedOmeZarrDataset:
        if not data_path.exists():
            raise FileNotFoundError(f"OME-Zarr store not found: {data_path}")
        plate = open_ome_zarr(data_path, mode="r", layout="hcs")
        positions = [position for _, position in plate.positions()]
        if not positions:
            raise ValueError(f"OME-Zarr store {data_path} has no positions")
        return CachedOmeZarrDataset(
            positions, [self.channel_name], cache_map, transform=transform, load_normalization_metadata=False
        )

    def setup(self, stage: str) -> None:
        """Build the training and (subsampled) validation datasets, each with its own shared cache.

        Parameters
        ----------
        stage : str
            ``"fit"`` (or ``"validate"``).
        """
        if stage not in ("fit", "validate"):
            raise NotImplementedError("Only fit stage is supported")
        set_track_meta(False)
        manager = WORKER_CONTEXT.Manager()
        self.train_dataset = self._dataset(self.train_data_path, self.train_cpu_transforms, manager.dict())
        full_val = self._dataset(self.val_data_path, self.val_cpu_transforms, manager.dict())
        self.val_dataset = Subset(full_val, range(0, len(full_val), self.val_subsample_ratio))
