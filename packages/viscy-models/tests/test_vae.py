import pytest
import torch
from models_testing import state_dict_summary

from viscy_models import BetaVae25D, BetaVaeMonai


@pytest.fixture(scope="module")
def resnet_vae() -> BetaVae25D:
    return BetaVae25D(in_channels=1, in_stack_depth=5, input_spatial_size=(64, 64)).eval()


def test_beta_vae_25d_state_dict_layout(resnet_vae):
    count, prefixes, keys = state_dict_summary(resnet_vae)
    assert count == 470
    assert prefixes == {"decoder", "encoder"}
    assert sum(k.startswith("encoder.") for k in keys) == 325
    assert sum(k.startswith("decoder.") for k in keys) == 145
    for key in (
        "encoder.stem.conv.weight",
        "encoder.stem.conv.bias",
        "encoder.encoder.layer2.1.bn1.running_mean",
        "encoder.fc_mu.weight",
        "decoder.decoder_stages.0.conv.0.conv.unit0.adn.N.bias",
        "decoder.decoder_stages.3.conv.0.residual.bias",
    ):
        assert key in keys


def test_beta_vae_25d_forward_outputs(resnet_vae):
    with torch.no_grad():
        out = resnet_vae(torch.rand(2, 1, 5, 64, 64))
    assert out.recon_x.shape == (2, 1, 16, 64, 64)
    assert out.mean.shape == out.logvar.shape == out.z.shape == (2, 1024)


def test_beta_vae_25d_convnext_reconstructs_input_size():
    model = BetaVae25D(
        backbone="convnext_tiny",
        in_channels=1,
        in_stack_depth=15,
        out_stack_depth=5,
        latent_dim=64,
        input_spatial_size=(128, 128),
        stem_kernel_size=(5, 4, 4),
        stem_stride=(5, 4, 4),
        decoder_stages=3,
    ).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 15, 128, 128)).recon_x.shape == (1, 1, 5, 128, 128)


def test_beta_vae_25d_bad_input_raises_before_convolution(resnet_vae):
    calls = []
    handle = resnet_vae.encoder.stem.conv.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"\(B, C=1, D=5, H=64, W=64\)"):
            resnet_vae(torch.rand(1, 1, 5, 96, 96))
    finally:
        handle.remove()
    assert calls == []


def test_beta_vae_25d_rejects_unknown_backbone():
    with pytest.raises(ValueError, match="resnet\\* or convnext\\*"):
        BetaVae25D(backbone="vit_tiny_patch16_224")


def test_beta_vae_monai_layout_and_outputs():
    model = BetaVaeMonai(
        spatial_dims=2, in_shape=(1, 64, 64), out_channels=1, latent_size=128, channels=(16, 32, 64), strides=(2, 2, 2)
    )
    count, prefixes, keys = state_dict_summary(model)
    assert count == 23
    assert prefixes == {"model"}
    for key in (
        "model.encode.encode_0.conv.bias",
        "model.encode.encode_0.conv.weight",
        "model.decode.decode_0.conv.conv.bias",
        "model.decode.decode_2.conv.conv.bias",
        "model.mu.weight",
        "model.mu.bias",
        "model.logvar.weight",
    ):
        assert key in keys
    out = model(torch.rand(2, 1, 64, 64))
    assert out.recon_x.shape == (2, 1, 64, 64)
    assert out.mean.shape == out.logvar.shape == out.z.shape == (2, 128)
    with pytest.raises(ValueError, match=r"\(B, C=1, S0=64, S1=64\)"):
        model(torch.rand(2, 1, 32, 32))


def test_beta_vae_monai_rejects_unknown_norm():
    with pytest.raises(ValueError, match="norm must be 'batch' or 'instance'"):
        BetaVaeMonai(2, (1, 32, 32), 1, 8, (4, 8), (2, 2), norm="group")
