import pytest
import torch
from models_testing import state_dict_summary

from viscy_models.vae import ConvVAE
from viscy_models.vae.losses import compute_kl_divergence, vae_loss


@pytest.fixture(scope="module")
def model() -> ConvVAE:
    torch.manual_seed(0)
    vae = ConvVAE()
    vae(torch.rand(2, 2, 128, 94))  # materialise the lazily sized fc_mu / fc_logvar
    return vae


def test_forward_shapes_and_split_activation(model):
    x = torch.randn(2, 2, 128, 94) * 5
    model.train()
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape
    assert mu.shape == logvar.shape == (2, 128)
    assert (recon[:, 0] >= 0).all()
    assert (recon[:, 1].abs() <= 1).all()


def test_defaults_give_more_than_ten_million_parameters(model):
    assert model.latent_dim == 128
    assert sum(p.numel() for p in model.parameters()) > 10_000_000


def test_encoder_layout_and_lazy_sizing(model):
    convs = [m for m in model.encoder.conv.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in convs] == [
        (2, 64, (2, 2)),
        (64, 128, (2, 2)),
        (128, 256, (2, 2)),
        (256, 512, (2, 2)),
        (512, 512, (2, 2)),
    ]
    assert model.encoder.fc_mu.in_features == 512 * 4 * 3  # 128 x 94 padded to 128 x 96, / 32
    last_block = model.decoder.deconv[-1]
    assert len(last_block) == 1 and isinstance(last_block[0], torch.nn.ConvTranspose2d)
    assert last_block[0].out_channels == 2


def test_logvar_is_clamped(model):
    with torch.no_grad():
        model.encoder.fc_logvar.bias.fill_(100.0)
        _, _, logvar = model.eval()(torch.rand(1, 2, 128, 94))
        model.encoder.fc_logvar.bias.zero_()
    assert logvar.max() == 20.0


def test_eval_mode_is_deterministic(model):
    model.eval()
    x = torch.rand(1, 2, 128, 94)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], model(x)[0])


def test_sample_has_default_shape(model):
    samples = model.sample(3, torch.device("cpu"))
    assert samples.shape == (3, 2, 128, 94)
    assert (samples[:, 0] >= 0).all() and (samples[:, 1].abs() <= 1).all()


def test_configurable_latent_channels_and_shape():
    vae = ConvVAE(latent_dim=16, input_shape=(32, 30), channels=(8, 16))
    recon, mu, _ = vae(torch.rand(3, 2, 32, 30))
    assert recon.shape == (3, 2, 32, 30) and mu.shape == (3, 16)
    assert vae.sample(2, "cpu").shape == (2, 2, 32, 30)


@pytest.mark.parametrize("shape", [(1, 3, 128, 94), (1, 2, 64, 94), (2, 128, 94)])
def test_bad_input_raises_before_convolution(model, shape):
    calls = []
    handle = model.encoder.conv[0].register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"expected input of shape \(B, C=2, H, W\)"):
            model(torch.rand(*shape))
    finally:
        handle.remove()
    assert calls == []


def test_vae_loss_matches_hand_computation():
    recon = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    target = torch.zeros_like(recon)
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, 1.0]])
    total, recon_loss, kl = vae_loss(recon, target, mu, logvar, kl_weight=0.5)
    expected_recon = (1 + 4) / 4
    expected_kl = -0.5 * ((1 + 0 - 1 - 1) + (1 + 1 - 0 - torch.e))
    assert recon_loss.item() == pytest.approx(expected_recon)
    assert kl.item() == pytest.approx(float(expected_kl))
    assert total.item() == pytest.approx(expected_recon + 0.5 * float(expected_kl))
    assert compute_kl_divergence(mu, logvar) == pytest.approx(float(expected_kl))
    assert isinstance(compute_kl_divergence(mu, logvar), float)


