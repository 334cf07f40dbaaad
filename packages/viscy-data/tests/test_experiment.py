import logging
import shutil

import pytest
import yaml

from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry
from viscy_data.testing import write_hcs_plate


@pytest.fixture
def plate_paths(tmp_path):
    """Two tiny plates: one with channels [Phase3D, GFP, RFP], one with [Phase3D, RFP]."""
    three = tmp_path / "three.zarr"
    two = tmp_path / "two.zarr"
    write_hcs_plate(three, positions=["A/1/0"], channel_names=["Phase3D", "GFP", "RFP"], shape=(2, 1, 8, 8))
    write_hcs_plate(two, positions=["A/1/0"], channel_names=["Phase3D", "RFP"], shape=(2, 1, 8, 8))
    return three, two


def _config(name, data_path, channel_names, source_channel, **kwargs):
    defaults = {"tracks_path": "tracks", "condition_wells": {"infected": ["A/1"]}}
    defaults.update(kwargs)
    return ExperimentConfig(
        name=name,
        data_path=str(data_path),
        channel_names=list(channel_names),
        source_channel=list(source_channel),
        **defaults,
    )


def test_config_defaults():
    cfg = ExperimentConfig("e", "p", "t", ["a"], ["a"], {"c": ["A/1"]})
    assert (cfg.interval_minutes, cfg.start_hpi, cfg.organelle, cfg.date, cfg.moi) == (30.0, 0.0, "", "", 0.0)


def test_channel_maps_align_by_position(plate_paths):
    three, two = plate_paths
    registry = ExperimentRegistry(
        [
            _config("a", three, ["Phase3D", "GFP", "RFP"], ["Phase3D", "RFP"]),
            _config("b", two, ["Phase3D", "RFP"], ["RFP", "Phase3D"]),
        ]
    )
    assert registry.num_source_channels == 2
    assert registry.channel_maps == {"a": {0: 0, 1: 2}, "b": {0: 1, 1: 0}}


def test_get_experiment_returns_same_object_and_unknown_raises(plate_paths):
    cfg = _config("a", plate_paths[1], ["Phase3D", "RFP"], ["Phase3D"])
    registry = ExperimentRegistry([cfg])
    assert registry.get_experiment("a") is cfg
    with pytest.raises(KeyError, match=r"Experiment 'zzz' not found in registry. Available: \['a'\]"):
        registry.get_experiment("zzz")


def test_empty_list_raises():
    with pytest.raises(ValueError, match="Empty experiments list"):
        ExperimentRegistry([])


def test_duplicate_name_raises_before_per_experiment_checks(plate_paths):
    bad = _config("a", "/does/not/exist", ["x"], ["x"])
    with pytest.raises(ValueError, match="Duplicate experiment name 'a'"):
        ExperimentRegistry([bad, bad])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"interval_minutes": 0}, "'a'.*interval_minutes must be positive, got 0"),
        ({"condition_wells": {}}, "'a'.*condition_wells must not be empty"),
        ({"source_channel": ["Phase3D", "DAPI"]}, r"'a'.*source_channel entries \['DAPI'\] not found in channel_names"),
        ({"data_path": "/no/such/plate.zarr"}, "'a'.*data_path does not exist: /no/such/plate.zarr"),
        ({"channel_names": ["RFP", "Phase3D"], "source_channel": ["RFP"]}, "'a'.*channel_names mismatch"),
    ],
)
def test_per_experiment_validation_messages(plate_paths, overrides, message):
    kwargs = {"channel_names": ["Phase3D", "RFP"], "source_channel": ["Phase3D"], "data_path": plate_paths[1]}
    kwargs.update(overrides)
    cfg = _config("a", kwargs.pop("data_path"), kwargs.pop("channel_names"), kwargs.pop("source_channel"), **kwargs)
    with pytest.raises(ValueError, match=message):
        ExperimentRegistry([cfg])


def test_validation_order_interval_before_missing_path():
    cfg = _config("a", "/no/such/plate.zarr", ["x"], ["x"], interval_minutes=-5)
    with pytest.raises(ValueError, match="interval_minutes must be positive, got -5"):
        ExperimentRegistry([cfg])


def test_source_channel_count_must_match(plate_paths):
    three, two = plate_paths
    with pytest.raises(ValueError, match="same number of source_channel entries, but found: 'a': 2, 'b': 1."):
        ExperimentRegistry(
            [
                _config("a", three, ["Phase3D", "GFP", "RFP"], ["Phase3D", "GFP"]),
                _config("b", two, ["Phase3D", "RFP"], ["Phase3D"]),
            ]
        )


