import sys

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from monai.transforms import CenterSpatialCropd, ScaleIntensityd
from tensordict import MemoryMappedTensor

from viscy_data.mmap_cache import MmappedDataModule, MmappedDataset
from viscy_data.testing import write_hcs_plate
from viscy_transforms import NormalizeSampled

POSITIONS = ("A/1/0", "A/1/1", "A/2/0", "B/1/0")
SHAPE = (2, 2, 16, 16)


@pytest.fixture(params=["0.4", "0.5"])
def plate(tmp_path, request):
    path = tmp_path / "plate.zarr"
    data = write_hcs_plate(path, positions=POSITIONS, shape=SHAPE, version=request.param)
    return path, data


def _normalized_gfp(image: np.ndarray) -> np.ndarray:
    """Expected GFP after fov_statistics normalisation, from the raw (T, C, Z, Y, X) array."""
    gfp = image[:, 1].astype(np.float64)
    return (gfp - gfp.mean()) / (gfp.std() + 1e-8)


def _dataset(path, tmp_path, **kwargs) -> MmappedDataset:
    positions = [position for _, position in open_ome_zarr(path, layout="hcs", mode="r").positions()][:2]
    buffer = MemoryMappedTensor.empty((4, 2, 2, 16, 16), dtype=torch.float32, filename=tmp_path / "buffer.mmap")
    settings = {"preprocess_transforms": NormalizeSampled(keys=["GFP"], level="fov_statistics")}
    return MmappedDataset(positions, ["Phase3D", "GFP"], {}, buffer, **(settings | kwargs))


