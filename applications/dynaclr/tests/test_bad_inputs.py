"""Broken variants of a valid DynaCLR setup: every error is raised at setup (or before training) and names
the file, the experiment and the field; non-finite pixels and losses stop with a clear error.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _multi_experiment_plates import write_two_experiment_plates
from dynaclr_testing import SHAPE, TinyEncoder, random_triplets
from iohub.ngff import open_ome_zarr
from torch import nn
from torch.utils.data import DataLoader

from dynaclr.datamodule import MultiExperimentDataModule
from dynaclr.engine import ContrastiveModule
from dynaclr.loss import NTXentHCL
from viscy_utils.trainer import VisCyTrainer


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    return write_two_experiment_plates(tmp_path_factory.mktemp("bad_inputs"))


def _datamodule(experiments_yaml, **kwargs) -> MultiExperimentDataModule:
    settings = {
        "z_range": (0, 2),
        "yx_patch_size": (16, 16),
        "final_yx_patch_size": (16, 16),
        "val_experiments": [],
        "tau_range": (0.5, 1.0),
        "batch_size": 4,
        "num_workers": 0,
    }
    settings.update(kwargs)
    return MultiExperimentDataModule(str(experiments_yaml), **settings)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"z_range": (1, 1)}, r"z_range must be \(start, stop\) with 0 <= start < stop, got \(1, 1\)"),
        ({"z_range": (2, 1)}, r"z_range must be .* got \(2, 1\)"),
        (
            {"tau_range": (-0.5, 1.0)},
            r"tau_range must satisfy 0 <= min <= max with max > 0 \(hours\), got \(-0.5, 1.0\)",
        ),
        ({"tau_range": (2.0, 1.0)}, r"tau_range must satisfy .* got \(2.0, 1.0\)"),
        ({"tau_range": (0.5, float("nan"))}, r"tau_range must be two finite numbers"),
        ({"final_yx_patch_size": (24, 16)}, r"final_yx_patch_size \(24, 16\) must not exceed yx_patch_size \(16, 16\)"),
        ({"yx_patch_size": (0, 16)}, r"yx_patch_size must be two positive integers"),
        (
            {"condition_ratio": {"infectd": 2.0}},
            r"condition_ratio keys \['infectd'\] name no condition of .*experiments.yml; "
            r"conditions: \['infected', 'uninfected', 'unknown'\]",
        ),
        (
            {"experiment_weights": {"exp_c": 1.0}},
            r"experiment_weights keys \['exp_c'\] name no experiment of .*experiments.yml",
        ),
        (
            {"channel_dropout_channels": [2]},
            r"channel_dropout_channels \[2\] are not model channels; expected indices in \[0, 1\]",
        ),
        ({"include_wells": ["A/1", "C/9"]}, r"include_wells \['C/9'\] are not in any plate of .*experiments.yml"),
        (
            {"exclude_fovs": ["B/1/7"]},
            r"exclude_fovs \['B/1/7'\] are not in any plate of .*; known: \['A/1/0', 'B/1/0'\]",
        ),
    ],
)
def test_arguments_are_checked_at_setup(plates, arguments, message):
    datamodule = _datamodule(plates["experiments_yaml"], **arguments)
    with pytest.raises(ValueError, match=f"MultiExperimentDataModule: {message}"):
        datamodule.setup("fit")


def test_unknown_nonfinite_policy_fails_at_construction(plates):
    with pytest.raises(ValueError, match="MultiExperimentDataModule: nonfinite must be one of"):
        _datamodule(plates["experiments_yaml"], nonfinite="ignore")


def _edited_setup(plates, tmp_path, edit_entry=None, tracks=None):
    """A copy of experiments.yml with exp_b edited, and optionally exp_b's A/1/0 tracks replaced."""
    content = yaml.safe_load(plates["experiments_yaml"].read_text())
    entry = content["experiments"][1]
    if tracks is not None:
        tracks_path = tmp_path / "tracks_b"
        csv = tracks_path / "A/1/0" / "tracks.csv"
        csv.parent.mkdir(parents=True)
        tracks.to_csv(csv, index=False)
        (tracks_path / "B/1/0").mkdir(parents=True)
        (tracks_path / "B/1/0" / "tracks.csv").write_text(
            (plates["root"] / "exp_b_tracks/B/1/0/tracks.csv").read_text()
        )
        entry["tracks_path"] = str(tracks_path)
    if edit_entry is not None:
        edit_entry(entry)
    path = tmp_path / "experiments.yml"
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.mark.parametrize("stage", ["fit", "predict"])
def test_tracks_beyond_the_plate_timepoints_fail_setup(plates, tmp_path, stage):
    tracks = pd.read_csv(plates["root"] / "exp_b_tracks/A/1/0/tracks.csv")
    tracks.loc[tracks["t"] == 7, "t"] = 8  # the plate has 8 timepoints: 0..7
    path = _edited_setup(plates, tmp_path, tracks=tracks)
    with pytest.raises(
        ValueError,
        match=r"Experiment 'exp_b', FOV A/1/0, tracks CSV .*tracks_b/A/1/0/tracks.csv: "
        r"column 't' must be in \[0, 7\]",
    ):
        _datamodule(path).setup(stage)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda e: e.update(condition_wells={"infected": ["B/1"], "mock": ["C/1"]}),
            r"Experiment 'exp_b': condition_wells name wells the plate .*exp_b.zarr does not have: "
            r"\{'mock': \['C/1'\]\}",
        ),
        (lambda e: e.update(interval_minutes="15 min"), r"experiments\[1\] \(name 'exp_b'\): field 'interval_minutes'"),
        (
            lambda e: e.update(condition_wells=["A/1"]),
            r"experiments\[1\] \(name 'exp_b'\): field 'condition_wells': Input should be a valid dictionary",
        ),
    ],
)
def test_yaml_and_plate_errors_name_the_yaml(plates, tmp_path, edit, message):
    path = _edited_setup(plates, tmp_path, edit_entry=edit)
    with pytest.raises(ValueError, match=message) as raised:
        _datamodule(path).setup("fit")
    assert str(path) in str(raised.value)


