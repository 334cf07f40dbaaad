"""Integration: real Trainer ``fast_dev_run`` of ContrastiveModule + NTXentHCL on two real experiments.

The two plates of ``_multi_experiment_plates`` have different channel sets (exp_a: Phase3D, Mito, GFP;
exp_b: Phase3D, RFP). Pixel values encode their origin (``offset + 10000 t + 1000 c + 32 y + x``), so the
difference between the two model channels of a patch is ``1000 * (zarr index of the reporter)``: 2000 for
exp_a's GFP and 1000 for exp_b's RFP. That tells, independently of the code under test, which experiment
and which reporter channel every sample the model received came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _multi_experiment_plates import OFFSETS, write_two_experiment_plates
from dynaclr_testing import TinyEncoder
from lightning.pytorch import Callback, Trainer, seed_everything

from dynaclr.datamodule import MultiExperimentDataModule
from dynaclr.engine import ContrastiveModule
from dynaclr.loss import NTXentHCL

REPORTER_STEP = {"exp_a": 2000.0, "exp_b": 1000.0}  # 1000 * zarr index of GFP (exp_a) / RFP (exp_b)


@pytest.fixture(scope="module")
def two_experiment_plates(tmp_path_factory):
    return write_two_experiment_plates(tmp_path_factory.mktemp("integration_fast_dev_run"))


class BatchRecorder(Callback):
    """Keeps copies of the batches the module receives (after ``on_after_batch_transfer``)."""

    def __init__(self) -> None:
        self.batches = {"train": [], "val": []}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches["train"].append({k: batch[k].clone() for k in ("anchor", "positive")})

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches["val"].append({k: batch[k].clone() for k in ("anchor", "positive")})


def _experiment_of_each_sample(patches: torch.Tensor) -> list[str]:
    """The experiment of every sample of a raw (un-normalised) ``(B, 2, Z, Y, X)`` batch, from its pixels."""
    phase = patches[:, 0].flatten(1)
    step = (patches[:, 1] - patches[:, 0]).flatten(1)
    names = []
    for sample_phase, sample_step in zip(phase, step, strict=True):
        name = "exp_b" if sample_phase.min() >= OFFSETS["exp_b"] else "exp_a"
        assert torch.all(sample_step == REPORTER_STEP[name]), f"reporter channel of {name} is not its source channel"
        names.append(name)
    return names


def _fast_dev_run(plates, root, fast_dev_run: int | bool, **data_kwargs):
    seed_everything(0)
    datamodule = MultiExperimentDataModule(
        experiments_yaml=str(plates["experiments_yaml"]),
        z_range=(0, 2),
        yx_patch_size=(24, 24),
        final_yx_patch_size=(16, 16),
        tau_range=(0.5, 1.0),
        batch_size=8,
        num_workers=0,
        channel_dropout_prob=0.0,
        **data_kwargs,
    )
    module = ContrastiveModule(
        TinyEncoder(in_channels=2),
        loss_function=NTXentHCL(temperature=0.5, beta=0.5),
        lr=1e-2,
        example_input_array_shape=(1, 2, 2, 16, 16),
    )
    initial = {k: v.clone() for k, v in module.state_dict().items()}
    recorder = BatchRecorder()
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        fast_dev_run=fast_dev_run,
        callbacks=[recorder],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.state.finished
    assert trainer.global_step == int(fast_dev_run)
    assert np.isfinite(trainer.callback_metrics["loss/train"].item())
    changed = [k for k, v in module.state_dict().items() if not torch.equal(v, initial[k])]
    assert changed, "no parameter was updated by the training step"
    for batches in recorder.batches.values():
        for batch in batches:
            assert batch["anchor"].shape == batch["positive"].shape == (8, 2, 2, 16, 16)
    return trainer, recorder


def test_fast_dev_run_trains_on_one_experiment_and_validates_on_another_reporter(two_experiment_plates, tmp_path):
    trainer, recorder = _fast_dev_run(two_experiment_plates, tmp_path, True, val_experiments=["exp_b"])
    assert np.isfinite(trainer.callback_metrics["loss/val"].item())
    assert len(recorder.batches["train"]) == len(recorder.batches["val"]) == 1
    for stage, expected in (("train", "exp_a"), ("val", "exp_b")):
        batch = recorder.batches[stage][0]
        for key in ("anchor", "positive"):
            assert set(_experiment_of_each_sample(batch[key])) == {expected}, (stage, key)
        # anchor and positive are the same cell at different times: same experiment, different frame
        assert not torch.equal(batch["anchor"], batch["positive"])


def test_fast_dev_run_with_every_sampling_axis_on(two_experiment_plates, tmp_path):
    trainer, recorder = _fast_dev_run(
        two_experiment_plates,
        tmp_path,
        2,
        val_experiments=[],
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        temporal_window_hours=1.0,
        temporal_global_fraction=0.3,
        leaky=0.5,
    )
    sampler = trainer.train_dataloader.batch_sampler
    assert (sampler.experiment_aware, sampler.condition_balanced, sampler.temporal_enrichment) == (True, True, True)
    assert sampler.leaky == 0.5
    assert set(sampler.valid_anchors["condition"]) == {"uninfected", "infected"}
    assert len(recorder.batches["train"]) == 2 and not recorder.batches["val"]
    for batch in recorder.batches["train"]:
        anchors = _experiment_of_each_sample(batch["anchor"])
        positives = _experiment_of_each_sample(batch["positive"])
        assert anchors == positives, "a positive came from another experiment than its anchor"
        # leaky=0.5 puts about half of each batch from the other experiment (at least 2 of 8)
        assert min(anchors.count("exp_a"), anchors.count("exp_b")) >= 2, anchors


def test_without_leak_every_batch_comes_from_a_single_experiment(two_experiment_plates, tmp_path):
    _, recorder = _fast_dev_run(
        two_experiment_plates,
        tmp_path,
        3,
        val_experiments=[],
        experiment_aware=True,
        temporal_enrichment=True,
        leaky=0.0,
    )
    for batch in recorder.batches["train"]:
        assert len(set(_experiment_of_each_sample(batch["anchor"]))) == 1
