"""Workspace-wide pytest hooks: GPU tests skip cleanly when CUDA is unavailable."""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip_gpu)


import os

_ROOT = os.path.dirname(__file__)
_BEFORE = set(os.listdir(_ROOT))


@pytest.fixture(autouse=True)
def _tmp_guard(request):
    yield
    new = set(os.listdir(_ROOT)) - _BEFORE
    if new:
        _BEFORE.update(new)
        print(f"\nLEAK {request.node.nodeid}: {new}", file=open("/tmp/leak.log", "a"))
