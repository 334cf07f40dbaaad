import time

import pytest
import torch
from models_testing import state_dict_summary

from viscy_models import ContrastiveEncoder, ResNet3dEncoder
from viscy_models.contrastive.encoder import projection_mlp


@pytest.fixture(scope="module")
def dynaclr_encoder() -> ContrastiveEncoder:
    return ContrastiveEncoder(
        backbone="convnext_tiny",
        in_channels=2,
        in_stack_depth=30,
        stem_kernel_size=(5, 4, 4),
        stem_stride=(5, 4, 4),
        embedding_dim=768,
        projection_dim=32,
    ).eval()


def test_convnext_tiny_state_dict_layout():
    model = ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=5, stem_kernel_size=(5, 4, 4))
    count, prefixes, keys = state_dict_summary(model)
    assert count == 194
    assert prefixes == {"encoder", "projection", "stem"}
    assert sum(k.startswith("stem.conv.") for k in keys) == 2
    assert sum(k.startswith("projection.") for k in keys) == 14
    for key in (
        "stem.conv.weight",
        "stem.conv.bias",
        "encoder.head.norm.bias",
        "encoder.stages.0.blocks.0.conv_dw.bias",
        "encoder.stages.2.blocks.4.gamma",
        "projection.4.weight",
        "encoder.stem.1.weight",
    ):
        assert key in keys
    assert "encoder.stem.0.weight" not in keys and "encoder.head.fc.weight" not in keys


def test_resnet50_state_dict_layout():
    model = ContrastiveEncoder("resnet50", in_channels=1, in_stack_depth=10, stem_kernel_size=(5, 4, 4))
    count, prefixes, keys = state_dict_summary(model)
    assert count == 333
    assert prefixes == {"encoder", "projection", "stem"}
    assert {"encoder.bn1.weight", "encoder.layer4.2.bn3.running_var"} <= keys
    assert "encoder.conv1.weight" not in keys and "encoder.fc.weight" not in keys
    assert model.stem.conv.weight.shape == (32, 1, 5, 4, 4)
    with torch.no_grad():
        features, projections = model.eval()(torch.rand(2, 1, 10, 64, 64))
    assert features.shape == (2, 2048) and projections.shape == (2, 128)


def test_dynaclr_configuration_shapes(dynaclr_encoder):
    assert dynaclr_encoder.stem.conv.weight.shape == (16, 2, 5, 4, 4)
    with torch.no_grad():
        features, projections = dynaclr_encoder(torch.rand(2, 2, 30, 64, 64))
    assert features.shape == (2, 768)
    assert projections.shape == (2, 32)


def test_2d_configuration_shapes():
    model = ContrastiveEncoder(
        "convnext_tiny", in_channels=1, in_stack_depth=1, stem_kernel_size=(1, 4, 4), stem_stride=(1, 4, 4)
    ).eval()
    assert model.stem.conv.weight.shape == (96, 1, 1, 4, 4)
    with torch.no_grad():
        features, projections = model(torch.rand(3, 1, 1, 32, 32))
    assert features.shape == (3, 768) and projections.shape == (3, 128)


def test_state_dict_round_trips_through_a_file(dynaclr_encoder, tmp_path):
    path = tmp_path / "encoder.pt"
    torch.save(dynaclr_encoder.state_dict(), path)
    restored = ContrastiveEncoder("convnext_tiny", 2, 30, projection_dim=32).eval()
    restored.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.rand(2, 2, 30, 32, 32)
    with torch.no_grad():
        for original, loaded in zip(dynaclr_encoder(x), restored(x), strict=True):
            torch.testing.assert_close(loaded, original)


@pytest.mark.parametrize(
    "shape",
    [(1, 1, 30, 64, 64), (1, 2, 25, 64, 64), (1, 2, 30, 16, 16), (2, 30, 64, 64)],
    ids=["channels", "depth", "too-small", "4d"],
)
def test_bad_input_raises_before_any_convolution(dynaclr_encoder, shape):
    calls = []
    handle = dynaclr_encoder.stem.conv.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"expected input of shape \(B, C=2, D=30, H, W\)"):
            dynaclr_encoder(torch.rand(*shape))
    finally:
        handle.remove()
    assert calls == []


def test_stem_that_cannot_match_the_encoder_channels_is_rejected():
    with pytest.raises(ValueError, match="more channels"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=35)


def test_projection_mlp_layout():
    mlp = projection_mlp(8, 16, 4)
    assert [type(m).__name__ for m in mlp] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert len(mlp.state_dict()) == 14


def test_pretrained_with_unreachable_hub_fails_fast(unreachable_hub):
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="unreachable"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=5, pretrained=True)
    assert time.monotonic() - start < 15


def test_pretrained_offline_without_cached_weights_fails_fast(unreachable_hub, monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="could not load pretrained weights for 'convnext_tiny'"):
        ContrastiveEncoder("convnext_tiny", in_channels=1, in_stack_depth=5, pretrained=True)
    assert time.monotonic() - start < 30


def test_resnet3d_state_dict_layout_and_shapes():
    model = ResNet3dEncoder(backbone="resnet10", in_channels=1)
    count, prefixes, keys = state_dict_summary(model)
    assert count == 86
    assert prefixes == {"encoder", "projection"}
    for key in (
        "encoder.bn1.bias",
        "encoder.bn1.running_mean",
        "encoder.layer2.0.bn1.weight",
        "encoder.layer3.0.bn2.running_var",
        "projection.4.weight",
        "projection.4.running_mean",
    ):
        assert key in keys
    assert model.state_dict()["encoder.conv1.weight"].shape == (64, 1, 7, 7, 7)
    with torch.no_grad():
        embedding, projection = model.eval()(torch.rand(2, 1, 16, 16, 16))
    assert embedding.shape == (2, 512) and projection.shape == (2, 128)
    with pytest.raises(ValueError, match=r"\(B, C=1, D, H, W\)"):
        model(torch.rand(2, 3, 16, 16, 16))


def test_resnet3d_rejects_a_mismatched_embedding_dim():
    with pytest.raises(ValueError, match="embedding_dim must equal"):
        ResNet3dEncoder(backbone="resnet10", embedding_dim=2048)
