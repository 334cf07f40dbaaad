"""Lazy package exports (PEP 562), shared by every VisCy package ``__init__``.

A package lists its public names and the module defining each; a name's module is imported on first
access and the value is cached on the package, so importing the package imports none of its heavy
dependencies. This module imports only the standard library. It lives in viscy-transforms because that
is the one VisCy package every other depends on (viscy-models included).
"""

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build the module-level ``__getattr__`` and ``__dir__`` of a package with lazily imported names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : Mapping[str, str]
        Public name to the module defining it: absolute (``"viscy_data.hcs"``) or relative to
        ``package`` (``".hcs"``).

    Returns
    -------
    tuple[Callable[[str], Any], Callable[[], list[str]]]
        ``__getattr__`` importing and caching a name on first access (``AttributeError`` for other
        names) and ``__dir__`` listing the module's attributes together with every export.

    Examples
    --------
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"HCSDataModule": ".hcs"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
