"""Lazy package exports: every public name of every VisCy package resolves, and imports stay light."""

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "viscy_transforms",
    "viscy_data",
    "viscy_models",
    "viscy_models._components",
    "viscy_models.contrastive",
    "viscy_models.unet",
    "viscy_models.vae",
    "viscy_utils",
    "viscy_utils.evaluation",
    "dynaclr",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_and_is_listed(package):
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def test_export_is_the_defining_module_object():
    import viscy_transforms
    from viscy_transforms._flip import BatchedRandFlip

    assert viscy_transforms.BatchedRandFlip is BatchedRandFlip
    assert "BatchedRandFlip" in vars(viscy_transforms)


def test_import_viscy_transforms_imports_neither_monai_nor_torch():
    code = "import sys, viscy_transforms; print(sorted(m for m in ('monai', 'torch') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
