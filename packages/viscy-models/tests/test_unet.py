import pytest
import torch
from models_testing import state_dict_summary

from viscy_models import FullyConvolutionalMAE, Unet2d, Unet25d, UNeXt2
from viscy_models.unet.fcmae import (
    MaskedAdaptiveProjection,
    MaskedConvNeXtV2Block,
    generate_mask,
    masked_patchify,
    masked_unpatchify,
    upsample_mask,
)


def _assert_rejected_before_convolution(model, first_conv, x, expected):
    calls = []
    handle = first_conv.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(ValueError, match=expected):
            model(x)
    finally:
        handle.remove()
    assert calls == []


@pytest.fixture(scope="module")
def unext2_atto() -> UNeXt2:
    return UNeXt2(backbone="convnextv2_atto").eval()


def test_unext2_atto_state_dict_layout(unext2_atto):
    count, prefixes, keys = state_dict_summary(unext2_atto)
    assert count == 213
    assert prefixes == {"decoder", "encoder_stages", "head", "stem"}
    assert [sum(k.startswith(p + ".") for k in keys) for p in ("stem", "encoder_stages", "decoder", "head")] == [
        2,
        134,
        72,
        5,
    ]
    for key in (
        "stem.conv.weight",
        "stem.conv.bias",
        "encoder_stages.stages_1.blocks.1.mlp.fc2.bias",
        "decoder.decoder_stages.0.conv.blocks.0.conv_dw.weight",
        "decoder.decoder_stages.0.conv.blocks.0.mlp.fc1.bias",
        "decoder.decoder_stages.2.conv.blocks.0.mlp.grn.bias",
        "head.conv.1.weight",
    ):
        assert key in keys


def test_unext2_tiny_state_dict_layout():
    model = UNeXt2()
    count, prefixes, keys = state_dict_summary(model)
    assert count == 273
    assert prefixes == {"decoder", "encoder_stages", "head", "stem"}
    assert model.state_dict()["stem.conv.weight"].shape == (96, 1, 5, 4, 4)
    assert model.num_blocks == 6 and model.out_stack_depth == 5


def test_unext2_forward_shape(unext2_atto):
    with torch.no_grad():
        assert unext2_atto(torch.rand(1, 1, 5, 64, 64)).shape == (1, 1, 5, 64, 64)


def test_unext2_different_output_depth_and_working_deconv_decoder():
    model = UNeXt2(
        in_channels=2,
        out_channels=3,
        in_stack_depth=10,
        out_stack_depth=3,
        backbone="convnextv2_atto",
        decoder_mode="deconv",
    ).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 2, 10, 32, 32)).shape == (1, 3, 3, 32, 32)


@pytest.mark.parametrize("shape", [(1, 2, 5, 64, 64), (1, 1, 4, 64, 64), (1, 1, 5, 48, 64)])
def test_unext2_bad_input_raises_before_convolution(unext2_atto, shape):
    _assert_rejected_before_convolution(
        unext2_atto, unext2_atto.stem.conv, torch.rand(*shape), r"\(B, C=1, D=5, H, W\) with H a multiple of 32"
    )


def test_unext2_rejects_depth_not_divisible_by_stem():
    with pytest.raises(ValueError, match="not divisible by stem kernel depth"):
        UNeXt2(in_stack_depth=7, backbone="convnextv2_atto")


def test_fcmae_state_dict_layout():
    count, prefixes, keys = state_dict_summary(FullyConvolutionalMAE(in_channels=1, out_channels=1))
    assert count == 222
    assert prefixes == {"decoder", "encoder"}
    assert sum(k.startswith("encoder.") for k in keys) == 180
    assert sum(k.startswith("decoder.") for k in keys) == 42
    assert sum(k.startswith("encoder.stem.") for k in keys) == 6
    for key in (
        "encoder.stem.conv3d.weight",
        "encoder.stem.norm.bias",
        "encoder.stages.0.blocks.1.mlp.fc1.weight",
        "encoder.stages.2.blocks.1.layernorm.weight",
        "decoder.decoder_stages.0.conv.blocks.0.conv_dw.bias",
        "decoder.decoder_stages.0.conv.blocks.0.mlp.fc1.bias",
    ):
        assert key in keys


