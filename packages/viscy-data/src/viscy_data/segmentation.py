"""Paired predicted and ground-truth label images, for scoring segmentations at test time."""

import logging
from pathlib import Path

import numpy as np
import torch
from iohub.ngff import Plate, Position, open_ome_zarr
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from viscy_data._typing import SegmentationSample
from viscy_data.io import WORKER_CONTEXT, channel_indices, store_path

__all__ = ["SegmentationDataModule", "SegmentationDataset"]

_logger = logging.getLogger(__name__)


class SegmentationDataset(Dataset):
    """Predicted and target label images of the same positions, one sample per (position, time).

    Parameters
    ----------
    pred_dataset : Plate
        HCS plate of predicted labels.
    target_dataset : Plate
        HCS plate of ground-truth labels; its positions define the samples and must all exist in
        ``pred_dataset`` with the same number of time points.
    pred_channel : str
        Channel of the predicted labels.
    target_channel : str
        Channel of the ground-truth labels.
    pred_z_slice : int | slice
        Z index (gives ``(Y, X)`` images) or slice (gives ``(Z, Y, X)``) of the predictions.
    target_z_slice : int | slice
        Z index or slice of the targets.
    img_name : str
        Array key in each position (``"0"`` is full resolution).
    """

    def __init__(
        self,
        pred_dataset: Plate,
        target_dataset: Plate,
        pred_channel: str,
        target_channel: str,
        pred_z_slice: int | slice,
        target_z_slice: int | slice,
        img_name: str = "0",
    ) -> None:
        super().__init__()
        self.pred_dataset = pred_dataset
        self.target_dataset = target_dataset
        self.pred_z_slice = pred_z_slice
        self.target_z_slice = target_z_slice
        self.img_name = img_name
        self.positions: list[tuple[Position, Position]] = self._pair_positions()
        (self.pred_channel,) = channel_indices([pred for pred, _ in self.positions], [pred_channel])
        (self.target_channel,) = channel_indices([target for _, target in self.positions], [target_channel])
        n_times = np.array([target[img_name].frames for _, target in self.positions], dtype=np.int64)
        self._position_idx = np.repeat(np.arange(len(self.positions)), n_times)
        self._time_idx = np.concatenate([np.arange(n) for n in n_times])
        _logger.info(f"Number of test samples: {len(self)}")

    def _pair_positions(self) -> list[tuple[Position, Position]]:
        """Match every target position with the prediction position of the same name."""
        pairs = []
        for name, target in self.target_dataset.positions():
            try:
                pred = self.pred_dataset[name]
            except KeyError:
                raise KeyError(
                    f"Position '{name}' of target store {store_path(self.target_dataset)} "
                    f"is missing from prediction store {store_path(self.pred_dataset)}"
                ) from None
            for position, store in ((pred, self.pred_dataset), (target, self.target_dataset)):
                if self.img_name not in position.array_keys():
                    raise KeyError(f"Array '{self.img_name}' not found in position '{name}' of {store_path(store)}")
            pred_shape, target_shape = pred[self.img_name].shape, target[self.img_name].shape
            if pred_shape[0] != target_shape[0]:
                raise ValueError(
                    f"Shape mismatch between prediction and target: position '{name}' has "
                    f"{pred_shape[0]} time points in prediction {pred_shape} and "
                    f"{target_shape[0]} in target {target_shape}"
                )
            pairs.append((pred, target))
        if not pairs:
            raise ValueError(f"Target store {store_path(self.target_dataset)} has no positions")
        return pairs

    def __len__(self) -> int:
        return len(self._position_idx)

    def __getitem__(self, idx: int) -> SegmentationSample:
        position_idx = int(self._position_idx[idx])
        time_idx = int(self._time_idx[idx])
        pred, target = self.positions[position_idx]
        pred_img = pred[self.img_name][time_idx, self.pred_channel, self.pred_z_slice]
        target_img = target[self.img_name][time_idx, self.target_channel, self.target_z_slice]
        return {
            "pred": torch.from_numpy(np.asarray(pred_img).astype(np.int16)),
            "target": torch.from_numpy(np.asarray(target_img).astype(np.int16)),
            "position_idx": position_idx,
            "time_idx": time_idx,
        }


class SegmentationDataModule(LightningDataModule):
    """Test-stage data module yielding predicted and ground-truth label images.

    Parameters
    ----------
    pred_dataset : Path
        HCS store of predicted labels.
    target_dataset : Path
        HCS store of ground-truth labels.
    pred_channel : str
        Channel of the predicted labels.
    target_channel : str
        Channel of the ground-truth labels.
    pred_z_slice : int
        Z index of the predictions.
    target_z_slice : int
        Z index of the targets.
    batch_size : int
        Samples per batch.
    num_workers : int
        Data-loading worker processes.
    """

    def __init__(
        self,
        pred_dataset: Path,
        target_dataset: Path,
        pred_channel: str,
        target_channel: str,
        pred_z_slice: int,
        target_z_slice: int,
        batch_size: int,
        num_workers: int,
    ) -> None:
        super().__init__()
        self.pred_dataset = open_ome_zarr(pred_dataset, layout="hcs", mode="r")
        self.target_dataset = open_ome_zarr(target_dataset, layout="hcs", mode="r")
        self.pred_channel = pred_channel
        self.target_channel = target_channel
        self.pred_z_slice = pred_z_slice
        self.target_z_slice = target_z_slice
        self.batch_size = batch_size
        self.num_workers = num_workers

    def setup(self, stage: str) -> None:
        """Build the test dataset.

        Parameters
        ----------
        stage : str
            Must be ``"test"``.
        """
        if stage != "test":
            raise NotImplementedError("Only test stage is supported!")
        self.test_dataset = SegmentationDataset(
            self.pred_dataset,
            self.target_dataset,
            self.pred_channel,
            self.target_channel,
            self.pred_z_slice,
            self.target_z_slice,
        )

    def test_dataloader(self) -> DataLoader:
        """Loader over all (position, time) pairs in store order."""
        return DataLoader(
            self.test_dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            multiprocessing_context=WORKER_CONTEXT if self.num_workers > 0 else None,
        )
