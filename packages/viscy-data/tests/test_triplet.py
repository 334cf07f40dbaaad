import sys

import numpy as np
import pandas as pd
import pytest
import torch
from iohub.ngff import open_ome_zarr
from lightning.pytorch import LightningModule, Trainer
from monai.transforms import MapTransform

from viscy_data._typing import INDEX_COLUMNS
from viscy_data.testing import write_hcs_plate, write_tracks
from viscy_data.triplet import TripletDataModule, TripletDataset

POSITIONS = ["A/1/0", "A/1/1", "A/2/0"]
T, Z, H, W = 4, 3, 40, 40
PATCH = (8, 8)


def _coded_image(offset: int) -> np.ndarray:
    """Pixel value encodes (fov, t, c, z, y, x) so a patch reveals where it was read from."""
    t, c, z, y, x = np.meshgrid(*(np.arange(n) for n in (T, 2, Z, H, W)), indexing="ij")
    return (offset * 10**7 + t * 10**6 + c * 10**5 + z * 10**4 + y * 100 + x).astype(np.int32)


def _tracks(fov_index: int) -> pd.DataFrame:
    """Three tracks moving right one pixel per frame; track 2 skips t=2; track 3 sits on the border."""
    rows = []
    for track in range(3):
        for t in range(T):
            if track == 2 and t == 2:
                continue
            rows.append((track, t, 10 + 8 * track + fov_index, 12 + t))
    rows += [(3, t, 2, 20) for t in range(T)]  # too close to the top border for an 8 px patch
    table = pd.DataFrame(rows, columns=["track_id", "t", "y", "x"])
    table["id"] = np.arange(len(table))
    table["parent_track_id"] = -1
    table["parent_id"] = -1
    table["z"] = 0
    return table


@pytest.fixture(params=["0.4", "0.5"])
def dataset_paths(tmp_path, request):
    data = {name: _coded_image(i) for i, name in enumerate(POSITIONS)}
    write_hcs_plate(
        tmp_path / "plate.zarr",
        positions=POSITIONS,
        shape=(T, Z, H, W),
        dtype=np.int32,
        data=data,
        version=request.param,
    )
    for i, name in enumerate(POSITIONS):
        write_tracks(tmp_path / "tracks", name, _tracks(i))
    return tmp_path / "plate.zarr", tmp_path / "tracks", data


def _dataset(plate_path, **kwargs):
    plate = open_ome_zarr(plate_path, mode="r", layout="hcs")
    positions = [plate[name] for name in POSITIONS]
    settings = {"channel_names": ["Phase3D", "GFP"], "initial_yx_patch_size": PATCH, "z_range": slice(1, 3)} | kwargs
    return TripletDataset(positions, [_tracks(i) for i in range(len(POSITIONS))], **settings)


def _decode(patch: torch.Tensor) -> tuple[int, int, int, int]:
    """(fov, t, centre y, centre x) of a (C, Z, Y, X) patch from its top-left value."""
    value = int(patch[0, 0, 0, 0])
    fov, t = value // 10**7, value // 10**6 % 10
    y0, x0 = value // 100 % 100, value % 100
    return fov, t, y0 + PATCH[0] // 2, x0 + PATCH[1] // 2


def test_anchor_equals_raw_crop_at_track_centroid(dataset_paths):
    plate_path, _, data = dataset_paths
    dataset = _dataset(plate_path, time_interval="any")
    batch = dataset.__getitems__([0, 5, 11])
    assert batch["anchor"].shape == (3, 2, 2, *PATCH)
    assert batch["anchor"].dtype == torch.int32
    for i, index in enumerate([0, 5, 11]):
        row = dataset.valid_anchors.iloc[index]
        raw = data[row["fov_name"]][row["t"], :, 1:3, row["y"] - 4 : row["y"] + 4, row["x"] - 4 : row["x"] + 4]
        np.testing.assert_array_equal(batch["anchor"][i].numpy(), raw)
    torch.testing.assert_close(batch["positive"], batch["anchor"])


def test_border_cells_are_dropped(dataset_paths):
    dataset = _dataset(dataset_paths[0])
    assert 3 not in dataset.tracks["track_id"].to_numpy()
    assert len(dataset) == 3 * 11
    assert set(dataset.tracks["global_track_id"]) >= {"A/1/0_0", "A/2/0_2"}


def test_positive_is_same_track_interval_later(dataset_paths):
    dataset = _dataset(dataset_paths[0], time_interval=1)
    # track 2 lacks t=2, so its t=1 and t=3 anchors are invalid: per FOV 3 + 3 + 1 anchors
    assert len(dataset) == 3 * 7
    batch = dataset.__getitems__(list(range(len(dataset))))
    for i in range(len(dataset)):
        anchor, positive = _decode(batch["anchor"][i]), _decode(batch["positive"][i])
        row = dataset.valid_anchors.iloc[i]
        assert anchor == (POSITIONS.index(row["fov_name"]), row["t"], row["y"], row["x"])
        assert positive[:2] == (anchor[0], anchor[1] + 1)
        assert positive[2] == anchor[2]  # same track: tracks have distinct y per FOV
        assert positive[3] == anchor[3] + 1  # moved one pixel right


