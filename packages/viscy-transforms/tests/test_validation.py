"""Bad input fails early with messages that name the key and the shape."""

import pytest
import torch

import viscy_transforms as vt

BATCHED_DICT_TRANSFORMS = [
    lambda: vt.BatchedCenterSpatialCropd(keys=["img"], roi_size=(1, 4, 4)),
    lambda: vt.BatchedRandAffined(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandGaussianSmoothd(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandGaussianNoised(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandAdjustContrastd(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandScaleIntensityd(keys=["img"], prob=1.0),
    lambda: vt.BatchedScaleIntensityRangePercentilesd(keys=["img"], lower=1, upper=99, b_min=0.0, b_max=1.0),
    lambda: vt.BatchedRandZStackShiftd(keys=["img"], prob=1.0),
    lambda: vt.BatchedRand3DElasticd(keys=["img"], sigma_range=(1, 2), magnitude_range=(1, 2), prob=1.0),
    lambda: vt.BatchedRandFlipd(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandHistogramShiftd(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandLocalPixelShufflingd(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandSharpend(keys=["img"], prob=1.0),
    lambda: vt.BatchedRandSpatialCropd(keys=["img"], roi_size=(1, 4, 4)),
    lambda: vt.BatchedZoomd(keys=["img"], scale_factor=0.5, mode="nearest"),
]


@pytest.mark.parametrize("make", BATCHED_DICT_TRANSFORMS)
def test_missing_key_is_named(make):
    with pytest.raises(KeyError, match="img"):
        make()({"other": torch.zeros(2, 1, 2, 8, 8)})


@pytest.mark.parametrize("make", BATCHED_DICT_TRANSFORMS)
def test_wrong_rank_names_key_and_shape(make):
    with pytest.raises(ValueError, match=r"key 'img'.*\(8, 8\)"):
        make()({"img": torch.zeros(8, 8)})


@pytest.mark.parametrize("make", BATCHED_DICT_TRANSFORMS)
def test_non_tensor_names_key_and_type(make):
    with pytest.raises(TypeError, match="key 'img'.*ndarray"):
        make()({"img": torch.zeros(2, 1, 2, 8, 8).numpy()})


def test_allow_missing_keys_skips_absent_keys():
    transform = vt.BatchedRandGaussianSmoothd(keys=["img", "absent"], prob=1.0, allow_missing_keys=True)
    assert transform({"img": torch.zeros(2, 1, 2, 8, 8)})["img"].shape == (2, 1, 2, 8, 8)


def test_keys_with_different_batch_sizes_are_rejected():
    transform = vt.BatchedRandScaleIntensityd(keys=["a", "b"], prob=1.0)
    with pytest.raises(ValueError, match="batch sizes"):
        transform({"a": torch.zeros(2, 1, 1, 4, 4), "b": torch.zeros(3, 1, 1, 4, 4)})


def test_wrapper_rejects_mixed_batched_and_per_sample_keys():
    transform = vt.RandScaleIntensityd(keys=["a", "b"], factors=0.1, prob=1.0)
    with pytest.raises(ValueError, match="cannot mix"):
        transform({"a": torch.zeros(2, 1, 1, 4, 4), "b": torch.zeros(1, 1, 4, 4)})


def test_array_transform_rejects_wrong_rank_and_stale_parameters():
    transform = vt.BatchedRandScaleIntensity(prob=1.0)
    with pytest.raises(ValueError, match=r"\(1, 4, 4\)"):
        transform(torch.zeros(1, 4, 4))
    with pytest.raises(RuntimeError, match="randomize"):
        vt.BatchedRandScaleIntensity(prob=1.0)(torch.zeros(2, 1, 1, 4, 4), randomize=False)
    transform(torch.zeros(2, 1, 1, 4, 4))
    with pytest.raises(ValueError, match="2 samples"):
        transform(torch.zeros(3, 1, 1, 4, 4), randomize=False)


def test_prob_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="prob"):
        vt.BatchedRandFlip(spatial_axes=0, prob=1.5)
