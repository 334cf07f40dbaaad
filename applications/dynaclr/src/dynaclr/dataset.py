"""Multi-experiment triplet dataset (re-exported from :mod:`viscy_data.contrastive.dataset`)."""

from viscy_data.contrastive.dataset import MultiExperimentTripletDataset

__all__ = ["MultiExperimentTripletDataset"]
