import numpy as np
import pandas as pd
import pytest
import torch
from _multi_experiment_plates import CHANNELS, OFFSETS, SOURCES, pixel_value, write_two_experiment_plates
from iohub.ngff import open_ome_zarr

from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.dataset import MultiExperimentTripletDataset
from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry
from viscy_data.testing import write_hcs_plate, write_tracks

PATCH = 16
TAU_HOURS = (0.5, 1.0)  # exp_a (30 min): 1..2 frames; exp_b (15 min): 2..4 frames


@pytest.fixture(scope="module")
def two_experiment_plates(tmp_path_factory):
    return write_two_experiment_plates(tmp_path_factory.mktemp("two_experiments"))


@pytest.fixture(scope="module")
def two_experiment_index(two_experiment_plates):
    registry = ExperimentRegistry.from_yaml(two_experiment_plates["experiments_yaml"])
    return MultiExperimentIndex(registry, slice(0, 2), (PATCH, PATCH), tau_range_hours=TAU_HOURS)


def _dataset(index, **kwargs):
    return MultiExperimentTripletDataset(index, tau_range_hours=TAU_HOURS, **kwargs)


def _decode(patch: torch.Tensor, experiment: str) -> tuple[int, int, int]:
    """(t, y0, x0) of a patch from its channel-0 top-left pixel."""
    value = int(patch[0, 0, 0, 0]) - OFFSETS[experiment]
    return value // 10000, (value % 10000) // 32, (value % 10000) % 32


def test_fit_batch_shapes_keys_and_dtype(two_experiment_index):
    dataset = _dataset(two_experiment_index)
    assert len(dataset) == len(two_experiment_index.valid_anchors)
    batch = dataset.__getitems__([0, 1, 2, len(dataset) - 1])
    assert set(batch) == {"anchor", "anchor_norm_meta", "positive", "positive_norm_meta", "index"}
    assert batch["anchor"].shape == batch["positive"].shape == (4, 2, 2, PATCH, PATCH)
    assert batch["anchor"].dtype == torch.float32


def test_fit_batch_index_carries_the_anchors_columns_and_dataset_positions(two_experiment_index):
    dataset = _dataset(two_experiment_index)
    rows = [3, 0, len(dataset) - 1]
    index = dataset.__getitems__(rows)["index"]
    anchors = two_experiment_index.valid_anchors.iloc[rows]
    assert index["dataset_index"].tolist() == rows
    assert index["fov_name"] == anchors["fov_name"].tolist()
    assert index["experiment"] == anchors["experiment"].tolist()
    assert index["global_track_id"] == anchors["global_track_id"].tolist()
    assert index["t"].tolist() == anchors["t"].tolist()
    assert "position" not in index


def test_anchor_patches_come_from_the_right_experiment_fov_and_channels(two_experiment_index):
    dataset = _dataset(two_experiment_index)
    anchors = two_experiment_index.valid_anchors
    rows = np.flatnonzero(anchors["fov_name"].to_numpy() == "A/1/0")  # FOV name shared by both plates
    batch = dataset.__getitems__(rows.tolist())
    for i, row in enumerate(rows):
        anchor = anchors.iloc[row]
        exp = anchor["experiment"]
        y0, x0 = int(anchor["y_clamp"]) - PATCH // 2, int(anchor["x_clamp"]) - PATCH // 2
        for c, channel in enumerate(SOURCES[exp]):
            zarr_c = CHANNELS[exp].index(channel)
            expected = pixel_value(exp, int(anchor["t"]), zarr_c, y0, x0)
            assert batch["anchor"][i, c, 1, 0, 0].item() == expected