def test_negative_is_another_track_at_the_same_offset(dataset_paths):
    torch.manual_seed(0)
    dataset = _dataset(dataset_paths[0], time_interval=1)
    batch = dataset.__getitems__(list(range(len(dataset))))
    for i in range(len(dataset)):
        anchor, negative = _decode(batch["anchor"][i]), _decode(batch["negative"][i])
        assert negative[1] == anchor[1] + 1
        assert (negative[0], negative[2]) != (anchor[0], anchor[2])


def test_anchors_with_gaps_follow_the_interval():
    table = pd.DataFrame({"track_id": 0, "t": [0, 1, 3], "y": 20, "x": 20})
    dataset = object.__new__(TripletDataset)
    dataset.fit, dataset.time_interval = True, 1
    tracks = table.assign(fov_index=0)
    dataset.tracks = tracks
    assert dataset._filter_anchors(tracks)["t"].tolist() == [0]
    del dataset._row_index
    dataset.time_interval = 2
    assert dataset._filter_anchors(tracks)["t"].tolist() == [1]


def test_norm_meta_is_per_sample(dataset_paths):
    dataset = _dataset(dataset_paths[0])
    batch = dataset.__getitems__([0, len(dataset) - 1])
    means = batch["anchor_norm_meta"]["GFP"]["fov_statistics"]["mean"]
    data = dataset_paths[2]
    expected = [data[POSITIONS[0]][:, 1].mean(), data[POSITIONS[-1]][:, 1].mean()]
    np.testing.assert_allclose(means.numpy(), expected, rtol=1e-6)


def test_predict_returns_index_columns(dataset_paths):
    dataset = _dataset(dataset_paths[0], fit=False)
    batch = dataset.__getitems__([0, 1])
    assert set(batch) == {"anchor", "anchor_norm_meta", "index"}
    assert list(batch["index"][0]) == INDEX_COLUMNS
    assert batch["index"][1]["t"] == 1 and batch["index"][1]["fov_name"] == "A/1/0"


def test_predict_cells_keeps_requested_pairs(dataset_paths):
    dataset = _dataset(
        dataset_paths[0], fit=False, predict_cells=True, include_fov_names=["A/1/1"], include_track_ids=[1]
    )
    assert len(dataset) == T
    assert set(dataset.valid_anchors["global_track_id"]) == {"A/1/1_1"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channel_names": ["DAPI"]}, r"Channels \['DAPI'\] not found in FOV 'A/1/0'"),
        ({"initial_yx_patch_size": (64, 64)}, "not smaller than FOV 'A/1/0'"),
        ({"z_range": slice(0, 5)}, "exceeds image with Z=3"),
    ],
)
def test_bad_inputs_raise_clear_errors(dataset_paths, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _dataset(dataset_paths[0], **kwargs)


def test_missing_track_columns_raise(dataset_paths):
    plate = open_ome_zarr(dataset_paths[0], mode="r", layout="hcs")
    with pytest.raises(ValueError, match=r"FOV 'A/1/0'.*lacks required columns \['x'\]"):
        TripletDataset([plate["A/1/0"]], [_tracks(0).drop(columns="x")], ["GFP"], PATCH, slice(0, 1))


def test_missing_tensorstore_names_the_extra(dataset_paths, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorstore", None)
    with pytest.raises(ImportError, match=r"pip install 'viscy-data\[triplet\]'"):
        _dataset(dataset_paths[0])


def test_missing_pandas_names_the_extra(dataset_paths, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pandas is required for TripletDataset"):
        _dataset(dataset_paths[0])


class _SubtractFovMean(MapTransform):
    """Minimal normalization reading per-sample statistics like viscy_transforms.NormalizeSampled."""

    level = "fov_statistics"
    subtrahend = "mean"
    divisor = "std"

    def __call__(self, data):
        data = dict(data)
        for key in self.keys:
            mean = data["norm_meta"][key][self.level]["mean"]
            data[key] = data[key].float() - mean.view(-1, *([1] * (data[key].ndim - 1)))
        return data


def _module(dataset_paths, **kwargs):
    settings = {
        "source_channel": ["Phase3D", "GFP"],
        "z_range": (0, 2),
        "initial_yx_patch_size": PATCH,
        "final_yx_patch_size": (4, 4),
        "batch_size": 4,
        "num_workers": 0,
        "split_ratio": 0.67,
    } | kwargs
    return TripletDataModule(str(dataset_paths[0]), str(dataset_paths[1]), **settings)


def test_datamodule_fit_batches_are_cropped_and_normalised(dataset_paths):
    torch.manual_seed(0)
    dm = _module(dataset_paths, normalizations=[_SubtractFovMean(keys=["GFP"])], time_interval=1)
    dm.setup("fit")
    assert len(dm.train_dataset.positions) == 2 and len(dm.val_dataset.positions) == 1
    batch = next(iter(dm.train_dataloader()))
    raw = batch["anchor"].clone()
    means = batch["anchor_norm_meta"]["GFP"]["fov_statistics"]["mean"]
    out = dm.on_after_batch_transfer(batch, 0)
    assert set(out) == {"anchor", "positive", "negative"}
    assert out["anchor"].shape == (4, 2, 2, 4, 4)
    expected = raw[:, 1, :, 2:6, 2:6].float() - means.view(-1, 1, 1, 1)
    torch.testing.assert_close(out["anchor"][:, 1], expected)


def test_datamodule_fit_filters_wells(dataset_paths):
    dm = _module(dataset_paths, fit_include_wells=["A/1"], split_ratio=0.5)
    dm.setup("fit")
    names = {dm.train_dataset.tracks["fov_name"].iloc[0], dm.val_dataset.tracks["fov_name"].iloc[0]}
    assert names == {"A/1/0", "A/1/1"}


def test_datamodule_predict_iterates_all_cells_in_order(dataset_paths):
    dm = _module(dataset_paths, batch_size=5)
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert sum(len(b["index"]) for b in batches) == 3 * 11
    assert batches[0]["anchor"].shape == (5, 2, 2, *PATCH)
    assert [row["t"] for row in batches[0]["index"]] == [0, 1, 2, 3, 0]


def test_datamodule_errors_at_setup(dataset_paths, tmp_path):
    with pytest.raises(ValueError, match="No FOVs left"):
        _module(dataset_paths, fit_include_wells=["Z/9"]).setup("fit")
    with pytest.raises(FileNotFoundError, match="No tracks CSV for FOV 'A/1/0'"):
        TripletDataModule(str(dataset_paths[0]), str(tmp_path / "none"), "GFP", (0, 1), (8, 8), (4, 4)).setup("fit")
    with pytest.raises(NotImplementedError):
        _module(dataset_paths).setup("test")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"source_channel": ["Phase3D", "RFP"]}, r"Channels \['RFP'\] not found in FOV 'A/\d/\d' of store .*zarr'"),
        ({"initial_yx_patch_size": (48, 48), "final_yx_patch_size": (8, 8)}, r"\(48, 48\) is not smaller than FOV"),
        ({"z_range": (0, 4)}, r"Z range .* exceeds image with Z=3 in FOV 'A/\d/\d'"),
    ],
)
def test_datamodule_bad_settings_fail_at_setup(dataset_paths, kwargs, match):
    dm = _module(dataset_paths, **kwargs)
    with pytest.raises(ValueError, match=match):
        dm.setup("fit")


