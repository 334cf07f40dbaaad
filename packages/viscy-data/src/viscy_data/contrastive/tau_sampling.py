"""Draw anchor-positive time offsets (tau, in frames) biased toward short offsets."""

from __future__ import annotations

import numpy as np

__all__ = ["sample_tau", "tau_distribution"]


def tau_distribution(tau_min: int, tau_max: int, decay_rate: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Candidate offsets and their probabilities.

    Parameters
    ----------
    tau_min, tau_max : int
        Inclusive range of offsets in frames (``tau_min < tau_max``).
    decay_rate : float
        Exponential decay from ``tau_min`` to ``tau_max``; 0 gives a uniform distribution.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``candidates`` (``tau_min..tau_max``) and ``weights`` proportional to
        ``exp(-decay_rate * (tau - tau_min) / (tau_max - tau_min))``, summing to 1.

    Raises
    ------
    ValueError
        If ``tau_min > tau_max``.
    """
    if tau_min > tau_max:
        raise ValueError(f"tau_min must be <= tau_max, got tau_min={tau_min}, tau_max={tau_max}")
    if tau_min == tau_max:
        return np.array([tau_min]), np.ones(1)
    candidates = np.arange(tau_min, tau_max + 1)
    weights = np.exp(-decay_rate * (candidates - tau_min) / (tau_max - tau_min))
    return candidates, weights / weights.sum()


def sample_tau(tau_min: int, tau_max: int, rng: np.random.Generator, decay_rate: float = 2.0) -> int:
    """Draw one offset in ``tau_min..tau_max`` with exponentially decaying probability.

    Parameters
    ----------
    tau_min, tau_max : int
        Inclusive range of offsets in frames.
    rng : np.random.Generator
        Source of randomness (untouched when ``tau_min == tau_max``).
    decay_rate : float
        Bias toward ``tau_min``; 0 draws uniformly.

    Returns
    -------
    int
        The offset, as a Python ``int``.

    Raises
    ------
    ValueError
        If ``tau_min > tau_max``.
    """
    if tau_min == tau_max:
        return int(tau_min)
    candidates, weights = tau_distribution(tau_min, tau_max, decay_rate)
    return int(rng.choice(candidates, p=weights))