def test_positives_share_lineage_within_tau_range(two_experiment_index):
    dataset = _dataset(two_experiment_index)
    anchors = two_experiment_index.valid_anchors
    tracks = two_experiment_index.tracks
    registry = two_experiment_index.registry
    batch = dataset.__getitems__(list(range(len(anchors))))
    for i in range(len(anchors)):
        anchor = anchors.iloc[i]
        t, y0, x0 = _decode(batch["positive"][i], anchor["experiment"])
        same_lineage = tracks[(tracks["lineage_id"] == anchor["lineage_id"]) & (tracks["t"] == t)]
        starts = list(
            zip(
                same_lineage["y_clamp"].astype(int) - PATCH // 2,
                same_lineage["x_clamp"].astype(int) - PATCH // 2,
                strict=True,
            )
        )
        assert (y0, x0) in starts
        tau_min, tau_max = registry.tau_range_frames(anchor["experiment"], TAU_HOURS)
        assert tau_min <= t - anchor["t"] <= tau_max and t != anchor["t"]


def test_positive_of_a_dividing_cell_is_one_of_its_daughters(two_experiment_index):
    anchors = two_experiment_index.valid_anchors
    last_parent_frame = np.flatnonzero(
        (anchors["experiment"] == "exp_a").to_numpy()
        & (anchors["fov_name"] == "A/1/0").to_numpy()
        & (anchors["track_id"] == 0).to_numpy()
        & (anchors["t"] == 3).to_numpy()
    )
    assert len(last_parent_frame) == 1
    daughters = set()
    for seed in range(20):
        positive = _dataset(two_experiment_index, seed=seed).__getitems__(last_parent_frame.tolist())["positive"][0]
        t, y0, x0 = _decode(positive, "exp_a")
        assert t in (4, 5)
        daughters.add((y0 + PATCH // 2, x0 + PATCH // 2))
    assert daughters == {(10, 10), (22, 22)}  # tracks 1 and 2


def test_positives_are_reproducible_for_a_seed(two_experiment_index):
    indices = list(range(0, len(two_experiment_index.valid_anchors), 2))
    first = _dataset(two_experiment_index, seed=3).__getitems__(indices)["positive"]
    again = _dataset(two_experiment_index, seed=3).__getitems__(indices)["positive"]
    other = _dataset(two_experiment_index, seed=4).__getitems__(indices)["positive"]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_norm_meta_is_keyed_by_generic_channel_names(two_experiment_plates, two_experiment_index):
    dataset = _dataset(two_experiment_index)
    anchors = two_experiment_index.valid_anchors
    batch = dataset.__getitems__(list(range(len(anchors))))
    metas = batch["anchor_norm_meta"]
    assert isinstance(metas, list) and len(metas) == len(anchors)
    assert all(set(meta) == {"ch_0", "ch_1"} for meta in metas)
    means = [meta["ch_1"]["fov_statistics"]["mean"] for meta in metas]
    for exp in ("exp_a", "exp_b"):
        row = int(
            np.flatnonzero((anchors["experiment"] == exp).to_numpy() & (anchors["fov_name"] == "B/1/0").to_numpy())[0]
        )
        with open_ome_zarr(two_experiment_plates["root"] / f"{exp}.zarr", mode="r") as plate:
            stored = plate["B/1/0"].zattrs["normalization"][SOURCES[exp][1]]["fov_statistics"]["mean"]
        assert means[row].item() == pytest.approx(stored)


def test_norm_meta_lists_have_none_for_fovs_without_metadata(tmp_path):
    plates = write_two_experiment_plates(tmp_path)
    with open_ome_zarr(plates["root"] / "exp_b.zarr", mode="r+") as plate:
        plate["B/1/0"].zattrs.pop("normalization")
    registry = ExperimentRegistry.from_yaml(plates["experiments_yaml"])
    index = MultiExperimentIndex(registry, slice(0, 2), (PATCH, PATCH), tau_range_hours=TAU_HOURS)
    dataset = _dataset(index)
    anchors = index.valid_anchors
    batch = dataset.__getitems__(list(range(len(anchors))))
    lacking = ((anchors["experiment"] == "exp_b") & (anchors["fov_name"] == "B/1/0")).to_numpy()
    assert lacking.any() and not lacking.all()
    for key in ("anchor_norm_meta", "positive_norm_meta"):  # positives come from the anchor's FOV
        metas = batch[key]
        assert isinstance(metas, list) and len(metas) == len(anchors)
        assert [meta is None for meta in metas] == lacking.tolist()
        assert all(set(meta) == {"ch_0", "ch_1"} for meta in metas if meta is not None)
    predict = _dataset(index, fit=False).__getitems__([0, 1])["anchor_norm_meta"]
    assert isinstance(predict, list) and len(predict) == 2


def test_predict_mode_serves_every_observation_with_index(two_experiment_index):
    dataset = _dataset(two_experiment_index, fit=False)
    assert len(dataset) == len(two_experiment_index.tracks)
    batch = dataset.__getitems__([0, 5])
    assert "positive" not in batch and batch["anchor"].shape[0] == 2
    record = batch["index"][1]
    expected = two_experiment_index.tracks.iloc[5]
    assert record["fov_name"] == expected["fov_name"] and record["t"] == expected["t"]
    assert {"fov_name", "track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x"} == set(record)


def test_no_anchor_raises(two_experiment_plates):
    registry = ExperimentRegistry.from_yaml(two_experiment_plates["experiments_yaml"])
    index = MultiExperimentIndex(registry, slice(0, 2), (PATCH, PATCH), tau_range_hours=(20.0, 30.0))
    with pytest.raises(ValueError, match="no valid anchors"):
        MultiExperimentTripletDataset(index, tau_range_hours=(20.0, 30.0))


def test_reads_are_keyed_by_experiment_and_fov_even_when_names_concatenate_alike(tmp_path):
    # "x1" + "2/3/4" and "x" + "12/3/4" spell the same string: the key must keep both parts apart
    entries = []
    for name, fov, value in (("x1", "2/3/4", 1.0), ("x", "12/3/4", 2.0)):
        data_path, tracks_path = tmp_path / f"{name}.zarr", tmp_path / f"{name}_tracks"
        image = np.full((4, 2, 1, 16, 16), value, dtype=np.float32)
        write_hcs_plate(data_path, positions=[fov], shape=(4, 1, 16, 16), data={fov: image})
        write_tracks(tracks_path, fov, pd.DataFrame({"track_id": 0, "t": range(4), "y": 8, "x": 8}))
        wells = {"c": ["/".join(fov.split("/")[:2])]}
        entries.append(ExperimentConfig(name, str(data_path), str(tracks_path), ["Phase3D", "GFP"], ["Phase3D"], wells))
    index = MultiExperimentIndex(ExperimentRegistry(entries), slice(0, 1), (8, 8), tau_range_hours=(0.5, 1.0))
    dataset = MultiExperimentTripletDataset(index, tau_range_hours=(0.5, 1.0))
    batch = dataset.__getitems__(list(range(len(dataset))))
    expected = index.valid_anchors["experiment"].map({"x1": 1.0, "x": 2.0}).to_numpy()
    assert set(index.valid_anchors["experiment"]) == {"x1", "x"}
    np.testing.assert_array_equal(batch["anchor"].amax(dim=(1, 2, 3, 4)).numpy(), expected)
    np.testing.assert_array_equal(batch["positive"].amin(dim=(1, 2, 3, 4)).numpy(), expected)


def test_a_tau_range_other_than_the_indexs_is_refused(two_experiment_index):
    with pytest.raises(ValueError, match=r"tau_range_hours=\(0.5, 3.0\) differs from the index's"):
        MultiExperimentTripletDataset(two_experiment_index, tau_range_hours=(0.5, 3.0))


def test_return_negative_is_deprecated_and_reads_no_negatives(two_experiment_index):
    with pytest.warns(DeprecationWarning, match=r"return_negative=.*in-batch negatives.*TripletDataModule"):
        dataset = _dataset(two_experiment_index, return_negative=True)
    assert "negative" not in dataset.__getitems__([0])