def test_tracks_csv_without_required_columns_fails_at_setup(dataset_paths):
    write_tracks(dataset_paths[1], "A/1/1", _tracks(1).drop(columns=["y"]))
    with pytest.raises(ValueError, match=r"A/1/1/tracks.csv' lacks required columns \['y'\]"):
        _module(dataset_paths).setup("fit")


def test_missing_normalization_metadata_fails_at_setup(tmp_path):
    write_hcs_plate(tmp_path / "raw.zarr", positions=POSITIONS[:2], shape=(2, 1, 32, 32), normalization=False)
    for i, name in enumerate(POSITIONS[:2]):
        write_tracks(tmp_path / "tracks", name, _tracks(i).query("t < 2"))
    dm = _module(
        (tmp_path / "raw.zarr", tmp_path / "tracks"), z_range=(0, 1), normalizations=[_SubtractFovMean(["GFP"])]
    )
    with pytest.raises(ValueError, match=r"FOV 'A/1/\d' of store .*raw.zarr' has no .zattrs\['normalization'\]"):
        dm.setup("fit")


class _TinyContrastive(LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(2 * 2 * 4 * 4, 4)
        self.shapes = []

    def training_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["anchor"].shape))
        embed = [self.encoder(batch[k].float().flatten(1)) for k in ("anchor", "positive", "negative")]
        return torch.nn.functional.triplet_margin_loss(*embed)

    def validation_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["positive"].shape))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_trainer_runs_on_triplet_batches(dataset_paths, tmp_path):
    module = _TinyContrastive()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=_module(dataset_paths, num_workers=1))
    assert module.shapes[-3:] == [(4, 2, 2, 4, 4)] * 3


def test_two_thread_workers_yield_distinct_anchors(dataset_paths):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="more than 1 thread worker"):
        dm = _module(dataset_paths, num_workers=2, batch_size=3, time_interval="any")
    dm.setup("fit")
    dm.train_dataset.__getitems__([0])  # tensorstore already used in this process
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataset) // 3
    anchors = [_decode(patch) for batch in batches for patch in batch["anchor"]]
    assert len(set(anchors)) == len(anchors) == 3 * len(batches)
    expected = {
        (POSITIONS.index(row.fov_name), row.t, row.y, row.x) for row in dm.train_dataset.valid_anchors.itertuples()
    }
    assert set(anchors) <= expected
