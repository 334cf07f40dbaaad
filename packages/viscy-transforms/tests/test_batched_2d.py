"""2-D batches ``(B, C, Y, X)``: every ``Batched*`` transform runs on them, checked against MONAI per sample."""

import re

import monai.transforms as mt
import numpy as np
import pytest
import torch
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt
from viscy_transforms._affine_grid import affine_matrices, warp_affine

B, C, Y, X = 8, 2, 12, 14


@pytest.fixture
def batch2d() -> torch.Tensor:
    """A ``(8, 2, 12, 14)`` batch of distinct random images."""
    return torch.rand((B, C, Y, X), generator=torch.Generator().manual_seed(0))


def test_adjust_contrast_matches_monai_per_sample(batch2d, device):
    transform = vt.BatchedRandAdjustContrast(gamma=(0.5, 2.0), prob=1.0, retain_stats=True).set_random_state(0)
    out = transform(batch2d.to(device)).cpu()
    assert np.unique(transform._gamma).size == B
    for i in range(B):
        expected = mt.AdjustContrast(transform._gamma[i], retain_stats=True)(batch2d[i]).as_tensor()
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channel_wise", [False, True])
def test_scale_intensity_matches_monai_per_sample(batch2d, channel_wise):
    transform = vt.BatchedRandScaleIntensity(factors=0.5, prob=1.0, channel_wise=channel_wise).set_random_state(0)
    out = transform(batch2d)
    assert transform._factors.shape == (B, C if channel_wise else 1)
    for i in range(B):
        for c in range(C):
            factor = transform._factors[i, c if channel_wise else 0]
            expected = mt.ScaleIntensity(minv=None, maxv=None, factor=factor)(batch2d[i, c : c + 1]).as_tensor()
            torch.testing.assert_close(out[i, c : c + 1], expected)


def test_scale_intensity_channel_wise_draws_per_sample_and_channel_and_reapplies_bit_identically():
    images = identical_samples(B, (C, Y, X))
    transform = vt.BatchedRandScaleIntensity(factors=(0.1, 0.9), prob=1.0, channel_wise=True).set_random_state(3)
    first = transform(images)
    ratios = (first / images).flatten(2)[..., 0]  # (B, C): 1 + factor of each (sample, channel)
    assert ratios.unique().numel() == B * C
    assert ((ratios >= 1.1 - 1e-6) & (ratios <= 1.9 + 1e-6)).all()
    assert torch.equal(transform(images, randomize=False), first)
    assert not torch.equal(transform(images), first)


@pytest.mark.parametrize("channel_wise", [False, True])
def test_percentiles_match_monai_per_sample(batch2d, channel_wise):
    args = dict(lower=5, upper=95, b_min=0.0, b_max=1.0, clip=True, channel_wise=channel_wise)
    out = vt.BatchedScaleIntensityRangePercentilesd(keys=["img"], **args)({"img": batch2d})["img"]
    for i in range(B):
        expected = mt.ScaleIntensityRangePercentiles(**args)(batch2d[i])
        torch.testing.assert_close(out[i], torch.as_tensor(expected), atol=1e-6, rtol=1e-5)


def test_center_crop_matches_monai_per_sample(batch2d):
    out = vt.BatchedCenterSpatialCropd(keys=["img"], roi_size=(7, 8))({"img": batch2d})["img"]
    for i in range(B):
        torch.testing.assert_close(out[i], mt.CenterSpatialCrop((7, 8))(batch2d[i]).as_tensor())


def test_random_crop_matches_monai_spatial_crop_at_the_drawn_origins(batch2d, device):
    transform = vt.BatchedRandSpatialCrop((5, 6)).set_random_state(0)
    out = transform(batch2d.to(device)).cpu()
    assert out.shape == (B, C, 5, 6)
    assert len({tuple(start) for start in transform._starts}) > 1
    for i, start in enumerate(transform._starts):
        expected = mt.SpatialCrop(roi_start=start, roi_end=start + np.array([5, 6]))(batch2d[i]).as_tensor()
        torch.testing.assert_close(out[i], expected)