@pytest.fixture(scope="module")
def small_fcmae() -> FullyConvolutionalMAE:
    return FullyConvolutionalMAE(3, 3, encoder_blocks=(1, 1, 1, 1), dims=(16, 32, 64, 128)).eval()


def test_fcmae_forward_with_and_without_mask(small_fcmae):
    x = torch.rand(2, 3, 5, 64, 64)
    with torch.no_grad():
        recon, mask = small_fcmae(x)
        assert recon.shape == x.shape and mask is None
        recon, mask = small_fcmae(x, mask_ratio=0.6)
    assert recon.shape == x.shape
    assert mask.shape == (2, 1, 64, 64) and mask.dtype == torch.bool
    assert small_fcmae.num_blocks == 8


def test_fcmae_2d_input_and_finetuning_output():
    model = FullyConvolutionalMAE(
        2, 1, encoder_blocks=(1, 1, 1, 1), dims=(16, 32, 64, 128), head_conv=True, pretraining=False
    ).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 2, 5, 32, 32)).shape == (1, 1, 5, 32, 32)
        assert model(torch.rand(1, 2, 1, 32, 32)).shape == (1, 1, 5, 32, 32)


def test_fcmae_bad_input_raises_before_convolution(small_fcmae):
    _assert_rejected_before_convolution(
        small_fcmae, small_fcmae.encoder.stem.conv3d, torch.rand(1, 3, 5, 40, 64), r"D in \{1, 5\}, H, W\) with H a"
    )


def test_masked_blocks_ignore_masked_pixels(small_fcmae):
    """Encoder features at visible positions do not depend on the content of masked pixels."""
    torch.manual_seed(0)
    stage = small_fcmae.encoder.stages[0]
    x = torch.rand(1, 16, 8, 8)
    unmasked = torch.ones(1, 1, 8, 8, dtype=torch.bool)
    unmasked[..., :4, :] = False
    altered = x.clone()
    altered[..., :4, :] = torch.rand(1, 16, 4, 8) * 10
    with torch.no_grad():
        out, out_altered = stage(x, unmasked), stage(altered, unmasked)
    block_output = out - x  # residual branch only, shortcut is the identity
    torch.testing.assert_close(block_output * unmasked, (out_altered - altered) * unmasked)


def test_mask_helpers():
    torch.manual_seed(0)
    mask = generate_mask(torch.Size([3, 1, 5, 64, 64]), stride=16, mask_ratio=0.5, device="cpu")
    assert mask.shape == (3, 1, 4, 4)
    assert mask.sum(dim=(1, 2, 3)).tolist() == [8, 8, 8]
    assert upsample_mask(mask, torch.Size([3, 1, 64, 64])).shape == (3, 1, 64, 64)
    with pytest.raises(ValueError, match="not a multiple"):
        upsample_mask(mask, torch.Size([3, 1, 30, 30]))
    features = torch.rand(3, 6, 4, 4)
    tokens = masked_patchify(features, ~mask)
    assert tokens.shape == (3, 8, 6)
    restored = masked_unpatchify(tokens, features.shape, ~mask)
    torch.testing.assert_close(restored, features * ~mask)
    torch.testing.assert_close(masked_unpatchify(masked_patchify(features), features.shape), features)


def test_unet2d_state_dict_layout_and_shape():
    model = Unet2d(in_channels=1, out_channels=1)
    count, prefixes, keys = state_dict_summary(model)
    assert count == 148
    assert prefixes == {
        "bottom_transition_block",
        "terminal_block",
        *{f"down_conv_block_{i}" for i in range(4)},
        *{f"up_conv_block_{i}" for i in range(4)},
    }
    for key in (
        "bottom_transition_block.Conv2d_0.weight",
        "down_conv_block_0.batch_norm_0.weight",
        "down_conv_block_3.batch_norm_1.running_mean",
        "up_conv_block_0.batch_norm_0.weight",
        "up_conv_block_3.resid_conv.weight",
        "terminal_block.Conv2d_0.bias",
    ):
        assert key in keys
    assert model.__name__() == "Unet2d"
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 1, 1, 32, 32)).shape == (2, 1, 1, 32, 32)
    _assert_rejected_before_convolution(
        model, model.down_conv_block_0.Conv2d_0, torch.rand(1, 1, 1, 24, 32), r"\(B, C=1, D=1, H, W\)"
    )


