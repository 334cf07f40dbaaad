"""Unified cell-observation index across experiments (re-exported from ``viscy_data.contrastive``)."""

from viscy_data.contrastive.cell_index import MultiExperimentIndex

__all__ = ["MultiExperimentIndex"]
