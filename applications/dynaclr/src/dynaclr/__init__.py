"""DynaCLR: self-supervised contrastive learning of cell and organelle dynamics.

The public names are imported lazily on first access, so ``import dynaclr`` (and the ``dynaclr``
command line) stays light until a model, loss or data module is actually used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__all__ = [
    "BetaVaeModule",
    "ContrastiveModule",
    "ContrastivePrediction",
    "ExperimentConfig",
    "ExperimentRegistry",
    "MultiExperimentDataModule",
    "MultiExperimentIndex",
    "MultiExperimentTripletDataset",
    "NTXentHCL",
    "sample_tau",
]

_SUBMODULE_NAMES = {
    "datamodule": ["MultiExperimentDataModule"],
    "dataset": ["MultiExperimentTripletDataset"],
    "engine": ["BetaVaeModule", "ContrastiveModule", "ContrastivePrediction"],
    "experiment": ["ExperimentConfig", "ExperimentRegistry"],
    "index": ["MultiExperimentIndex"],
    "loss": ["NTXentHCL"],
    "tau_sampling": ["sample_tau"],
}

if TYPE_CHECKING:
    from dynaclr.datamodule import MultiExperimentDataModule
    from dynaclr.dataset import MultiExperimentTripletDataset
    from dynaclr.engine import BetaVaeModule, ContrastiveModule, ContrastivePrediction
    from dynaclr.experiment import ExperimentConfig, ExperimentRegistry
    from dynaclr.index import MultiExperimentIndex
    from dynaclr.loss import NTXentHCL
    from dynaclr.tau_sampling import sample_tau

__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs=_SUBMODULE_NAMES)
