import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from monai.transforms import RandSpatialCropSamplesd

from viscy_data.hcs import HCSDataModule, MaskTestDataset, SlidingWindowDataset
from viscy_data.testing import write_hcs_plate
from viscy_transforms._normalize import NormalizeSampled

POSITIONS = ["A/1/0", "A/1/1", "A/2/0", "B/1/0", "B/1/1"]
SHAPE = (2, 4, 16, 16)  # T, Z, Y, X
CHANNELS = ["Phase3D", "GFP", "DAPI"]


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def plate(tmp_path_factory, request):
    path = tmp_path_factory.mktemp(f"hcs{request.param}") / "plate.zarr"
    data = write_hcs_plate(path, positions=POSITIONS, channel_names=CHANNELS, shape=SHAPE, version=request.param)
    return path, data


def _positions(path, names=POSITIONS):
    opened = open_ome_zarr(path, mode="r", layout="hcs")
    return [opened[name] for name in names]


def _module(path, **kwargs):
    settings = {
        "source_channel": "Phase3D",
        "target_channel": ["GFP", "DAPI"],
        "z_window_size": 2,
        "batch_size": 4,
        "num_workers": 0,
        "yx_patch_size": (8, 8),
    } | kwargs
    return HCSDataModule(str(path), **settings)


def test_windows_enumerate_time_outer_z_inner(plate):
    path, data = plate
    dataset = SlidingWindowDataset(_positions(path, ["A/1/0", "A/1/1"]), {"source": "GFP"}, z_window_size=3)
    assert len(dataset) == 2 * SHAPE[0] * (SHAPE[1] - 3 + 1)
    sample = dataset[3]  # FOV 0, t=1, z=1
    assert tuple(sample["index"]) == ("/A/1/0/0", 1, 1)
    np.testing.assert_array_equal(sample["source"].numpy(), data["A/1/0"][1, 1:2, 1:4])
    assert tuple(dataset[4]["index"]) == ("/A/1/1/0", 0, 0)
    assert "target" not in sample
    assert sample["norm_meta"]["GFP"]["fov_statistics"]["mean"].ndim == 0


def test_batched_read_matches_single_reads(plate):
    dataset = SlidingWindowDataset(_positions(plate[0]), {"source": ["GFP"], "target": ["DAPI", "Phase3D"]}, 2)
    indices = [7, 0, 13, 29]
    batch = dataset.__getitems__(indices)
    for index, sample in zip(indices, batch, strict=True):
        single = dataset[index]
        torch.testing.assert_close(sample["source"], single["source"])
        torch.testing.assert_close(sample["target"], single["target"])
        assert sample["target"].shape == (2, 2, *SHAPE[2:])


def test_base_install_reads_with_zarr_without_tensorstore(plate, monkeypatch):
    path, data = plate
    monkeypatch.setitem(sys.modules, "tensorstore", None)
    dataset = SlidingWindowDataset(_positions(path), {"source": "GFP", "target": ["DAPI", "Phase3D"]}, 2)
    assert not dataset.arrays.uses_tensorstore
    batch = dataset.__getitems__([0, 7])
    np.testing.assert_array_equal(batch[0]["source"].numpy(), data["A/1/0"][0, 1:2, 0:2])
    np.testing.assert_array_equal(batch[1]["target"].numpy(), data["A/1/1"][0, [2, 0], 1:3])
    assert batch[1]["source"].dtype == torch.float32


def test_z_window_larger_than_stack_raises(plate):
    with pytest.raises(IndexError, match=r"Z window size 5 is larger .* \(4\) of FOV 'A/1/0'"):
        SlidingWindowDataset(_positions(plate[0]), {"source": "GFP"}, z_window_size=5)


def test_missing_channel_raises_naming_fov(plate):
    with pytest.raises(ValueError, match=r"Channels \['RFP'\] not found in FOV 'A/1/0'"):
        SlidingWindowDataset(_positions(plate[0]), {"source": "RFP"}, z_window_size=1)


