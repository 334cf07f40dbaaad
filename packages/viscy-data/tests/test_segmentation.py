import numpy as np
import pytest
import torch
from iohub.ngff import open_ome_zarr

from viscy_data.segmentation import SegmentationDataModule, SegmentationDataset
from viscy_data.testing import write_hcs_plate

POSITIONS = ("A/1/0", "A/1/1", "B/2/0")


def _label_images(seed: int, n_t: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 300, size=(n_t, 2, 3, 16, 16)) for name in POSITIONS}


@pytest.fixture(params=["0.4", "0.5"])
def label_stores(tmp_path, request):
    pred = write_hcs_plate(
        tmp_path / "pred.zarr",
        positions=POSITIONS,
        channel_names=["other", "pred_labels"],
        dtype=np.int32,
        normalization=False,
        version=request.param,
        data=_label_images(0),
    )
    target = write_hcs_plate(
        tmp_path / "target.zarr",
        positions=POSITIONS,
        channel_names=["nuclei_labels", "membrane"],
        dtype=np.uint16,
        normalization=False,
        version=request.param,
        data=_label_images(1),
    )
    return tmp_path / "pred.zarr", tmp_path / "target.zarr", pred, target


def _open(path):
    return open_ome_zarr(path, layout="hcs", mode="r")


def test_samples_cover_every_position_and_time_with_source_values(label_stores):
    pred_path, target_path, pred, target = label_stores
    dataset = SegmentationDataset(_open(pred_path), _open(target_path), "pred_labels", "nuclei_labels", 1, 2)
    assert len(dataset) == len(POSITIONS) * 2
    seen = set()
    for i in range(len(dataset)):
        sample = dataset[i]
        name = POSITIONS[sample["position_idx"]]
        t = sample["time_idx"]
        seen.add((name, t))
        assert sample["pred"].dtype == torch.int16 and sample["pred"].shape == (16, 16)
        np.testing.assert_array_equal(sample["pred"].numpy(), pred[name][t, 1, 1])
        np.testing.assert_array_equal(sample["target"].numpy(), target[name][t, 0, 2])
    assert seen == {(name, t) for name in POSITIONS for t in range(2)}


def test_z_slice_returns_a_stack(label_stores):
    pred_path, target_path, pred, target = label_stores
    dataset = SegmentationDataset(
        _open(pred_path), _open(target_path), "pred_labels", "nuclei_labels", slice(0, 2), slice(1, 3)
    )
    sample = dataset[3]
    name = POSITIONS[sample["position_idx"]]
    assert sample["pred"].shape == (2, 16, 16)
    np.testing.assert_array_equal(sample["target"].numpy(), target[name][sample["time_idx"], 0, 1:3])


def test_missing_channel_names_the_store(label_stores):
    pred_path, target_path, *_ = label_stores
    with pytest.raises(ValueError, match="'GFP'.*A/1/0.*pred.zarr"):
        SegmentationDataset(_open(pred_path), _open(target_path), "GFP", "nuclei_labels", 0, 0)


def test_time_mismatch_is_rejected(tmp_path, label_stores):
    _, target_path, *_ = label_stores
    write_hcs_plate(
        tmp_path / "short.zarr",
        positions=POSITIONS,
        channel_names=["pred_labels"],
        shape=(1, 3, 16, 16),
        dtype=np.int32,
        normalization=False,
    )
    with pytest.raises(ValueError, match="Shape mismatch between prediction and target: position 'A/1/0'"):
        SegmentationDataset(_open(tmp_path / "short.zarr"), _open(target_path), "pred_labels", "nuclei_labels", 0, 0)


def test_position_missing_from_prediction_is_named(tmp_path, label_stores):
    _, target_path, *_ = label_stores
    write_hcs_plate(
        tmp_path / "partial.zarr",
        positions=POSITIONS[:2],
        channel_names=["pred_labels"],
        shape=(2, 3, 16, 16),
        dtype=np.int32,
        normalization=False,
    )
    with pytest.raises(KeyError, match="'B/2/0'"):
        SegmentationDataset(_open(tmp_path / "partial.zarr"), _open(target_path), "pred_labels", "nuclei_labels", 0, 0)


def test_datamodule_batches_test_stage_only(label_stores):
    pred_path, target_path, pred, target = label_stores
    dm = SegmentationDataModule(pred_path, target_path, "pred_labels", "nuclei_labels", 0, 0, 4, 0)
    with pytest.raises(NotImplementedError, match="Only test stage"):
        dm.setup("fit")
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["pred"].shape == (4, 16, 16) and batch["target"].dtype == torch.int16
    assert batch["position_idx"].tolist() == [0, 0, 1, 1]
    assert batch["time_idx"].tolist() == [0, 1, 0, 1]
    np.testing.assert_array_equal(batch["target"][2].numpy(), target["A/1/1"][0, 0, 0])