@pytest.fixture(scope="module")
def nan_plates(tmp_path_factory):
    """The two experiments, with NaN and Inf pixels in exp_a's FOV A/1/0 at every timepoint."""
    root = tmp_path_factory.mktemp("nan_plates")
    paths = write_two_experiment_plates(root)
    with open_ome_zarr(root / "exp_a.zarr", mode="r+") as plate:
        image = plate["A/1/0"]["0"]
        values = image[:]
        values[:, :, :, 8:24, 8:24] = np.nan
        values[:, :, :, 0, 0] = np.inf
        image[:] = values
    return paths


def _first_batch(datamodule):
    datamodule.setup("fit")
    return datamodule.train_dataset.__getitems__(list(range(len(datamodule.train_dataset))))


def test_nonfinite_pixels_raise_once_per_batch(nan_plates):
    datamodule = _datamodule(nan_plates["experiments_yaml"])
    batch = _first_batch(datamodule)
    with pytest.raises(
        ValueError,
        match=r"MultiExperimentDataModule: the batch has non-finite pixels "
        r"\('anchor': \d+ NaN/Inf pixels in samples \[",
    ):
        datamodule.on_after_batch_transfer(batch, 0)


def test_nonfinite_pixels_zeroed_on_request(nan_plates):
    datamodule = _datamodule(nan_plates["experiments_yaml"], nonfinite="zero", channel_dropout_prob=0.0)
    batch = datamodule.on_after_batch_transfer(_first_batch(datamodule), 0)
    assert torch.isfinite(batch["anchor"]).all() and torch.isfinite(batch["positive"]).all()
    experiments = datamodule.train_dataset.anchors["experiment"].to_numpy()
    fovs = datamodule.train_dataset.anchors["fov_name"].to_numpy()
    poisoned = (experiments == "exp_a") & (fovs == "A/1/0")
    assert (batch["anchor"][poisoned] == 0).any() and not (batch["anchor"][~poisoned] == 0).any()


