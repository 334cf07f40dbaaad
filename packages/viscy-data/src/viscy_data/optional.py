"""Optional dependencies: import them where they are used, or raise an ImportError giving the install command.

The one helper of the workspace for this: viscy-data, viscy-utils and dynaclr all raise
``ImportError("<module> is required for <owner>. Install with: pip install '<package>[<extra>]'")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

__all__ = ["install_command", "require", "require_all"]


def install_command(package: str, extra: str | None = None) -> str:
    """The pip command installing ``package`` with ``extra``, e.g. ``pip install 'viscy-data[triplet]'``.

    Parameters
    ----------
    package : str
        Distribution name, e.g. ``"viscy-data"``.
    extra : str | None
        Name of the extra; None for the bare package.
    """
    return f"pip install '{package}[{extra}]'" if extra else f"pip install {package}"


def _command(install: str) -> str:
    return install if " " in install else install_command("viscy-data", install)


def require_all(modules: Sequence[str], owner: str, install: str) -> list[ModuleType]:
    """Import every module of ``modules``, or raise one ImportError naming all those that are missing.

    Parameters
    ----------
    modules : Sequence[str]
        Modules to import, e.g. ``["pycocotools", "tifffile"]``.
    owner : str
        Name of the class or function that needs them (used in the message).
    install : str
        Install command, e.g. ``"pip install 'viscy-data[triplet]'"``, or just the name of the
        ``viscy-data`` extra that provides the modules (``"triplet"``).

    Returns
    -------
    list[ModuleType]
        The imported modules, in the order of ``modules``.
    """
    imported, missing, errors = [], [], []
    for module in modules:
        try:
            imported.append(importlib.import_module(module))
        except ImportError as error:
            missing.append(module)
            errors.append(error)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ImportError(
            f"{', '.join(missing)} {verb} required for {owner}. Install with: {_command(install)}"
        ) from errors[0]
    return imported


def require(module: str, owner: str, install: str) -> ModuleType:
    """Import one optional dependency, e.g. ``"tensorstore"``, or raise as :func:`require_all` does.

    ``owner`` and ``install`` are those of :func:`require_all`.

    Returns
    -------
    ModuleType
        The imported module.
    """
    return require_all([module], owner, install)[0]
