"""TripletDataModule and MultiExperimentDataModule share one patch reader and one device-side step."""

import copy

import pytest
import torch
from _multi_experiment_plates import write_two_experiment_plates
from monai.transforms import MapTransform

from dynaclr.datamodule import MultiExperimentDataModule
from viscy_data.batch_transforms import TripletBatchTransform
from viscy_data.patches import PatchReader
from viscy_data.triplet import TripletDataModule
from viscy_transforms import BatchedRandGaussianNoised

CHANNELS = ["ch_0", "ch_1"]


class SubtractFovMean(MapTransform):
    def __call__(self, data):
        out = dict(data)
        for key in self.keys:
            out[key] = data[key] - data["norm_meta"][key]["fov_statistics"]["mean"].view(-1, 1, 1, 1, 1)
        return out


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    return write_two_experiment_plates(tmp_path_factory.mktemp("shared_stack"))


def _transforms():
    return {
        "normalizations": [SubtractFovMean(keys=CHANNELS)],
        "augmentations": [BatchedRandGaussianNoised(keys=CHANNELS, prob=1.0, std=100.0)],
    }


def test_one_batch_gives_the_same_output_through_both_modules(plates):
    multi = MultiExperimentDataModule(
        str(plates["experiments_yaml"]),
        z_range=(0, 2),
        yx_patch_size=(16, 16),
        final_yx_patch_size=(8, 8),
        val_experiments=["exp_b"],
        tau_range=(0.5, 1.0),
        batch_size=4,
        num_workers=0,
        channel_dropout_prob=0.0,
        **_transforms(),
    )
    multi.setup("fit")
    # the single-plate module keyed on the same channel names, augmenting every key (integer interval)
    triplet = TripletDataModule(
        str(plates["root"] / "exp_a.zarr"),
        str(plates["root"] / "exp_a_tracks"),
        source_channel=CHANNELS,
        z_range=(0, 2),
        initial_yx_patch_size=(16, 16),
        final_yx_patch_size=(8, 8),
        time_interval=1,
        num_workers=0,
        **_transforms(),
    )
    steps = [multi._batch_transform, triplet._batch_transform]
    assert all(type(step) is TripletBatchTransform for step in steps)
    assert isinstance(multi.train_dataset._patches, PatchReader)

    batch = multi.train_dataset.__getitems__([0, 1, 2, 3])
    batch["negative"] = batch["positive"].flip(0)
    batch["negative_norm_meta"] = batch["positive_norm_meta"][::-1]
    outputs = []
    for module, step in zip((multi, triplet), steps, strict=True):
        step.augmented.set_random_state(seed=3)
        outputs.append(module.on_after_batch_transfer(copy.deepcopy(batch), 0))
    plain = steps[0](copy.deepcopy(batch), augment=())
    for key in ("anchor", "positive", "negative"):
        assert outputs[0][key].shape == (4, 2, 2, 8, 8)
        assert torch.equal(outputs[0][key], outputs[1][key]), key
        assert not torch.equal(outputs[0][key], plain[key]), key  # the augmentation ran
    assert set(outputs[0]) == set(outputs[1]) == {"anchor", "positive", "negative", "index"}
