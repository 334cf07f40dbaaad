"""DynaCLR: self-supervised contrastive learning of cell and organelle dynamics.

The public names are imported lazily on first access, so ``import dynaclr`` (and the ``dynaclr``
command line) stays light until a model, loss or data module is actually used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from viscy_transforms.lazy import lazy_exports

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

_EXPORT_MODULES = {
    "BetaVaeModule": "engine",
    "ContrastiveModule": "engine",
    "ContrastivePrediction": "engine",
    "ExperimentConfig": "experiment",
    "ExperimentRegistry": "experiment",
    "MultiExperimentDataModule": "datamodule",
    "MultiExperimentIndex": "index",
    "MultiExperimentTripletDataset": "dataset",
    "NTXentHCL": "loss",
    "sample_tau": "tau_sampling",
}

if TYPE_CHECKING:
    from dynaclr.datamodule import MultiExperimentDataModule
    from dynaclr.dataset import MultiExperimentTripletDataset
    from dynaclr.engine import BetaVaeModule, ContrastiveModule, ContrastivePrediction
    from dynaclr.experiment import ExperimentConfig, ExperimentRegistry
    from dynaclr.index import MultiExperimentIndex
    from dynaclr.loss import NTXentHCL
    from dynaclr.tau_sampling import sample_tau

__getattr__, __dir__ = lazy_exports(__name__, {name: f".{module}" for name, module in _EXPORT_MODULES.items()})
