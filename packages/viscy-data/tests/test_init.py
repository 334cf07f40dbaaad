import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import viscy_data

EXPECTED_ORDER_START = ["AnnotationColumns", "ChannelMap", "ChannelNormStats", "DictTransform", "HCSStackIndex"]


def test_all_has_47_names_in_spec_order():
    assert len(viscy_data.__all__) == 47
    assert len(set(viscy_data.__all__)) == 47
    assert viscy_data.__all__[:5] == EXPECTED_ORDER_START
    assert viscy_data.__all__[17:21] == [
        "ChannelDropout",
        "FlexibleBatchSampler",
        "SelectWell",
        "ShardedDistributedSampler",
    ]
    assert viscy_data.__all__[-1] == "ConcatDataModule"


def test_every_export_maps_to_one_submodule():
    exported = [name for names in viscy_data._SUBMODULE_NAMES.values() for name in names]
    assert sorted(exported) == sorted(viscy_data.__all__)
    assert "FlexibleBatchSampler" in viscy_data._SUBMODULE_NAMES["sampler"]
    assert "TripletDataModule" in viscy_data._SUBMODULE_NAMES["triplet"]


def test_import_is_lazy_and_quiet():
    code = (
        "import sys, viscy_data; "
        "heavy = [m for m in ('torch', 'pandas', 'tensorstore', 'monai', 'iohub', 'lightning') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""


def test_owned_exports_resolve_to_their_modules():
    from viscy_data.channel_dropout import ChannelDropout
    from viscy_data.hcs import HCSDataModule
    from viscy_data.triplet import TripletDataModule

    assert viscy_data.ChannelDropout is ChannelDropout
    assert viscy_data.HCSDataModule is HCSDataModule
    assert viscy_data.TripletDataModule is TripletDataModule
    assert viscy_data.INDEX_COLUMNS[0] == "fov_name"


def test_dir_lists_exports():
    assert set(viscy_data.__all__) <= set(dir(viscy_data))


def test_unknown_attribute_raises():
    try:
        viscy_data.NotAThing  # noqa: B018
    except AttributeError as error:
        assert "NotAThing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


@pytest.mark.parametrize("module_name", sorted(viscy_data._SUBMODULE_NAMES))
def test_every_submodule_imports_without_optional_extras(module_name, monkeypatch):
    for blocked in ("tensorstore", "tensordict", "pycocotools"):
        monkeypatch.setitem(sys.modules, blocked, None)
    path = Path(viscy_data.__file__).with_name(f"{module_name}.py")
    # execute a fresh copy of the module source, leaving the imported module untouched
    spec = importlib.util.spec_from_file_location(f"_probe_{module_name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert all(hasattr(module, name) for name in viscy_data._SUBMODULE_NAMES[module_name])
