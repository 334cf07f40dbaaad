import numpy as np
import pandas as pd
import pytest
from iohub.ngff import open_ome_zarr

from viscy_data.synthetic import SyntheticExperiment, generate_experiment, render_frame


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    exp = SyntheticExperiment("exp_a", "GFP", n_timepoints=8, image_size=64, cells_per_fov=6, seed=3)
    root = tmp_path_factory.mktemp("synthetic")
    return exp, generate_experiment(root, exp)


def test_plate_has_named_channels_and_tczyx_arrays(experiment):
    exp, paths = experiment
    with open_ome_zarr(paths["data_path"], mode="r") as plate:
        names = [name for name, _ in plate.positions()]
        assert names == ["A/1/0", "A/1/1", "A/2/0", "A/2/1"]
        position = plate["A/2/1"]
        assert position.channel_names == ["Phase3D", "GFP"]
        assert position["0"].shape == (8, 2, 1, 64, 64)
        assert position["0"].dtype == np.float32


def test_tracks_tables_have_the_spec_columns(experiment):
    _, paths = experiment
    tracks = pd.read_csv(paths["tracks_path"] / "A/1/0" / "tracks.csv")
    expected = ["track_id", "t", "id", "parent_track_id", "parent_id", "z", "y", "x", "infection_state"]
    assert list(tracks.columns) == expected
    assert tracks["id"].is_unique
    assert tracks[["y", "x"]].min().min() >= 0
    assert tracks[["y", "x"]].max().max() < 64


def test_daughters_start_where_their_parent_ends(experiment):
    _, paths = experiment
    truth = pd.read_csv(paths["ground_truth"])
    daughters = truth[truth["parent_track_id"] >= 0]
    assert len(daughters) > 0
    spans = truth.groupby(["fov_name", "track_id"])["t"].agg(["min", "max"])
    for (fov, track), parent in daughters.groupby(["fov_name", "parent_track_id"])["track_id"].unique().items():
        assert len(parent) == 2
        parent_end = spans.loc[(fov, track), "max"]
        for daughter in parent:
            assert spans.loc[(fov, daughter), "min"] == parent_end + 1
    # parent_id points at the parent's last observation
    first = daughters.sort_values("t").groupby(["fov_name", "track_id"]).first()
    by_id = truth.set_index(["fov_name", "id"])
    for (fov, _), row in first.iterrows():
        parent_row = by_id.loc[(fov, row["parent_id"])]
        assert parent_row["track_id"] == row["parent_track_id"]
        assert parent_row["t"] == row["t"] - 1


def test_only_infected_condition_switches_state_once(experiment):
    _, paths = experiment
    truth = pd.read_csv(paths["ground_truth"])
    assert truth.loc[truth["condition"] == "uninfected", "infection_state"].eq(0).all()
    infected = truth[truth["condition"] == "infected"].sort_values("t")
    assert infected["infection_state"].eq(1).any() and infected["infection_state"].eq(0).any()
    monotone = infected.groupby(["fov_name", "track_id"])["infection_state"].apply(lambda s: s.is_monotonic_increasing)
    assert monotone.all()


def test_generation_is_deterministic_per_seed(tmp_path):
    exp = SyntheticExperiment("e", "RFP", n_timepoints=3, image_size=32, cells_per_fov=2, fovs_per_well=1, seed=7)
    first = generate_experiment(tmp_path / "one", exp)
    second = generate_experiment(tmp_path / "two", exp)
    with open_ome_zarr(first["data_path"]) as a, open_ome_zarr(second["data_path"]) as b:
        np.testing.assert_array_equal(a["A/2/0"]["0"][:], b["A/2/0"]["0"][:])
    pd.testing.assert_frame_equal(pd.read_csv(first["ground_truth"]), pd.read_csv(second["ground_truth"]))


def test_existing_experiment_folder_is_refused(tmp_path):
    exp = SyntheticExperiment("e", "RFP", n_timepoints=2, image_size=32, cells_per_fov=1, fovs_per_well=1)
    generate_experiment(tmp_path, exp)
    with pytest.raises(FileExistsError, match="e"):
        generate_experiment(tmp_path, exp)


def test_reporter_relocalises_from_cytoplasm_to_nucleus():
    rng = np.random.default_rng(0)
    appearance = {
        "radius": np.array([8.0, 8.0]),
        "phase_gain": np.ones(2),
        "reporter_gain": np.ones(2),
        "freq": np.full(2, 0.8),
        "theta": np.zeros(2),
        "phi": np.zeros(2),
    }
    centers = np.array([[16.0, 16.0], [48.0, 48.0]], dtype=np.float32)
    frame = render_frame(centers, np.array([0, 1]), appearance, 64, noise=0.0, rng=rng)
    reporter = frame[1]
    ring_offset = 6  # between the nucleus (radius 3.6) and the membrane (radius 8)
    cytoplasmic_center, cytoplasmic_ring = reporter[16, 16], reporter[16, 16 + ring_offset]
    nuclear_center, nuclear_ring = reporter[48, 48], reporter[48, 48 + ring_offset]
    assert cytoplasmic_ring > 2 * cytoplasmic_center
    assert nuclear_center > 2 * nuclear_ring


