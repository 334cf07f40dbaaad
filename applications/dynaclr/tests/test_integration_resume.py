"""Integration: resuming from the epoch-1 checkpoint reproduces an uninterrupted 2-epoch run exactly (CPU).

Without channel dropout and augmentation the data pipeline is deterministic (positives are seeded by the
dataset), so the state that has to survive the interruption is the model, the optimizer, the loop counters
and the position of FlexibleBatchSampler in its epoch sequence. With channel dropout and augmentations the
random draws of the resumed epoch have to match too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _multi_experiment_plates import write_two_experiment_plates
from dynaclr_testing import TinyEncoder
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from dynaclr.datamodule import MultiExperimentDataModule
from dynaclr.engine import ContrastiveModule
from dynaclr.loss import NTXentHCL
from viscy_transforms import RandAffined, RandGaussianNoised


@pytest.fixture(scope="module")
def two_experiment_plates(tmp_path_factory):
    return write_two_experiment_plates(tmp_path_factory.mktemp("integration_resume"))


class AnchorSums(Callback):
    """Sum of every training anchor batch, per epoch."""

    def __init__(self) -> None:
        self.per_epoch: dict[int, list[float]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.per_epoch.setdefault(trainer.current_epoch, []).append(float(batch["anchor"].double().sum()))


def _augmentations() -> list:
    keys = ["ch_0", "ch_1"]
    return [
        RandAffined(
            keys=keys, prob=0.8, rotate_range=[3.14, 0.0, 0.0], shear_range=[0.0, 0.0, 0.0], scale_range=[0.0, 0.2, 0.2]
        ),
        RandGaussianNoised(keys=keys, prob=0.5, mean=0.0, std=0.2),
    ]


def _fit(
    plates,
    root: Path,
    max_epochs: int,
    ckpt_path: Path | None = None,
    init_seed: int = 0,
    dropout: float = 0.0,
    augment: bool = False,
):
    # a different global seed per run: whatever must match between runs may not come from the global RNG
    seed_everything(init_seed)
    model = ContrastiveModule(
        TinyEncoder(in_channels=2),
        loss_function=NTXentHCL(temperature=0.5, beta=0.5),
        lr=1e-2,
        example_input_array_shape=(1, 2, 1, 16, 16),
    )
    datamodule = MultiExperimentDataModule(
        experiments_yaml=str(plates["experiments_yaml"]),
        z_range=(0, 1),
        yx_patch_size=(16, 16),
        final_yx_patch_size=(16, 16),
        val_experiments=[],
        tau_range=(0.5, 1.0),
        batch_size=8,
        num_workers=0,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        leaky=0.25,
        channel_dropout_prob=dropout,
        augmentations=_augmentations() if augment else None,
        seed=3,
    )
    sums = AnchorSums()
    torch.manual_seed(init_seed)
    checkpoints = ModelCheckpoint(dirpath=root / "checkpoints", save_top_k=-1, every_n_epochs=1)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        deterministic=True,
        logger=False,
        callbacks=[sums, checkpoints],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, model, sums


@pytest.mark.parametrize(
    ("dropout", "augment"),
    [(0.0, False), (0.5, False), (0.5, True)],
    ids=["deterministic", "channel-dropout", "augmented"],
)
def test_resumed_run_reaches_the_weights_of_an_uninterrupted_run(two_experiment_plates, tmp_path, dropout, augment):
    options = {"dropout": dropout, "augment": augment}
    full_trainer, full, full_sums = _fit(two_experiment_plates, tmp_path / "full", max_epochs=2, **options)
    first_trainer, first, _ = _fit(two_experiment_plates, tmp_path / "first", max_epochs=1, **options)
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("epoch=0-*.ckpt")
    resumed_trainer, resumed, resumed_sums = _fit(
        two_experiment_plates, tmp_path / "resumed", max_epochs=2, ckpt_path=checkpoint, init_seed=1, **options
    )

    steps_per_epoch = first_trainer.global_step
    assert steps_per_epoch > 0
    assert resumed_trainer.current_epoch == full_trainer.current_epoch == 2
    assert resumed_trainer.global_step == full_trainer.global_step == 2 * steps_per_epoch
    # the second epoch trained on something: its weights moved away from the epoch-1 weights
    assert any(not torch.equal(full.state_dict()[k], v) for k, v in first.state_dict().items())
    # the resumed epoch saw the same batches as the uninterrupted run's second epoch
    assert resumed_sums.per_epoch[1] == full_sums.per_epoch[1]
    full_state, resumed_state = full.state_dict(), resumed.state_dict()
    assert full_state.keys() == resumed_state.keys()
    for key, value in full_state.items():
        torch.testing.assert_close(resumed_state[key], value, rtol=0, atol=1e-6, msg=key)
    optimizer_full = full_trainer.optimizers[0].state_dict()["state"]
    optimizer_resumed = resumed_trainer.optimizers[0].state_dict()["state"]
    for param_id, state in optimizer_full.items():
        for name, value in state.items():
            torch.testing.assert_close(optimizer_resumed[param_id][name], value, rtol=0, atol=1e-6)


def test_resume_restores_weights_optimizer_and_counters_for_the_same_batches(two_experiment_plates, tmp_path):
    """The checkpoint holds the first epoch's counters and weights; a second run of the same seed repeats it."""
    _, first, first_sums = _fit(two_experiment_plates, tmp_path / "first", max_epochs=1)
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("epoch=0-*.ckpt")
    state = torch.load(checkpoint, weights_only=False)
    assert state["epoch"] == 0 and state["global_step"] == len(first_sums.per_epoch[0])
    for key, value in first.state_dict().items():
        torch.testing.assert_close(state["state_dict"][key], value, rtol=0, atol=0)
    again_trainer, again, again_sums = _fit(two_experiment_plates, tmp_path / "again", max_epochs=1, init_seed=0)
    assert again_sums.per_epoch[0] == first_sums.per_epoch[0]
    for key, value in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
