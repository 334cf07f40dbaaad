"""Shared fixtures of the DynaCLR tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from dynaclr_testing import TinyEncoder, train_tiny_checkpoint, write_triplet_plate


@pytest.fixture
def tiny_encoder() -> TinyEncoder:
    torch.manual_seed(0)
    return TinyEncoder()


@pytest.fixture
def dynaclr_triplet_plate(tmp_path: Path) -> dict[str, Path]:
    """A tiny real plate (channels Phase3D, RFP) with per-FOV tracks CSVs."""
    return write_triplet_plate(tmp_path)


@pytest.fixture(scope="module")
def tiny_trained_checkpoint(tmp_path_factory) -> dict[str, Path]:
    """A tiny plate and a checkpoint of the tiny module trained on it for 2 steps."""
    root = tmp_path_factory.mktemp("trained")
    paths = write_triplet_plate(root)
    paths["ckpt_path"] = train_tiny_checkpoint(paths, root / "tiny.ckpt")
    return paths