def test_fit_batches_and_fov_split(plate):
    path, data = plate
    torch.manual_seed(0)
    dm = _module(path, normalizations=[NormalizeSampled(keys=["Phase3D"], level="fov_statistics")])
    dm.setup("fit")
    assert len(dm.train_dataset.fov_names) == int(len(POSITIONS) * 0.8)
    assert set(dm.train_dataset.fov_names).isdisjoint(dm.val_dataset.fov_names)
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (4, 1, 2, 8, 8)
    assert batch["target"].shape == (4, 2, 2, 8, 8)
    assert batch["norm_meta"]["GFP"]["dataset_statistics"]["std"].shape == (4,)
    val = next(iter(dm.val_dataloader()))
    fov = val["index"][0][0].strip("/").rsplit("/", 1)[0]
    t, z = int(val["index"][1][0]), int(val["index"][2][0])
    raw = data[fov][t, 0, z : z + 2, 4:12, 4:12]
    expected = (raw - raw.dtype.type(data[fov][:, 0].mean())) / (data[fov][:, 0].std() + 1e-8)
    np.testing.assert_allclose(val["source"][0, 0].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_multi_sample_crops_fill_the_batch(plate):
    crop = RandSpatialCropSamplesd(keys=["Phase3D", "GFP", "DAPI"], roi_size=(2, 8, 8), num_samples=2)
    dm = _module(plate[0], augmentations=[crop], yx_patch_size=(8, 8))
    dm.setup("fit")
    assert dm.train_patches_per_stack == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (4, 1, 2, 8, 8)
    assert batch["norm_meta"]["GFP"]["fov_statistics"]["mean"].shape == (4,)
    names, times, zs = batch["index"]
    assert len(names) == 4 and times.shape == zs.shape == (4,)
    assert names[0] == names[1] and times[0] == times[1]  # two crops of one stack
    with pytest.raises(ValueError, match="divisible"):
        _module(plate[0], augmentations=[crop], batch_size=3).setup("fit")


def test_target_2d_keeps_centre_slice(plate):
    dm = _module(plate[0], target_2d=True, z_window_size=3)
    dm.setup("fit")
    batch = dm.on_before_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch["target"].shape[2] == 1


def test_predict_reads_full_fovs(plate):
    dm = _module(plate[0], batch_size=3)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert batch["source"].shape == (3, 1, 2, 16, 16)
    assert "target" not in batch


def test_predict_single_fov_path(plate):
    dm = _module(plate[0] / "A" / "2" / "0")
    dm.setup("predict")
    assert dm.predict_dataset.fov_names == ["A/2/0"]


def test_bad_inputs_fail_at_setup(plate, tmp_path):
    with pytest.raises(ValueError, match=r"yx_patch_size \(32, 32\) is larger than FOV"):
        _module(plate[0], yx_patch_size=(32, 32)).setup("fit")
    with pytest.raises(NotImplementedError):
        _module(plate[0]).setup("bogus")
    with pytest.raises(ValueError, match=r"Channels \['RFP'\] not found in FOV '\w/\d/\d' of store .*plate.zarr'"):
        _module(plate[0], target_channel=["GFP", "RFP"]).setup("fit")
    raw = tmp_path / "raw.zarr"
    write_hcs_plate(raw, positions=POSITIONS[:2], channel_names=CHANNELS, shape=SHAPE, normalization=False)
    dm = _module(raw, normalizations=[NormalizeSampled(keys=["GFP"], level="dataset_statistics")])
    with pytest.raises(ValueError, match=r"FOV 'A/1/0' of store .*raw.zarr' has no"):
        dm.setup("fit")


def test_mask_test_dataset_adds_labels(plate, tmp_path):
    mask = np.arange(256, dtype=np.uint16).reshape(16, 16)
    iio.imwrite(tmp_path / "img_p000_z1_cp_masks.png", mask)
    dataset = MaskTestDataset(_positions(plate[0], ["A/1/0"]), {"source": "GFP"}, 2, ground_truth_masks=str(tmp_path))
    assert set(dataset.masks) == {(0, 0, 1)}
    np.testing.assert_array_equal(dataset[0]["labels"].numpy(), mask.astype(np.int16))
    assert "labels" not in dataset[1]


def test_two_worker_processes_read_without_deadlock(plate):
    dm = _module(plate[0], num_workers=2, batch_size=2)
    dm.setup("fit")
    # read in the parent first: a plain fork after tensorstore has run aborts the worker
    first = dm.val_dataset.__getitems__([0, 1])
    loader = dm.val_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    for _ in range(2):  # two epochs: workers are started twice
        batches = list(loader)
        assert sum(len(b["source"]) for b in batches) == len(dm.val_dataset)
        torch.testing.assert_close(batches[0]["source"][0], first[0]["source"])


def test_caching_copies_the_plate_and_reads_the_copy(plate, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setenv("SLURM_JOB_ID", "job42")
    dm = _module(plate[0], caching=True)
    assert dm.cache_path == tmp_path / "job42" / "plate.zarr"
    dm.prepare_data()
    assert (dm.cache_path / "A" / "1" / "0").is_dir()
    dm.setup("fit")
    assert str(dm.train_dataset.arrays._paths[0]).startswith(str(dm.cache_path))
    assert next(iter(dm.val_dataloader()))["source"].shape == (4, 1, 2, 8, 8)
