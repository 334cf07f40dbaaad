import numpy as np
import pytest
import torch
from monai.transforms import CenterSpatialCropd

from viscy_data.ctmc_v1 import CTMCv1DataModule
from viscy_data.testing import write_hcs_plate


@pytest.fixture
def ctmc_stores(tmp_path):
    train = write_hcs_plate(
        tmp_path / "train.zarr", ("A/1/0", "A/1/1"), ["DIC"], shape=(3, 2, 16, 16), normalization=False, seed=0
    )
    val = write_hcs_plate(
        tmp_path / "val.zarr", ("A/1/0", "B/1/0"), ["DIC"], shape=(5, 2, 16, 16), version="0.5", seed=1
    )
    return tmp_path / "train.zarr", tmp_path / "val.zarr", train, val


def _datamodule(train_path, val_path, **kwargs) -> CTMCv1DataModule:
    crop = [CenterSpatialCropd(keys=["DIC"], roi_size=(2, 8, 8))]
    settings = {"batch_size": 4, "num_workers": 0, "val_subsample_ratio": 3, "pin_memory": False}
    return CTMCv1DataModule(train_path, val_path, crop, [], [], [], **(settings | kwargs))


def _volumes(data: dict[str, np.ndarray]) -> np.ndarray:
    """All (position, t) volumes of one channel in store order: (N, 1, Z, Y, X)."""
    return np.concatenate([data[name][:, :1] for name in sorted(data)])


def test_validation_is_subsampled_with_its_own_cache(ctmc_stores):
    train_path, val_path, train, val = ctmc_stores
    dm = _datamodule(train_path, val_path)
    dm.setup("fit")
    assert len(dm.train_dataset) == 6
    assert list(dm.val_dataset.indices) == [0, 3, 6, 9]
    expected_val = _volumes(val)[[0, 3, 6, 9]]
    for _ in range(2):  # the second pass reads from the caches
        dm.train_dataset[0]
        for i, samples in enumerate(dm.val_dataset):
            np.testing.assert_array_equal(samples[0]["DIC"].numpy(), expected_val[i])
    batch = next(iter(dm.val_dataloader()))
    assert batch["DIC"].shape == (4, 1, 2, 16, 16)
    assert set(batch) == {"DIC"}


def test_train_batches_are_cropped_source_volumes(ctmc_stores):
    train_path, val_path, train, _ = ctmc_stores
    dm = _datamodule(train_path, val_path, batch_size=6)
    dm.setup("fit")
    assert isinstance(dm.train_gpu_transforms, type(dm.train_cpu_transforms))
    batch = next(iter(dm.train_dataloader()))
    assert batch["DIC"].shape == (6, 1, 2, 8, 8)
    expected = _volumes(train)[..., 4:12, 4:12]
    got = batch["DIC"].numpy()
    order = [int(np.argmin(np.abs(expected - volume).sum(axis=(1, 2, 3, 4)))) for volume in got]
    assert sorted(order) == list(range(6))
    np.testing.assert_array_equal(got, expected[order])
    assert torch.is_tensor(batch["DIC"])


def test_bad_input_is_rejected(ctmc_stores, tmp_path):
    train_path, val_path, *_ = ctmc_stores
    with pytest.raises(NotImplementedError, match="Only fit stage"):
        _datamodule(train_path, val_path).setup("predict")
    with pytest.raises(ValueError, match=r"\['Phase'\] not found in FOV 'A/1/0'"):
        _datamodule(train_path, val_path, channel_name="Phase").setup("fit")
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        _datamodule(train_path, tmp_path / "missing.zarr").setup("fit")
    with pytest.raises(ValueError, match="val_subsample_ratio"):
        _datamodule(train_path, val_path, val_subsample_ratio=0)
