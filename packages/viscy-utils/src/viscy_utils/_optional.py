"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

_EXTRAS = {
    "anndata": "anndata",
    "joblib": "eval",
    "phate": "eval",
    "pydantic": "eval",
    "scipy": "eval",
    "sklearn": "eval",
    "umap": "eval",
    "onnx": "export",
    "onnxscript": "export",
    "monai": "metrics",
    "pycocotools": "metrics",
    "torchmetrics": "metrics",
    "torchvision": "metrics",
}


def import_optional(module_name: str) -> ModuleType:
    """Import ``module_name``, or raise an ImportError naming the viscy-utils extra that provides it.

    Parameters
    ----------
    module_name : str
        Importable module name, e.g. ``"anndata"`` or ``"sklearn.decomposition"``.

    Returns
    -------
    ModuleType
        The imported module.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        extra = _EXTRAS.get(module_name.split(".")[0])
        package = f"'viscy-utils[{extra}]'" if extra else "viscy-utils"
        raise ImportError(f"{module_name!r} is not installed. Install it with: pip install {package}") from error
