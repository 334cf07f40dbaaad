import inspect
import warnings

import numpy as np
import pytest
import torch
from _multi_experiment_plates import write_two_experiment_plates
from dynaclr_testing import TinyEncoder
from lightning.pytorch import LightningModule, Trainer
from monai.transforms import MapTransform

from dynaclr.datamodule import MultiExperimentDataModule
from dynaclr.engine import ContrastiveModule
from dynaclr.loss import NTXentHCL
from viscy_data.sampler import FlexibleBatchSampler
from viscy_transforms import NormalizeSampled


@pytest.fixture(scope="module")
def two_experiment_plates(tmp_path_factory):
    return write_two_experiment_plates(tmp_path_factory.mktemp("two_experiments_dm"))


class SubtractFovMean(MapTransform):
    """Subtract each sample's ``fov_statistics`` mean, looked up under the transform's own key."""

    def __call__(self, data):
        out = dict(data)
        for key in self.keys:
            mean = data["norm_meta"][key]["fov_statistics"]["mean"].to(data[key].device)
            out[key] = data[key] - mean.view(-1, 1, 1, 1, 1)
        return out


class AddConstant(MapTransform):
    """A stand-in augmentation whose effect is easy to see."""

    def __call__(self, data):
        return {k: (v + 1e6 if k in self.keys else v) for k, v in data.items()}