def test_random_crop_dict_crops_keys_identically(batch2d):
    out = vt.BatchedRandSpatialCropd(keys=["a", "b"], roi_size=(5, 6))({"a": batch2d, "b": batch2d + 1})
    torch.testing.assert_close(out["a"] + 1, out["b"])
    assert n_distinct_samples(out["a"]) == B


def test_flip_matches_monai_per_sample(batch2d, device):
    transform = vt.BatchedRandFlip(spatial_axes=[0, 1], prob=0.5).set_random_state(0)
    out = transform(batch2d.to(device)).cpu()
    assert transform._flips.any() and not transform._flips.all()
    for i, flips in enumerate(transform._flips):
        axes = [axis for axis, flip in zip([0, 1], flips, strict=True) if flip]
        expected = mt.Flip(spatial_axis=axes)(batch2d[i]).as_tensor() if axes else batch2d[i]
        torch.testing.assert_close(out[i], expected)


def test_flip_default_axes_name_the_2d_range(batch2d):
    with pytest.raises(ValueError, match=r"\[0, 1, 2\].*\(0, 1\)"):
        vt.BatchedRandFlipd(keys=["img"])({"img": batch2d})


def test_smooth_matches_monai_per_sample_over_y_and_x_only(batch2d, device):
    transform = vt.BatchedRandGaussianSmooth(sigma_x=(0.2, 1.5), sigma_y=(0.5, 2.0), prob=1.0).set_random_state(0)
    out = transform(batch2d.to(device)).cpu()
    sigmas = transform._sigmas  # (Y, X) per sample
    assert sigmas.shape == (B, 2) and np.unique(sigmas[:, 0]).size == B
    for i in range(B):
        expected = mt.GaussianSmooth(sigma=list(sigmas[i]))(batch2d[i]).as_tensor()
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=1e-5)


def test_smooth_ignores_sigma_z_on_2d_batches(batch2d):
    """``sigma_z`` is drawn but has no axis: the same seed gives the same output whatever its range."""
    without_z = vt.BatchedRandGaussianSmooth(sigma_z=0.0, prob=1.0).set_random_state(1)(batch2d)
    with_z = vt.BatchedRandGaussianSmooth(sigma_z=(2.0, 5.0), prob=1.0).set_random_state(1)(batch2d)
    assert torch.equal(without_z, with_z)
    assert not torch.allclose(without_z, batch2d)


def test_noise_std_per_sample_is_the_drawn_one():
    """MONAI draws its noise with numpy, so the fields cannot match; the per-sample std (U(0, std)) must."""
    transform = vt.BatchedRandGaussianNoise(prob=1.0, mean=0.0, std=0.5).set_random_state(4)
    out = transform(torch.zeros(B, C, 32, 32))
    rng = np.random.RandomState()
    rng.set_state(vt.BatchedRandGaussianNoise(prob=1.0).set_random_state(4).R.get_state())
    rng.random_sample(B)  # the coins
    drawn_std = rng.uniform(0, 0.5, B)
    np.testing.assert_allclose(out.flatten(1).std(1).numpy(), drawn_std, rtol=0.1)
    assert n_distinct_samples(out) == B


def test_warp_matches_monai_affine_per_sample(batch2d):
    generator = torch.Generator().manual_seed(0)
    rotate = torch.rand((B, 1), generator=generator) - 0.5
    shear = 0.1 * torch.randn((B, 2), generator=generator)
    translate = torch.randn((B, 2), generator=generator)
    scale = 1 + 0.2 * (torch.rand((B, 2), generator=generator) - 0.5)
    out = warp_affine(batch2d, affine_matrices(rotate, shear, translate, scale), padding_mode="zeros")
    for i in range(B):
        expected = mt.Affine(
            rotate_params=rotate[i].tolist(),
            shear_params=shear[i].tolist(),
            translate_params=translate[i].tolist(),
            scale_params=scale[i].tolist(),
            padding_mode="zeros",
            image_only=True,
        )(batch2d[i])
        torch.testing.assert_close(out[i], expected.as_tensor(), atol=1e-5, rtol=1e-5)


