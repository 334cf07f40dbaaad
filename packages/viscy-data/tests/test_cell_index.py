import logging

import numpy as np
import pandas as pd
import pytest

from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry
from viscy_data.testing import random_walk_tracks, write_hcs_plate, write_tracks


def _rows(track_id, ts, parent=-1, y=32, x=32):
    return pd.DataFrame({"track_id": track_id, "t": list(ts), "parent_track_id": parent, "y": y, "x": x})


def _experiment(root, name, tracks_by_fov, n_t=8, yx=64, interval=30.0, start_hpi=0.0, condition_wells=None):
    """Write a plate whose positions are the keys of ``tracks_by_fov`` and their tracks CSVs."""
    data_path = root / f"{name}.zarr"
    tracks_path = root / f"{name}_tracks"
    write_hcs_plate(data_path, positions=list(tracks_by_fov), shape=(n_t, 2, yx, yx))
    for fov, table in tracks_by_fov.items():
        if table is not None:
            write_tracks(tracks_path, fov, table)
    return ExperimentConfig(
        name=name,
        data_path=str(data_path),
        tracks_path=str(tracks_path),
        channel_names=["Phase3D", "GFP"],
        source_channel=["Phase3D", "GFP"],
        condition_wells=condition_wells or _default_conditions(tracks_by_fov),
        interval_minutes=interval,
        start_hpi=start_hpi,
    )


def _default_conditions(tracks_by_fov):
    """A/1 uninfected and B/1 infected, restricted to the wells the plate has."""
    wells = {"/".join(fov.split("/")[:2]) for fov in tracks_by_fov}
    conditions = {"uninfected": ["A/1"], "infected": ["B/1"]}
    return {condition: ws for condition, ws in conditions.items() if set(ws) <= wells}


def _index(configs, patch=(32, 32), tau=(0.5, 1.0), **kwargs):
    return MultiExperimentIndex(ExperimentRegistry(configs), slice(0, 2), patch, tau_range_hours=tau, **kwargs)


@pytest.fixture
def division_index(tmp_path):
    """One FOV: track 0 (t 0-2) divides into 1 and 2 (t 3-5); 3 is 1's daughter (t 6-7).

    Track 4 names a missing parent (99), track 5 has no parent, 7 and 8 name each other.
    """
    table = pd.concat(
        [
            _rows(0, range(0, 3)),
            _rows(1, range(3, 6), parent=0),
            _rows(2, range(3, 6), parent=0),
            _rows(3, range(6, 8), parent=1),
            _rows(4, [0, 1], parent=99),
            _rows(5, [0, 2, 4]),
            _rows(6, [0]),
            _rows(7, [0], parent=8),
            _rows(8, [1], parent=7),
        ]
    )
    cfg = _experiment(tmp_path, "exp_a", {"A/1/0": table})
    return _index([cfg], tau=(0.5, 1.0))  # tau of 1..2 frames at 30 min


def _lineage(index, track_id):
    return set(index.tracks.loc[index.tracks["track_id"] == track_id, "lineage_id"])


def test_lineage_follows_divisions_to_root(division_index):
    assert _lineage(division_index, 1) == _lineage(division_index, 2) == {"exp_a_A/1/0_0"}
    assert _lineage(division_index, 3) == {"exp_a_A/1/0_0"}
    assert _lineage(division_index, 4) == {"exp_a_A/1/0_4"}
    assert _lineage(division_index, 5) == {"exp_a_A/1/0_5"}


def test_cyclic_parents_share_one_lineage(division_index):
    assert _lineage(division_index, 7) == _lineage(division_index, 8)


def test_parent_in_other_fov_is_not_followed(tmp_path):
    cfg = _experiment(tmp_path, "e", {"A/1/0": _rows(0, range(3)), "A/1/1": _rows(1, range(3), parent=0)})
    index = _index([cfg])
    assert _lineage(index, 1) == {"e_A/1/1_1"}


def test_lineage_without_parent_column_is_track(tmp_path):
    cfg = _experiment(tmp_path, "e", {"A/1/0": _rows(0, range(3)).drop(columns="parent_track_id")})
    index = _index([cfg])
    assert (index.tracks["lineage_id"] == index.tracks["global_track_id"]).all()


