"""Contrast, intensity scaling, inversion and histogram shift."""

import monai.transforms as mt
import numpy as np
import pytest
import torch
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt


@pytest.mark.parametrize("invert_image", [False, True])
@pytest.mark.parametrize("retain_stats", [False, True])
def test_adjust_contrast_matches_monai_per_sample(batch, device, invert_image, retain_stats):
    transform = vt.BatchedRandAdjustContrast(
        gamma=[0.5, 2.0], prob=1.0, invert_image=invert_image, retain_stats=retain_stats
    )
    out = transform(batch.to(device)).cpu()
    assert np.unique(transform._gamma).size == 8
    for i in range(8):
        expected = mt.AdjustContrast(transform._gamma[i], invert_image=invert_image, retain_stats=retain_stats)(
            batch[i]
        )
        torch.testing.assert_close(out[i], expected.as_tensor(), atol=1e-5, rtol=1e-5)


def test_adjust_contrast_gamma_validation():
    assert vt.BatchedRandAdjustContrast(gamma=2.0).gamma == (0.5, 2.0)
    with pytest.raises(ValueError, match="0.5"):
        vt.BatchedRandAdjustContrast(gamma=0.4)
    with pytest.raises(ValueError, match="positive"):
        vt.BatchedRandAdjustContrast(gamma=(0.0, 1.0))


def test_monai_named_contrast_wrapper_matches_monai_with_fixed_gamma(batch):
    out = vt.RandAdjustContrastd(keys=["img"], prob=1.0, gamma=(1.7, 1.7))({"img": batch})["img"]
    for i in range(8):
        torch.testing.assert_close(out[i], mt.AdjustContrast(1.7)(batch[i]).as_tensor(), atol=1e-5, rtol=1e-5)


def test_contrast_dict_draws_from_first_present_key_not_first_entry(batch):
    """A non-tensor first entry (norm_meta) must not break randomisation."""
    transform = vt.BatchedRandAdjustContrastd(keys=["img"], gamma=(0.5, 2.0), prob=1.0)
    out = transform({"norm_meta": {"img": {}}, "img": identical_samples()})
    assert n_distinct_samples(out["img"]) == 8


def test_scale_intensity_multiplies_by_one_plus_factor(batch, device):
    out = vt.BatchedRandScaleIntensity(factors=(0.3, 0.3), prob=1.0)(batch.to(device))
    torch.testing.assert_close(out.cpu(), batch * 1.3)


def test_scale_intensity_per_sample_and_channel_wise():
    images = identical_samples(8, (2, 2, 4, 4))
    transform = vt.BatchedRandScaleIntensity(factors=0.5, prob=1.0, channel_wise=True)
    out = transform(images)
    ratios = (out / images).flatten(2)[..., 0]
    assert ratios.unique().numel() == 16
    assert ((ratios >= 0.5) & (ratios <= 1.5)).all()


def test_scale_intensity_wrapper_on_batches_draws_per_sample():
    transform = vt.RandScaleIntensityd(keys=["img"], factors=0.5, prob=1.0)
    out = transform({"img": identical_samples()})["img"]
    assert n_distinct_samples(out) == 8


def test_invert_intensity_per_sample_on_batches_and_per_call_otherwise(batch):
    transform = vt.RandInvertIntensityd(keys=["a", "b"], prob=0.5)
    transform.set_random_state(0)
    out = transform({"a": batch, "b": 2 * batch})
    signs = (out["a"] / batch).flatten(1)[:, 0]
    assert set(signs.tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(out["b"], 2 * out["a"])
    inverted = vt.RandInvertIntensityd(keys=["a"], prob=1.0)({"a": batch[0]})["a"]
    assert torch.equal(inverted, -batch[0])


def test_histogram_shift_adds_per_sample_offset_in_range(batch):
    transform = vt.BatchedRandHistogramShiftd(keys=["img"], shift_range=(-0.1, 0.1), prob=1.0)
    offsets = (transform({"img": batch})["img"] - batch).flatten(1)
    torch.testing.assert_close(offsets, offsets[:, :1].expand_as(offsets))
    assert offsets[:, 0].abs().max() <= 0.1
    assert offsets[:, 0].unique().numel() == 8


def test_scale_intensity_dict_shares_factor_between_keys():
    images = identical_samples()
    out = vt.BatchedRandScaleIntensityd(keys=["a", "b"], factors=0.5, prob=1.0)({"a": images, "b": 2 * images})
    torch.testing.assert_close(2 * out["a"], out["b"])
    assert n_distinct_samples(out["a"]) == 8