def test_batched_rand_affined_matches_monai_with_the_drawn_parameters(batch2d, device):
    ranges = dict(
        rotate_range=[3.14, 0, 0], shear_range=(0.1, 0.05), translate_range=(0.1, 0.1), scale_range=(0.8, 1.2)
    )
    transform = vt.BatchedRandAffined(keys=["img"], prob=1.0, **ranges).set_random_state(0)
    out = transform({"img": batch2d.to(device)})["img"].cpu()
    # the same draws again: coins, then (rotate, shear, translate, output-to-input scale) in MONAI's convention
    transform.set_random_state(0)
    transform.R.random_sample(B)
    rotate, shear, translate, scale = transform.draw_params(B, (Y, X))
    assert rotate.shape == (B, 1) and shear.shape == translate.shape == scale.shape == (B, 2)
    for i in range(B):
        expected = mt.Affine(
            rotate_params=rotate[i].tolist(),
            shear_params=shear[i].tolist(),
            translate_params=translate[i].tolist(),
            scale_params=scale[i].tolist(),
            padding_mode="zeros",
            image_only=True,
        )(batch2d[i])
        torch.testing.assert_close(out[i], expected.as_tensor(), atol=1e-5, rtol=1e-5)


def test_batched_rand_affined_magnification_enlarges_2d_content():
    image = torch.zeros(1, 1, 32, 32)
    image[..., 12:20, 12:20] = 1.0
    out = vt.BatchedRandAffined(keys=["img"], prob=1.0, scale_range=((2.0, 2.0), (2.0, 2.0)))({"img": image})["img"]
    assert (out > 0.5).sum().item() == pytest.approx(4 * 64, rel=0.1)


@pytest.mark.parametrize(
    ("name", "ranges"),
    [
        ("rotate_range", dict(rotate_range=[0.1, 0.2, 0.0])),
        ("shear_range", dict(shear_range=[0.0, 0.01, 0.01])),
        ("translate_range", dict(translate_range=[0.1, 0.1, 0.1])),
        ("scale_range", dict(scale_range=[(1, 1), (0.8, 1.2), (0.8, 1.2)])),
    ],
)
def test_batched_rand_affined_rejects_3d_only_entries_on_2d_batches(batch2d, name, ranges):
    with pytest.raises(ValueError, match=f"{name}.*2-D"):
        vt.BatchedRandAffined(keys=["img"], prob=1.0, **ranges)({"img": batch2d})


def test_monai_semantics_affine_truncates_like_monai_on_2d_batches(batch2d):
    """Fixed ranges (min == max): the batched MONAI-semantics affine equals MONAI's RandAffined per sample."""
    from viscy_transforms._affine import MonaiBatchedRandAffined

    ranges = dict(
        rotate_range=[(0.4, 0.4), 0.3],
        shear_range=[(0.05, 0.05), (0.02, 0.02), 0.5],
        translate_range=[(1.5, 1.5), (-1.0, -1.0)],
        scale_range=[(0.1, 0.1), (-0.1, -0.1), 0.3],
    )
    ours = MonaiBatchedRandAffined(
        ["img"], 1.0, **ranges, spatial_size=None, mode="bilinear", padding_mode="zeros", allow_missing_keys=False
    )
    out = ours({"img": batch2d})["img"]
    reference = mt.RandAffined(keys=["img"], prob=1.0, padding_mode="zeros", **ranges)
    for i in range(B):
        torch.testing.assert_close(out[i], reference({"img": batch2d[i]})["img"].as_tensor(), atol=1e-5, rtol=1e-5)


def test_elastic_with_zero_magnitude_is_identity_and_keys_share_the_field(batch2d):
    still = vt.BatchedRand3DElasticd(keys=["img"], sigma_range=(1.0, 2.0), magnitude_range=(0.0, 0.0), prob=1.0)
    torch.testing.assert_close(still({"img": batch2d})["img"], batch2d, atol=1e-5, rtol=0)
    moving = vt.BatchedRand3DElasticd(keys=["a", "b"], sigma_range=(1.0, 2.0), magnitude_range=(2.0, 3.0), prob=1.0)
    out = moving.set_random_state(0)({"a": batch2d, "b": 2 * batch2d})
    torch.testing.assert_close(2 * out["a"], out["b"])
    assert not torch.allclose(out["a"], batch2d, atol=1e-3)


