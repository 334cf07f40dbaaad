"""Silence known library noise in the command lines, leaving real warnings and progress visible.

Each filter matches one message of one library, never a whole category or module.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["silence_library_noise"]

_LIGHTNING_TIPS = ("[litlogger](", "[litmodels](")


class _DropLightningTips(logging.Filter):
    """Drop Lightning's advertising tips for the ``litlogger`` and ``litmodels`` packages."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("💡 Tip:") and any(tip in message for tip in _LIGHTNING_TIPS))


def silence_library_noise() -> None:
    """Filter the library messages that say nothing about the run (safe to call more than once).

    - Lightning's ``litlogger``/``litmodels`` tips (``rank_zero_info`` log records);
    - torch's FutureWarning on Lightning's own use of the deprecated ``LeafSpec``
      (in ``lightning.pytorch.utilities._pytree``).
    """
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(existing, _DropLightningTips) for existing in rank_zero_log.filters):
        rank_zero_log.addFilter(_DropLightningTips())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
