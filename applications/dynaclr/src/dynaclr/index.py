"""Unified cell-observation index across experiments (re-exported from ``viscy_data``)."""

from viscy_data.cell_index import MultiExperimentIndex

__all__ = ["MultiExperimentIndex"]