def test_sharpen_uses_the_2d_kernel():
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 2] = 1.0
    transform = vt.BatchedRandSharpend(keys=["img"], alpha_range=(0.5, 0.5), prob=1.0)
    out = transform({"img": image})["img"][0, 0]
    assert out[2, 2].item() == pytest.approx(0.5 + 0.5 * 5)
    assert [out[1, 2].item(), out[3, 2].item(), out[2, 1].item(), out[2, 3].item()] == [-0.5] * 4
    assert out.sum().item() == pytest.approx(1.0)


def test_pixel_shuffle_permutes_values_within_each_sample(batch2d):
    transform = vt.BatchedRandLocalPixelShufflingd(keys=["img"], patch_size=3, shuffle_prob=0.5, prob=1.0)
    out = transform.set_random_state(0)({"img": batch2d})["img"]
    assert not torch.equal(out, batch2d)
    torch.testing.assert_close(out.flatten(2).sort(-1).values, batch2d.flatten(2).sort(-1).values)


def test_histogram_shift_adds_one_offset_per_sample(batch2d):
    out = vt.BatchedRandHistogramShiftd(keys=["img"], prob=1.0)({"img": batch2d})["img"]
    offsets = (out - batch2d).flatten(1)
    torch.testing.assert_close(offsets, offsets[:, :1].expand_as(offsets))
    assert offsets[:, 0].unique().numel() == B


def test_zstack_shift_needs_a_z_axis(batch2d):
    with pytest.raises(ValueError, match=r"5-D \(B, C, Z, Y, X\).*\(8, 2, 12, 14\)"):
        vt.BatchedRandZStackShiftd(keys=["img"], prob=1.0)({"img": batch2d})


KEYS = ["a", "b"]
DICT_TRANSFORMS_2D = {
    "BatchedCenterSpatialCropd": lambda: vt.BatchedCenterSpatialCropd(KEYS, roi_size=(8, 8)),
    "BatchedRandAffined": lambda: vt.BatchedRandAffined(KEYS, prob=1.0, rotate_range=[3.14, 0, 0]),
    "BatchedRand3DElasticd": lambda: vt.BatchedRand3DElasticd(KEYS, (1.0, 2.0), (2.0, 4.0), prob=1.0),
    "BatchedRandAdjustContrastd": lambda: vt.BatchedRandAdjustContrastd(KEYS, prob=1.0),
    "BatchedRandFlipd": lambda: vt.BatchedRandFlipd(KEYS, spatial_axes=[0, 1], prob=0.5),
    "BatchedRandGaussianNoised": lambda: vt.BatchedRandGaussianNoised(KEYS, prob=1.0),
    "BatchedRandGaussianSmoothd": lambda: vt.BatchedRandGaussianSmoothd(KEYS, prob=1.0),
    "BatchedRandHistogramShiftd": lambda: vt.BatchedRandHistogramShiftd(KEYS, prob=1.0),
    "BatchedRandLocalPixelShufflingd": lambda: vt.BatchedRandLocalPixelShufflingd(KEYS, shuffle_prob=0.5, prob=1.0),
    "BatchedRandScaleIntensityd": lambda: vt.BatchedRandScaleIntensityd(KEYS, factors=0.5, prob=1.0),
    "BatchedRandSharpend": lambda: vt.BatchedRandSharpend(KEYS, prob=1.0),
    "BatchedRandSpatialCropd": lambda: vt.BatchedRandSpatialCropd(KEYS, roi_size=(8, 8)),
    "BatchedScaleIntensityRangePercentilesd": lambda: vt.BatchedScaleIntensityRangePercentilesd(
        KEYS, lower=1, upper=99, b_min=0.0, b_max=1.0
    ),
    "BatchedZoomd": lambda: vt.BatchedZoomd(KEYS, scale_factor=0.5, mode="nearest"),
}


