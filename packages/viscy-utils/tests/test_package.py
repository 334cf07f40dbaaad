import subprocess
import sys

import pytest

import viscy_utils


def test_import_is_light():
    heavy = "('torch', 'matplotlib', 'skimage', 'anndata')"
    code = f"import sys, viscy_utils; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_public_names_resolve_lazily():
    for name in viscy_utils.__all__:
        assert callable(getattr(viscy_utils, name))
    assert sorted(viscy_utils.__all__) == [
        "detach_sample",
        "get_val_stats",
        "hist_clipping",
        "mp_wrapper",
        "render_images",
        "unzscore",
        "zscore",
    ]


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError, match="No viscy_utils attribute nope"):
        viscy_utils.nope  # noqa: B018


def test_evaluation_exports_load_annotation_anndata():
    from viscy_utils import evaluation
    from viscy_utils.evaluation.annotation import load_annotation_anndata

    assert evaluation.load_annotation_anndata is load_annotation_anndata


def _third_party_imports(source_dir):
    """Top-level modules imported (or passed to ``import_optional``) by each file under ``source_dir``."""
    import ast

    imports = {}
    for path in source_dir.rglob("*.py"):
        modules = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_optional":
                if isinstance(node.args[0], ast.Constant):
                    modules.add(node.args[0].value.split(".")[0])
        imports[path.name] = modules - set(sys.stdlib_module_names) - {"viscy_utils"}
    return imports


def test_every_imported_package_is_declared_in_the_dependencies_or_an_extra():
    import re
    import tomllib
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def normalized(requirement: str) -> str:
        return re.sub(r"[-_.]+", "-", re.split(r"[<>=\[; !~]", requirement, maxsplit=1)[0]).lower()

    declared = {normalized(r) for r in project["dependencies"]}
    for requirements in project["optional-dependencies"].values():
        declared |= {normalized(r) for r in requirements}
    distributions = packages_distributions()
    undeclared = {
        f"{file}: {module}"
        for file, modules in _third_party_imports(root / "src" / "viscy_utils").items()
        for module in modules
        if not {normalized(d) for d in distributions.get(module, [module])} & declared
    }
    assert not undeclared, sorted(undeclared)


def test_viscy_utils_optional_imports_name_the_viscy_utils_extra(monkeypatch):
    from viscy_utils._optional import import_optional

    monkeypatch.setitem(sys.modules, "anndata", None)
    with pytest.raises(
        ImportError, match=r"anndata is required for viscy-utils\. .*pip install 'viscy-utils\[anndata\]'"
    ):
        import_optional("anndata")
