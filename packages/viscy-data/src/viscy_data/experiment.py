"""Experiment registry (moved to :mod:`viscy_data.contrastive.experiment`; this path is kept for configs)."""

from viscy_data.contrastive.experiment import ExperimentConfig, ExperimentRegistry

__all__ = ["ExperimentConfig", "ExperimentRegistry"]