def test_unet25d_state_dict_layout_and_shape():
    model = Unet25d(in_channels=1, out_channels=1)
    count, prefixes, keys = state_dict_summary(model)
    assert count == 147
    assert prefixes == {
        "bottom_transition_block",
        "terminal_block",
        *{f"{block}_{i}" for block in ("down_conv_block", "skip_conv_layer", "up_conv_block") for i in range(4)},
    }
    assert sum(k.startswith("terminal_block.") for k in keys) == 9
    for key in (
        "bottom_transition_block.weight",
        "down_conv_block_0.Conv3d_0.bias",
        "down_conv_block_2.Conv3d_1.weight",
        "skip_conv_layer_3.weight",
        "up_conv_block_3.resid_conv.bias",
        "terminal_block.Conv3d_0.bias",
    ):
        assert key in keys
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 5, 32, 32)).shape == (1, 1, 1, 32, 32)
    _assert_rejected_before_convolution(
        model, model.down_conv_block_0.Conv3d_0, torch.rand(1, 1, 4, 32, 32), r"\(B, C=1, D=5, H, W\)"
    )


def test_unet25d_regression_output_depth():
    model = Unet25d(2, 3, in_stack_depth=5, out_stack_depth=3, task="reg", num_blocks=2, num_filters=(8, 16, 32))
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 2, 5, 16, 16)).shape == (1, 3, 3, 16, 16)
    with pytest.raises(ValueError, match="dropout"):
        Unet25d(dropout=0.8)
    with pytest.raises(ValueError, match="num_filters"):
        Unet25d(num_filters=(8, 16))


@pytest.mark.parametrize(
    ("kernel_size_2d", "shape", "expected"),
    [
        ((2, 4), (2, 3, 15, 6, 8), (2, 12, 3, 2)),
        ((2, 4), (2, 3, 1, 6, 8), (2, 12, 3, 2)),
        ((2, 4), (2, 3, 6, 8), (2, 12, 3, 2)),
        (2, (2, 3, 15, 6, 8), (2, 12, 3, 4)),
        (2, (2, 3, 6, 8), (2, 12, 3, 4)),
    ],
)
def test_adaptive_projection_accepts_int_or_yx_kernel_for_2d_and_3d(kernel_size_2d, shape, expected):
    stem = MaskedAdaptiveProjection(3, 12, kernel_size_2d=kernel_size_2d, kernel_depth=5, in_stack_depth=15)
    with torch.no_grad():
        assert stem(torch.rand(shape)).shape == expected


def test_adaptive_projection_yx_kernel_shapes_and_bad_inputs():
    stem = MaskedAdaptiveProjection(3, 12, kernel_size_2d=(2, 4), kernel_depth=5, in_stack_depth=15)
    assert stem.conv3d.weight.shape == (4, 3, 5, 2, 4)
    assert stem.conv2d.weight.shape == (12, 3, 2, 4)
    with pytest.raises(ValueError, match="input depth 10"):
        stem(torch.rand(1, 3, 10, 6, 8))
    with pytest.raises(ValueError, match="kernel_size_2d"):
        MaskedAdaptiveProjection(3, 12, kernel_size_2d=(2, 4, 4))


def test_masked_block_zeroes_masked_positions_including_residual():
    torch.manual_seed(0)
    block = MaskedConvNeXtV2Block(16).eval()
    x = torch.rand(2, 16, 8, 8) + 1.0
    unmasked = ~generate_mask(x.shape, stride=1, mask_ratio=0.5, device="cpu")
    hidden = ~unmasked.expand_as(x)
    with torch.no_grad():
        out = block(x, unmasked)
        reference = block(x)
        all_visible = block(x, torch.ones(2, 1, 8, 8, dtype=torch.bool))
    assert reference[hidden].abs().min() > 0  # the unmasked forward does carry the residual there
    assert torch.equal(out[hidden], torch.zeros_like(out[hidden]))
    assert out[~hidden].abs().min() > 0
    torch.testing.assert_close(all_visible, reference)