def test_valid_anchors_follow_lineage_and_gaps(division_index):
    anchors = division_index.valid_anchors
    valid = set(zip(anchors["track_id"], anchors["t"], strict=True))
    # parent's last frame (t=2) is valid through its daughters at t=3/4; t=7 of track 3 is the end
    assert {(0, 0), (0, 1), (0, 2), (1, 5), (3, 6)} <= valid
    assert (3, 7) not in valid and (6, 0) not in valid
    # gaps of 2 frames are within tau=2: t=0 -> 2 -> 4 of track 5
    assert {(5, 0), (5, 2)} <= valid and (5, 4) not in valid
    assert (4, 0) in valid and (4, 1) not in valid
    assert isinstance(anchors.index, pd.RangeIndex) and anchors.index[0] == 0


def test_valid_anchors_respect_tau_range(tmp_path):
    cfg = _experiment(tmp_path, "e", {"A/1/0": _rows(0, [0, 3, 4])})
    # tau 2..3 frames: t=0 -> t=3 valid; t=3 -> t=5/6 absent; t=4 -> 6/7 absent
    index = _index([cfg], tau=(1.0, 1.5))
    assert index.valid_anchors["t"].tolist() == [0]


def test_columns_and_derived_values(tmp_path):
    cfg_a = _experiment(tmp_path, "a", {"A/1/0": _rows(3, range(4)), "C/2/0": _rows(1, range(4))}, start_hpi=3.0)
    cfg_b = _experiment(tmp_path, "b", {"B/1/0": _rows(3, range(4))}, interval=15.0)
    index = _index([cfg_a, cfg_b])
    tracks = index.tracks
    expected = {"experiment", "condition", "well_name", "fov_name", "global_track_id", "hours_post_infection"}
    expected |= {"fluorescence_channel", "position_idx", "lineage_id", "y_clamp", "x_clamp", "track_id", "t", "y", "x"}
    assert expected <= set(tracks.columns)
    assert not any(c.startswith("_") for c in tracks.columns)
    assert isinstance(tracks.index, pd.RangeIndex)
    row = tracks[(tracks["experiment"] == "a") & (tracks["fov_name"] == "A/1/0") & (tracks["t"] == 2)].iloc[0]
    assert row["global_track_id"] == "a_A/1/0_3"
    assert row["well_name"] == "A/1" and row["condition"] == "uninfected"
    assert row["hours_post_infection"] == pytest.approx(3.0 + 2 * 0.5)
    assert row["fluorescence_channel"] == "GFP"
    assert index.positions[row["position_idx"]].zgroup.name.strip("/") == "A/1/0"
    assert index.position_keys[row["position_idx"]] == ("a", "A/1/0")
    assert set(tracks.loc[tracks["fov_name"] == "C/2/0", "condition"]) == {"unknown"}
    b_row = tracks[(tracks["experiment"] == "b") & (tracks["t"] == 2)].iloc[0]
    assert b_row["condition"] == "infected" and b_row["hours_post_infection"] == pytest.approx(0.5)
    assert len(index.positions) == 3


def test_border_centroids_clamped_and_outside_dropped(tmp_path):
    table = pd.DataFrame(
        {"track_id": [0, 1, 2, 3, 4], "t": 0, "y": [32, 2, 0, -1, 63], "x": [32, 2, 0, -1, 64], "parent_track_id": -1}
    )
    index = _index([_experiment(tmp_path, "e", {"A/1/0": table})], patch=(32, 32))
    tracks = index.tracks.set_index("track_id")
    assert list(tracks.index) == [0, 1, 2]  # (-1, -1) and x == width are outside
    assert tracks.loc[0, ["y_clamp", "x_clamp"]].tolist() == [32, 32]
    assert tracks.loc[1, ["y_clamp", "x_clamp"]].tolist() == [16, 16]
    assert tracks.loc[2, ["y_clamp", "x_clamp", "y", "x"]].tolist() == [16, 16, 0, 0]


