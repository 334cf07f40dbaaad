"""Shared fixtures of the viscy-models tests."""

import socket

import pytest
import torch

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _closed_local_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch) -> str:
    """Point the Hugging Face endpoint at a closed loopback port, with no proxy and no offline mode."""
    for name in (*PROXY_VARIABLES, "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    endpoint = f"http://127.0.0.1:{_closed_local_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint
