"""Gaussian noise: per-sample draws, statistics and device."""

import numpy as np
import pytest
import torch
from transforms_testing import identical_samples

import viscy_transforms as vt


def test_batched_noise_has_requested_std_and_stays_on_device(device):
    images = torch.zeros(4, 1, 4, 32, 32, device=device)
    out = vt.BatchedRandGaussianNoise(prob=1.0, mean=0.5, std=0.2, sample_std=False)(images)
    assert out.device.type == device.type and out.dtype == torch.float32
    assert out.mean().item() == pytest.approx(0.5, abs=0.01)
    assert out.std().item() == pytest.approx(0.2, rel=0.05)


def test_batched_noise_gates_and_scales_each_sample_independently():
    transform = vt.BatchedRandGaussianNoise(prob=0.5, std=1.0)
    transform.set_random_state(0)
    out = transform(torch.zeros(32, 1, 2, 16, 16))
    stds = out.flatten(1).std(1)
    assert 0 < (stds == 0).sum() < 32  # per-sample coins
    assert stds[stds > 0].unique().numel() == (stds > 0).sum()  # per-sample std


def test_batched_noise_fields_differ_between_samples_and_are_seeded():
    transform = vt.BatchedRandGaussianNoise(prob=1.0, std=0.1, sample_std=False)
    first = transform.set_random_state(3)(torch.zeros(4, 1, 2, 8, 8))
    second = transform.set_random_state(3)(torch.zeros(4, 1, 2, 8, 8))
    assert torch.equal(first, second)
    assert not torch.allclose(first[0], first[1])


def test_batched_noise_dict_shares_noise_between_keys():
    transform = vt.BatchedRandGaussianNoised(keys=["a", "b"], prob=1.0)
    images = identical_samples()
    out = transform({"a": images, "b": images + 1})
    torch.testing.assert_close(out["a"] + 1, out["b"])


def test_monai_named_noise_wrapper_on_batches_is_per_sample():
    transform = vt.RandGaussianNoised(keys=["img"], prob=0.5, mean=0.0, std=0.2)
    transform.set_random_state(1)
    images = identical_samples(16)
    noised = (transform({"img": images})["img"] != images).flatten(1).any(1)
    assert 0 < noised.sum() < 16


def test_noise_tensor_generates_on_input_device_with_monai_semantics(device):
    transform = vt.RandGaussianNoiseTensor(prob=1.0, mean=0.0, std=0.3, sample_std=False)
    out = transform(torch.zeros(1, 16, 64, 64, device=device))
    assert out.device.type == device.type and out.dtype == torch.float32
    assert out.std().item() == pytest.approx(0.3, rel=0.05)
    assert torch.equal(vt.RandGaussianNoiseTensor(prob=0.0)(torch.ones(1, 4, 4)), torch.ones(1, 4, 4))


def test_noise_tensor_dict_uses_one_noise_for_all_keys():
    out = vt.RandGaussianNoiseTensord(keys=["a", "b"], prob=1.0, dtype=np.float32)(
        {"a": torch.zeros(1, 8, 8), "b": torch.ones(1, 8, 8)}
    )
    torch.testing.assert_close(out["a"] + 1, out["b"])
    assert out["a"].abs().sum() > 0
