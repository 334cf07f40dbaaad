"""Broken variants of one valid experiment (a real plate, real tracks CSVs, a real experiments.yml).

Each case breaks one thing and checks the exception type and that the message names the file and
the field; repaired inputs are checked with ``pytest.warns``.
"""

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from viscy_data.contrastive.cell_index import MultiExperimentIndex
from viscy_data.contrastive.experiment import ExperimentRegistry
from viscy_data.nonfinite import apply_nonfinite_policy, check_nonfinite_policy
from viscy_data.testing import write_hcs_plate, write_tracks

N_T = 4
FOVS = ("A/1/0", "B/1/0")


def _tracks() -> pd.DataFrame:
    """Two cells seen at every frame; track 1 is the daughter of track 0."""
    rows = [(k, t, k - 1, 6 + 4 * k, 8) for k in range(2) for t in range(N_T)]
    return pd.DataFrame(rows, columns=["track_id", "t", "parent_track_id", "y", "x"])


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """The valid plate (read-only in every test) and its tracks tables."""
    root = tmp_path_factory.mktemp("plate")
    write_hcs_plate(root / "plate.zarr", positions=FOVS, channel_names=("Phase3D", "GFP"), shape=(N_T, 1, 16, 16))
    for fov in FOVS:
        write_tracks(root / "tracks", fov, _tracks())
    return root


@pytest.fixture
def setup(plate, tmp_path):
    """A valid experiment: the shared plate, a copy of its tracks and a writer of experiments.yml."""
    tracks_path = tmp_path / "tracks"
    shutil.copytree(plate / "tracks", tracks_path)
    entry = {
        "name": "a",
        "data_path": str(plate / "plate.zarr"),
        "tracks_path": str(tracks_path),
        "channel_names": ["Phase3D", "GFP"],
        "source_channel": ["Phase3D", "GFP"],
        "condition_wells": {"uninfected": ["A/1"], "infected": ["B/1"]},
        "interval_minutes": 30.0,
    }
    yaml_path = tmp_path / "experiments.yml"

    def write(**changes):
        """Write the entry with ``changes`` applied (a value of ``...`` removes the field)."""
        content = {**entry, **changes}
        yaml_path.write_text(yaml.safe_dump({"experiments": [{k: v for k, v in content.items() if v is not ...}]}))
        return yaml_path

    return {"entry": entry, "write": write, "tracks": tracks_path}


def _index(yaml_path) -> MultiExperimentIndex:
    return MultiExperimentIndex(ExperimentRegistry.from_yaml(yaml_path), slice(0, 1), (8, 8), (0.5, 1.0))


def test_valid_setup_builds_an_index(setup):
    index = _index(setup["write"]())
    assert len(index.tracks) == 2 * 2 * N_T


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"interval_minutes": "thirty"}, ValueError, r"field 'interval_minutes': Input should be a valid number"),
        ({"interval_minutes": float("nan")}, ValueError, r"field 'interval_minutes': Input should be a finite"),
        ({"interval_minutes": -5}, ValueError, r"interval_minutes must be positive, got -5"),
        ({"moi": -1}, ValueError, r"field 'moi': Input should be greater than or equal to 0"),
        ({"condition_wells": ["A/1", "B/1"]}, ValueError, r"field 'condition_wells': Input should be a valid dict"),
        ({"condition_wells": {"uninfected": ["A1"]}}, ValueError, r"field 'condition_wells.uninfected.0'"),
        ({"condition_wells": {"x": ["A/1"], "y": ["A/1"]}}, ValueError, "well 'A/1' is listed under conditions"),
        ({"condition_wells": {}}, ValueError, "condition_wells must not be empty"),
        ({"channel_names": "Phase3D"}, ValueError, r"field 'channel_names': Input should be a valid list"),
        ({"source_channel": []}, ValueError, r"field 'source_channel': List should have at least 1 item"),
        ({"name": ...}, TypeError, r"field 'name': Field required"),
        ({"interval": 5}, TypeError, r"has unknown keys \['interval'\]"),
    ],
)
def test_schema_names_file_entry_and_field(setup, changes, error, message):
    path = setup["write"](**changes)
    with pytest.raises(error, match=message) as raised:
        ExperimentRegistry.from_yaml(path)
    assert str(path) in str(raised.value) and "experiments[0]" in str(raised.value)


def test_schema_rejects_non_list_and_unparsable_yaml(setup, tmp_path):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(yaml.safe_dump({"experiments": setup["entry"]}))
    with pytest.raises(ValueError, match=f"{mapping}: 'experiments' must be a list"):
        ExperimentRegistry.from_yaml(mapping)
    broken = tmp_path / "broken.yml"
    broken.write_text("experiments: [name: a\n")
    with pytest.raises(ValueError, match=f"{broken} is not a readable YAML file"):
        ExperimentRegistry.from_yaml(broken)


def test_schema_keeps_unquoted_dates_and_numeric_names(setup):
    path = setup["write"](name=20250722)
    path.write_text(path.read_text() + "  date: 2025-07-22\n")
    experiment = ExperimentRegistry.from_yaml(path).experiments[0]
    assert (experiment.name, experiment.date) == ("20250722", "2025-07-22")


def test_plate_checks_name_experiment_and_path(setup, tmp_path):
    folder = tmp_path / "not_a_plate"
    folder.mkdir()
    path = setup["write"](data_path=str(folder))
    with pytest.raises(ValueError, match=f"Experiment 'a': data_path {folder} cannot be opened as an HCS"):
        ExperimentRegistry.from_yaml(path)
    path = setup["write"](condition_wells={"uninfected": ["A/1"], "infected": ["C/3"]})
    with pytest.raises(ValueError, match=r"condition_wells name wells the plate .* does not have: \{'infected'"):
        ExperimentRegistry.from_yaml(path)


