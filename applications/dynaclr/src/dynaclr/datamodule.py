"""Lightning data module for DynaCLR training across several experiments.

Experiments come from an ``experiments.yml``; training and validation are split by whole
experiments. Batches are composed by ``FlexibleBatchSampler`` (experiment, condition, time; training
batches follow the trainer's epoch, validation replays the same batches every epoch, keeping the last
partial one) and read by ``MultiExperimentTripletDataset``; normalization, augmentation, the final
centre crop and channel dropout run batched on the device in ``on_after_batch_transfer``.

Every random draw of training is a function of ``seed``, the trainer's epoch, the rank and the number
of batches trained so far, all of which Lightning checkpoints: a run resumed from a checkpoint sees
the same batches, augmentations and dropped channels as an uninterrupted one.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from lightning.pytorch import LightningDataModule
from torch import Tensor

from dynaclr._datamodule_checks import check_patch_arguments, check_sampling_arguments
from viscy_data.batch_transforms import IMAGE_KEYS, TripletBatchTransform, identity_collate, stack_norm_meta_lists
from viscy_data.channel_dropout import ChannelDropout
from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.dataset import MultiExperimentTripletDataset, generic_channel_names
from viscy_data.contrastive.experiment import ExperimentRegistry
from viscy_data.distributed import get_rank, get_world_size
from viscy_data.io import DEFAULT_CACHE_POOL_BYTES
from viscy_data.nonfinite import NonFinitePolicy, check_nonfinite_policy
from viscy_data.normalization import check_norm_meta
from viscy_data.sampler import FlexibleBatchSampler
from viscy_transforms import MapTransform

if TYPE_CHECKING:
    from monai.data import ThreadDataLoader

__all__ = ["MultiExperimentDataModule"]

_logger = logging.getLogger(__name__)


class _EpochFollowingBatchSampler(FlexibleBatchSampler):
    """A ``FlexibleBatchSampler`` that asks ``current_epoch()`` for its epoch at every iteration.

    Lightning never calls ``set_epoch`` on a custom batch sampler. Training follows the trainer's
    ``current_epoch`` (so a resumed run continues the epoch sequence where it stopped); validation uses
    ``lambda: 0`` so it sees the same batches every epoch. Where ``current_epoch()`` returns None the
    sampler advances its own epoch.
    """

    def __init__(self, *args: Any, current_epoch: Callable[[], int | None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._current_epoch = current_epoch

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self._current_epoch()
        if epoch is not None:
            self.set_epoch(epoch)
        return super().__iter__()


class MultiExperimentDataModule(LightningDataModule):
    """Multi-experiment contrastive data: experiment-level split, composable batch sampling.

    Parameters
    ----------
    experiments_yaml : str
        Path to the ``experiments.yml`` describing every experiment.
    z_range : tuple[int, int]
        Z slices to read, ``(start, stop)``.
    yx_patch_size : tuple[int, int]
        YX size read around each cell (room for augmentation).
    final_yx_patch_size : tuple[int, int]
        YX size after the final centre crop.
    val_experiments : list[str]
        Names of the experiments used for validation; the others train.
    tau_range : tuple[float, float]
        Anchor-positive time offsets, in hours.
    tau_decay_rate : float
        Bias of tau toward its lower bound (0 = uniform).
    batch_size : int
        Cells per batch.
    num_workers : int
        Loader threads.
    experiment_aware, condition_balanced, leaky, temporal_enrichment, temporal_window_hours, \
