"""Per-sample Gaussian smoothing against MONAI's GaussianSmooth."""

import monai.transforms as mt
import numpy as np
import pytest
import torch
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt


def test_batched_smooth_matches_monai_per_sample_with_x_on_last_axis(batch, device):
    transform = vt.BatchedRandGaussianSmooth(sigma_x=(0.2, 1.5), sigma_y=(0.5, 2.0), sigma_z=(0.0, 0.8), prob=1.0)
    transform.set_random_state(0)
    out = transform(batch.to(device)).cpu()
    sigmas = transform._sigmas  # (Z, Y, X) per sample
    assert np.unique(sigmas[:, 1]).size == 8
    for i in range(8):
        expected = mt.GaussianSmooth(sigma=list(sigmas[i]))(batch[i])
        torch.testing.assert_close(out[i], expected.as_tensor(), atol=1e-6, rtol=1e-5)


def test_batched_smooth_sigma_x_acts_on_last_axis():
    image = torch.zeros(1, 1, 5, 9, 9)
    image[..., 2, 4, 4] = 1.0
    out = vt.BatchedRandGaussianSmooth(sigma_x=(1.0, 1.0), sigma_y=(0.0, 0.0), sigma_z=(0.0, 0.0), prob=1.0)(image)
    assert (out[0, 0, 2, 4] > 0).sum() > 1  # spread along X
    assert (out[0, 0, 2, :, 4] > 0).sum() == 1  # not along Y
    assert (out[0, 0, :, 4, 4] > 0).sum() == 1  # not along Z


def test_monai_named_wrapper_keeps_sigma_x_on_first_axis(batch):
    """Fixed ranges: the batched path of RandGaussianSmoothd equals MONAI's RandGaussianSmoothd per sample."""
    ranges = dict(sigma_x=(0.6, 0.6), sigma_y=(1.2, 1.2), sigma_z=(0.0, 0.0))
    out = vt.RandGaussianSmoothd(keys=["img"], prob=1.0, **ranges)({"img": batch})["img"]
    reference = mt.RandGaussianSmoothd(keys=["img"], prob=1.0, **ranges)
    for i in range(8):
        torch.testing.assert_close(out[i], reference({"img": batch[i]})["img"].as_tensor(), atol=1e-6, rtol=1e-5)


def test_smooth_draws_per_sample_and_prob_gates_per_sample():
    transform = vt.BatchedRandGaussianSmoothd(keys=["a", "b"], sigma_x=(0.5, 2.0), sigma_y=(0.5, 2.0), prob=0.5)
    transform.set_random_state(2)
    images = identical_samples(16)
    out = transform({"a": images, "b": images.clone()})
    unchanged = (out["a"] == images).flatten(1).all(1)
    assert 0 < unchanged.sum() < 16
    assert n_distinct_samples(out["a"][~unchanged]) == (~unchanged).sum()
    assert torch.equal(out["a"], out["b"])


def test_smooth_prob_zero_returns_input(batch):
    assert torch.equal(vt.BatchedRandGaussianSmooth(prob=0.0)(batch), batch)


def test_smooth_rejects_negative_sigma():
    with pytest.raises(ValueError, match="non-negative"):
        vt.BatchedRandGaussianSmooth(sigma_x=(-1.0, 1.0))