def test_vae_loss_works_for_any_channel_count_and_checks_shapes():
    total, _, _ = vae_loss(torch.rand(2, 5, 4, 4), torch.rand(2, 5, 4, 4), torch.zeros(2, 3), torch.zeros(2, 3), 1.0)
    assert torch.isfinite(total)
    with pytest.raises(ValueError, match="recon shape"):
        vae_loss(torch.rand(2, 2, 4, 4), torch.rand(2, 1, 4, 4), torch.zeros(2, 3), torch.zeros(2, 3), 1.0)


def test_output_is_softplus_on_channel_0_and_tanh_on_channel_1_of_the_cropped_decoder_output(model):
    raw = {}
    handle = model.decoder.deconv.register_forward_hook(lambda _module, _inputs, output: raw.update(out=output))
    try:
        with torch.no_grad():
            recon, _, _ = model.eval()(torch.rand(2, 2, 128, 94))
    finally:
        handle.remove()
    assert raw["out"].shape == (2, 2, 128, 96)  # decoded at the padded size, then cropped
    cropped = raw["out"][..., :128, :94]
    torch.testing.assert_close(recon[:, 0], torch.nn.functional.softplus(cropped[:, 0]))
    torch.testing.assert_close(recon[:, 1], torch.tanh(cropped[:, 1]))


def test_input_is_zero_padded_to_a_multiple_of_32(model):
    seen = {}
    handle = model.encoder.conv.register_forward_pre_hook(lambda _module, inputs: seen.update(x=inputs[0]))
    x = torch.rand(1, 2, 100, 70)
    try:
        with torch.no_grad():
            recon, _, _ = model.eval()(x)
    finally:
        handle.remove()
    assert seen["x"].shape == (1, 2, 128, 96)
    torch.testing.assert_close(seen["x"][..., :100, :70], x)
    assert seen["x"][..., 100:, :].abs().sum() == 0 and seen["x"][..., :, 70:].abs().sum() == 0
    assert recon.shape == x.shape


def test_lazy_heads_are_sized_from_the_first_input():
    vae = ConvVAE(latent_dim=8, input_shape=(64, 40), channels=(4, 8, 8, 8, 8))
    assert isinstance(vae.encoder.fc_mu.weight, torch.nn.parameter.UninitializedParameter)
    vae(torch.rand(2, 2, 64, 40))
    assert vae.encoder.fc_mu.weight.shape == vae.encoder.fc_logvar.weight.shape == (8, 8 * 2 * 2)


def test_sampling_leaves_the_model_unchanged(model):
    model.train()
    batch_norm = model.decoder.deconv[0][1]
    before = batch_norm.running_mean.clone()
    model.sample(4, "cpu")
    assert model.training and model.decoder.training
    torch.testing.assert_close(batch_norm.running_mean, before)


def test_state_dict_loads_into_a_fresh_model_before_any_forward(model, tmp_path):
    path = tmp_path / "conv_vae.pt"
    torch.save(model.state_dict(), path)
    restored = ConvVAE()
    restored.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x = torch.rand(2, 2, 128, 94)
    with torch.no_grad():
        for original, loaded in zip(model.eval()(x), restored.eval()(x), strict=True):
            torch.testing.assert_close(loaded, original)


def test_state_dict_layout_is_pinned(model):
    count, prefixes, keys = state_dict_summary(model)
    # encoder: 5 x (conv 2 + batch norm 5) + fc_mu 2 + fc_logvar 2; decoder: fc 2 + 4 x 7 + last deconv 2
    assert count == 71
    assert prefixes == {"encoder", "decoder"}
    for key in (
        "encoder.conv.0.0.weight",
        "encoder.conv.4.1.running_var",
        "encoder.fc_mu.weight",
        "encoder.fc_logvar.bias",
        "decoder.fc.weight",
        "decoder.deconv.3.1.num_batches_tracked",
        "decoder.deconv.4.0.bias",
    ):
        assert key in keys
    assert "decoder.deconv.4.1.weight" not in keys  # the last block is a bare ConvTranspose2d
