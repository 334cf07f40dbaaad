import sys

import numpy as np
import pandas as pd
import pytest
import torch
from iohub.ngff import open_ome_zarr
from monai.transforms import CenterSpatialCrop

from viscy_data.cell_classification import ClassificationDataModule, ClassificationDataset
from viscy_data.testing import write_hcs_plate

POSITIONS = ("A/1/0", "A/1/1", "B/1/0")
PATCH = (8, 8)


@pytest.fixture(params=["0.4", "0.5"])
def plate_path_and_data(tmp_path, request):
    path = tmp_path / "images.zarr"
    data = write_hcs_plate(path, positions=POSITIONS, shape=(3, 3, 32, 32), version=request.param)
    return path, data


def _annotation(leading_slash: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for p, fov in enumerate(POSITIONS):
        for t in range(3):
            for cell in range(2):
                rows.append(
                    {
                        "fov_name": ("/" if leading_slash else "") + fov,
                        "track_id": cell,
                        "t": t,
                        "id": 100 * p + 10 * t + cell,
                        "parent_track_id": -1,
                        "parent_id": -1,
                        "z": 0,
                        "y": int(rng.integers(5, 27)),
                        "x": int(rng.integers(5, 27)),
                        "infection_state": (p + cell) % 2,
                        "cell_division_state": (t + cell) % 2,
                    }
                )
    # cells too close to the border for an 8x8 patch
    rows.append({**rows[0], "y": 4, "id": 900})
    rows.append({**rows[0], "x": 28, "id": 901})
    return pd.DataFrame(rows)


def _expected_patch(data, fov: str, t: int, y: int, x: int, z_range=(1, 3)) -> np.ndarray:
    image = data[fov][:, 1].astype(np.float64)
    patch = image[t, z_range[0] : z_range[1], y - 4 : y + 4, x - 4 : x + 4]
    return ((patch - image.mean()) / image.std())[None]


def test_patches_are_fov_normalised_crops_with_labels(plate_path_and_data):
    path, data = plate_path_and_data
    annotation = _annotation()
    plate = open_ome_zarr(path, layout="hcs", mode="r")
    dataset = ClassificationDataset(plate, annotation, "GFP", (1, 3), None, PATCH)
    assert len(dataset) == len(annotation) - 2
    assert set(dataset.annotation["id"]).isdisjoint({900, 901})
    for idx in (0, 7, len(dataset) - 1):
        row = dataset.annotation.iloc[idx]
        img, label = dataset[idx]
        assert img.shape == (1, 2, *PATCH) and img.dtype == torch.float32
        np.testing.assert_allclose(img.numpy(), _expected_patch(data, row.fov_name, row.t, row.y, row.x), atol=1e-5)
        assert label.shape == (1,) and label.item() == row.infection_state


def test_return_indices_gives_index_columns(plate_path_and_data):
    path, _ = plate_path_and_data
    plate = open_ome_zarr(path, layout="hcs", mode="r")
    dataset = ClassificationDataset(
        plate, _annotation(), "Phase3D", (0, 1), None, PATCH, return_indices=True, label_column="cell_division_state"
    )
    img, label, index = dataset[3]
    row = dataset.annotation.iloc[3]
    assert img.shape == (1, 1, *PATCH)
    assert label.item() == row.cell_division_state
    assert index == {column: row[column] for column in index} and list(index)[0] == "fov_name"
    assert len(index) == 9


def test_bad_tables_and_plates_are_named(tmp_path, plate_path_and_data):
    path, _ = plate_path_and_data
    plate = open_ome_zarr(path, layout="hcs", mode="r")
    with pytest.raises(ValueError, match=r"\['x'\]"):
        ClassificationDataset(plate, _annotation().drop(columns="x"), "GFP", (0, 1), None, PATCH)
    with pytest.raises(ValueError, match="'RFP'"):
        ClassificationDataset(plate, _annotation(), "RFP", (0, 1), None, PATCH)
    with pytest.raises(ValueError, match="z_range"):
        ClassificationDataset(plate, _annotation(), "GFP", (0, 5), None, PATCH)
    unknown_fov = _annotation().assign(fov_name="C/3/0")
    with pytest.raises(KeyError, match="'C/3/0'"):
        ClassificationDataset(plate, unknown_fov, "GFP", (0, 1), None, PATCH)
    write_hcs_plate(tmp_path / "raw.zarr", positions=POSITIONS, shape=(3, 3, 32, 32), normalization=False)
    raw = open_ome_zarr(tmp_path / "raw.zarr", layout="hcs", mode="r")
    with pytest.raises(ValueError, match="FOV 'A/1/0'.*fov_statistics"):
        ClassificationDataset(raw, _annotation(), "GFP", (0, 1), None, PATCH)


def test_missing_pandas_names_the_extra(plate_path_and_data, monkeypatch):
    path, _ = plate_path_and_data
    plate = open_ome_zarr(path, layout="hcs", mode="r")
    annotation = _annotation()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"viscy-data\[triplet\]"):
        ClassificationDataset(plate, annotation, "GFP", (0, 1), None, PATCH)