def test_border_margin_keeps_every_centroid_inside(tmp_path):
    exp = SyntheticExperiment(
        "m", "GFP", n_timepoints=10, image_size=48, cells_per_fov=8, fovs_per_well=1, border_margin=16.0, seed=1
    )
    truth = pd.read_csv(generate_experiment(tmp_path, exp)["ground_truth"])
    for axis in ("y", "x"):
        assert truth[axis].between(16, 48 - 1 - 16).all(), axis
    # the default margin of 4 px lets cells come much closer to the border
    default = SyntheticExperiment("d", "GFP", n_timepoints=10, image_size=48, cells_per_fov=8, fovs_per_well=1, seed=1)
    near = pd.read_csv(generate_experiment(tmp_path, default)["ground_truth"])
    assert (near[["y", "x"]] < 16).any().any()


def test_border_margin_too_wide_for_the_frame_is_refused_before_writing(tmp_path):
    exp = SyntheticExperiment("w", "GFP", image_size=32, border_margin=16.0)
    with pytest.raises(ValueError, match="border_margin=16.0.*image_size=32"):
        generate_experiment(tmp_path, exp)
    assert not (tmp_path / "w").exists()


def test_cell_variability_zero_gives_identical_cells_but_their_orientation(tmp_path):
    from viscy_data.synthetic import _cell_appearance

    same = _cell_appearance(50, np.random.default_rng(0), variability=0.0)
    full = _cell_appearance(50, np.random.default_rng(0), variability=1.0)
    for key in ("radius", "phase_gain", "freq", "phi"):
        assert np.ptp(same[key]) == 0.0, key
        assert np.ptp(full[key]) > 0.5 * {"radius": 3.0, "phase_gain": 0.8, "freq": 0.6, "phi": 2 * np.pi}[key], key
    assert np.ptp(same["theta"]) > 1.0
    assert 5.5 <= full["radius"].min() and full["radius"].max() <= 8.5


def _closest_pair_per_frame(truth: pd.DataFrame) -> np.ndarray:
    closest = []
    for _, frame in truth.groupby(["fov_name", "t"]):
        yx = frame[["y", "x"]].to_numpy(dtype=float)
        distance = np.linalg.norm(yx[:, None] - yx[None], axis=-1)
        np.fill_diagonal(distance, np.inf)
        closest.append(distance.min())
    return np.array(closest)


def test_min_distance_keeps_cells_and_sisters_apart(tmp_path):
    size = dict(n_timepoints=10, image_size=96, cells_per_fov=12, fovs_per_well=1, division_fraction=0.5, seed=2)
    spaced = SyntheticExperiment("spaced", "GFP", min_distance=12.0, **size)
    truth = pd.read_csv(generate_experiment(tmp_path, spaced)["ground_truth"])
    assert (truth["parent_track_id"] >= 0).any()
    # centroids are rounded to whole pixels: each moves at most sqrt(0.5) px, a pair at most sqrt(2)
    assert _closest_pair_per_frame(truth).min() >= 12.0 - np.sqrt(2)
    assert truth["y"].between(4, 96 - 1 - 4).all() and truth["x"].between(4, 96 - 1 - 4).all()
    # without it, cells of the same frames overlap (sisters start 6 px apart)
    crowded = SyntheticExperiment("crowded", "GFP", **size)
    crowded_truth = pd.read_csv(generate_experiment(tmp_path, crowded)["ground_truth"])
    assert (_closest_pair_per_frame(crowded_truth) < 8.0).mean() > 0.5


def test_push_apart_separates_coincident_cells_within_bounds():
    from viscy_data.synthetic import _push_apart

    yx = np.array([[10.0, 10.0], [10.0, 10.0], [10.0, 11.0], [50.0, 50.0]])
    moved = _push_apart(yx, np.array([0, 0, 0, 1]), min_distance=5.0, bounds=(8.0, 40.0))
    distance = np.linalg.norm(moved[:3, None] - moved[None, :3], axis=-1)
    assert distance[np.triu_indices(3, 1)].min() >= 5.0 - 1e-6
    assert moved[:3].min() >= 8.0 and moved[:3].max() <= 40.0
    # the only cell of frame 1 is left where it was, even outside the bounds
    np.testing.assert_array_equal(moved[3], [50.0, 50.0])


def test_cell_radius_sets_the_mean_size_and_scales_its_spread():
    from viscy_data.synthetic import _cell_appearance

    small = _cell_appearance(500, np.random.default_rng(0), radius=3.5)["radius"]
    default = _cell_appearance(500, np.random.default_rng(0))["radius"]
    np.testing.assert_allclose(small, default / 2)
    assert abs(small.mean() - 3.5) < 0.1
    assert 2.75 <= small.min() and small.max() <= 4.25
