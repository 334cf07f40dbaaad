"""Batched affine transforms against MONAI's per-sample affine."""

import monai.transforms as mt
import numpy as np
import pytest
import torch
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt
from viscy_transforms._affine_grid import affine_matrices, warp_affine


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_warp_matches_monai_affine_per_sample(batch, padding_mode):
    generator = torch.Generator().manual_seed(0)
    rotate = torch.rand((8, 3), generator=generator) - 0.5
    shear = 0.1 * torch.randn((8, 6), generator=generator)
    translate = torch.randn((8, 3), generator=generator)
    scale = 1 + 0.2 * (torch.rand((8, 3), generator=generator) - 0.5)
    out = warp_affine(batch, affine_matrices(rotate, shear, translate, scale), padding_mode=padding_mode)
    for i in range(8):
        expected = mt.Affine(
            rotate_params=rotate[i].tolist(),
            shear_params=shear[i].tolist(),
            translate_params=translate[i].tolist(),
            scale_params=scale[i].tolist(),
            padding_mode=padding_mode,
            image_only=True,
        )(batch[i])
        torch.testing.assert_close(out[i], expected.as_tensor(), atol=1e-5, rtol=1e-5)


def test_rand_affined_wrapper_matches_monai_semantics_on_batches(batch):
    """Fixed ranges (min == max) make the draw deterministic: the batched path must equal MONAI per sample."""
    ranges = dict(
        rotate_range=[(0.4, 0.4), 0.0, 0.0],
        shear_range=[0.0, (0.05, 0.05), (0.02, 0.02)],
        scale_range=[0.0, (0.1, 0.1), (-0.1, -0.1)],
        translate_range=[0.0, (1.5, 1.5), 0.0],
    )
    ours = vt.RandAffined(keys=["img"], prob=1.0, padding_mode="zeros", **ranges)
    reference = mt.RandAffined(keys=["img"], prob=1.0, padding_mode="zeros", **ranges)
    out = ours({"img": batch})["img"]
    for i in range(len(batch)):
        expected = reference({"img": batch[i]})["img"]
        torch.testing.assert_close(out[i], expected.as_tensor(), atol=1e-5, rtol=1e-5)


def test_rand_affined_wrapper_keeps_monai_behaviour_on_per_sample_input(batch):
    ours = vt.RandAffined(keys=["img"], prob=1.0, rotate_range=[0.3, 0, 0], shear_range=None, scale_range=None)
    reference = mt.RandAffined(keys=["img"], prob=1.0, rotate_range=[0.3, 0, 0])
    ours.set_random_state(4)
    reference.set_random_state(4)
    torch.testing.assert_close(ours({"img": batch[0]})["img"], reference({"img": batch[0]})["img"])


def test_rand_affined_wrapper_draws_per_sample_and_is_seeded():
    transform = vt.RandAffined(keys=["img"], prob=1.0, rotate_range=[3.14, 0, 0], shear_range=None, scale_range=None)
    images = identical_samples(8, (1, 1, 16, 16))
    first = transform.set_random_state(1)({"img": images})["img"]
    second = transform.set_random_state(1)({"img": images})["img"]
    assert n_distinct_samples(first) == 8
    assert torch.equal(first, second)


def test_rand_affined_prob_zero_is_identity(batch):
    transform = vt.RandAffined(keys=["img"], prob=0.0, rotate_range=[3.14, 0, 0], shear_range=None, scale_range=None)
    assert torch.equal(transform({"img": batch})["img"], batch)


def test_rand_affined_spatial_size_changes_output_shape(batch):
    transform = vt.RandAffined(
        keys=["img"], prob=0.5, rotate_range=[1.0, 0, 0], shear_range=None, scale_range=None, spatial_size=(3, 8, 10)
    )
    assert transform({"img": batch})["img"].shape == (8, 1, 3, 8, 10)


def test_batched_rand_affined_shares_one_transform_between_keys(device):
    transform = vt.BatchedRandAffined(
        keys=["source", "target"], prob=1.0, rotate_range=[3.14, 0, 0], scale_range=(0.8, 1.2), shear_range=0.05
    )
    transform.set_random_state(0)
    images = identical_samples(8, (1, 3, 16, 16)).to(device)
    out = transform({"source": images, "target": 3 * images})
    torch.testing.assert_close(3 * out["source"], out["target"])
    assert out["source"].device.type == device.type
    assert n_distinct_samples(out["source"]) == 8


def test_batched_rand_affined_magnification_enlarges_content():
    """Kornia semantics: scale_range is a magnification; x2 makes a centred square twice as wide."""
    image = torch.zeros(1, 1, 1, 32, 32)
    image[..., 12:20, 12:20] = 1.0
    transform = vt.BatchedRandAffined(keys=["img"], prob=1.0, scale_range=((1.0, 1.0), (2.0, 2.0), (2.0, 2.0)))
    out = transform({"img": image})["img"]
    assert (out > 0.5).sum().item() == pytest.approx(4 * 64, rel=0.1)


def test_batched_rand_affined_rejects_bad_scale_range():
    with pytest.raises(ValueError, match="scale_range"):
        vt.BatchedRandAffined(keys=["img"], scale_range=[0.1, 0.2, 0.3])


def test_affine_rejects_unsupported_mode(batch):
    transform = vt.BatchedRandAffined(keys=["img"], prob=1.0, rotate_range=0.1, mode="bicubic")
    with pytest.raises(ValueError, match="mode"):
        transform({"img": batch})


def test_matrices_compose_in_monai_order():
    """Rotation by pi/2 in the YX plane maps the Y axis onto X (independent check of the convention)."""
    matrices = affine_matrices(
        torch.tensor([[np.pi / 2, 0.0, 0.0]]), torch.zeros(1, 6), torch.zeros(1, 3), torch.ones(1, 3)
    )
    expected = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    torch.testing.assert_close(matrices[0, :3, :3], expected, atol=1e-6, rtol=0)