temporal_global_fraction, experiment_weights, condition_ratio
        Batch composition, see ``viscy_data.sampler.FlexibleBatchSampler``.
    channel_dropout_channels : list[int] | None
        Channels zeroed at random during training (default ``[1]``, the fluorescence reporter).
    channel_dropout_prob : float
        Per-sample probability of dropping each listed channel.
    normalizations : list[MapTransform] | None
        Batched normalizations keyed on ``ch_0``, ``ch_1``, ... (applied in every stage).
    augmentations : list[MapTransform] | None
        Batched augmentations keyed on ``ch_i`` (training only).
    hcl_beta : float | None
        Deprecated and ignored: set ``beta`` on the loss (``dynaclr.loss.NTXentHCL(beta=...)``); setting it emits
        a DeprecationWarning.
    cache_pool_bytes : int
        Bound in bytes of the decoded-chunk cache shared by every reader of this process asking
        for the same bound (default 4 GiB; 0 turns it off), see ``viscy_data.io.shared_context``.
    seed : int
        Seed of the batch sampler and of the positive draws.
    include_wells : list[str] | None
        Only use these wells.
    exclude_fovs : list[str] | None
        Skip these FOVs.
    group_by_fov_fraction, group_by_fov_frames
        Locality of training batches (default off): a fraction drawn from a few image frames, which
        cuts chunk decoding; see ``FlexibleBatchSampler`` for what it does to the in-batch negatives.
    nonfinite : {"raise", "zero"}
        What to do with NaN/Inf pixels of a batch, checked on the device once per batch before the
        transforms: ``"raise"`` a ``ValueError`` naming the batch key and samples, or ``"zero"`` them
        (see :mod:`viscy_data.nonfinite`).
    val_fovs : list[str] | None
        FOVs (``"A/1/0"``) of the training experiments that validate instead of training: a split by
        FOV, the alternative to ``val_experiments`` (which must then be empty).

    Notes
    -----
    ``setup`` checks every argument that can be checked before reading data (see
    :mod:`dynaclr._datamodule_checks`), then the YAML, plates and tracks tables
    (``ExperimentRegistry.from_yaml`` and ``MultiExperimentIndex``), and raises ``ValueError``
    naming the file, experiment, FOV and field before any training step.
    """

    def __init__(
        self,
        experiments_yaml: str,
        z_range: tuple[int, int],
        yx_patch_size: tuple[int, int],
        final_yx_patch_size: tuple[int, int],
        val_experiments: list[str],
        tau_range: tuple[float, float] = (0.5, 2.0),
        tau_decay_rate: float = 2.0,
        batch_size: int = 128,
        num_workers: int = 1,
        experiment_aware: bool = True,
        condition_balanced: bool = True,
        leaky: float = 0.0,
        temporal_enrichment: bool = False,
        temporal_window_hours: float = 2.0,
        temporal_global_fraction: float = 0.3,
        experiment_weights: dict[str, float] | None = None,
        condition_ratio: dict[str, float] | None = None,
        channel_dropout_channels: list[int] | None = None,
        channel_dropout_prob: float = 0.5,
        normalizations: list[MapTransform] | None = None,
        augmentations: list[MapTransform] | None = None,
        hcl_beta: float | None = None,
        cache_pool_bytes: int = DEFAULT_CACHE_POOL_BYTES,
        seed: int = 0,
        include_wells: list[str] | None = None,
        exclude_fovs: list[str] | None = None,
        nonfinite: NonFinitePolicy = "raise",
        group_by_fov_fraction: float = 0.0,
        group_by_fov_frames: int = 4,
        val_fovs: list[str] | None = None,
    ) -> None:
        super().__init__()
        if hcl_beta is not None:
            warnings.warn(
                "MultiExperimentDataModule(hcl_beta=...) is deprecated and ignored: "
                "set beta on the loss instead (dynaclr.loss.NTXentHCL(beta=...)).",
                DeprecationWarning,
                stacklevel=2,
            )
        check_nonfinite_policy(nonfinite, type(self).__name__)
        self.experiments_yaml = experiments_yaml
        self.z_range = slice(*z_range)
        self.yx_patch_size = tuple(yx_patch_size)
        self.final_yx_patch_size = tuple(final_yx_patch_size)
        self.val_experiments = list(val_experiments)
        self.tau_range = tuple(tau_range)
        self.tau_decay_rate = tau_decay_rate
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.experiment_aware = experiment_aware
        self.condition_balanced = condition_balanced
        self.leaky = leaky
        self.temporal_enrichment = temporal_enrichment
        self.temporal_window_hours = temporal_window_hours
        self.temporal_global_fraction = temporal_global_fraction
        self.experiment_weights = experiment_weights
        self.condition_ratio = condition_ratio
        self.channel_dropout_channels = [1] if channel_dropout_channels is None else list(channel_dropout_channels)
        self.channel_dropout_prob = channel_dropout_prob
        self.normalizations = list(normalizations or [])
        self.augmentations = list(augmentations or [])
        self.cache_pool_bytes = cache_pool_bytes
        self.seed = seed
        self.include_wells = include_wells
        self.exclude_fovs = exclude_fovs
        self.nonfinite = nonfinite
        self.group_by_fov_fraction = group_by_fov_fraction
        self.group_by_fov_frames = group_by_fov_frames
        self.val_fovs = val_fovs
        self.channel_dropout = ChannelDropout(channels=self.channel_dropout_channels, p=channel_dropout_prob)
        self.train_dataset: MultiExperimentTripletDataset | None = None
        self.val_dataset: MultiExperimentTripletDataset | None = None
        self.predict_dataset: MultiExperimentTripletDataset | None = None
        self._channel_names: list[str] = []

    # ------------------------------------------------------------------ setup
    def _dataset(
        self,
        registry: ExperimentRegistry,
        fit: bool,
        also_exclude: list[str] | None = None,
        include_fovs: list[str] | None = None,
    ) -> MultiExperimentTripletDataset:
        index = MultiExperimentIndex(
            registry,
            z_range=self.z_range,
            yx_patch_size=self.yx_patch_size,
            tau_range_hours=self.tau_range,
            include_wells=self.include_wells,
            exclude_fovs=[*(self.exclude_fovs or []), *(also_exclude or [])],
            include_fovs=include_fovs,
        )
        dataset = MultiExperimentTripletDataset(
            index,
            fit=fit,
            tau_range_hours=self.tau_range,
            tau_decay_rate=self.tau_decay_rate,
            cache_pool_bytes=self.cache_pool_bytes,
            seed=self.seed,
        )
        for exp in registry.experiments:
            metas = {fov: meta for (name, fov), meta in dataset.fov_norm_meta.items() if name == exp.name}
            check_norm_meta(self.normalizations, metas, f"{exp.data_path} (experiment '{exp.name}')")
        return dataset

    @property
    def num_channels(self) -> int | None:
        """Channels of every patch (the experiments' source channels); None before ``setup``."""
        return len(self._channel_names) or None

    def _build_transforms(self, num_channels: int) -> None:

        self._channel_names = generic_channel_names(num_channels)
        roi = (self.z_range.stop - self.z_range.start, *self.final_yx_patch_size)
        self._batch_transform = TripletBatchTransform(
            self._channel_names,
            self.normalizations,
            self.augmentations,
            roi,
            nonfinite=self.nonfinite,
            owner=type(self).__name__,
            channel_dropout=self.channel_dropout,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets: train/val for ``"fit"``/``"validate"``/None, every experiment for ``"predict"``."""
        if stage == "test":
            raise NotImplementedError("MultiExperimentDataModule does not support testing.")
        from monai.data import set_track_meta

        check_patch_arguments(self.z_range, self.yx_patch_size, self.final_yx_patch_size, self.tau_range)
        registry = ExperimentRegistry.from_yaml(self.experiments_yaml)
        weights, ratio, dropped = self.experiment_weights, self.condition_ratio, self.channel_dropout_channels
        filters = (self.include_wells, self.exclude_fovs)
        check_sampling_arguments(self.experiments_yaml, registry, weights, ratio, dropped, *filters)
        self._build_transforms(registry.num_source_channels)
        if stage == "predict":
            set_track_meta(True)
            self.predict_dataset = self._dataset(registry, fit=False)
            return
        set_track_meta(False)
        names = [exp.name for exp in registry.experiments]
        unknown = [name for name in self.val_experiments if name not in names]
        if unknown:
            raise ValueError(f"val_experiments {unknown} are not in {self.experiments_yaml}; experiments: {names}")
        if self.val_fovs and self.val_experiments:
            raise ValueError(f"Give val_experiments ({self.val_experiments}) or val_fovs ({self.val_fovs}), not both.")
        train = [name for name in names if name not in self.val_experiments]
        val = [name for name in names if name in self.val_experiments]
        if not train:
            raise ValueError(
                "No training experiments remaining after splitting. "
                f"val_experiments={self.val_experiments} covers all experiments."
            )
        self.train_dataset = self._dataset(registry.subset(train), fit=True, also_exclude=self.val_fovs)
        if self.val_fovs:
            self.val_dataset = self._dataset(registry.subset(train), fit=True, include_fovs=self.val_fovs)
            missing = sorted(set(self.val_fovs) - set(self.val_dataset.index.tracks["fov_name"]))
            if missing:
                raise ValueError(f"val_fovs {missing} have no tracked cells in {self.experiments_yaml}.")
        elif val:
            self.val_dataset = self._dataset(registry.subset(val), fit=True)
        else:
            _logger.warning("No val_experiments given: validation is disabled.")
            self.val_dataset = None
        _logger.info(
            "MultiExperimentDataModule setup: %d train experiments (%d anchors), %d val experiments (%d anchors)",
            len(train),
            len(self.train_dataset),
            len(val),
            len(self.val_dataset) if self.val_dataset is not None else 0,
        )

    # ------------------------------------------------------------------ loaders
    def _trainer_epoch(self) -> int | None:
        """The attached trainer's epoch (restored from a checkpoint on resume), or None without a trainer."""
        return self.trainer.current_epoch if self.trainer is not None else None

    def _sampler(self, dataset: MultiExperimentTripletDataset, train: bool) -> FlexibleBatchSampler:
        current_epoch = self._trainer_epoch if train else lambda: 0
        return _EpochFollowingBatchSampler(
            valid_anchors=dataset.anchors,
            batch_size=self.batch_size,
            experiment_aware=self.experiment_aware,
            leaky=self.leaky,
            experiment_weights=self.experiment_weights if train else None,
            condition_balanced=self.condition_balanced,
            condition_ratio=self.condition_ratio,
            temporal_enrichment=self.temporal_enrichment,
            temporal_window_hours=self.temporal_window_hours,
            temporal_global_fraction=self.temporal_global_fraction,
            num_replicas=get_world_size(),
            rank=get_rank(),
            seed=self.seed,
            drop_last=train,
            group_by_fov_fraction=self.group_by_fov_fraction if train else 0.0,
            group_by_fov_frames=self.group_by_fov_frames,
            current_epoch=current_epoch,
        )

    def _loader(self, dataset: MultiExperimentTripletDataset, **kwargs: Any) -> ThreadDataLoader:
        from monai.data import ThreadDataLoader

        return ThreadDataLoader(
            dataset, use_thread_workers=True, num_workers=self.num_workers, collate_fn=identity_collate, **kwargs
        )

    def train_dataloader(self) -> ThreadDataLoader:
        return self._loader(self.train_dataset, batch_sampler=self._sampler(self.train_dataset, train=True))

    def val_dataloader(self) -> ThreadDataLoader | list:
        if self.val_dataset is None:
            return []
        return self._loader(self.val_dataset, batch_sampler=self._sampler(self.val_dataset, train=False))

    def predict_dataloader(self) -> ThreadDataLoader:
        return self._loader(self.predict_dataset, batch_size=self.batch_size, shuffle=False, drop_last=False)

    # ------------------------------------------------------------------ device side
    def _training_batch_seed(self) -> int | None:
        """Seed of the random draws of the training batch being transferred (None without a trainer).

        Derived from ``seed``, the global rank and the number of training batches fetched before this
        one, which Lightning's checkpoints restore.
        """
        if self.trainer is None:
            return None
        batches_before = self.trainer.fit_loop.epoch_loop.batch_progress.total.ready
        sequence = np.random.SeedSequence([self.seed, self.trainer.global_rank, batches_before])
        return int(sequence.generate_state(1)[0])

    def on_before_batch_transfer(self, batch: dict | Tensor, dataloader_idx: int) -> dict | Tensor:
        """Stack the per-sample ``*_norm_meta`` lists into ``(B,)`` tensors on the host (few device copies)."""
        return stack_norm_meta_lists(batch) if isinstance(batch, dict) else batch

    def on_after_batch_transfer(self, batch: dict | Tensor, dataloader_idx: int) -> dict | Tensor:
        """Check non-finite pixels, normalise, augment (training only), crop, drop channels (training only).

        In training, the augmentations and the channel dropout are reseeded for every batch from
        ``seed``, the rank and the batch count (see the module notes on resuming). Under a trainer its
        state decides whether this is training; without one (a notebook, a test) the augmentations run
        and ``channel_dropout`` keeps the train/eval state set by the user (``dm.channel_dropout.eval()``
        turns it off).
        """
        training = self.trainer is None or self.trainer.training
        if self.trainer is not None:
            self.channel_dropout.train(self.trainer.training)
        seed = self._training_batch_seed() if training else None
        return self._batch_transform(batch, augment=IMAGE_KEYS if training else (), seed=seed)
