"""Shared ML infrastructure for VisCy: CLI, trainer, callbacks, normalization and evaluation helpers.

The names in ``__all__`` are imported on first access, so ``import viscy_utils`` stays light.
"""

from __future__ import annotations

from viscy_transforms.lazy import lazy_exports

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
__getattr__, __dir__ = lazy_exports(__name__, {name: f".{module}" for name, module in _SOURCES.items()})
