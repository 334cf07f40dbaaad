import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from monai.transforms import Lambdad, RandSpatialCropSamplesd
from torch.utils.data import Dataset

from viscy_data.combined import (
    BatchedConcatDataModule,
    BatchedConcatDataset,
    CachedConcatDataModule,
    CombinedDataModule,
    CombineMode,
    ConcatDataModule,
)
from viscy_data.gpu_aug import CachedOmeZarrDataModule
from viscy_data.hcs import HCSDataModule
from viscy_data.testing import random_walk_tracks, write_hcs_plate, write_tracks
from viscy_data.triplet import TripletDataModule


class RangeBatches(Dataset):
    """Dataset whose batch of ``indices`` is ``{"value": offset + indices}``."""

    def __init__(self, length: int, offset: int) -> None:
        self.length, self.offset = length, offset

    def __len__(self) -> int:
        return self.length

    def __getitems__(self, indices: list[int]) -> dict:
        return {"value": torch.tensor(indices) + self.offset, "names": [f"{self.offset}:{i}" for i in indices]}


def test_batched_concat_dataset_groups_indices_by_dataset():
    dataset = BatchedConcatDataset([RangeBatches(3, 0), RangeBatches(4, 100), RangeBatches(2, 200)])
    assert dataset._get_sample_indices(4) == (1, 1)
    assert dataset._get_sample_indices(-1) == (2, 1)
    with pytest.raises(ValueError, match="absolute value of index"):
        dataset._get_sample_indices(-10)
    micro_batches = dataset.__getitems__([8, 1, 4, 0, -3, 3])
    assert [mb["_dataset_idx"] for mb in micro_batches] == [2, 0, 1]
    assert [mb["value"].tolist() for mb in micro_batches] == [[201], [1, 0], [101, 103, 100]]
    with pytest.raises(NotImplementedError):
        dataset[0]
    with pytest.raises(IndexError):
        dataset.__getitems__([9])


def test_batched_concat_dataset_needs_dict_batches():
    class ListBatches(RangeBatches):
        def __getitems__(self, indices):
            return [super().__getitems__(indices)]

    with pytest.raises(TypeError, match="ListBatches.__getitems__ returned list"):
        BatchedConcatDataset([ListBatches(2, 0)]).__getitems__([0])


def _plate(path, n_positions: int, version: str, seed: int):
    positions = [f"A/{i // 2 + 1}/{i % 2}" for i in range(n_positions)]
    return write_hcs_plate(path, positions=positions, shape=(3, 1, 16, 16), version=version, seed=seed)


def _hcs(path, **kwargs) -> HCSDataModule:
    settings = {
        "source_channel": "Phase3D",
        "target_channel": "GFP",
        "z_window_size": 1,
        "split_ratio": 0.5,
        "batch_size": 2,
        "num_workers": 0,
        "yx_patch_size": (8, 8),
    }
    return HCSDataModule(str(path), **(settings | kwargs))


@pytest.fixture
def hcs_plates(tmp_path):
    _plate(tmp_path / "a.zarr", 2, "0.4", seed=0)
    _plate(tmp_path / "b.zarr", 4, "0.5", seed=1)
    return tmp_path / "a.zarr", tmp_path / "b.zarr"


@pytest.fixture
def plate_a_images(hcs_plates):
    return _plate(hcs_plates[0].with_name("a_copy.zarr"), 2, "0.4", seed=0)


def test_concat_datamodule_concatenates_fit_datasets(hcs_plates):
    torch.manual_seed(0)
    dm = ConcatDataModule([_hcs(hcs_plates[0]), _hcs(hcs_plates[1])])
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 + 6 and len(dm.val_dataset) == 3 + 6
    batches = list(dm.train_dataloader())
    assert len(batches) == 4
    assert batches[0]["source"].shape == (2, 1, 1, 8, 8) and batches[0]["target"].shape == (2, 1, 1, 8, 8)
    val_batch = next(iter(dm.val_dataloader()))
    assert val_batch["source"].shape == (2, 1, 1, 8, 8)


def test_concat_datamodule_rejects_inconsistent_settings(hcs_plates):
    with pytest.raises(ValueError, match="Inconsistent batch size"):
        ConcatDataModule([_hcs(hcs_plates[0]), _hcs(hcs_plates[1], batch_size=4)])
    with pytest.raises(ValueError, match="Inconsistent number of workers"):
        ConcatDataModule([_hcs(hcs_plates[0]), _hcs(hcs_plates[1], num_workers=1)])
    sampler = RandSpatialCropSamplesd(keys=["Phase3D", "GFP"], roi_size=(1, 8, 8), num_samples=2)
    dm = ConcatDataModule([_hcs(hcs_plates[0]), _hcs(hcs_plates[1], augmentations=[sampler])])
    with pytest.raises(ValueError, match="Inconsistent patches per stack"):
        dm.setup("fit")
    with pytest.raises(NotImplementedError, match="Only fit stage"):
        dm.setup("predict")


