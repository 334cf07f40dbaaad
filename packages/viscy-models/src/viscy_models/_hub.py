"""Guarded access to pretrained weights: fail fast and clearly when the hub cannot be reached."""

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

import timm
from torch import nn

HUB_PROBE_TIMEOUT_S = 5.0


def _offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


def _probe_address() -> tuple[str, int]:
    """Host and port a download would connect to first: the hub itself, or the proxy configured for it."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    target = endpoint
    proxy = getproxies().get(endpoint.scheme)
    if proxy and not proxy_bypass(endpoint.hostname or ""):
        target = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if target.scheme == "https" else 80
    return target.hostname or "", target.port or default_port


def _hub_reachable(host: str, port: int, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextmanager
def _hub_offline_if_requested() -> Iterator[None]:
    """Honour ``HF_HUB_OFFLINE`` even when it was set after ``huggingface_hub`` was imported."""
    if not _offline_mode():
        yield
        return
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def load_pretrained(name: str, build: Callable[[], nn.Module]) -> nn.Module:
    """Build a model whose constructor downloads pretrained weights, or raise a clear error.

    Parameters
    ----------
    name : str
        Architecture name, used in the error message.
    build : Callable[[], nn.Module]
        Zero-argument constructor that fetches the weights (from the Hugging Face hub or its local cache).

    Returns
    -------
    nn.Module
        The model with pretrained weights.

    Raises
    ------
    RuntimeError
        If the hub (or the proxy configured for it) is unreachable (probed with a short timeout) or the
        weights are not in the local cache while ``HF_HUB_OFFLINE=1``.
    """
    if not _offline_mode():
        host, port = _probe_address()
        if not _hub_reachable(host, port):
            raise RuntimeError(
                f"pretrained=True for '{name}' but the Hugging Face hub is unreachable (no connection to "
                f"{host}:{port} within {HUB_PROBE_TIMEOUT_S:.0f} s). Use pretrained=False, or pre-download the "
                "weights and set HF_HUB_OFFLINE=1 to load them from the local cache."
            )
    try:
        with _hub_offline_if_requested():
            return build()
    except (OSError, RuntimeError, ValueError) as error:
        raise RuntimeError(
            f"could not load pretrained weights for '{name}' ({error}). Use pretrained=False, or make the "
            "weights available in the Hugging Face cache."
        ) from error


def create_timm_model(backbone: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    """Create a timm model; with ``pretrained=True`` fail fast when the weights cannot be fetched.

    Parameters
    ----------
    backbone : str
        timm architecture name, e.g. ``"convnext_tiny"``.
    pretrained : bool
        Whether to load pretrained weights.
    **kwargs
        Forwarded to ``timm.create_model``.

    Returns
    -------
    nn.Module
        The timm model.
    """
    if not pretrained:
        return timm.create_model(backbone, pretrained=False, **kwargs)
    return load_pretrained(backbone, lambda: timm.create_model(backbone, pretrained=True, **kwargs))
