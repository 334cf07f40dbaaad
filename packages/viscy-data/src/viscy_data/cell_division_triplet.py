"""Triplets of single-cell track patches stored as ``.npy`` files (cell-division data of arXiv 2502.02182).

Each file holds one track as a ``(T, C, Y, X)`` array (channel 0 brightfield, channel 1 H2B); the
file stem is the track id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from monai.data import set_track_meta
from torch import Tensor
from torch.utils.data import Dataset

from viscy_data._typing import DictTransform, TripletSample
from viscy_data.hcs import HCSDataModule
from viscy_data.optional import require
from viscy_transforms import Compose, MapTransform

__all__ = ["CellDivisionTripletDataModule", "CellDivisionTripletDataset"]

_INSTALL = "pip install 'viscy-data[triplet]'"

CHANNEL_MAPPING = {"bf": 0, "brightfield": 0, "h2b": 1, "nuclei": 1}
"""Channel names of the cell-division tracks and their index in the C axis."""


def _channel_index(name: str) -> int:
    """Index of a channel name (see ``CHANNEL_MAPPING``) or of an integer given as a string."""
    if name.lower() in CHANNEL_MAPPING:
        return CHANNEL_MAPPING[name.lower()]
    try:
        return int(name)
    except ValueError:
        raise ValueError(f"Channel '{name}' not found in CHANNEL_MAPPING and is not a valid integer") from None


def _load_track(path: Path, channel_indices: list[int]) -> Tensor:
    """Load one ``(T, C, Y, X)`` track and keep the requested channels, as float32."""
    track = np.load(path, mmap_mode="r")
    if track.ndim != 4:
        raise ValueError(f"Track '{path}' has shape {track.shape}; expected (T, C, Y, X)")
    if max(channel_indices) >= track.shape[1]:
        raise ValueError(f"Track '{path}' has {track.shape[1]} channels; channel indices {channel_indices} requested")
    return torch.from_numpy(np.ascontiguousarray(track[:, channel_indices], dtype=np.float32))


class CellDivisionTripletDataset(Dataset):
    """Anchor, positive and negative patches from tracks of single cells.

    Every (track, time) is an anchor (with an integer ``time_interval`` during fitting, only times
    that have a positive ``time_interval`` frames later). The positive is the same cell at the same
    time (``"any"``, to be augmented differently) or ``time_interval`` frames later. The negative is
    a random other track at a random time (``"any"``) or at the positive's time when it exists.
    Random draws use torch's global generator, which Lightning's ``seed_everything`` and the
    DataLoader's per-worker seeding make reproducible.

    Parameters
    ----------
    data_paths : list[Path]
        ``.npy`` files, one ``(T, C, Y, X)`` track each.
    channel_names : list[str]
        Channels to read: names in ``CHANNEL_MAPPING`` or integer indices as strings.
    anchor_transform, positive_transform, negative_transform : DictTransform | None
        Per-sample dictionary transforms of ``{channel: (1, 1, Y, X)}``.
    fit : bool
        Return triplets (else anchors with their ``index``).
    time_interval : Literal["any"] | int
        Frames between anchor and positive.
    return_negative : bool
        Also return a negative when fitting.
    output_2d : bool
        Return ``(C, Y, X)`` patches instead of ``(C, 1, Y, X)``.
    """

    def __init__(
        self,
        data_paths: list[Path],
        channel_names: list[str],
        anchor_transform: DictTransform | None = None,
        positive_transform: DictTransform | None = None,
        negative_transform: DictTransform | None = None,
        fit: bool = True,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        output_2d: bool = False,
    ) -> None:
        require("tensorstore", "CellDivisionTripletDataset", _INSTALL)
        super().__init__()
        if time_interval != "any" and not (isinstance(time_interval, int) and time_interval >= 0):
            raise ValueError(f"time_interval must be 'any' or a non-negative integer, got {time_interval!r}")
        if not data_paths:
            raise ValueError("CellDivisionTripletDataset needs at least one track file")
        self.channel_names = list(channel_names)
        self.channel_indices = [_channel_index(name) for name in self.channel_names]
        self.anchor_transform = anchor_transform
        self.positive_transform = positive_transform
        self.negative_transform = negative_transform
        self.fit = fit
        self.time_interval = time_interval
        self.return_negative = return_negative
        self.output_2d = output_2d
        self.track_ids = [Path(path).stem for path in data_paths]
        self.tracks = [_load_track(Path(path), self.channel_indices) for path in data_paths]
        self._n_frames = np.array([len(track) for track in self.tracks])
        n_anchors = self._n_frames
        if fit and time_interval != "any":
            n_anchors = np.clip(self._n_frames - time_interval, 0, None)
        if n_anchors.sum() == 0:
            raise ValueError(
                f"No anchor has a positive {time_interval} frames later; "
                f"tracks have {sorted(set(self._n_frames.tolist()))} frames"
            )
        self._anchor_track = np.repeat(np.arange(len(self.tracks)), n_anchors)
        self._anchor_time = np.concatenate([np.arange(n) for n in n_anchors])

    def __len__(self) -> int:
        return len(self._anchor_track)

    @staticmethod
    def _randint(high: int) -> int:
        return int(torch.randint(high, ()).item())

    def _negative_location(self, track: int, time: int) -> tuple[int, int]:
        """A random other track (same time shift when possible), or another time of the only track."""
        n_tracks = len(self.tracks)
        if n_tracks == 1:
            n_frames = self._n_frames[track]
            if n_frames == 1:
                return track, time
            other_time = self._randint(n_frames - 1)
            return track, other_time + (other_time >= time)
        other = self._randint(n_tracks - 1)
        other += other >= track
        if self.time_interval != "any":
            shifted = time + self.time_interval
            if shifted < self._n_frames[other]:
                return other, shifted
        return other, self._randint(int(self._n_frames[other]))

    def _patch(self, track: int, time: int, transform: DictTransform | None) -> Tensor | list[Tensor]:
        """Read a ``(C, 1, Y, X)`` patch, transform it channel by channel, and drop Z if ``output_2d``."""
        patch = self.tracks[track][time].unsqueeze(1)
        if transform is None:
            return patch[:, 0] if self.output_2d else patch
        channels = {name: patch[i : i + 1] for i, name in enumerate(self.channel_names)}
        transformed = transform(channels)
        crops = transformed if isinstance(transformed, list) else [transformed]
        stacked = [torch.cat([crop[name] for name in self.channel_names]) for crop in crops]
        if self.output_2d:
            stacked = [crop[:, 0] for crop in stacked]
        return stacked if isinstance(transformed, list) else stacked[0]

    def __getitem__(self, index: int) -> TripletSample:
        track, time = int(self._anchor_track[index]), int(self._anchor_time[index])
        sample: TripletSample = {"anchor": self._patch(track, time, self.anchor_transform)}
        if not self.fit:
            sample["index"] = {"fov_name": self.track_ids[track], "id": time}
            return sample
        positive_time = time if self.time_interval == "any" else time + self.time_interval
        sample["positive"] = self._patch(track, positive_time, self.positive_transform)
        if self.return_negative:
            sample["negative"] = self._patch(*self._negative_location(track, time), self.negative_transform)
        return sample


class CellDivisionTripletDataModule(HCSDataModule):
    """Contrastive-learning data of single-cell tracks stored as ``.npy`` files.

    Tracks (files) are shuffled with the global torch RNG and split by ``split_ratio``.

    Parameters
    ----------
    data_path : str
        Folder of ``.npy`` track files.
    source_channel : str | Sequence[str]
        Channels to read (see ``CHANNEL_MAPPING``).
    final_yx_patch_size : tuple[int, int]
        YX size after the final centre crop.
    split_ratio : float
        Fraction of tracks used for training.
    batch_size : int
        Triplets per batch.
    num_workers : int
        DataLoader worker processes.
    normalizations, augmentations : list[MapTransform] | None
        Per-sample dictionary transforms.
    augment_validation : bool
        Augment validation triplets like training ones.
    time_interval : Literal["any"] | int
        Frames between anchor and positive.
    return_negative : bool
        Also return negatives.
    output_2d : bool
        Return ``(B, C, Y, X)`` patches instead of ``(B, C, 1, Y, X)``.
    persistent_workers, prefetch_factor, pin_memory
        Passed to the DataLoaders.
    """

    def __init__(
        self,
        data_path: str,
        source_channel: str | Sequence[str],
        final_yx_patch_size: tuple[int, int] = (64, 64),
        split_ratio: float = 0.8,
        batch_size: int = 16,
        num_workers: int = 8,
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        augment_validation: bool = True,
        time_interval: Literal["any"] | int = "any",
        return_negative: bool = True,
        output_2d: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        require("tensorstore", "CellDivisionTripletDataModule", _INSTALL)
        super().__init__(
            data_path=data_path,
            source_channel=source_channel,
            target_channel=[],
            z_window_size=1,
            split_ratio=split_ratio,
            batch_size=batch_size,
            num_workers=num_workers,
            yx_patch_size=final_yx_patch_size,
            normalizations=normalizations,
            augmentations=augmentations,
            caching=False,
            persistent_workers=persistent_workers,
            prefetch_factor=prefetch_factor,
            pin_memory=pin_memory,
        )
        self.track_files = sorted(self.data_path.glob("*.npy"))
        if not self.track_files:
            raise ValueError(f"No .npy files found in {self.data_path}")
        self.augment_validation = augment_validation
        self.time_interval = time_interval
        self.return_negative = return_negative
        self.output_2d = output_2d

    def _dataset(self, files: list[Path], anchor: Callable, positive: Callable, negative: Callable, **kwargs):
        return CellDivisionTripletDataset(
            files,
            self.source_channel,
            anchor_transform=anchor,
            positive_transform=positive,
            negative_transform=negative,
            time_interval=self.time_interval,
            return_negative=self.return_negative,
            output_2d=self.output_2d,
            **kwargs,
        )

    def _setup_fit(self) -> None:
        augment, no_augment = self._fit_transform()
        set_track_meta(False)
        shuffled = [self.track_files[i] for i in torch.randperm(len(self.track_files)).tolist()]
        n_train = int(len(shuffled) * self.split_ratio)
        if n_train == 0 or n_train == len(shuffled):
            raise ValueError(
                f"split_ratio {self.split_ratio} of {len(shuffled)} tracks in {self.data_path} leaves "
                f"{n_train} for training and {len(shuffled) - n_train} for validation; both need at least one"
            )
        anchor = no_augment if self.time_interval in ("any", 0) else augment
        self.train_dataset = self._dataset(shuffled[:n_train], anchor, augment, augment)
        val = (anchor, augment, augment) if self.augment_validation else (no_augment,) * 3
        self.val_dataset = self._dataset(shuffled[n_train:], *val)

    def _setup_predict(self) -> None:
        set_track_meta(True)
        self.predict_dataset = self._dataset(self.track_files, Compose(self.normalizations), None, None, fit=False)

    def _setup_test(self) -> None:
        raise NotImplementedError("Self-supervised model does not support testing")
