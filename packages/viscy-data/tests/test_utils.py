import pytest
import torch
from iohub.ngff import open_ome_zarr
from monai.transforms import Compose

from viscy_data._utils import (
    BatchedCenterSpatialCropd,
    _collate_samples,
    _ensure_channel_list,
    _gather_channels,
    _read_norm_meta,
    _scatter_channels,
    _search_int_in_str,
    _transform_channel_wise,
)
from viscy_data.normalization import check_norm_meta as _check_norm_meta
from viscy_data.testing import channel_statistics, write_hcs_plate


def test_ensure_channel_list():
    assert _ensure_channel_list("GFP") == ["GFP"]
    assert _ensure_channel_list(("a", "b")) == ["a", "b"]
    with pytest.raises(TypeError, match="string or sequence of strings"):
        _ensure_channel_list(3)


def test_search_int_in_str_returns_match_string():
    assert _search_int_in_str(r"(?<=_p)\d{3}", "img_p012_z3_cp_masks.png") == "012"
    with pytest.raises(ValueError, match="Cannot find pattern"):
        _search_int_in_str(r"(?<=_p)\d{3}", "nothing.png")


def test_batched_center_crop_keeps_batch_and_channel_dims():
    image = torch.arange(2 * 3 * 4 * 6 * 8, dtype=torch.float32).reshape(2, 3, 4, 6, 8)
    out = BatchedCenterSpatialCropd(keys=["image"], roi_size=(2, 2, 4))({"image": image})["image"]
    assert out.shape == (2, 3, 2, 2, 4)
    # centre of (4, 6, 8) with roi (2, 2, 4): z 1:3, y 2:4, x 2:6
    torch.testing.assert_close(out, image[:, :, 1:3, 2:4, 2:6])


def test_crop_is_the_viscy_transforms_class():
    from viscy_transforms._crop import BatchedCenterSpatialCropd as home

    assert BatchedCenterSpatialCropd is home


def test_batched_center_crop_dict_version():
    data = {"a": torch.rand(3, 1, 5, 10, 10), "b": torch.rand(3, 1, 5, 10, 10)}
    out = BatchedCenterSpatialCropd(keys=["a"], roi_size=(1, 4, 4))(data)
    assert out["a"].shape == (3, 1, 1, 4, 4)
    assert out["b"].shape == (3, 1, 5, 10, 10)
    with pytest.raises(KeyError):
        BatchedCenterSpatialCropd(keys=["missing"], roi_size=4)(data)


def test_collate_samples_flattens_multi_sample_lists():
    samples = [{"source": [torch.zeros(1, 2, 2), torch.ones(1, 2, 2)]}, {"source": [torch.full((1, 2, 2), 2.0)] * 2}]
    batch = _collate_samples(samples)
    assert batch["source"].shape == (4, 1, 2, 2)
    assert batch["source"][:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 2.0]


def test_scatter_and_gather_roundtrip_with_norm_meta():
    patch = torch.rand(2, 3, 1, 4, 4)
    metas = [{"a": {"fov_statistics": {"mean": torch.tensor(float(i))}}} for i in range(2)]
    scattered = _scatter_channels(["a", "b", "c"], patch, metas)
    assert scattered["b"].shape == (2, 1, 1, 4, 4)
    torch.testing.assert_close(scattered["norm_meta"]["a"]["fov_statistics"]["mean"], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(_gather_channels(scattered), patch)


def test_scatter_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="2 channels but 3 names"):
        _scatter_channels(["a", "b", "c"], torch.rand(1, 2, 1, 2, 2), None)


def test_transform_channel_wise_uses_per_sample_norm_meta():
    def subtract_mean(sample):
        sample = dict(sample)
        mean = sample["norm_meta"]["b"]["fov_statistics"]["mean"]
        sample["b"] = sample["b"] - mean.view(-1, 1, 1, 1, 1)
        return sample

    patch = torch.ones(2, 2, 1, 4, 4)
    metas = [{"b": {"fov_statistics": {"mean": torch.tensor(v)}}} for v in (1.0, 3.0)]
    transform = Compose([subtract_mean, BatchedCenterSpatialCropd(keys=["a", "b"], roi_size=(1, 2, 2))])
    out = _transform_channel_wise(transform, ["a", "b"], patch, metas)
    assert out.shape == (2, 2, 1, 2, 2)
    assert torch.all(out[:, 0] == 1)
    assert torch.all(out[0, 1] == 0) and torch.all(out[1, 1] == -2)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_read_norm_meta_from_real_plate(tmp_path, version):
    data = write_hcs_plate(tmp_path / "plate.zarr", positions=["A/1/0"], shape=(2, 1, 8, 8), version=version)
    with open_ome_zarr(tmp_path / "plate.zarr", mode="r") as plate:
        meta = _read_norm_meta(plate["A/1/0"])
    expected = channel_statistics(data["A/1/0"][:, 1])["mean"]
    value = meta["GFP"]["fov_statistics"]["mean"]
    assert value.dtype == torch.float32 and value.ndim == 0
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert meta["GFP"]["timepoint_statistics"]["1"]["std"].dtype == torch.float32


def test_read_norm_meta_absent_is_none(tmp_path):
    write_hcs_plate(tmp_path / "plate.zarr", positions=["A/1/0"], shape=(1, 1, 4, 4), normalization=False)
    with open_ome_zarr(tmp_path / "plate.zarr", mode="r") as plate:
        assert _read_norm_meta(plate["A/1/0"]) is None


class _NeedsStats:
    keys = ["GFP"]
    level = "fov_statistics"
    subtrahend = "mean"
    divisor = "std"


def test_check_norm_meta_names_the_fov_and_store():
    meta = {"GFP": {"fov_statistics": {"mean": 0.0, "std": 1.0}}}
    _check_norm_meta([_NeedsStats()], {"A/1/0": meta}, "plate.zarr")
    with pytest.raises(ValueError, match=r"FOV 'A/1/1' of store 'plate.zarr' has no"):
        _check_norm_meta([_NeedsStats()], {"A/1/0": meta, "A/1/1": None}, "plate.zarr")
    with pytest.raises(ValueError, match=r"GFP/fov_statistics/\['std'\]"):
        _check_norm_meta([_NeedsStats()], {"A/1/0": {"GFP": {"fov_statistics": {"mean": 0.0}}}}, "plate.zarr")
