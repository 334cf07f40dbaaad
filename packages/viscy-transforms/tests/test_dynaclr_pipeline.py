"""The DynaCLR example configuration, parsed from YAML and run on batched per-channel tensors."""

import pytest
import torch
from jsonargparse import ArgumentParser
from monai.data.utils import collate_meta_tensor
from monai.transforms import Compose
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt

DYNACLR_YAML = """
normalizations:
  - class_path: viscy_transforms.NormalizeSampled
    init_args: {keys: [ch_0], level: fov_statistics, subtrahend: mean, divisor: std}
  - class_path: viscy_transforms.ScaleIntensityRangePercentilesd
    init_args: {keys: [ch_1], lower: 50, upper: 99, b_min: 0.0, b_max: 1.0}
augmentations:
  - class_path: viscy_transforms.RandAffined
    init_args:
      keys: [ch_0, ch_1]
      prob: 0.8
      scale_range: [0, 0.2, 0.2]
      rotate_range: [3.14, 0.0, 0.0]
      shear_range: [0.0, 0.01, 0.01]
      padding_mode: zeros
  - class_path: viscy_transforms.RandAdjustContrastd
    init_args: {keys: [ch_1], prob: 0.5, gamma: [0.8, 1.2]}
  - class_path: viscy_transforms.RandScaleIntensityd
    init_args: {keys: [ch_0], prob: 0.5, factors: 0.5}
  - class_path: viscy_transforms.RandGaussianSmoothd
    init_args: {keys: [ch_0, ch_1], prob: 0.5, sigma_x: [0.25, 0.75], sigma_y: [0.25, 0.75], sigma_z: [0.0, 0.0]}
  - class_path: viscy_transforms.RandGaussianNoised
    init_args: {keys: [ch_1], prob: 0.5, mean: 0.0, std: 0.2}
"""


def parse_config() -> tuple[list[vt.MapTransform], list[vt.MapTransform]]:
    parser = ArgumentParser()
    parser.add_argument("--normalizations", type=list[vt.MapTransform])
    parser.add_argument("--augmentations", type=list[vt.MapTransform])
    config = parser.instantiate(parser.parse_string(DYNACLR_YAML))
    return config.normalizations, config.augmentations


def collated_batch(batch_size: int, device: torch.device, shape=(1, 2, 24, 24)) -> dict:
    """Per-channel batches plus norm_meta collated from per-sample dicts, as the data modules build them."""
    generator = torch.Generator().manual_seed(2)
    per_sample_meta = [
        {"ch_0": {"fov_statistics": {"mean": torch.tensor(float(i)), "std": torch.tensor(2.0)}}}
        for i in range(batch_size)
    ]
    return {
        "ch_0": (
            torch.rand((batch_size, *shape), generator=generator) + torch.arange(batch_size).view(-1, 1, 1, 1, 1)
        ).to(device),
        "ch_1": torch.rand((batch_size, *shape), generator=generator).to(device),
        "norm_meta": collate_meta_tensor(per_sample_meta),
    }


def test_config_parses_into_this_package_classes():
    normalizations, augmentations = parse_config()
    assert [type(t) for t in normalizations] == [vt.NormalizeSampled, vt.ScaleIntensityRangePercentilesd]
    assert isinstance(augmentations[0], vt.RandAffined)
    assert augmentations[0].batched.padding_mode == "zeros"


def test_full_pipeline_runs_on_device_batches(device):
    normalizations, augmentations = parse_config()
    final_crop = vt.BatchedCenterSpatialCropd(keys=["ch_0", "ch_1"], roi_size=(1, 16, 16))
    pipeline = Compose([*normalizations, *augmentations, final_crop])
    pipeline.set_random_state(0)
    out = pipeline(collated_batch(8, device))
    for key in ("ch_0", "ch_1"):
        assert out[key].shape == (8, 1, 1, 16, 16)
        assert out[key].device.type == device.type
        assert type(out[key]) is torch.Tensor
        assert torch.isfinite(out[key]).all()
    assert "norm_meta" in out


def test_full_pipeline_is_deterministic_under_a_seed():
    normalizations, augmentations = parse_config()
    pipeline = Compose([*normalizations, *augmentations])
    first = pipeline.set_random_state(5)(collated_batch(8, torch.device("cpu")))
    second = pipeline.set_random_state(5)(collated_batch(8, torch.device("cpu")))
    assert torch.equal(first["ch_0"], second["ch_0"]) and torch.equal(first["ch_1"], second["ch_1"])
    third = pipeline.set_random_state(6)(collated_batch(8, torch.device("cpu")))
    assert not torch.equal(first["ch_1"], third["ch_1"])


@pytest.mark.parametrize("index", range(5))
def test_each_augmentation_draws_per_sample(index, device):
    """Identical samples in, different samples out: every augmentation draws its parameters per sample."""
    transform = parse_config()[1][index]
    transform.set_random_state(3)
    images = identical_samples(16, (1, 2, 24, 24)).to(device)
    out = transform({"ch_0": images.clone(), "ch_1": images.clone()})
    key = transform.keys[-1]
    assert n_distinct_samples(out[key]) > 2


def test_affine_applies_the_same_transform_to_both_channels():
    transform = parse_config()[1][0]
    transform.set_random_state(0)
    images = identical_samples(8, (1, 1, 24, 24))
    out = transform({"ch_0": images.clone(), "ch_1": 2 * images})
    torch.testing.assert_close(2 * out["ch_0"], out["ch_1"])