class BatchRecorder(LightningModule):
    """Keeps the batches each stage receives after ``on_after_batch_transfer``."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = {"train": [], "val": []}

    def training_step(self, batch, batch_idx):
        self.seen["train"].append({k: v.clone() for k, v in batch.items() if k != "index"})
        return self.weight * batch["anchor"].mean()

    def validation_step(self, batch, batch_idx):
        self.seen["val"].append({k: v.clone() for k, v in batch.items() if k != "index"})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _datamodule(plates, **kwargs):
    settings = {
        "experiments_yaml": str(plates["experiments_yaml"]),
        "z_range": (0, 2),
        "yx_patch_size": (16, 16),
        "final_yx_patch_size": (8, 8),
        "val_experiments": ["exp_b"],
        "tau_range": (0.5, 1.0),
        "batch_size": 8,
        "num_workers": 0,
    }
    settings.update(kwargs)
    return MultiExperimentDataModule(**settings)


def _trainer(**kwargs):
    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, **kwargs)


def test_init_stores_parameters_with_defaults(two_experiment_plates):
    dm = _datamodule(two_experiment_plates)
    assert dm.z_range == slice(0, 2)
    assert dm.channel_dropout.channels == [1] and dm.channel_dropout.p == 0.5
    assert dm.normalizations == [] and dm.augmentations == []
    assert (dm.experiment_aware, dm.condition_balanced, dm.leaky, dm.temporal_enrichment) == (True, True, 0.0, False)
    assert (dm.temporal_window_hours, dm.temporal_global_fraction, dm.seed) == (2.0, 0.3, 0)
    assert dm.train_dataset is None and dm.val_dataset is None


def test_setup_splits_by_whole_experiments(two_experiment_plates):
    dm = _datamodule(two_experiment_plates)
    dm.setup("fit")
    assert set(dm.train_dataset.anchors["experiment"]) == {"exp_a"}
    assert set(dm.val_dataset.anchors["experiment"]) == {"exp_b"}
    assert dm._channel_names == ["ch_0", "ch_1"]


def test_setup_errors(two_experiment_plates, tmp_path):
    with pytest.raises(ValueError, match="No training experiments remaining"):
        _datamodule(two_experiment_plates, val_experiments=["exp_a", "exp_b"]).setup("fit")
    with pytest.raises(ValueError, match=r"val_experiments \['exp_c'\]"):
        _datamodule(two_experiment_plates, val_experiments=["exp_c"]).setup("fit")
    with pytest.raises(FileNotFoundError, match="missing.yml"):
        _datamodule(two_experiment_plates, experiments_yaml=str(tmp_path / "missing.yml")).setup("fit")
    with pytest.raises(ValueError, match=r"Experiments \['exp_a'\] have no valid anchors"):
        _datamodule(two_experiment_plates, tau_range=(20.0, 30.0)).setup("fit")


def test_setup_opens_each_plate_once(two_experiment_plates, monkeypatch):
    import iohub.ngff

    opened = []
    real_open = iohub.ngff.open_ome_zarr

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(iohub.ngff, "open_ome_zarr", counting_open)
    dm = _datamodule(two_experiment_plates, val_experiments=["exp_b"], exclude_fovs=["B/1/0"])
    dm.setup("fit")
    assert len(dm.train_dataset) > 0 and len(dm.val_dataset) > 0
    assert sorted(opened) == sorted({*opened}) and len(opened) == 2


def test_train_loader_batches_come_from_the_flexible_sampler(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, val_experiments=[], temporal_enrichment=True, seed=5)
    dm.setup("fit")
    assert dm.val_dataset is None and dm.val_dataloader() == []
    loader = dm.train_dataloader()
    sampler = loader.batch_sampler
    assert isinstance(sampler, FlexibleBatchSampler)
    assert (sampler.batch_size, sampler.temporal_enrichment, sampler.seed, sampler.drop_last) == (8, True, 5, True)
    anchors = dm.train_dataset.anchors
    batches = list(loader)
    assert len(batches) == len(sampler) == len(anchors) // 8
    for batch in batches:
        assert batch["anchor"].shape == (8, 2, 2, 16, 16)
    assert set(anchors["experiment"]) == {"exp_a", "exp_b"}


def test_after_transfer_normalizes_by_generic_keys_and_crops(two_experiment_plates):
    dm = _datamodule(
        two_experiment_plates, normalizations=[SubtractFovMean(keys=["ch_0", "ch_1"])], channel_dropout_prob=0.0
    )
    dm.setup("fit")
    raw = dm.train_dataset.__getitems__([0, 1, 2])
    means = torch.stack([meta["ch_1"]["fov_statistics"]["mean"] for meta in raw["anchor_norm_meta"]])
    expected = raw["anchor"][:, :, :, 4:12, 4:12].clone()
    expected[:, 1] -= means.view(-1, 1, 1, 1)
    out = dm.on_after_batch_transfer(raw, 0)
    assert out["anchor"].shape == (3, 2, 2, 8, 8)
    assert "anchor_norm_meta" not in out and "positive_norm_meta" not in out
    torch.testing.assert_close(out["anchor"][:, 1], expected[:, 1])
    example = torch.rand(1, 2, 2, 16, 16)
    assert dm.on_after_batch_transfer(example, 0) is example


def test_augmentation_and_channel_dropout_only_in_training(two_experiment_plates):
    dm = _datamodule(
        two_experiment_plates,
        augmentations=[AddConstant(keys=["ch_0"])],
        channel_dropout_channels=[1],
        channel_dropout_prob=1.0,
    )
    recorder = BatchRecorder()
    _trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2, num_sanity_val_steps=0).fit(recorder, dm)
    assert recorder.seen["train"] and recorder.seen["val"]
    for batch in recorder.seen["train"]:
        for key in ("anchor", "positive"):
            assert batch[key].shape[-2:] == (8, 8)
            assert torch.all(batch[key][:, 1] == 0)
            assert torch.all(batch[key][:, 0] >= 1e6)
    for batch in recorder.seen["val"]:
        for key in ("anchor", "positive"):
            assert torch.all(batch[key][:, 1] != 0)
            assert torch.all(batch[key][:, 0] < 1e6)


def test_channel_dropout_outside_a_trainer_follows_its_own_train_eval_state(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, channel_dropout_channels=[1], channel_dropout_prob=1.0)
    dm.setup("fit")
    assert dm.trainer is None
    dm.channel_dropout.eval()
    out = dm.on_after_batch_transfer(dm.train_dataset.__getitems__([0, 1, 2]), 0)
    assert torch.all(out["anchor"][:, 1] != 0) and torch.all(out["positive"][:, 1] != 0)
    assert not dm.channel_dropout.training
    dm.channel_dropout.train()
    out = dm.on_after_batch_transfer(dm.train_dataset.__getitems__([0, 1, 2]), 0)
    assert torch.all(out["anchor"][:, 1] == 0) and torch.all(out["positive"][:, 1] == 0)


def test_fit_then_predict_with_contrastive_module(two_experiment_plates):
    torch.manual_seed(0)
    model = ContrastiveModule(
        TinyEncoder(), loss_function=NTXentHCL(), example_input_array_shape=(1, 2, 2, 8, 8), log_batches_per_epoch=0
    )
    dm = _datamodule(two_experiment_plates, temporal_enrichment=True, leaky=0.0)
    trainer = _trainer(max_epochs=2, limit_val_batches=2)
    trainer.fit(model, dm)
    assert np.isfinite(trainer.callback_metrics["loss/train"].item())
    assert np.isfinite(trainer.callback_metrics["loss/val"].item())
    predictions = trainer.predict(model, datamodule=dm)
    n_cells = sum(len(p["features"]) for p in predictions)
    assert n_cells == len(dm.predict_dataset.index.tracks)
    assert {"fov_name", "id"} <= set(predictions[0]["index"])


def test_training_batches_change_between_epochs_without_set_epoch(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, channel_dropout_prob=0.0)
    recorder = BatchRecorder()
    _trainer(max_epochs=2, limit_val_batches=0, num_sanity_val_steps=0).fit(recorder, dm)
    per_epoch = len(recorder.seen["train"]) // 2
    assert per_epoch == len(dm.train_dataloader().batch_sampler) > 0
    first = torch.cat([b["anchor"] for b in recorder.seen["train"][:per_epoch]])
    second = torch.cat([b["anchor"] for b in recorder.seen["train"][per_epoch:]])
    assert not torch.equal(first, second)


REQUIRED = inspect.Parameter.empty
SPEC_INIT_DEFAULTS = {  # the spec's MultiExperimentDataModule.__init__ table, in order
    "experiments_yaml": REQUIRED,
    "z_range": REQUIRED,
    "yx_patch_size": REQUIRED,
    "final_yx_patch_size": REQUIRED,
    "val_experiments": REQUIRED,
    "tau_range": (0.5, 2.0),
    "tau_decay_rate": 2.0,
    "batch_size": 128,
    "num_workers": 1,
    "experiment_aware": True,
    "condition_balanced": True,
    "leaky": 0.0,
    "temporal_enrichment": False,
    "temporal_window_hours": 2.0,
    "temporal_global_fraction": 0.3,
    "experiment_weights": None,
    "condition_ratio": None,
    "channel_dropout_channels": None,
    "channel_dropout_prob": 0.5,
    "normalizations": None,
    "augmentations": None,
    "hcl_beta": None,  # issue 15: deprecated and ignored (was 0.5, informational), warns when set
    "cache_pool_bytes": 4 * 1024**3,  # issue 13: the decoded-chunk cache is on by default
    "seed": 0,
    "include_wells": None,
    "exclude_fovs": None,
    "nonfinite": "raise",  # new optional argument (non-finite pixel policy), after the spec's
    "group_by_fov_fraction": 0.0,  # issue 13, off by default
    "group_by_fov_frames": 4,
    "val_fovs": None,  # added (issue 12): a split by FOV
}


def test_init_signature_matches_the_spec():
    parameters = dict(inspect.signature(MultiExperimentDataModule.__init__).parameters)
    parameters.pop("self")
    assert list(parameters) == list(SPEC_INIT_DEFAULTS)
    assert {name: p.default for name, p in parameters.items()} == SPEC_INIT_DEFAULTS


def test_every_parameter_reaches_its_consumer(two_experiment_plates):
    normalize, augment = SubtractFovMean(keys=["ch_0"]), AddConstant(keys=["ch_1"])
    settings = {
        "val_experiments": [],
        "tau_range": (0.5, 1.0),
        "tau_decay_rate": 0.5,
        "batch_size": 4,
        "num_workers": 2,
        "experiment_aware": True,
        "condition_balanced": False,
        "leaky": 0.5,
        "temporal_enrichment": True,
        "temporal_window_hours": 1.0,
        "temporal_global_fraction": 0.5,
        "experiment_weights": {"exp_a": 1.0, "exp_b": 3.0},
        "condition_ratio": {"infected": 2.0},
        "channel_dropout_channels": [0, 1],
        "channel_dropout_prob": 0.25,
        "normalizations": [normalize],
        "augmentations": [augment],
        "cache_pool_bytes": 1 << 20,
        "seed": 7,
        "include_wells": ["A/1", "B/1"],
        "exclude_fovs": ["B/1/0"],
        "group_by_fov_fraction": 0.5,
        "group_by_fov_frames": 2,
    }
    dm = _datamodule(two_experiment_plates, **settings)
    for name, value in settings.items():
        assert getattr(dm, name) == value, name
    assert (dm.channel_dropout.channels, dm.channel_dropout.p) == ([0, 1], 0.25)
    dm.setup("fit")
    dataset = dm.train_dataset
    assert set(dataset.index.tracks["fov_name"]) == {"A/1/0"}  # include_wells and exclude_fovs
    assert dataset.index.z_range == slice(0, 2) and dataset.index.yx_patch_size == (16, 16)
    assert (dataset.tau_range_hours, dataset.tau_decay_rate) == ((0.5, 1.0), 0.5)
    assert (dataset.cache_pool_bytes, dataset.seed) == (1 << 20, 7)
    assert dm._batch_transform.augmented.transforms[:2] == (normalize, augment)
    assert dm._batch_transform.plain.transforms[0] is normalize
    assert dm._batch_transform.channel_dropout is dm.channel_dropout
    loader = dm.train_dataloader()
    assert loader.num_workers == 2
    sampler = loader.batch_sampler
    for name in ("batch_size", "experiment_aware", "condition_balanced", "leaky", "temporal_enrichment", "seed"):
        assert getattr(sampler, name) == settings[name], name
    for name in ("temporal_window_hours", "temporal_global_fraction", "experiment_weights", "condition_ratio"):
        assert getattr(sampler, name) == settings[name], name
    for name in ("group_by_fov_fraction", "group_by_fov_frames"):
        assert getattr(sampler, name) == settings[name], name


def test_batch_size_larger_than_every_pool_fails_before_training(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, batch_size=1000)
    with pytest.raises(ValueError, match="batch_size=1000 is larger than every anchor pool"):
        _trainer(max_epochs=1).fit(BatchRecorder(), dm)


def test_normalization_needing_missing_plate_metadata_fails_at_setup(tmp_path):
    plates = write_two_experiment_plates(tmp_path, normalization=False)
    normalize = NormalizeSampled(keys=["ch_0"], level="fov_statistics")
    dm = _datamodule(plates, normalizations=[normalize])
    with pytest.raises(ValueError, match=r"NormalizeSampled needs normalization metadata but FOV 'A/1/0'.*exp_a"):
        dm.setup("fit")


def test_normalization_metadata_check_uses_generic_channel_keys(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, normalizations=[NormalizeSampled(keys=["ch_1"], level="fov_statistics")])
    dm.setup("fit")
    assert dm.train_dataset.fov_norm_meta[("exp_a", "A/1/0")]["ch_1"]["fov_statistics"]["mean"].ndim == 0
    missing_stat = NormalizeSampled(keys=["ch_1"], level="fov_statistics", subtrahend="mode")
    with pytest.raises(ValueError, match=r"no ch_1/fov_statistics/\['mode'\]"):
        _datamodule(two_experiment_plates, normalizations=[missing_stat]).setup("fit")


def test_validation_batches_repeat_every_epoch(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, batch_size=4)
    recorder = BatchRecorder()
    _trainer(max_epochs=2, limit_train_batches=1, num_sanity_val_steps=0).fit(recorder, dm)
    per_epoch = len(recorder.seen["val"]) // 2
    assert per_epoch == len(dm.val_dataloader().batch_sampler) > 1
    for first, second in zip(recorder.seen["val"][:per_epoch], recorder.seen["val"][per_epoch:], strict=True):
        assert torch.equal(first["anchor"], second["anchor"]) and torch.equal(first["positive"], second["positive"])


def test_val_fovs_split_the_training_experiments_by_fov(two_experiment_plates):
    dm = _datamodule(two_experiment_plates, val_experiments=[], val_fovs=["B/1/0"])
    dm.setup("fit")
    assert set(dm.train_dataset.index.tracks["fov_name"]) == {"A/1/0"}
    assert set(dm.val_dataset.index.tracks["fov_name"]) == {"B/1/0"}
    assert set(dm.val_dataset.anchors["experiment"]) == {"exp_a", "exp_b"}
    with pytest.raises(ValueError, match="val_experiments.*or val_fovs"):
        _datamodule(two_experiment_plates, val_fovs=["B/1/0"]).setup("fit")
    with pytest.raises(ValueError, match=r"val_fovs \['C/1/0'\] have no tracked cells"):
        _datamodule(two_experiment_plates, val_experiments=[], val_fovs=["B/1/0", "C/1/0"]).setup("fit")


def test_hcl_beta_in_a_yaml_config_still_parses_with_a_deprecation_warning(two_experiment_plates):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(MultiExperimentDataModule, "data")
    config = parser.parse_string(
        f"data:\n  experiments_yaml: {two_experiment_plates['experiments_yaml']}\n  z_range: [0, 2]\n"
        "  yx_patch_size: [16, 16]\n  final_yx_patch_size: [8, 8]\n  val_experiments: [exp_b]\n  hcl_beta: 0.5\n"
    )
    with pytest.warns(DeprecationWarning, match=r"hcl_beta=.*NTXentHCL\(beta=\.\.\.\)"):
        data = parser.instantiate(config).data
    assert isinstance(data, MultiExperimentDataModule) and not hasattr(data, "hcl_beta")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        _datamodule(two_experiment_plates)
