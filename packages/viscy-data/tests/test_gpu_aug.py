import sys
from multiprocessing import get_context

import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr
from monai.transforms import Compose

from viscy_data.distributed import ShardedDistributedSampler
from viscy_data.gpu_aug import CachedOmeZarrDataModule, CachedOmeZarrDataset, GPUTransformDataModule
from viscy_data.testing import write_hcs_plate

POSITIONS = ["A/1/0", "A/1/1", "B/1/0", "B/1/1"]
SHAPE = (3, 2, 8, 8)


@pytest.fixture(scope="module")
def manager():
    with get_context("spawn").Manager() as started:
        yield started


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def plate(tmp_path_factory, request):
    path = tmp_path_factory.mktemp(f"gpu{request.param}") / "plate.zarr"
    return path, write_hcs_plate(path, positions=POSITIONS, shape=SHAPE, version=request.param)


def _positions(path, names=POSITIONS):
    opened = open_ome_zarr(path, mode="r", layout="hcs")
    return [opened[name] for name in names]


def test_items_are_whole_volumes_per_timepoint(plate, manager):
    path, data = plate
    cache = manager.dict()
    dataset = CachedOmeZarrDataset(_positions(path, ["A/1/1", "B/1/0"]), ["GFP", "Phase3D"], cache)
    assert len(dataset) == 2 * SHAPE[0]
    item = dataset[4]  # second FOV, t=1
    assert isinstance(item, list) and len(item) == 1
    np.testing.assert_array_equal(item[0]["GFP"].numpy(), data["B/1/0"][1, 1:2])
    np.testing.assert_array_equal(item[0]["Phase3D"].numpy(), data["B/1/0"][1, 0:1])
    assert item[0]["norm_meta"]["GFP"]["fov_statistics"]["mean"].ndim == 0


def test_base_install_reads_volumes_with_zarr(plate, manager, monkeypatch):
    path, data = plate
    monkeypatch.setitem(sys.modules, "tensorstore", None)
    dataset = CachedOmeZarrDataset(_positions(path, ["B/1/1"]), ["GFP"], manager.dict(), skip_cache=True)
    assert not dataset.arrays.uses_tensorstore
    np.testing.assert_array_equal(dataset[2][0]["GFP"].numpy(), data["B/1/1"][2, 1:2])


def test_cache_is_filled_and_reused(plate, manager):
    path, _ = plate
    cache = manager.dict()
    dataset = CachedOmeZarrDataset(_positions(path, ["A/1/0"]), ["GFP"], cache)
    assert all(value is None for value in cache.values())
    dataset.__getitems__([0, 2])
    assert cache[0] is not None and cache[1] is None and cache[2] is not None
    cache[0] = torch.full((1, *SHAPE[1:]), 7.0)  # a cached volume is served without reading
    assert torch.all(dataset[0][0]["GFP"] == 7.0)


def test_skip_cache_leaves_cache_empty(plate, manager):
    cache = manager.dict()
    dataset = CachedOmeZarrDataset(_positions(plate[0], ["A/1/0"]), ["GFP"], cache, skip_cache=True)
    dataset[0]
    assert len(cache) == 0


def test_datamodule_splits_filters_and_batches(plate):
    path, _ = plate
    torch.manual_seed(0)
    dm = CachedOmeZarrDataModule(
        path,
        channels=["GFP"],
        batch_size=2,
        num_workers=0,
        split_ratio=0.5,
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
        exclude_fovs=["B/1/1"],
    )
    dm.setup("fit")
    assert sorted(dm.train_dataset.fov_names + dm.val_dataset.fov_names) == ["A/1/0", "A/1/1", "B/1/0"]
    assert len(dm.train_dataset.fov_names) == 1
    assert dm.train_dataset.cache_map is not dm.val_dataset.cache_map
    batch = next(iter(dm.train_dataloader()))
    assert batch["GFP"].shape == (2, 1, *SHAPE[1:])
    assert batch["norm_meta"]["GFP"]["fov_statistics"]["std"].shape == (2,)
    assert isinstance(dm.train_gpu_transforms, Compose)
    with pytest.raises(NotImplementedError, match="Only fit and validate"):
        dm.setup("predict")


def test_sampler_only_under_distributed(plate):
    class _Module(GPUTransformDataModule):
        train_cpu_transforms = train_gpu_transforms = val_cpu_transforms = val_gpu_transforms = Compose([])

    module = _Module()
    assert module._maybe_sampler(range(4), shuffle=True) is None
    assert ShardedDistributedSampler(range(4), num_replicas=1, rank=0) is not None


def test_two_worker_processes_fill_the_shared_cache(plate):
    path, data = plate
    torch.manual_seed(0)
    dm = CachedOmeZarrDataModule(
        path,
        channels=["GFP"],
        batch_size=1,
        num_workers=2,
        split_ratio=0.5,
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
        pin_memory=False,
    )
    dm.setup("fit")
    dm.val_dataset[0]  # tensorstore already used in the parent before the workers start
    loader = dm.val_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    batches = list(loader)
    assert len(batches) == len(dm.val_dataset) == 2 * SHAPE[0]
    fov = dm.val_dataset.fov_names[-1]
    np.testing.assert_array_equal(batches[-1]["GFP"][0].numpy(), data[fov][-1, 1:2])
    # volumes read by the worker processes landed in the parent's shared cache
    assert all(volume is not None for volume in dm.val_dataset.cache_map.values())
