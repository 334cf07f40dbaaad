"""Shared fixtures: small seeded batches and a CPU/GPU device parameter."""

import pytest
import torch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Run a test on CPU and, when CUDA is available, on the GPU."""
    return torch.device(request.param)


@pytest.fixture
def batch() -> torch.Tensor:
    """A ``(8, 1, 3, 16, 16)`` batch of distinct random volumes."""
    generator = torch.Generator().manual_seed(0)
    return torch.rand((8, 1, 3, 16, 16), generator=generator)


@pytest.fixture(autouse=True)
def monai_meta_tracking():
    """MONAI's default meta tracking, whatever an earlier test in the process (e.g. a data module) set."""
    from monai.data import set_track_meta

    set_track_meta(True)
    yield
    set_track_meta(True)
