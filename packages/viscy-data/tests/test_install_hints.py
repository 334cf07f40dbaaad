import importlib
import inspect
import sys

import pytest

import viscy_data

TRIPLET = "pip install 'viscy-data[triplet]'"
MMAP = "pip install 'viscy-data[mmap]'"
LIVECELL = "pip install 'viscy-data[livecell]'"

# module -> (optional dependency, install command, classes that need it)
OPTIONAL_MODULES = {
    "triplet": ("tensorstore", TRIPLET, ["TripletDataset", "TripletDataModule"]),
    "cell_classification": ("tensorstore", TRIPLET, ["ClassificationDataset", "ClassificationDataModule"]),
    "cell_division_triplet": ("tensorstore", TRIPLET, ["CellDivisionTripletDataset", "CellDivisionTripletDataModule"]),
    "mmap_cache": ("tensordict", MMAP, ["MmappedDataset", "MmappedDataModule"]),
    "livecell": ("pycocotools", LIVECELL, ["LiveCellDataset", "LiveCellTestDataset"]),
}


@pytest.mark.parametrize("module_name", sorted(OPTIONAL_MODULES))
def test_install_command_is_written_in_the_module_source(module_name):
    _, command, _ = OPTIONAL_MODULES[module_name]
    assert command in inspect.getsource(importlib.import_module(f"viscy_data.{module_name}"))


def _fresh_import(module_name, monkeypatch):
    """Import a new copy of ``viscy_data.<module_name>``; monkeypatch puts the original back afterwards."""
    full_name = f"viscy_data.{module_name}"
    monkeypatch.setattr(viscy_data, module_name, importlib.import_module(full_name), raising=False)
    monkeypatch.delitem(sys.modules, full_name)
    return importlib.import_module(full_name)


@pytest.mark.parametrize(
    ("module_name", "class_name"),
    [(module, name) for module, (_, _, names) in sorted(OPTIONAL_MODULES.items()) for name in names],
)
def test_missing_dependency_raises_import_error_with_the_install_command(module_name, class_name, monkeypatch):
    dependency, command, _ = OPTIONAL_MODULES[module_name]
    original = importlib.import_module(f"viscy_data.{module_name}")
    monkeypatch.setitem(sys.modules, dependency, None)
    module = _fresh_import(module_name, monkeypatch)
    assert module is not original
    cls = getattr(module, class_name)
    # placeholders for the required arguments: the dependency check comes before any other work
    required = {
        name: None
        for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.default is inspect.Parameter.empty
    }
    with pytest.raises(ImportError) as error:
        cls(**required)
    assert command in str(error.value)
    assert dependency in str(error.value) and class_name in str(error.value)


def test_fresh_import_is_undone_after_the_test():
    from viscy_data.triplet import TripletDataset

    assert sys.modules["viscy_data.triplet"].TripletDataset is TripletDataset
    assert viscy_data.triplet is sys.modules["viscy_data.triplet"]


def test_require_all_names_every_missing_module_and_the_extra_command(monkeypatch):
    from viscy_data.optional import require, require_all

    monkeypatch.setitem(sys.modules, "tifffile", None)
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(ImportError) as error:
        require_all(["numpy", "pycocotools", "tifffile"], "LiveCellDataset", "livecell")
    assert str(error.value) == ("pycocotools, tifffile are required for LiveCellDataset. Install with: " + LIVECELL)
    assert require("numpy", "x", "triplet") is sys.modules["numpy"]
