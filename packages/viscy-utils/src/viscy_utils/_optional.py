"""Import optional dependencies of viscy-utils with an error that names the extra to install.

The mechanism is :func:`viscy_data.optional.require`; this module only knows which viscy-utils extra provides
which module.
"""

from __future__ import annotations

from types import ModuleType

from viscy_data.optional import install_command, require

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


def import_optional(module_name: str, owner: str = "viscy-utils") -> ModuleType:
    """Import ``module_name``, or raise an ImportError naming the viscy-utils extra that provides it.

    Parameters
    ----------
    module_name : str
        Importable module name, e.g. ``"anndata"`` or ``"sklearn.decomposition"``.
    owner : str
        What needs the module, named in the error message.

    Returns
    -------
    ModuleType
        The imported module.
    """
    return require(module_name, owner, install_command("viscy-utils", _EXTRAS.get(module_name.split(".")[0])))