def _break_csv(setup, fov, column, rows, value):
    """Set ``column`` at ``rows`` of a FOV's CSV to ``value`` (drop the column when ``rows`` is None)."""
    csv = setup["tracks"] / fov / "tracks.csv"
    table = pd.read_csv(csv).astype(object)
    if rows is None:
        table = table.drop(columns=column)
    else:
        table.loc[rows, column] = value
    table.to_csv(csv, index=False)
    return csv


# rows 0-3: track 0 at t 0..3 (no parent); rows 4-7: track 1 at t 0..3 (parent 0)
@pytest.mark.parametrize(
    ("column", "rows", "value", "message"),
    [
        ("t", [0], "x", r"column 't' must hold integers; 1 rows do not \(CSV lines \[2\], values \['x'\]\)"),
        ("t", [0], 1.5, r"column 't' must hold integers"),
        ("t", [0], np.nan, r"column 't' is empty in 1 rows"),
        ("track_id", [5], "cell", r"column 'track_id' must hold integers.*CSV lines \[7\]"),
        ("y", list(range(8)), "top", r"column 'y' must hold numbers"),
        ("parent_track_id", [4], "root", r"column 'parent_track_id' must hold integers"),
        ("t", [0], -1, r"column 't' must be in \[0, 3\] \(the plate has 4 timepoints\)"),
        ("t", [3], N_T, r"column 't' must be in \[0, 3\].*values \[4\]"),
        ("t", [1], 0, r"each \(track_id, t\) must appear once; 2 rows repeat a pair .*pairs \[\(0, 0\)\]"),
        ("x", None, None, r"lacks columns \['x'\]"),
    ],
)
def test_tracks_table_errors_name_csv_fov_and_column(setup, column, rows, value, message):
    csv = _break_csv(setup, "B/1/0", column, rows, value)
    with pytest.raises(ValueError, match=message) as raised:
        _index(setup["write"]())
    assert f"Experiment 'a', FOV B/1/0, tracks CSV {csv}" in str(raised.value)


def test_empty_tracks_csv_is_named(setup):
    csv = setup["tracks"] / "A/1/0" / "tracks.csv"
    csv.write_text("")
    with pytest.raises(ValueError, match=f"FOV A/1/0, tracks CSV {csv}: cannot be read as a CSV table"):
        _index(setup["write"]())


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("y", np.nan, "with NaN or infinite y/x"),
        ("x", np.inf, "with NaN or infinite y/x"),
        ("y", 16, "with a centroid outside the 16x16 image"),
        ("x", -0.5, "with a centroid outside the 16x16 image"),
    ],
)
def test_bad_coordinates_are_dropped_with_one_warning(setup, column, value, reason):
    csv = _break_csv(setup, "A/1/0", column, [0, 5, 6], value)
    with pytest.warns(
        UserWarning, match=rf"tracks CSV {csv}: dropped 3 of 8 rows {reason} \(CSV lines \[2, 7, 8\]\)"
    ) as record:
        index = _index(setup["write"]())
    assert len([w for w in record if "dropped" in str(w.message)]) == 1
    assert len(index.tracks) == 2 * 2 * N_T - 3


def test_unknown_parents_start_their_own_lineage_with_one_warning(setup):
    csv = _break_csv(setup, "A/1/0", "parent_track_id", [4, 5, 6, 7], 7)
    with pytest.warns(UserWarning, match=rf"tracks CSV {csv}: 4 rows name a parent_track_id that is not a track"):
        index = _index(setup["write"]())
    daughter = index.tracks[(index.tracks["fov_name"] == "A/1/0") & (index.tracks["track_id"] == 1)]
    assert set(daughter["lineage_id"]) == {"a_A/1/0_1"}


def test_z_range_outside_the_plate_names_the_fov(setup):
    registry = ExperimentRegistry.from_yaml(setup["write"]())
    for z_range in (slice(0, 2), slice(1, 1)):
        with pytest.raises(ValueError, match=r"'a', FOV A/1/0: z_range .* is empty or exceeds Z=1"):
            MultiExperimentIndex(registry, z_range, (8, 8))


def test_nonfinite_policy():
    batch = {"anchor": torch.ones(3, 2, 1, 4, 4), "positive": torch.ones(3, 2, 1, 4, 4)}
    batch["positive"][1, 0, 0, 0, :2] = torch.tensor([float("nan"), float("inf")])
    with pytest.raises(ValueError, match=r"Owner: .*'positive': 2 NaN/Inf pixels in samples \[1\].*nonfinite='zero'"):
        apply_nonfinite_policy(batch, ("anchor", "positive", "negative"), "raise", "Owner")
    apply_nonfinite_policy(batch, ("anchor", "positive", "negative"), "zero", "Owner")
    assert batch["positive"][1, 0, 0, 0, :3].tolist() == [0.0, 0.0, 1.0]
    apply_nonfinite_policy(batch, ("anchor", "positive"), "raise", "Owner")
    with pytest.raises(ValueError, match=r"Owner: nonfinite must be one of \['raise', 'zero'\], got 'drop'"):
        check_nonfinite_policy("drop", "Owner")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nonfinite_policy_syncs_once_per_batch_on_the_device():
    batch = {key: torch.ones(64, 2, 4, 32, 32, device="cuda") for key in ("anchor", "positive", "negative")}
    keys = tuple(batch)
    torch.cuda.synchronize()
    syncs = {}
    for policy in ("raise", "zero"):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                apply_nonfinite_policy(batch, keys, policy, "Owner")
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs[policy] = sum("synchroniz" in str(w.message) for w in record)
    assert syncs == {"raise": 1, "zero": 0}
