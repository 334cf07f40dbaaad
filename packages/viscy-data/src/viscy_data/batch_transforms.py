"""Batched device-side steps of the data modules.

Datasets that read a whole batch at once (``__getitems__``) are loaded with
:func:`identity_collate`; :func:`transform_channel_wise` splits a batch into one ``(B, 1, ...)``
tensor per channel name, passes it through a dictionary transform (normalization, batched
augmentations, crop) together with its collated normalization metadata, and concatenates it back.

``TripletDataModule`` and DynaCLR's ``MultiExperimentDataModule`` run one
:class:`TripletBatchTransform` in ``on_after_batch_transfer`` on the batch dict of their dataset:
``anchor`` / ``positive`` / ``negative`` patches ``(B, C, Z, Y, X)`` in the store dtype, each with its
``*_norm_meta``. The data module decides which keys are augmented (its stage and settings) and, for
reproducible training, the seed of the batch; the step does the rest, batched on the batch's device.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch
from torch import Tensor

from viscy_data._typing import DictTransform
from viscy_data.channel_dropout import ChannelDropout
from viscy_data.nonfinite import NonFinitePolicy, apply_nonfinite_policy, check_nonfinite_policy
from viscy_data.normalization import NormMeta, stack_norm_meta
from viscy_transforms import BatchedCenterSpatialCropd

__all__ = [
    "DROPOUT_KEYS",
    "IMAGE_KEYS",
    "TripletBatchTransform",
    "identity_collate",
    "stack_norm_meta_lists",
    "transform_channel_wise",
]


def identity_collate(batch: Any) -> Any:
    """Collate function for datasets that already return a batched dict."""
    return batch


def scatter_channels(
    channel_names: Sequence[str], patch: Tensor, norm_meta: NormMeta | Sequence[NormMeta] | None
) -> dict[str, Tensor | dict]:
    """Split a ``(B, C, ...)`` batch into ``{channel_name: (B, 1, ...)}`` plus collated ``norm_meta``.

    ``norm_meta`` may be a list of per-sample metadata (collated here) or metadata already collated
    to ``(B,)`` tensors.
    """
    if patch.shape[1] != len(channel_names):
        raise ValueError(f"Patch has {patch.shape[1]} channels but {len(channel_names)} names: {list(channel_names)}")
    channels: dict[str, Tensor | dict] = {name: patch[:, i : i + 1] for i, name in enumerate(channel_names)}
    if norm_meta is not None:
        if isinstance(norm_meta, dict):
            channels["norm_meta"] = norm_meta
        else:
            if any(meta is None for meta in norm_meta):
                raise ValueError("Some samples of the batch have no normalization metadata.")
            from monai.data.utils import collate_meta_tensor

            channels["norm_meta"] = collate_meta_tensor(list(norm_meta))
    return channels


def gather_channels(patch_channels: dict[str, Tensor | dict]) -> Tensor:
    """Concatenate the channels of a scattered batch along dim 1, dropping ``norm_meta``."""
    patch_channels.pop("norm_meta", None)
    return torch.cat(list(patch_channels.values()), dim=1)


def transform_channel_wise(
    transform: DictTransform | Callable,
    channel_names: Sequence[str],
    patch: Tensor,
    norm_meta: NormMeta | Sequence[NormMeta] | None,
) -> Tensor:
    """Apply a dictionary transform to a batched ``(B, C, Z, Y, X)`` patch, one key per channel."""
    scattered = scatter_channels(channel_names, patch, norm_meta)
    return gather_channels(transform(scattered))


IMAGE_KEYS = ("anchor", "positive", "negative")
"""Image keys of a triplet batch, transformed in this order."""

DROPOUT_KEYS = ("anchor", "positive")
"""Keys whose channels :class:`~viscy_data.channel_dropout.ChannelDropout` may zero."""


def stack_norm_meta_lists(batch: dict[str, Any]) -> dict[str, Any]:
    """Stack per-sample ``*_norm_meta`` lists of a batch into trees of ``(B,)`` tensors, in place.

    A list with a None entry (a FOV without metadata) becomes None; metadata already stacked is kept.
    Run on the host (``on_before_batch_transfer``), this sends a few stacked tensors to the device
    instead of one per sample and statistic.
    """
    for key in IMAGE_KEYS:
        if isinstance(batch.get(f"{key}_norm_meta"), list):
            batch[f"{key}_norm_meta"] = stack_norm_meta(batch[f"{key}_norm_meta"])
    return batch


class TripletBatchTransform:
    """Non-finite check, normalization, augmentation, final centre crop and channel dropout of a batch.

    Parameters
    ----------
    channel_names : Sequence[str]
        Dictionary key of each channel (dim 1) of the patches; the transforms are keyed on them.
    normalizations : Sequence[Callable]
        Batched dictionary transforms applied to every image key, reading ``norm_meta``.
    augmentations : Sequence[Callable]
        Batched dictionary transforms applied after the normalizations to the keys asked for.
    roi_size : tuple[int, int, int]
        ``(Z, Y, X)`` size of the final centre crop.
    nonfinite : {"raise", "zero"}
        Policy for NaN/Inf pixels, applied before any transform (see :mod:`viscy_data.nonfinite`).
    owner : str
        Name of the data module, shown in errors.
    channel_dropout : ChannelDropout | None
        Applied last to :data:`DROPOUT_KEYS`; its train/eval state decides whether it drops anything.

    Attributes
    ----------
    augmented, plain : Compose
        ``normalizations + augmentations + [crop]`` and ``normalizations + [crop]``.
    """

    def __init__(
        self,
        channel_names: Sequence[str],
        normalizations: Sequence[Callable],
        augmentations: Sequence[Callable],
        roi_size: tuple[int, int, int],
        nonfinite: NonFinitePolicy = "raise",
        owner: str = "TripletBatchTransform",
        channel_dropout: ChannelDropout | None = None,
    ) -> None:
        from viscy_transforms import Compose  # subclasses MONAI's: imported when a data module is built

        check_nonfinite_policy(nonfinite, owner)
        self.channel_names = list(channel_names)
        self.nonfinite = nonfinite
        self.owner = owner
        self.channel_dropout = channel_dropout
        crop = BatchedCenterSpatialCropd(keys=self.channel_names, roi_size=tuple(roi_size))
        self.augmented = Compose([*normalizations, *augmentations, crop])
        self.plain = Compose([*normalizations, crop])

    def __call__(
        self, batch: dict[str, Any] | Tensor, augment: Collection[str] = IMAGE_KEYS, seed: int | None = None
    ) -> dict[str, Any] | Tensor:
        """Transform the image keys of ``batch`` in place and return it (a Tensor is returned unchanged).

        Parameters
        ----------
        batch : dict | Tensor
            A batch of the triplet datasets, on its device; a Tensor (Lightning's example input) passes.
        augment : Collection[str]
            Image keys that get the augmentations; the others are only normalized and cropped.
        seed : int | None
            Seed of this batch's augmentations and channel dropout (reproducible training); None keeps
            the transforms' own random state and torch's global generator.

        Returns
        -------
        dict | Tensor
            The same dict: image keys ``(B, C, *roi_size)``, ``*_norm_meta`` removed, other keys
            (``index``) untouched.
        """
        if isinstance(batch, Tensor):
            return batch
        apply_nonfinite_policy(batch, IMAGE_KEYS, self.nonfinite, self.owner)
        generator = None
        if seed is not None:
            self.augmented.set_random_state(seed=seed)
            device = next(value.device for value in batch.values() if isinstance(value, Tensor))
            generator = torch.Generator(device=device).manual_seed(seed)
        stack_norm_meta_lists(batch)
        for key in IMAGE_KEYS:
            if key not in batch:
                continue
            transform = self.augmented if key in augment else self.plain
            norm_meta = batch.pop(f"{key}_norm_meta", None)
            batch[key] = transform_channel_wise(transform, self.channel_names, batch[key], norm_meta)
        if self.channel_dropout is not None:
            for key in DROPOUT_KEYS:
                if key in batch:
                    batch[key] = self.channel_dropout(batch[key], generator=generator)
        return batch
