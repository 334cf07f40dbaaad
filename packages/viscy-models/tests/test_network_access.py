"""No network at import or construction; pretrained=True without a reachable hub fails fast and clearly."""

import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from viscy_models import BetaVaeMonai, ContrastiveEncoder, FullyConvolutionalMAE, ResNet3dEncoder, UNeXt2

NETWORK_GUARD = """
import socket

attempts = []


def _refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network access attempted")


socket.socket.connect = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


def test_importing_every_module_uses_no_network_and_the_loss_does_not_import_monai():
    code = NETWORK_GUARD + textwrap.dedent(
        """
        import sys
        import viscy_models.contrastive.loss
        loss_pulls_monai = "monai" in sys.modules
        import viscy_models
        from viscy_models import _components, contrastive, unet, vae
        for package in (viscy_models, _components, contrastive, unet, vae):
            for name in package.__all__:
                getattr(package, name)
        import viscy_models.vae.conv_vae, viscy_models.vae.losses
        print(loss_pulls_monai, len(attempts))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "0"]


@pytest.fixture
def network_attempts(monkeypatch) -> list:
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    for target, name in ((socket.socket, "connect"), (socket, "create_connection"), (socket, "getaddrinfo")):
        monkeypatch.setattr(target, name, refuse)
    return attempts


def test_constructing_models_with_default_pretrained_uses_no_network(network_attempts):
    models = [
        UNeXt2(backbone="convnextv2_atto"),
        ContrastiveEncoder("convnextv2_atto", in_channels=1, in_stack_depth=5),
        ContrastiveEncoder("resnet18", in_channels=1, in_stack_depth=5),
        ResNet3dEncoder("resnet10"),
        FullyConvolutionalMAE(1, 1, encoder_blocks=(1, 1, 1, 1), dims=(8, 16, 32, 64)),
        BetaVaeMonai(2, (1, 16, 16), 1, 4, (4, 8), (2, 2)),
    ]
    assert all(isinstance(model, torch.nn.Module) for model in models)
    assert network_attempts == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: ResNet3dEncoder("resnet10", in_channels=1, pretrained=True),
        lambda: UNeXt2(backbone="convnextv2_atto", pretrained=True),
    ],
    ids=["ResNet3dEncoder-medicalnet", "UNeXt2-timm"],
)
def test_pretrained_with_unreachable_hub_fails_fast(unreachable_hub, build):
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"pretrained=True for '\w+' but the Hugging Face hub is unreachable"):
        build()
    assert time.monotonic() - start < 15


def test_pretrained_probes_the_configured_proxy(unreachable_hub, monkeypatch):
    """Behind a proxy the download goes through it, so the proxy (here: dead) is what must be reachable."""
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        proxy_port = sock.getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")
    with pytest.raises(RuntimeError, match=f"no connection to 127.0.0.1:{proxy_port}"):
        ContrastiveEncoder("convnextv2_atto", in_channels=1, in_stack_depth=5, pretrained=True)


def test_resnet3d_pretrained_needs_a_single_input_channel(network_attempts):
    with pytest.raises(ValueError, match="in_channels=1"):
        ResNet3dEncoder("resnet10", in_channels=2, pretrained=True)
    assert network_attempts == []
