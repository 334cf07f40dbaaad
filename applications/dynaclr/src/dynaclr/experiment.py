"""Experiment configuration for multi-experiment DynaCLR training (re-exported from ``viscy_data.contrastive``)."""

from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry

__all__ = ["ExperimentConfig", "ExperimentRegistry"]
