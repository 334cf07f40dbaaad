"""Data modules that train on several data modules at once, by combining their loaders or concatenating datasets."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from monai.data import ThreadDataLoader
from monai.data.utils import no_collation
from torch import Tensor
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from viscy_data._utils import _collate_samples
from viscy_data.distributed import ShardedDistributedSampler, is_distributed
from viscy_data.io import WORKER_CONTEXT

__all__ = [
    "BatchedConcatDataModule",
    "BatchedConcatDataset",
    "CachedConcatDataModule",
    "CombineMode",
    "CombinedDataModule",
    "ConcatDataModule",
]

_FIT_STAGES = ("fit", "validate")


class CombineMode(Enum):
    """How :class:`CombinedDataModule` iterates its loaders (modes of Lightning's ``CombinedLoader``)."""

    MIN_SIZE = "min_size"
    MAX_SIZE_CYCLE = "max_size_cycle"
    MAX_SIZE = "max_size"
    SEQUENTIAL = "sequential"


def _combine_mode(mode: CombineMode | str, name: str) -> str:
    try:
        return CombineMode(mode).value
    except ValueError:
        raise ValueError(f"{name} {mode!r} is not one of {[m.value for m in CombineMode]}") from None


def _attach_trainer(parent: LightningDataModule, data_modules: Sequence[LightningDataModule]) -> None:
    """Give the child data modules the parent's trainer (their hooks may consult its state)."""
    for dm in data_modules:
        dm.trainer = parent.trainer


class CombinedDataModule(LightningDataModule):
    """Iterate the loaders of several data modules together with Lightning's ``CombinedLoader``.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        Data modules to combine.
    train_mode, val_mode, test_mode, predict_mode : CombineMode | str
        ``CombinedLoader`` mode of each stage.
    """

    def __init__(
        self,
        data_modules: Sequence[LightningDataModule],
        train_mode: CombineMode = CombineMode.MAX_SIZE_CYCLE,
        val_mode: CombineMode = CombineMode.SEQUENTIAL,
        test_mode: CombineMode = CombineMode.SEQUENTIAL,
        predict_mode: CombineMode = CombineMode.SEQUENTIAL,
    ) -> None:
        super().__init__()
        self.data_modules = list(data_modules)
        self.train_mode = _combine_mode(train_mode, "train_mode")
        self.val_mode = _combine_mode(val_mode, "val_mode")
        self.test_mode = _combine_mode(test_mode, "test_mode")
        self.predict_mode = _combine_mode(predict_mode, "predict_mode")
        self.prepare_data_per_node = True

    def prepare_data(self) -> None:
        """Prepare every data module (with this module's trainer attached)."""
        _attach_trainer(self, self.data_modules)
        for dm in self.data_modules:
            dm.prepare_data()

    def setup(self, stage: str) -> None:
        """Set up every data module for ``stage``."""
        _attach_trainer(self, self.data_modules)
        for dm in self.data_modules:
            dm.setup(stage)

    def train_dataloader(self) -> CombinedLoader:
        return CombinedLoader([dm.train_dataloader() for dm in self.data_modules], mode=self.train_mode)

    def val_dataloader(self) -> CombinedLoader:
        return CombinedLoader([dm.val_dataloader() for dm in self.data_modules], mode=self.val_mode)

    def test_dataloader(self) -> CombinedLoader:
        return CombinedLoader([dm.test_dataloader() for dm in self.data_modules], mode=self.test_mode)

    def predict_dataloader(self) -> CombinedLoader:
        return CombinedLoader([dm.predict_dataloader() for dm in self.data_modules], mode=self.predict_mode)


class BatchedConcatDataset(ConcatDataset):
    """Concatenation of datasets that read whole batches with ``__getitems__``.

    A batch of indices is split by constituent dataset (in order of first appearance); each part is
    read with that dataset's ``__getitems__``, which must return a dict, tagged ``"_dataset_idx"``.
    """

    def __getitem__(self, idx: int) -> Any:
        raise NotImplementedError("BatchedConcatDataset is read in batches with __getitems__")

    def _get_sample_indices(self, idx: int) -> tuple[int, int]:
        """Map a (possibly negative) index to ``(dataset index, sample index)``."""
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        if idx >= len(self):
            raise IndexError(f"index {idx} out of range for dataset of length {len(self)}")
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx - (self.cumulative_sizes[dataset_idx - 1] if dataset_idx > 0 else 0)
        return dataset_idx, sample_idx

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """Read ``indices`` as one micro-batch per constituent dataset."""
        indices = np.asarray(indices, dtype=np.int64)
        length = len(self)
        if np.any(indices < -length):
            raise ValueError("absolute value of index should not exceed dataset length")
        if np.any(indices >= length):
            raise IndexError(f"indices {indices[indices >= length].tolist()} out of range for length {length}")
        indices = np.where(indices < 0, indices + length, indices)
        dataset_ids = np.searchsorted(self.cumulative_sizes, indices, side="right")
        starts = np.concatenate([[0], self.cumulative_sizes])
        _, first_seen = np.unique(dataset_ids, return_index=True)
        micro_batches = []
        for dataset_idx in dataset_ids[np.sort(first_seen)]:
            dataset = self.datasets[dataset_idx]
            sample_indices = (indices[dataset_ids == dataset_idx] - starts[dataset_idx]).tolist()
            micro_batch = dataset.__getitems__(sample_indices)
            if not isinstance(micro_batch, dict):
                raise TypeError(
                    f"{type(dataset).__name__}.__getitems__ returned {type(micro_batch).__name__}; "
                    "BatchedConcatDataset needs datasets that return a batch dict"
                )
            micro_batch["_dataset_idx"] = int(dataset_idx)
            micro_batches.append(micro_batch)
        return micro_batches


def _shared_setting(data_modules: Sequence[LightningDataModule], name: str, message: str) -> Any:
    """A loader setting that every data module must share."""
    values = [getattr(dm, name, None) for dm in data_modules]
    if any(value != values[0] for value in values[1:]):
        raise ValueError(f"{message}: {name} = {values}")
    return values[0]


class _ConcatenatedDataModules(LightningDataModule):
    """Set up several data modules for fitting and concatenate their training and validation datasets.

    ``num_workers`` and ``batch_size`` must be the same in all data modules.
    """

    _ConcatDataset = ConcatDataset

    def __init__(self, data_modules: Sequence[LightningDataModule]) -> None:
        super().__init__()
        if not data_modules:
            raise ValueError(f"{type(self).__name__} needs at least one data module")
        self.data_modules = list(data_modules)
        self.num_workers = _shared_setting(self.data_modules, "num_workers", "Inconsistent number of workers")
        self.batch_size = _shared_setting(self.data_modules, "batch_size", "Inconsistent batch size")
        self.prepare_data_per_node = True

    def prepare_data(self) -> None:
        """Prepare every data module (with this module's trainer attached)."""
        _attach_trainer(self, self.data_modules)
        for dm in self.data_modules:
            dm.prepare_data()

    def setup(self, stage: str) -> None:
        """Set up every data module and concatenate their training and validation datasets.

        Parameters
        ----------
        stage : str
            ``"fit"`` or ``"validate"``.
        """
        if stage not in _FIT_STAGES:
            raise NotImplementedError(f"Only fit stage is supported (and validate), got '{stage}'")
        _attach_trainer(self, self.data_modules)
        for dm in self.data_modules:
            dm.setup(stage)
        patches = [getattr(dm, "train_patches_per_stack", 1) for dm in self.data_modules]
        if any(p != patches[0] for p in patches[1:]):
            raise ValueError(f"Inconsistent patches per stack: {patches}")
        self.train_patches_per_stack = patches[0]
        self.train_dataset = self._ConcatDataset([dm.train_dataset for dm in self.data_modules])
        self.val_dataset = self._ConcatDataset([dm.val_dataset for dm in self.data_modules])


class ConcatDataModule(_ConcatenatedDataModules):
    """Train on the concatenated training and validation datasets of several data modules.

    Loader settings are taken from the first data module; ``num_workers`` and ``batch_size`` must
    be the same in all.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        Data modules with ``train_dataset`` and ``val_dataset`` after ``setup("fit")``.
    """

    def __init__(self, data_modules: Sequence[LightningDataModule]) -> None:
        super().__init__(data_modules)
        first = self.data_modules[0]
        self.persistent_workers = getattr(first, "persistent_workers", False)
        self.prefetch_factor = getattr(first, "prefetch_factor", None)
        self.pin_memory = getattr(first, "pin_memory", False)

    def _loader_kwargs(self) -> dict[str, Any]:
        workers = self.num_workers > 0
        return {
            "num_workers": self.num_workers,
            "persistent_workers": bool(self.persistent_workers) and workers,
            "prefetch_factor": self.prefetch_factor if workers else None,
            "pin_memory": self.pin_memory,
        }

    def train_dataloader(self) -> DataLoader:
        """Shuffled loader of whole stacks, flattening multi-patch samples into the batch."""
        return DataLoader(
            self.train_dataset,
            shuffle=True,
            batch_size=self.batch_size // self.train_patches_per_stack,
            collate_fn=_collate_samples,
            drop_last=True,
            multiprocessing_context=WORKER_CONTEXT if self.num_workers > 0 else None,
            **self._loader_kwargs(),
        )

    def val_dataloader(self) -> DataLoader:
        """Validation loader in dataset order."""
        return DataLoader(
            self.val_dataset,
            shuffle=False,
            batch_size=self.batch_size,
            multiprocessing_context=WORKER_CONTEXT if self.num_workers > 0 else None,
            **self._loader_kwargs(),
        )


def _merge_micro_batches(values: list[Any]) -> Any:
    """Merge one key of several micro-batches: tensors are concatenated, lists chained, dicts merged per key."""
    first = values[0]
    if isinstance(first, Tensor):
        return torch.cat(values)
    if isinstance(first, list):
        return [item for value in values for item in value]
    if isinstance(first, dict):
        return {key: _merge_micro_batches([value[key] for value in values]) for key in first}
    return values


class BatchedConcatDataModule(ConcatDataModule):
    """Concatenation of data modules whose datasets read whole batches (e.g. triplet data modules).

    Each batch holds one micro-batch per constituent dataset; after transfer to the device each
    micro-batch goes through its own data module's ``on_after_batch_transfer`` (its GPU
    augmentations) and the results are merged into one batch.
    """

    _ConcatDataset = BatchedConcatDataset

    def _thread_loader(self, dataset: Dataset, shuffle: bool) -> ThreadDataLoader:
        return ThreadDataLoader(
            dataset,
            use_thread_workers=True,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=no_collation,
            **self._loader_kwargs(),
        )

    def train_dataloader(self) -> ThreadDataLoader:
        """Shuffled loader yielding lists of micro-batches."""
        return self._thread_loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> ThreadDataLoader:
        """Validation loader yielding lists of micro-batches."""
        return self._thread_loader(self.val_dataset, shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Apply each micro-batch's data-module hook on device, then merge the micro-batches."""
        if not isinstance(batch, list):
            return batch
        processed = []
        for micro_batch in batch:
            if "_dataset_idx" in micro_batch:
                dm = self.data_modules[micro_batch.pop("_dataset_idx")]
                micro_batch = dm.on_after_batch_transfer(micro_batch, dataloader_idx)
            processed.append(micro_batch)
        return {key: _merge_micro_batches([mb[key] for mb in processed]) for key in processed[0]}


class CachedConcatDataModule(_ConcatenatedDataModules):
    """Concatenation of cached GPU-augmentation data modules (e.g. ``CachedOmeZarrDataModule``).

    Batches are lists of the datasets' per-item outputs (identity collation), for the
    LightningModule to augment on device. Under DDP each rank reads its own contiguous shard.

    Parameters
    ----------
    data_modules : Sequence[LightningDataModule]
        Data modules with ``train_dataset`` and ``val_dataset`` after ``setup("fit")``.
    """

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        sampler = ShardedDistributedSampler(dataset, shuffle=shuffle) if is_distributed() else None
        workers = self.num_workers > 0
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=workers,
            multiprocessing_context=WORKER_CONTEXT if workers else None,
            drop_last=drop_last,
            collate_fn=no_collation,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled loader of per-item outputs (a rank's shard under DDP)."""
        return self._loader(self.train_dataset, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        """Validation loader of per-item outputs."""
        return self._loader(self.val_dataset, shuffle=False, drop_last=False)