@pytest.mark.parametrize("name", sorted(DICT_TRANSFORMS_2D))
def test_dict_transforms_run_on_2d_batches_seeded_on_device(name, device):
    images = identical_samples(16, (1, 16, 16)).to(device)
    transform = DICT_TRANSFORMS_2D[name]()
    seeded = transform.set_random_state if hasattr(transform, "set_random_state") else lambda seed: transform
    first = seeded(7)({"a": images, "b": images.clone(), "other": 1})
    second = seeded(7)({"a": images, "b": images.clone(), "other": 1})
    assert first["other"] == 1
    for key in KEYS:
        out = first[key]
        assert type(out) is torch.Tensor and out.device.type == device.type and out.dtype == torch.float32
        assert out.ndim == 4 and out.shape[:2] == (16, 1)
        assert torch.equal(out, second[key])
    if name.startswith("BatchedRand"):
        assert n_distinct_samples(first["a"]) > 1  # per-sample draws


RANDOM_ARRAY_TRANSFORMS = {
    "BatchedRandAdjustContrast": lambda: vt.BatchedRandAdjustContrast(prob=1.0),
    "BatchedRandFlip": lambda: vt.BatchedRandFlip(spatial_axes=[0, 1], prob=1.0),
    "BatchedRandGaussianNoise": lambda: vt.BatchedRandGaussianNoise(prob=1.0),
    "BatchedRandGaussianSmooth": lambda: vt.BatchedRandGaussianSmooth(prob=1.0),
    "BatchedRandScaleIntensity": lambda: vt.BatchedRandScaleIntensity(prob=1.0),
    "BatchedRandSpatialCrop": lambda: vt.BatchedRandSpatialCrop(roi_size=4),
    # the array transforms behind the dictionary-only ones
    "BatchedRandHistogramShiftd": lambda: vt.BatchedRandHistogramShiftd(keys="img", prob=1.0).transform,
    "BatchedRandLocalPixelShufflingd": lambda: vt.BatchedRandLocalPixelShufflingd(keys="img", prob=1.0).transform,
    "BatchedRandSharpend": lambda: vt.BatchedRandSharpend(keys="img", prob=1.0).transform,
    "BatchedRandZStackShiftd": lambda: vt.BatchedRandZStackShiftd(keys="img", prob=1.0).transform,
}


@pytest.mark.parametrize("name", sorted(RANDOM_ARRAY_TRANSFORMS))
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 1, 3, 8, 8)], ids=["2d", "3d"])
def test_randomize_false_before_any_draw_says_to_randomize_first(name, shape):
    if name == "BatchedRandZStackShiftd" and len(shape) == 4:
        pytest.skip("Z shifts need a Z axis")
    transform = RANDOM_ARRAY_TRANSFORMS[name]()
    with pytest.raises(RuntimeError, match=f"{type(transform).__name__}: .*call it with randomize=True first"):
        transform(torch.rand(shape), randomize=False)
    drawn = transform(torch.rand(shape))
    assert drawn.shape[:2] == shape[:2]


@pytest.mark.parametrize(
    "gamma", [0.5, 0.2, 0, -1.0, (0.0, 1.0), (-0.5, 2.0), (2.0, 1.0), (1.0, 2.0, 3.0), "1.5", None]
)
def test_gamma_validation_follows_monai_and_names_the_value(gamma):
    with pytest.raises(ValueError, match=f"gamma.*{re.escape(repr(gamma))}"):
        vt.BatchedRandAdjustContrast(gamma=gamma)


def test_gamma_number_and_pair_are_read_as_monai_does():
    assert vt.BatchedRandAdjustContrast(gamma=2).gamma == mt.RandAdjustContrast(gamma=2).gamma == (0.5, 2.0)
    assert vt.BatchedRandAdjustContrast(gamma=[0.8, 1.2]).gamma == (0.8, 1.2)  # a YAML list is a pair too
    assert vt.BatchedRandAdjustContrast(gamma=(1.0, 1.0)).gamma == (1.0, 1.0)
    # the MONAI-named wrapper keeps MONAI's reading (it sorts a pair) on both of its paths
    assert vt.RandAdjustContrastd(keys="img", prob=1.0, gamma=(1.2, 0.8)).batched.transform.gamma == (0.8, 1.2)
