"""Tau sampling (re-exported from :mod:`viscy_data.contrastive.tau_sampling`)."""

from viscy_data.contrastive.tau_sampling import sample_tau, tau_distribution

__all__ = ["sample_tau", "tau_distribution"]
