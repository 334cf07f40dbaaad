"""Flips, Z shifts, zoom, elastic deformation, sharpening and pixel shuffling."""

import pytest
import torch
from transforms_testing import identical_samples, n_distinct_samples

import viscy_transforms as vt


def test_flip_each_sample_and_axis_independently(batch, device):
    transform = vt.BatchedRandFlip(spatial_axes=[1, 2], prob=0.5)
    transform.set_random_state(0)
    out = transform(batch.to(device)).cpu()
    flips = transform._flips
    assert flips.any() and not flips.all()
    for i in range(8):
        expected = batch[i]
        for column, axis in enumerate([1, 2]):
            if flips[i, column]:
                expected = expected.flip(axis + 1)
        torch.testing.assert_close(out[i], expected)


def test_flip_returns_input_when_nothing_flips(batch):
    assert vt.BatchedRandFlip(spatial_axes=0, prob=0.0)(batch) is batch


def test_flipd_flips_keys_identically(batch):
    out = vt.BatchedRandFlipd(keys=["a", "b"], prob=0.5)({"a": batch, "b": -batch})
    torch.testing.assert_close(out["a"], -out["b"])


def test_zstack_shift_moves_slices_and_fills_with_cval():
    images = torch.arange(5, dtype=torch.float32).view(1, 1, 5, 1, 1).repeat(16, 1, 1, 2, 2)
    transform = vt.BatchedRandZStackShiftd(keys=["img"], max_shift=2, prob=1.0, cval=-1.0)
    transform.set_random_state(0)
    out = transform({"img": images})["img"]
    shifts = transform.transform._shifts
    assert set(shifts.tolist()) - {0}
    for i, shift in enumerate(shifts):
        expected = torch.tensor([z - shift if 0 <= z - shift < 5 else -1.0 for z in range(5)], dtype=torch.float32)
        torch.testing.assert_close(out[i, 0, :, 0, 0], expected)


def test_zstack_shift_rejects_other_modes():
    with pytest.raises(ValueError, match="constant"):
        vt.BatchedRandZStackShiftd(keys=["img"], mode="reflect")


def test_zoom_resizes_batches(batch):
    out = vt.BatchedZoomd(keys=["img"], scale_factor=(1, 0.5, 0.5), mode="nearest")({"img": batch})["img"]
    torch.testing.assert_close(out, batch[..., ::2, ::2])
    assert vt.BatchedZoom(scale_factor=2.0, mode="trilinear")(batch).shape == (8, 1, 6, 32, 32)


def test_elastic_deforms_per_sample_shares_fields_between_keys(device):
    transform = vt.BatchedRand3DElasticd(
        keys=["a", "b"], sigma_range=(1.0, 2.0), magnitude_range=(3.0, 5.0), prob=1.0, padding_mode="border"
    )
    transform.set_random_state(0)
    images = identical_samples(4, (1, 4, 16, 16)).to(device)
    out = transform({"a": images, "b": 2 * images})
    torch.testing.assert_close(2 * out["a"], out["b"])
    assert n_distinct_samples(out["a"]) == 4
    assert out["a"].device.type == device.type


def test_elastic_with_zero_magnitude_is_identity_and_spatial_size_crops(batch):
    still = vt.BatchedRand3DElasticd(keys=["img"], sigma_range=(1, 2), magnitude_range=(0, 0), prob=1.0)
    torch.testing.assert_close(still({"img": batch})["img"], batch, atol=1e-5, rtol=0)
    cropped = vt.BatchedRand3DElasticd(
        keys=["img"], sigma_range=(1, 2), magnitude_range=(0, 0), spatial_size=(3, 8, 8), prob=1.0
    )
    torch.testing.assert_close(cropped({"img": batch})["img"], batch[..., 4:12, 4:12], atol=1e-5, rtol=0)


def test_sharpen_works_for_several_channels_and_preserves_constant_interior():
    images = torch.ones(4, 3, 5, 8, 8)
    out = vt.BatchedRandSharpend(keys=["img"], alpha_range=(0.5, 0.5), prob=1.0)({"img": images})["img"]
    assert out.shape == images.shape
    torch.testing.assert_close(out[..., 1:-1, 1:-1, 1:-1], images[..., 1:-1, 1:-1, 1:-1])
    assert (out[..., 0, 0, 0] != 1).all()  # zero padding at the border changes the corner


def test_sharpen_enhances_a_peak():
    images = torch.zeros(2, 1, 5, 5, 5)
    images[:, :, 2, 2, 2] = 1.0
    out = vt.BatchedRandSharpend(keys=["img"], alpha_range=(0.5, 0.5), prob=1.0)({"img": images})["img"]
    assert out[0, 0, 2, 2, 2].item() == pytest.approx(0.5 + 0.5 * 7)


def test_pixel_shuffle_permutes_values_within_samples(batch):
    transform = vt.BatchedRandLocalPixelShufflingd(keys=["a", "b"], patch_size=3, shuffle_prob=0.5, prob=0.5)
    transform.set_random_state(1)
    out = transform({"a": batch, "b": batch.clone()})
    changed = (out["a"] != batch).flatten(1).any(1)
    assert 0 < changed.sum() < 8
    torch.testing.assert_close(out["a"].flatten(1).sort(1).values, batch.flatten(1).sort(1).values)
    assert torch.equal(out["a"], out["b"])
