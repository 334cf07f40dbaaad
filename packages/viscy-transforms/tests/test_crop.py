"""Center and random crops of batches, and tiled crops of samples."""

import monai.transforms as mt
import pytest
import torch
from transforms_testing import n_distinct_samples

import viscy_transforms as vt


def test_center_crop_matches_monai_per_sample(batch, device):
    out = vt.BatchedCenterSpatialCropd(keys=["img"], roi_size=(2, 9, 10))({"img": batch.to(device), "other": 1})
    assert out["img"].shape == (8, 1, 2, 9, 10) and out["other"] == 1
    assert out["img"].device.type == device.type
    for i in range(8):
        torch.testing.assert_close(out["img"][i].cpu(), mt.CenterSpatialCrop((2, 9, 10))(batch[i]).as_tensor())


def test_center_crop_keeps_dims_that_are_non_positive_or_too_large(batch):
    assert vt.BatchedCenterSpatialCrop((-1, 40, 8))(batch).shape == (8, 1, 3, 16, 8)


def test_center_crop_works_on_2d_batches():
    assert vt.BatchedCenterSpatialCrop((4, 6))(torch.rand(2, 3, 10, 10)).shape == (2, 3, 4, 6)


def test_random_crop_positions_are_per_sample_and_content_is_a_window():
    images = torch.arange(4 * 1 * 4 * 12 * 12, dtype=torch.float32).reshape(4, 1, 4, 12, 12)
    transform = vt.BatchedRandSpatialCrop((2, 5, 5))
    transform.set_random_state(0)
    out = transform(images)
    assert out.shape == (4, 1, 2, 5, 5)
    for i in range(4):
        corner = int(out[i, 0, 0, 0, 0].item()) - i * 4 * 12 * 12
        z, y, x = corner // 144, (corner % 144) // 12, corner % 12
        torch.testing.assert_close(out[i], images[i, :, z : z + 2, y : y + 5, x : x + 5])
    assert len({tuple(s) for s in transform._starts}) > 1


def test_random_crop_dict_uses_the_same_window_for_all_keys(batch):
    transform = vt.BatchedRandSpatialCropd(keys=["a", "b"], roi_size=(2, 8, 8))
    out = transform({"a": batch, "b": batch + 1})
    torch.testing.assert_close(out["a"] + 1, out["b"])
    assert n_distinct_samples(out["a"]) == 8


def test_random_crop_is_seeded(batch):
    transform = vt.BatchedRandSpatialCrop((2, 8, 8))
    assert torch.equal(transform.set_random_state(2)(batch), transform.set_random_state(2)(batch))


def test_random_crop_without_random_center_is_the_center_crop(batch):
    out = vt.BatchedRandSpatialCrop((2, 8, 8), random_center=False)(batch)
    torch.testing.assert_close(out, vt.BatchedCenterSpatialCrop((2, 8, 8))(batch))


def test_random_crop_errors():
    with pytest.raises(ValueError, match="random size"):
        vt.BatchedRandSpatialCrop((2, 8, 8), random_size=True)
    with pytest.raises(ValueError, match=r"roi_size \(2, 8, 8\).*\(16, 16\)"):
        vt.BatchedRandSpatialCrop((2, 8, 8))(torch.rand(2, 1, 16, 16))
    with pytest.raises(RuntimeError, match="randomize"):
        vt.BatchedRandSpatialCrop((2, 8, 8))(torch.rand(2, 1, 4, 16, 16), randomize=False)


def test_tiled_crops_are_raster_ordered_and_share_metadata():
    image = torch.arange(2 * 2 * 8 * 8, dtype=torch.float32).reshape(2, 2, 8, 8)
    meta = {"ch": {}}
    tiles = vt.TiledSpatialCropSamplesd(keys=["img"], roi_size=(1, 4, 4), num_samples=5)(
        {"img": image, "norm_meta": meta}
    )
    assert len(tiles) == 5
    expected_origins = [(0, 0, 0), (0, 0, 4), (0, 4, 0), (0, 4, 4), (1, 0, 0)]
    for tile, (z, y, x) in zip(tiles, expected_origins, strict=True):
        torch.testing.assert_close(tile["img"], image[:, z : z + 1, y : y + 4, x : x + 4])
        assert tile["norm_meta"] is meta


def test_tiled_crops_reject_too_many_samples():
    with pytest.raises(ValueError, match="Number of samples 9 should be smaller"):
        vt.TiledSpatialCropSamplesd(keys=["img"], roi_size=(1, 4, 4), num_samples=9)({"img": torch.rand(1, 2, 8, 8)})
