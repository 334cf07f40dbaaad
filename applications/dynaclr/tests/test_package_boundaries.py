"""Packages import each other only through public names, and the moved modules stay importable."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("viscy_transforms", "viscy_data", "viscy_models", "viscy_utils", "dynaclr")
SOURCES = sorted(
    [*ROOT.glob("packages/*/src/*/**/*.py"), *ROOT.glob("applications/*/src/*/**/*.py"), *ROOT.glob("benchmarks/*.py")]
)


def _home(path: Path) -> str | None:
    """The package whose source tree holds ``path`` (None for benchmarks)."""
    relative = path.relative_to(ROOT).parts
    return relative[3] if relative[0] in ("packages", "applications") else None


def _private_imports(path: Path) -> list[str]:
    """``file:line: statement`` of every import of a private module or name of another package."""
    home = _home(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules, names = [node.module], [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [alias.name for alias in node.names], []
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] not in PACKAGES or parts[0] == home:
                continue
            private = [part for part in parts[1:] if part.startswith("_")]
            private += [name for name in names if name.startswith("_")]
            if private:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} {private}")
    return found


def test_sources_were_found():
    homes = {_home(path) for path in SOURCES}
    assert set(PACKAGES) <= homes and None in homes


def test_no_module_imports_a_private_name_of_another_package():
    found = [line for path in SOURCES for line in _private_imports(path)]
    assert not found, "cross-package imports of private names:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("viscy_data.experiment", "viscy_data.contrastive.experiment", ["ExperimentConfig", "ExperimentRegistry"]),
        ("dynaclr.experiment", "viscy_data.contrastive.experiment", ["ExperimentConfig", "ExperimentRegistry"]),
        ("viscy_data.cell_index", "viscy_data.contrastive.cell_index", ["MultiExperimentIndex"]),
        ("dynaclr.index", "viscy_data.contrastive.cell_index", ["MultiExperimentIndex"]),
        ("dynaclr.tau_sampling", "viscy_data.contrastive.tau_sampling", ["sample_tau", "tau_distribution"]),
        ("dynaclr.dataset", "viscy_data.contrastive.dataset", ["MultiExperimentTripletDataset"]),
        ("viscy_data._typing", "viscy_data.normalization", ["ChannelNormStats", "LevelNormStats", "NormMeta"]),
    ],
)
def test_old_module_paths_re_export_the_moved_names(old, new, names):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name)
        assert name in old_module.__all__