def test_first_read_preprocesses_and_caches(plate, tmp_path):
    path, data = plate
    dataset = _dataset(path, tmp_path)
    assert len(dataset) == 4
    samples = dataset.__getitems__([3, 0])
    assert all(value is None for key, value in dataset.cache_map.items() if key not in (0, 3))
    assert dataset.cache_map[3] and dataset.cache_map[0]
    expected_gfp = _normalized_gfp(data["A/1/1"])[1]
    np.testing.assert_allclose(samples[0][0]["GFP"][0].numpy(), expected_gfp, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(samples[0][0]["Phase3D"][0].numpy(), data["A/1/1"][1, 0])
    assert set(samples[1][0]) == {"Phase3D", "GFP"}
    np.testing.assert_allclose(dataset.buffer[3, 1].numpy(), expected_gfp, rtol=1e-5, atol=1e-5)


def test_cached_items_are_read_from_the_memory_map(plate, tmp_path):
    path, _ = plate
    dataset = _dataset(path, tmp_path, cpu_transform=CenterSpatialCropd(keys=["Phase3D", "GFP"], roi_size=(2, 8, 8)))
    dataset[2]
    dataset.buffer[2] = 7.0
    sample = dataset[2][0]
    assert sample["Phase3D"].shape == (1, 2, 8, 8)
    assert torch.all(sample["Phase3D"] == 7.0) and torch.all(sample["GFP"] == 7.0)


def test_preprocessing_must_keep_the_shape(plate, tmp_path):
    path, _ = plate
    crop = CenterSpatialCropd(keys=["GFP"], roi_size=(2, 8, 8))
    dataset = _dataset(path, tmp_path, preprocess_transforms=crop)
    with pytest.raises(ValueError, match="channel 'GFP' of FOV 'A/1/0' from \\(1, 2, 16, 16\\) to \\(1, 2, 8, 8\\)"):
        dataset[0]


def test_missing_tensordict_names_the_extra(plate, tmp_path, monkeypatch):
    path, _ = plate
    monkeypatch.setitem(sys.modules, "tensordict", None)
    with pytest.raises(ImportError, match=r"tensordict is required for MmappedDataset.*viscy-data\[mmap\]"):
        _dataset(path, tmp_path)


def _datamodule(path, tmp_path, **kwargs) -> MmappedDataModule:
    settings = {
        "channels": ["GFP"],
        "batch_size": 2,
        "num_workers": 0,
        "split_ratio": 0.5,
        "preprocess_transforms": [NormalizeSampled(keys=["GFP"], level="fov_statistics")],
        "train_cpu_transforms": [CenterSpatialCropd(keys=["GFP"], roi_size=(2, 8, 8))],
        "val_cpu_transforms": [],
        "train_gpu_transforms": [],
        "val_gpu_transforms": [],
        "scratch_dir": tmp_path / "scratch",
        "prefetch_factor": 4,
    }
    return MmappedDataModule(path, **(settings | kwargs))


def test_datamodule_splits_filtered_fovs_into_memory_maps(plate, tmp_path, monkeypatch):
    path, data = plate
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    torch.manual_seed(0)
    dm = _datamodule(path, tmp_path, include_wells=["A/1", "A/2"], exclude_fovs=["A/1/1"])
    assert dm.prefetch_factor is None
    assert dm.cache_dir == tmp_path / "scratch" / "viscy_cache" / "0" / "plate.zarr"
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 and len(dm.val_dataset) == 2
    used = {
        position.zgroup.name.strip("/")
        for dm_set in (dm.train_dataset, dm.val_dataset)
        for position in dm_set.positions
    }
    assert used == {"A/1/0", "A/2/0"}
    assert (dm.cache_dir / "train.mmap").is_file() and (dm.cache_dir / "val.mmap").is_file()
    assert dm.train_dataset.buffer.shape == (2, 1, 2, 16, 16)
    batch = next(iter(dm.train_dataloader()))
    assert batch["GFP"].shape == (2, 1, 2, 8, 8)
    val_batch = next(iter(dm.val_dataloader()))
    val_fov = dm.val_dataset.positions[0].zgroup.name.strip("/")
    np.testing.assert_allclose(val_batch["GFP"][:, 0].numpy(), _normalized_gfp(data[val_fov]), rtol=1e-5, atol=1e-5)


def test_datamodule_rejects_bad_plates(tmp_path):
    images = {name: np.ones((2, 1, 2, 16, 16), dtype=np.float32) for name in POSITIONS}
    images["A/2/0"] = np.ones((2, 1, 2, 16, 12), dtype=np.float32)
    write_hcs_plate(tmp_path / "ragged.zarr", POSITIONS, ["GFP"], normalization=False, data=images)
    with pytest.raises(ValueError, match="FOV 'A/2/0'.*same \\(T, Z, Y, X\\)"):
        _datamodule(tmp_path / "ragged.zarr", tmp_path).setup("fit")
    write_hcs_plate(tmp_path / "raw.zarr", positions=POSITIONS, channel_names=["GFP"], normalization=False)
    with pytest.raises(ValueError, match="FOV 'A/1/0'.*normalization"):
        _datamodule(tmp_path / "raw.zarr", tmp_path).setup("fit")
    with pytest.raises(ValueError, match="At least 2 FOVs"):
        _datamodule(tmp_path / "raw.zarr", tmp_path, exclude_fovs=list(POSITIONS[1:])).setup("fit")
    with pytest.raises(NotImplementedError, match="Only fit and validate"):
        _datamodule(tmp_path / "raw.zarr", tmp_path).setup("predict")


def test_worker_processes_fill_the_shared_cache(tmp_path):
    """Spawned workers write to the memory map and cache map seen by the main process (doubling = x * (1 + 1))."""
    path = tmp_path / "plate.zarr"
    data = write_hcs_plate(path, positions=POSITIONS, shape=SHAPE)
    dm = _datamodule(
        path,
        tmp_path,
        num_workers=2,
        preprocess_transforms=[ScaleIntensityd(keys=["GFP"], minv=None, maxv=None, factor=1.0)],
        split_ratio=0.75,
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sum(len(batch["GFP"]) for batch in batches) == 6
    assert all(dm.train_dataset.cache_map.values())
    for index, position in enumerate(dm.train_dataset.positions):
        expected = 2 * data[position.zgroup.name.strip("/")][:, 1]
        np.testing.assert_allclose(dm.train_dataset.buffer[2 * index : 2 * index + 2, 0].numpy(), expected)