def _datamodule(path, csv, **kwargs) -> ClassificationDataModule:
    settings = {
        "image_path": path,
        "annotation_path": csv,
        "val_fovs": ["B/1/0"],
        "channel_name": "GFP",
        "z_range": (1, 3),
        "train_exclude_timepoints": [2],
        "train_transforms": [CenterSpatialCrop((2, 4, 4))],
        "val_transforms": None,
        "initial_yx_patch_size": PATCH,
        "batch_size": 4,
        "num_workers": 0,
    }
    return ClassificationDataModule(**{**settings, **kwargs})


@pytest.mark.parametrize("leading_slash", [False, True])
def test_datamodule_splits_by_fov_and_time(tmp_path, plate_path_and_data, leading_slash):
    path, data = plate_path_and_data
    csv = tmp_path / "annotation.csv"
    _annotation(leading_slash).to_csv(csv, index=False)
    dm = _datamodule(path, csv, val_fovs=["/B/1/0" if not leading_slash else "B/1/0"])
    dm.setup("fit")
    train, val = dm.train_dataset.annotation, dm.val_dataset.annotation
    assert set(train["fov_name"].str.strip("/")) == {"A/1/0", "A/1/1"} and set(train["t"]) == {0, 1}
    assert set(val["fov_name"].str.strip("/")) == {"B/1/0"} and set(val["t"]) == {0, 1, 2}
    img, label = next(iter(dm.train_dataloader()))
    assert img.shape == (4, 1, 2, 4, 4) and label.shape == (4, 1)
    img, label = next(iter(dm.val_dataloader()))
    row = val.iloc[0]
    np.testing.assert_allclose(img[0].numpy(), _expected_patch(data, "B/1/0", row.t, row.y, row.x), atol=1e-5)


def test_predict_uses_the_label_column_and_returns_indices(tmp_path, plate_path_and_data):
    path, _ = plate_path_and_data
    csv = tmp_path / "annotation.csv"
    _annotation().to_csv(csv, index=False)
    dm = _datamodule(path, csv, label_column="cell_division_state", val_fovs=None)
    dm.setup("predict")
    img, label, index = next(iter(dm.predict_dataloader()))
    expected = dm.predict_dataset.annotation.iloc[:4]
    assert img.shape == (4, 1, 2, *PATCH)
    assert label[:, 0].tolist() == expected["cell_division_state"].tolist()
    assert index["id"].tolist() == expected["id"].tolist()


def test_datamodule_rejects_bad_stages_and_val_fovs(tmp_path, plate_path_and_data):
    path, _ = plate_path_and_data
    csv = tmp_path / "annotation.csv"
    _annotation().to_csv(csv, index=False)
    with pytest.raises(NotImplementedError, match="Test stage"):
        _datamodule(path, csv).setup("test")
    with pytest.raises(ValueError, match="Unknown stage 'train'"):
        _datamodule(path, csv).setup("train")
    with pytest.raises(ValueError, match=r"val_fovs \['D/1/0'\]"):
        _datamodule(path, csv, val_fovs=["D/1/0"]).setup("fit")
    with pytest.raises(ValueError, match="No training annotations"):
        _datamodule(path, csv, train_exclude_timepoints=[0, 1, 2]).setup("fit")
