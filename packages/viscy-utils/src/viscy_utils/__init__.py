"""Shared ML infrastructure for VisCy: CLI, trainer, callbacks, normalization and evaluation helpers.

The names in ``__all__`` are imported on first access, so ``import viscy_utils`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["detach_sample", "get_val_stats", "hist_clipping", "mp_wrapper", "render_images", "unzscore", "zscore"]

_SOURCES = {
    "detach_sample": "log_images",
    "render_images": "log_images",
    "get_val_stats": "mp_utils",
    "mp_wrapper": "mp_utils",
    "hist_clipping": "normalize",
    "unzscore": "normalize",
    "zscore": "normalize",
}


def __getattr__(name: str) -> Any:
    if name in _SOURCES:
        value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
