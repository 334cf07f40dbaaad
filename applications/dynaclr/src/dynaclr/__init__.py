"""DynaCLR: self-supervised contrastive learning of cell and organelle dynamics.

The public names are imported lazily on first access, so ``import dynaclr`` (and the ``dynaclr``
command line) stays light until a model, loss or data module is actually used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first access and cache it on the package."""
    module_name = _EXPORT_MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
