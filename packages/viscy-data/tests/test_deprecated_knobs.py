"""Dead knobs still parse from old YAML configs but warn, naming what replaces them."""

import warnings

import pytest

from viscy_data.triplet import TripletDataModule

_TRIPLET_YAML = (
    "data:\n  data_path: plate.zarr\n  tracks_path: tracks\n  source_channel: [GFP]\n  z_range: [0, 1]\n"
    "  initial_yx_patch_size: [8, 8]\n  final_yx_patch_size: [4, 4]\n"
)


def _instantiate(yaml: str):
    # jsonargparse comes with viscy-utils (LightningCLI), not with viscy-data alone
    parser = pytest.importorskip("jsonargparse").ArgumentParser()
    parser.add_class_arguments(TripletDataModule, "data")
    return parser.instantiate(parser.parse_string(yaml)).data


@pytest.mark.parametrize("caching", ["true", "false"])
def test_triplet_caching_in_a_yaml_config_warns_and_names_cache_pool_bytes(caching):
    with pytest.warns(DeprecationWarning, match=r"caching=.*deprecated and ignored.*cache_pool_bytes"):
        data = _instantiate(_TRIPLET_YAML + f"  caching: {caching}\n")
    assert isinstance(data, TripletDataModule) and data.caching is False


def test_triplet_config_without_caching_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert _instantiate(_TRIPLET_YAML).caching is False


def test_triplet_caching_argument_warns():
    with pytest.warns(DeprecationWarning, match="cache_pool_bytes"):
        TripletDataModule("plate.zarr", "tracks", "GFP", (0, 1), (8, 8), (4, 4), caching=False)
