"""Labelled single-cell patches from an HCS plate and an annotation table, for supervised classifiers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from iohub.ngff import Plate, open_ome_zarr
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from viscy_data._typing import INDEX_COLUMNS, AnnotationColumns
from viscy_data._utils import _read_norm_meta
from viscy_data.io import WORKER_CONTEXT, channel_indices, store_path
from viscy_data.optional import require
from viscy_transforms import Compose

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ClassificationDataModule", "ClassificationDataset"]

_INSTALL = "pip install 'viscy-data[triplet]'"

_LOCATION_COLUMNS = ["fov_name", "t", "y", "x"]


def _check_columns(table: pd.DataFrame, required: list[str], source: str) -> None:
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise ValueError(f"{source} lacks columns {missing}; its columns are {list(table.columns)}")


class ClassificationDataset(Dataset):
    """Patches centred on annotated cells, normalised by their FOV's statistics, with a label.

    Parameters
    ----------
    plate : Plate
        HCS plate of the images, with ``fov_statistics`` normalization metadata for ``channel_name``.
    annotation : pd.DataFrame
        One row per cell with ``fov_name, t, y, x`` and ``label_column`` (plus all of
        ``INDEX_COLUMNS`` if ``return_indices``). Rows whose patch would cross the image border are dropped.
    channel_name : str
        Channel to read.
    z_range : tuple[int, int]
        Z slices ``[start, stop)`` of the patch.
    transform : Callable | None
        Applied to the normalised ``(1, Z, Yp, Xp)`` patch.
    initial_yx_patch_size : tuple[int, int]
        Patch size in Y and X.
    return_indices : bool
        Also return the row's ``INDEX_COLUMNS`` as a dict.
    label_column : AnnotationColumns
        Column holding the numeric label.
    """

    def __init__(
        self,
        plate: Plate,
        annotation: pd.DataFrame,
        channel_name: str,
        z_range: tuple[int, int],
        transform: Callable | None,
        initial_yx_patch_size: tuple[int, int],
        return_indices: bool = False,
        label_column: AnnotationColumns = "infection_state",
    ) -> None:
        pd = require("pandas", "ClassificationDataset", _INSTALL)
        require("tensorstore", "ClassificationDataset", _INSTALL)
        super().__init__()
        store = store_path(plate)
        required = _LOCATION_COLUMNS + [label_column] + (INDEX_COLUMNS if return_indices else [])
        _check_columns(annotation, list(dict.fromkeys(required)), "Annotation table")
        if not pd.api.types.is_numeric_dtype(annotation[label_column]):
            raise ValueError(
                f"Label column '{label_column}' must be numeric, got dtype {annotation[label_column].dtype}"
            )
        self.z_range = slice(*z_range)
        self.transform = transform
        self.return_indices = return_indices
        self.label_column = label_column
        self.y_half, self.x_half = (size // 2 for size in initial_yx_patch_size)

        _, first_position = next(plate.positions())
        _, _, n_z, height, width = first_position["0"].shape
        if not 0 <= z_range[0] < z_range[1] <= n_z:
            raise ValueError(f"z_range {tuple(z_range)} does not fit the {n_z} Z slices of {store}")
        y, x = annotation["y"].to_numpy(), annotation["x"].to_numpy()
        inside = (y > self.y_half) & (y < height - self.y_half) & (x > self.x_half) & (x < width - self.x_half)
        self.annotation = annotation[inside].reset_index(drop=True)
        if self.annotation.empty:
            raise ValueError(
                f"No annotated cell of {store} is at least {self.y_half, self.x_half} px from the image border"
            )
        fov_names, fov_codes = np.unique(self.annotation["fov_name"].str.strip("/").to_numpy(), return_inverse=True)
        positions = [self._position(plate, fov_name, store) for fov_name in fov_names]
        (self.channel_index,) = channel_indices(positions, [channel_name])
        self._images, means, stds = [], [], []
        for fov_name, position in zip(fov_names, positions, strict=True):
            stats = (_read_norm_meta(position) or {}).get(channel_name, {}).get("fov_statistics", {})
            if "mean" not in stats or "std" not in stats:
                raise ValueError(
                    f"FOV '{fov_name}' of {store} has no normalization/{channel_name}/fov_statistics mean and std"
                )
            self._images.append(position["0"])
            means.append(stats["mean"])
            stds.append(stats["std"])
        self._fov_codes = fov_codes
        self._means, self._stds = torch.stack(means), torch.stack(stds)
        self._t, self._y, self._x = (self.annotation[column].to_numpy(dtype=np.int64) for column in ("t", "y", "x"))
        self._labels = torch.from_numpy(self.annotation[label_column].to_numpy(dtype=np.float32))

    @staticmethod
    def _position(plate: Plate, fov_name: str, store: str):
        try:
            return plate[fov_name]
        except KeyError:
            raise KeyError(f"FOV '{fov_name}' of the annotation table is not in {store}") from None

    def __len__(self) -> int:
        return len(self.annotation)

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, dict]:
        fov = self._fov_codes[idx]
        y, x = self._y[idx], self._x[idx]
        patch = self._images[fov][
            self._t[idx],
            self.channel_index,
            self.z_range,
            y - self.y_half : y + self.y_half,
            x - self.x_half : x + self.x_half,
        ]
        img = (torch.from_numpy(np.asarray(patch, dtype=np.float32))[None] - self._means[fov]) / self._stds[fov]
        if self.transform is not None:
            img = self.transform(img)
        label = self._labels[idx : idx + 1]
        if self.return_indices:
            return img, label, self.annotation.iloc[idx][INDEX_COLUMNS].to_dict()
        return img, label


class ClassificationDataModule(LightningDataModule):
    """Cell classification data: annotated cells split into training and validation FOVs.

    Parameters
    ----------
    image_path : Path
        HCS plate of the images.
    annotation_path : Path
        CSV table with ``fov_name, t, y, x`` and the label column. FOV names may carry a leading ``"/"``.
    val_fovs : list[str] | None
        FOVs (e.g. ``"A/1/0"``, with or without leading ``"/"``) used for validation; the others train.
    channel_name : str
        Channel to read.
    z_range : tuple[int, int]
        Z slices ``[start, stop)`` of the patches.
    train_exclude_timepoints : list[int]
        Time points left out of training.
    train_transforms, val_transforms : list[Callable] | None
        Transforms of the ``(1, Z, Yp, Xp)`` patches.
    initial_yx_patch_size : tuple[int, int]
        Patch size in Y and X.
    batch_size : int
        Samples per batch.
    num_workers : int
        Data-loading worker processes.
    label_column : str
        Column holding the numeric label.
    """

    def __init__(
        self,
        image_path: Path,
        annotation_path: Path,
        val_fovs: list[str] | None,
        channel_name: str,
        z_range: tuple[int, int],
        train_exclude_timepoints: list[int],
        train_transforms: list[Callable] | None,
        val_transforms: list[Callable] | None,
        initial_yx_patch_size: tuple[int, int],
        batch_size: int,
        num_workers: int,
        label_column: str = "infection_state",
    ) -> None:
        require("pandas", "ClassificationDataModule", _INSTALL)
        require("tensorstore", "ClassificationDataModule", _INSTALL)
        super().__init__()
        self.image_path = image_path
        self.annotation_path = annotation_path
        self.val_fovs = val_fovs
        self.channel_name = channel_name
        self.z_range = z_range
        self.train_exclude_timepoints = train_exclude_timepoints
        self.train_transforms = Compose(train_transforms) if train_transforms else None
        self.val_transforms = Compose(val_transforms) if val_transforms else None
        self.initial_yx_patch_size = initial_yx_patch_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.label_column = label_column

    def _dataset(self, plate: Plate, annotation: pd.DataFrame, transform: Callable | None, **kwargs):
        return ClassificationDataset(
            plate,
            annotation,
            self.channel_name,
            self.z_range,
            transform,
            self.initial_yx_patch_size,
            label_column=self.label_column,
            **kwargs,
        )

    def setup(self, stage: str | None = None) -> None:
        """Read the annotations and build the datasets of a stage.

        Parameters
        ----------
        stage : str | None
            ``None``, ``"fit"`` or ``"validate"`` (training and validation sets) or ``"predict"``
            (every annotated cell, with its index columns).
        """
        if stage == "test":
            raise NotImplementedError("Test stage not implemented.")
        if stage not in (None, "fit", "validate", "predict"):
            raise ValueError(f"Unknown stage '{stage}'; expected None, 'fit', 'validate' or 'predict'.")
        pd = require("pandas", "ClassificationDataModule", _INSTALL)
        plate = open_ome_zarr(self.image_path, layout="hcs", mode="r")
        annotation = pd.read_csv(self.annotation_path)
        _check_columns(annotation, _LOCATION_COLUMNS + [self.label_column], f"Annotation table {self.annotation_path}")
        annotation[["t", "y", "x"]] = annotation[["t", "y", "x"]].astype(int)
        if stage == "predict":
            self.predict_dataset = self._dataset(plate, annotation, None, return_indices=True)
            return
        if not self.val_fovs:
            raise ValueError("val_fovs must name at least one FOV for training and validation")
        fov_names = annotation["fov_name"].str.strip("/")
        val_fovs = [fov.strip("/") for fov in self.val_fovs]
        unknown = sorted(set(val_fovs) - set(fov_names))
        if unknown:
            raise ValueError(f"val_fovs {unknown} have no annotations in {self.annotation_path}")
        is_val = fov_names.isin(val_fovs)
        is_train = ~is_val & ~annotation["t"].isin(self.train_exclude_timepoints)
        if not is_train.any():
            raise ValueError(
                f"No training annotations left in {self.annotation_path} after removing val_fovs {val_fovs} "
                f"and train_exclude_timepoints {self.train_exclude_timepoints}"
            )
        self.train_dataset = self._dataset(plate, annotation[is_train], self.train_transforms)
        self.val_dataset = self._dataset(plate, annotation[is_val], self.val_transforms)

    def _loader(self, dataset: ClassificationDataset, shuffle: bool = False) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            multiprocessing_context=WORKER_CONTEXT if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training loader."""
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation loader in table order."""
        return self._loader(self.val_dataset)

    def predict_dataloader(self) -> DataLoader:
        """Prediction loader in table order."""
        return self._loader(self.predict_dataset)
