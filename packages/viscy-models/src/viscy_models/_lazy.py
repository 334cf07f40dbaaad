"""Lazy re-exports (PEP 562) so importing one model does not import every heavy dependency."""

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``__getattr__`` and ``__dir__`` for a package re-exporting ``name -> module`` on first access.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict[str, str]
        Public name to the absolute module path defining it.

    Returns
    -------
    tuple[Callable, Callable]
        The module-level ``__getattr__`` and ``__dir__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