def test_patch_origins_keep_odd_sized_patches_inside_the_image(tmp_path):
    table = pd.DataFrame({"track_id": [0, 1, 2], "t": 0, "y": [63, 0, 30], "x": [0, 63, 31], "parent_track_id": -1})
    index = _index([_experiment(tmp_path, "e", {"A/1/0": table})], patch=(9, 7))
    origins = index.patch_origins[np.argsort(index.tracks["track_id"].to_numpy())]
    # 64 x 64 image: a 9 x 7 patch starts at y <= 55, x <= 57
    assert origins.tolist() == [[55, 0], [0, 57], [26, 28]]


@pytest.mark.parametrize(
    ("tau", "message"),
    [((-0.5, 1.0), r"0 <= min <= max with max > 0"), ((0.0, 0.0), r"max > 0"), ((0.5, float("inf")), r"finite")],
)
def test_bad_tau_range_is_refused(tmp_path, tau, message):
    cfg = _experiment(tmp_path, "e", {"A/1/0": random_walk_tracks(2, 4, (64, 64))})
    with pytest.raises(ValueError, match=f"MultiExperimentIndex: tau_range .*{message}"):
        _index([cfg], tau=tau)


def test_filters_and_missing_csv(tmp_path, caplog):
    walk = random_walk_tracks(2, 4, (64, 64))
    cfg = _experiment(tmp_path, "e", {"A/1/0": walk, "A/1/1": walk, "B/1/0": walk, "B/1/1": None})
    with caplog.at_level(logging.WARNING):
        index = _index([cfg])
    assert "No tracking CSV" in caplog.text
    assert sorted(index.tracks["fov_name"].unique()) == ["A/1/0", "A/1/1", "B/1/0"]
    assert len(index.positions) == 3
    filtered = _index([cfg], include_wells=["A/1"], exclude_fovs=["A/1/1"])
    assert filtered.tracks["fov_name"].unique().tolist() == ["A/1/0"]


def test_groups_and_summary(tmp_path):
    walk = random_walk_tracks(3, 4, (64, 64))
    cfg_a = _experiment(tmp_path, "a", {"A/1/0": walk, "B/1/0": walk})
    cfg_b = _experiment(tmp_path, "b", {"B/1/0": walk})
    index = _index([cfg_a, cfg_b])
    groups = index.experiment_groups
    assert sorted(groups) == ["a", "b"]
    assert (index.tracks.loc[groups["b"], "experiment"] == "b").all() and len(groups["b"]) == 12
    assert len(index.condition_groups["infected"]) == 24
    lines = index.summary().splitlines()
    assert lines[0] == "MultiExperimentIndex: 2 experiments, 36 total observations, 27 valid anchors"
    assert lines[1] == "  a: 24 observations, 18 anchors, conditions: infected(12), uninfected(12)"
    assert lines[2] == "  b: 12 observations, 9 anchors, conditions: infected(12)"


def test_bad_inputs_raise_clear_errors(tmp_path):
    cfg = _experiment(tmp_path, "e", {"A/1/0": _rows(0, range(2))}, yx=16)
    with pytest.raises(ValueError, match="'e', FOV A/1/0: yx_patch_size"):
        _index([cfg], patch=(32, 32))
    with pytest.raises(ValueError, match="z_range"):
        MultiExperimentIndex(ExperimentRegistry([cfg]), slice(0, 5), (8, 8))
    cfg.tracks_path = str(tmp_path / "no_tracks")
    with pytest.raises(ValueError, match="'e': tracks_path is not a directory: .*no_tracks"):
        _index([cfg], patch=(8, 8))
    bad = _experiment(tmp_path / "x", "bad", {"A/1/0": pd.DataFrame({"track_id": [0], "t": [0], "y": [1]})})
    with pytest.raises(ValueError, match=r"lacks columns \['x'\]"):
        _index([bad], patch=(8, 8))


def test_lineage_is_vectorised_over_long_chains():
    # a chain of 1000 tracks each the parent of the next collapses onto track 0
    n = 1000
    tracks = pd.DataFrame(
        {
            "track_id": np.arange(n),
            "t": np.arange(n),
            "parent_track_id": np.r_[-1, np.arange(n - 1)],
            "experiment": "e",
            "fov_name": "A/1/0",
            "global_track_id": [f"e_A/1/0_{i}" for i in range(n)],
        }
    )
    out = MultiExperimentIndex._reconstruct_lineage(tracks)
    assert (out["lineage_id"] == "e_A/1/0_0").all()
