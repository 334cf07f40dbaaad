"""Experiment configuration for multi-experiment DynaCLR training (re-exported from ``viscy_data``)."""

from viscy_data.experiment import ExperimentConfig, ExperimentRegistry

__all__ = ["ExperimentConfig", "ExperimentRegistry"]