def _trainer(tmp_path, **kwargs) -> VisCyTrainer:
    settings = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    settings.update(max_epochs=1, limit_val_batches=0, default_root_dir=tmp_path, enable_checkpointing=False)
    settings.update(kwargs)
    return VisCyTrainer(**settings)


def _module(**encoder) -> ContrastiveModule:
    return ContrastiveModule(TinyEncoder(**encoder), loss_function=NTXentHCL(), example_input_array_shape=(1, *SHAPE))


def test_nonfinite_loss_stops_training_naming_epoch_batch_and_term(tmp_path):
    samples = random_triplets(12)
    samples[9]["positive"][0, 0, 0] = float("nan")  # batch 2 of 4-sample batches
    trainer = _trainer(tmp_path)
    with pytest.raises(
        FloatingPointError,
        match=r"ContrastiveModule: non-finite train loss at epoch 0, batch 2 "
        r"\(global step 2\): loss terms 'NTXentHCL' = nan; non-finite values in "
        r"\['positive images', 'positive projections'\]",
    ):
        trainer.fit(_module(), DataLoader(samples, batch_size=4))
    assert trainer.global_step == 2


@pytest.fixture
def trained_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(_module(), DataLoader(random_triplets(4), batch_size=4))
    path = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(path)
    return path


class _StepCounter(ContrastiveModule):
    steps = 0

    def training_step(self, batch, batch_idx):
        type(self).steps += 1
        return super().training_step(batch, batch_idx)


def test_channel_count_other_than_the_encoders_fails_before_training(plates, tmp_path):
    module = _StepCounter(TinyEncoder(in_channels=3), loss_function=NTXentHCL(), example_input_array_shape=(1, *SHAPE))
    with pytest.raises(
        ValueError,
        match=r"MultiExperimentDataModule gives 2 channels per patch but the encoder TinyEncoder has in_channels=3",
    ):
        _trainer(tmp_path, limit_train_batches=1).fit(module, datamodule=_datamodule(plates["experiments_yaml"]))
    assert _StepCounter.steps == 0


class _OtherBackbone(nn.Module):
    """An encoder with other layers than TinyEncoder (as a different backbone has)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(2, 4, kernel_size=1)
        self.head = nn.Linear(4, 4)

    def forward(self, x):
        features = self.stem(x).mean(dim=(2, 3, 4))
        return features, self.head(features)


@pytest.mark.parametrize(
    ("encoder", "message"),
    [
        (
            lambda: TinyEncoder(in_channels=3),
            r"0 missing keys .* 1 keys with other shapes \(first: \['model.conv.weight: checkpoint "
            r"\(8, 2, 1, 1, 1\) vs model \(8, 3, 1, 1, 1\)'\]\)",
        ),
        (
            _OtherBackbone,
            r"4 missing keys \(first: \['model.head.bias', .*4 unexpected keys \(first: \['model.conv.bias'",
        ),
    ],
)
def test_fit_from_another_architecture_fails_before_training(tmp_path, trained_checkpoint, encoder, message):
    module = _StepCounter(encoder(), loss_function=NTXentHCL(), example_input_array_shape=(1, *SHAPE))
    with pytest.raises(ValueError, match=f"checkpoint {trained_checkpoint} does not match _StepCounter: {message}"):
        _trainer(tmp_path).fit(module, DataLoader(random_triplets(4), batch_size=4), ckpt_path=trained_checkpoint)
    assert _StepCounter.steps == 0


def test_predict_with_another_architecture_names_the_checkpoint(tmp_path, trained_checkpoint):
    trainer = _trainer(tmp_path)
    with pytest.raises(
        ValueError, match=f"checkpoint {trained_checkpoint} does not match ContrastiveModule: .*model.conv.weight"
    ):
        trainer.predict(
            _module(in_channels=3), DataLoader(random_triplets(4), batch_size=4), ckpt_path=trained_checkpoint
        )
