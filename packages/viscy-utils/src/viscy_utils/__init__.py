"""Shared ML infrastructure for VisCy: CLI, trainer, callbacks, normalization and evaluation helpers.

The names in ``__all__`` are imported on first access, so ``import viscy_utils`` stays light.
"""

from __future__ import annotations

import lazy_loader

__all__ = ["detach_sample", "get_val_stats", "hist_clipping", "mp_wrapper", "render_images", "unzscore", "zscore"]

__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "log_images": ["detach_sample", "render_images"],
        "mp_utils": ["get_val_stats", "mp_wrapper"],
        "normalize": ["hist_clipping", "unzscore", "zscore"],
    },
)
