"""The contract every random batched transform keeps: seeded, per-sample, on device, plain float tensors."""

import pytest
import torch
from monai.data import MetaTensor
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt

KEYS = ["a", "b"]

# every random transform that takes a dict of (B, C, Z, Y, X) batches, with prob=1.0 so that each sample changes
RANDOM_BATCHED_DICT_TRANSFORMS = {
    "BatchedRandAffined": lambda: vt.BatchedRandAffined(KEYS, prob=1.0, rotate_range=[3.14, 0, 0]),
    "BatchedRand3DElasticd": lambda: vt.BatchedRand3DElasticd(KEYS, (1.0, 2.0), (2.0, 4.0), prob=1.0),
    "BatchedRandAdjustContrastd": lambda: vt.BatchedRandAdjustContrastd(KEYS, prob=1.0),
    "BatchedRandFlipd": lambda: vt.BatchedRandFlipd(KEYS, spatial_axes=[1, 2], prob=0.5),
    "BatchedRandGaussianNoised": lambda: vt.BatchedRandGaussianNoised(KEYS, prob=1.0),
    "BatchedRandGaussianSmoothd": lambda: vt.BatchedRandGaussianSmoothd(KEYS, prob=1.0),
    "BatchedRandHistogramShiftd": lambda: vt.BatchedRandHistogramShiftd(KEYS, prob=1.0),
    "BatchedRandLocalPixelShufflingd": lambda: vt.BatchedRandLocalPixelShufflingd(KEYS, shuffle_prob=0.5, prob=1.0),
    "BatchedRandScaleIntensityd": lambda: vt.BatchedRandScaleIntensityd(KEYS, factors=0.5, prob=1.0),
    "BatchedRandSharpend": lambda: vt.BatchedRandSharpend(KEYS, prob=1.0),
    "BatchedRandSpatialCropd": lambda: vt.BatchedRandSpatialCropd(KEYS, roi_size=(2, 8, 8)),
    "BatchedRandZStackShiftd": lambda: vt.BatchedRandZStackShiftd(KEYS, max_shift=2, prob=1.0),
    "RandInvertIntensityd": lambda: vt.RandInvertIntensityd(KEYS, prob=0.5),
    "RandAffined": lambda: vt.RandAffined(KEYS, 1.0, rotate_range=[3.14, 0, 0], shear_range=None, scale_range=None),
    "RandAdjustContrastd": lambda: vt.RandAdjustContrastd(KEYS, prob=1.0, gamma=(0.5, 2.0)),
    "RandScaleIntensityd": lambda: vt.RandScaleIntensityd(KEYS, factors=0.5, prob=1.0),
    "RandGaussianSmoothd": lambda: vt.RandGaussianSmoothd(KEYS, 1.0, (0.5, 1.5), (0.5, 1.5), (0.5, 1.5)),
    "RandGaussianNoised": lambda: vt.RandGaussianNoised(KEYS, prob=1.0, mean=0.0, std=0.5),
}
NAMES = sorted(RANDOM_BATCHED_DICT_TRANSFORMS)


def sample_batch(device: torch.device | str = "cpu") -> dict:
    """Two keys holding 16 identical samples (the second key scaled), plus a non-tensor entry first."""
    images = identical_samples(16, (1, 4, 16, 16)).to(device)
    return {"norm_meta": {"a": {}}, "a": images, "b": 2 * images}


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_other_seed_other_output(name):
    transform = RANDOM_BATCHED_DICT_TRANSFORMS[name]()
    first = transform.set_random_state(7)(sample_batch())
    second = transform.set_random_state(7)(sample_batch())
    third = transform.set_random_state(8)(sample_batch())
    assert torch.equal(first["a"], second["a"]) and torch.equal(first["b"], second["b"])
    assert not torch.equal(first["a"], third["a"])


@pytest.mark.parametrize("name", NAMES)
def test_torch_manual_seed_controls_a_new_transform(name):
    """Transforms seed themselves from torch's global generator (``lightning.seed_everything`` reproduces runs)."""
    torch.manual_seed(11)
    first = RANDOM_BATCHED_DICT_TRANSFORMS[name]()(sample_batch())
    torch.manual_seed(11)
    second = RANDOM_BATCHED_DICT_TRANSFORMS[name]()(sample_batch())
    assert torch.equal(first["a"], second["a"])


@pytest.mark.parametrize("name", NAMES)
def test_identical_samples_get_independent_draws(name):
    transform = RANDOM_BATCHED_DICT_TRANSFORMS[name]().set_random_state(3)
    out = transform(sample_batch())
    assert n_distinct_samples(out["a"]) > 1  # one draw shared by the batch would give a single distinct sample


@pytest.mark.parametrize("name", NAMES)
def test_keys_of_a_sample_share_the_draw(name):
    """Key ``b`` is twice key ``a``: a shared draw of these (positively homogeneous) transforms keeps that."""
    if name in ("BatchedRandAdjustContrastd", "RandAdjustContrastd", "BatchedRandHistogramShiftd"):
        pytest.skip("min-max gamma and additive shifts are not homogeneous; covered by their own tests")
    if name in ("BatchedRandGaussianNoised", "RandGaussianNoised"):
        pytest.skip("the same noise is added to both keys; covered in test_noise.py")
    transform = RANDOM_BATCHED_DICT_TRANSFORMS[name]().set_random_state(5)
    out = transform(sample_batch())
    torch.testing.assert_close(2 * out["a"], out["b"])


@pytest.mark.parametrize("name", NAMES)
def test_output_is_a_plain_float_tensor_on_the_input_device(name, device):
    batch = sample_batch(device)
    out = RANDOM_BATCHED_DICT_TRANSFORMS[name]()(batch)
    assert out["norm_meta"] is batch["norm_meta"]
    for key in KEYS:
        assert type(out[key]) is torch.Tensor
        assert out[key].device.type == device.type
        assert out[key].dtype == torch.float32
        assert out[key].shape[:2] == (16, 1)


@pytest.mark.parametrize("name", NAMES)
def test_metatensor_batches_come_out_as_plain_tensors(name):
    """Collated MONAI ``MetaTensor`` batches are unwrapped (batched transforms return plain tensors)."""
    batch = {key: MetaTensor(value) for key, value in sample_batch().items() if key in KEYS}
    out = RANDOM_BATCHED_DICT_TRANSFORMS[name]()(batch)
    assert all(type(out[key]) is torch.Tensor for key in KEYS)
    assert all(type(batch[key]) is MetaTensor for key in KEYS)  # the caller's dict is left alone