def test_tau_range_frames_rounds_per_interval(plate_paths, caplog):
    registry = ExperimentRegistry(
        [
            _config("slow", plate_paths[1], ["Phase3D", "RFP"], ["Phase3D"], interval_minutes=30),
            _config("fast", plate_paths[0], ["Phase3D", "GFP", "RFP"], ["GFP"], interval_minutes=15),
        ]
    )
    assert registry.tau_range_frames("slow", (0.5, 2.0)) == (1, 4)
    assert registry.tau_range_frames("fast", (0.5, 2.0)) == (2, 8)
    assert registry.tau_range_frames("slow", (0.5, 1.5)) == (1, 3)
    assert registry.tau_range_frames("fast", (0.5, 1.5)) == (2, 6)
    with caplog.at_level(logging.WARNING):
        assert registry.tau_range_frames("slow", (0.5, 0.5)) == (1, 1)
    assert "fewer than 2 valid frames" in caplog.text


def test_from_yaml_builds_registry(plate_paths, tmp_path):
    entry = {
        "name": "a",
        "data_path": str(plate_paths[1]),
        "tracks_path": "t",
        "channel_names": ["Phase3D", "RFP"],
        "source_channel": ["Phase3D", "RFP"],
        "condition_wells": {"uninfected": ["A/1"]},
        "interval_minutes": 15.0,
        "start_hpi": 2.0,
        "organelle": "ER",
        "date": "2025-07-22",
        "moi": 0.5,
    }
    path = tmp_path / "experiments.yml"
    path.write_text(yaml.safe_dump({"experiments": [entry]}))
    registry = ExperimentRegistry.from_yaml(path)
    assert registry.get_experiment("a") == ExperimentConfig(**entry)
    assert registry.channel_maps == {"a": {0: 0, 1: 1}}


def test_from_yaml_bad_input(plate_paths, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yml"):
        ExperimentRegistry.from_yaml(tmp_path / "missing.yml")
    no_key = tmp_path / "no_key.yml"
    no_key.write_text(yaml.safe_dump({"exps": []}))
    with pytest.raises(KeyError, match="experiments"):
        ExperimentRegistry.from_yaml(no_key)
    unknown = tmp_path / "unknown.yml"
    entry = {"name": "a", "data_path": str(plate_paths[1]), "tracks_path": "t", "channel_names": ["Phase3D"]}
    entry.update({"source_channel": ["Phase3D"], "condition_wells": {"c": ["A/1"]}, "interval": 5})
    unknown.write_text(yaml.safe_dump({"experiments": [entry]}))
    with pytest.raises(TypeError, match=r"experiments\[0\] has unknown keys \['interval'\]"):
        ExperimentRegistry.from_yaml(unknown)


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        # checks run experiment by experiment in list order: a's zarr mismatch before b's bad interval
        ({"channel_names": ["RFP", "Phase3D"], "source_channel": ["RFP"]}, {"interval_minutes": 0}, "'a'.*mismatch"),
        # within one experiment: condition_wells before source_channel before data_path before zarr channels
        ({"condition_wells": {}, "source_channel": ["DAPI"]}, {}, "'a'.*condition_wells must not be empty"),
        ({"source_channel": ["DAPI"], "data_path": "/no/such.zarr"}, {}, r"'a'.*source_channel entries \['DAPI'\]"),
        ({"data_path": "/no/such.zarr", "channel_names": ["X"], "source_channel": ["X"]}, {}, "'a'.*data_path"),
        # the source-channel count is compared only after every experiment passed its own checks
        ({"source_channel": ["Phase3D", "RFP"]}, {"data_path": "/no/such.zarr"}, "'b'.*data_path does not exist"),
    ],
)
def test_validation_order(plate_paths, first, second, message):
    def build(name, overrides):
        kwargs = {"channel_names": ["Phase3D", "RFP"], "source_channel": ["Phase3D"], "data_path": plate_paths[1]}
        kwargs.update(overrides)
        paths_and_channels = [kwargs.pop(key) for key in ("data_path", "channel_names", "source_channel")]
        return _config(name, *paths_and_channels, **kwargs)

    with pytest.raises(ValueError, match=message):
        ExperimentRegistry([build("a", first), build("b", second)])


def test_subset_shares_the_open_plates_without_checking_them_again(plate_paths):
    three, two = plate_paths
    registry = ExperimentRegistry(
        [
            _config("a", three, ["Phase3D", "GFP", "RFP"], ["Phase3D", "GFP"]),
            _config("b", two, ["Phase3D", "RFP"], ["Phase3D", "RFP"]),
        ]
    )
    shutil.rmtree(two)  # a check on disk would now fail
    subset = registry.subset(["b"])
    assert [exp.name for exp in subset.experiments] == ["b"]
    assert subset.channel_maps == {"b": {0: 0, 1: 1}} and subset.num_source_channels == 2
    assert subset.plates["b"] is registry.plates["b"]
    assert [exp.name for exp in registry.experiments] == ["a", "b"]
    with pytest.raises(ValueError, match=r"subset\(\['c'\]\): .* unknown: \['c'\]"):
        registry.subset(["c"])
    with pytest.raises(ValueError, match=r"subset\(\[\]\): expected a non-empty list"):
        registry.subset([])
