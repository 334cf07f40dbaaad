"""Cell index (moved to :mod:`viscy_data.contrastive.cell_index`; this path is kept for configs)."""

from viscy_data.contrastive.cell_index import MultiExperimentIndex

__all__ = ["MultiExperimentIndex"]