def test_combined_datamodule_modes(hcs_plates):
    torch.manual_seed(0)
    dm = CombinedDataModule([_hcs(hcs_plates[0]), _hcs(hcs_plates[1])], train_mode="min_size")
    assert dm.train_mode == "min_size" and dm.val_mode == CombineMode.SEQUENTIAL.value
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert len(train) == 1 and len(train[0][0]) == 2
    dm.train_mode = CombineMode.MAX_SIZE_CYCLE.value
    assert len(list(dm.train_dataloader())) == 3
    val = list(dm.val_dataloader())
    assert [dataloader_idx for _, _, dataloader_idx in val] == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="'shortest' is not one of"):
        CombinedDataModule([], val_mode="shortest")


def _negate(x):
    return -x


def _triplet(tmp_path, name: str, seed: int, version: str, **kwargs) -> TripletDataModule:
    positions = ["A/1/0", "A/1/1", "B/1/0"]
    _plate_path = tmp_path / f"{name}.zarr"
    write_hcs_plate(_plate_path, positions=positions, shape=(4, 2, 32, 32), version=version, seed=seed)
    for i, position in enumerate(positions):
        write_tracks(tmp_path / f"{name}_tracks", position, random_walk_tracks(3, 4, (32, 32), margin=9, seed=i))
    return TripletDataModule(
        str(_plate_path),
        str(tmp_path / f"{name}_tracks"),
        "Phase3D",
        z_range=(0, 2),
        initial_yx_patch_size=(16, 16),
        final_yx_patch_size=(8, 8),
        split_ratio=0.67,
        batch_size=6,
        num_workers=0,
        **kwargs,
    )


@pytest.fixture
def triplet_modules(tmp_path):
    plain = _triplet(tmp_path, "a", 0, "0.4")
    negated = _triplet(tmp_path, "b", 1, "0.5", normalizations=[Lambdad(keys=["Phase3D"], func=_negate)])
    return plain, negated


def test_batched_concat_applies_each_modules_gpu_transforms(triplet_modules):
    torch.manual_seed(0)
    dm = BatchedConcatDataModule(list(triplet_modules))
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 * 2 * 3 * 4
    seen = set()
    for batch in dm.train_dataloader():
        assert isinstance(batch, list)
        sources = [mb["_dataset_idx"] for mb in batch for _ in range(len(mb["anchor"]))]
        seen.update(sources)
        merged = dm.on_after_batch_transfer(batch, 0)
        assert set(merged) == {"anchor", "positive", "negative"}
        assert merged["anchor"].shape == (6, 1, 2, 8, 8)
        # plate values are ~10 +- 1: untouched in module 0, negated by module 1's normalization
        signs = torch.sign(merged["anchor"].flatten(1).mean(1)).tolist()
        assert signs == [1.0 if source == 0 else -1.0 for source in sources]
    assert seen == {0, 1}


class _AnchorMean(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.anchors = []

    def training_step(self, batch, batch_idx):
        self.anchors.append(batch["anchor"].detach())
        return (self.scale * batch["anchor"]).mean() ** 2

    def validation_step(self, batch, batch_idx):
        self.anchors.append(batch["anchor"].detach())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("accelerator", ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def test_batched_concat_trains_with_lightning(triplet_modules, accelerator):
    torch.manual_seed(0)
    model = _AnchorMean()
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=BatchedConcatDataModule(list(triplet_modules)))
    assert len(model.anchors) >= 3
    for anchor in model.anchors:
        assert anchor.shape[1:] == (1, 2, 8, 8) and anchor.shape[0] > 0
        assert anchor.device.type == ("cuda" if accelerator == "gpu" else "cpu")


def _cached(path, **kwargs) -> CachedOmeZarrDataModule:
    settings = {
        "channels": "GFP",
        "batch_size": 2,
        "num_workers": 0,
        "split_ratio": 0.5,
        "train_cpu_transforms": [],
        "val_cpu_transforms": [],
        "train_gpu_transforms": [],
        "val_gpu_transforms": [],
        "pin_memory": False,
    }
    return CachedOmeZarrDataModule(path, **(settings | kwargs))


def test_cached_concat_yields_lists_of_item_outputs(hcs_plates, plate_a_images):
    torch.manual_seed(0)
    dm = CachedConcatDataModule([_cached(hcs_plates[0]), _cached(hcs_plates[1])])
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 + 6 and len(dm.val_dataset) == 3 + 6
    train = list(dm.train_dataloader())
    assert len(train) == 4 and all(len(batch) == 2 for batch in train)
    assert train[0][0][0]["GFP"].shape == (1, 1, 16, 16)
    val = list(dm.val_dataloader())
    assert [len(batch) for batch in val] == [2, 2, 2, 2, 1]
    first_val_fov = dm.data_modules[0].val_dataset.fov_names[0]
    np.testing.assert_array_equal(val[0][0][0]["GFP"][0].numpy(), plate_a_images[first_val_fov][0, 1])
    with pytest.raises(ValueError, match="Inconsistent batch size"):
        CachedConcatDataModule([_cached(hcs_plates[0]), _cached(hcs_plates[1], batch_size=3)])
