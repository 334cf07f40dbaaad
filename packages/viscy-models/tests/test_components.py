import pytest
import torch

from viscy_models._components import (
    ConvBlock2D,
    ConvBlock3D,
    PixelToVoxelHead,
    PixelToVoxelShuffleHead,
    StemDepthtoChannels,
    UNeXt2Decoder,
    UNeXt2Stem,
    UNeXt2UpStage,
    UnsqueezeHead,
    icnr_init,
)
from viscy_models._components.blocks import _get_convnext_stage


def _same_conv(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=conv.kernel_size[0] // 2)


def test_unext2_stem_folds_depth_into_channels():
    stem = UNeXt2Stem(in_channels=1, out_channels=96, kernel_size=(5, 4, 4), in_stack_depth=5)
    assert set(stem.state_dict()) == {"conv.weight", "conv.bias"}
    assert stem(torch.rand(1, 1, 5, 64, 64)).shape == (1, 96, 16, 16)


def test_stem_depth_to_channels_matches_the_encoder_width():
    stem = StemDepthtoChannels(in_channels=1, in_stack_depth=15, in_channels_encoder=96)
    assert stem.conv.out_channels == 32
    assert stem(torch.rand(1, 1, 15, 64, 64)).shape == (1, 96, 16, 16)
    with pytest.raises(ValueError, match="more channels"):
        StemDepthtoChannels(in_channels=1, in_stack_depth=15, in_channels_encoder=97)


def test_pixel_to_voxel_head_shapes_and_keys():
    head = PixelToVoxelHead(224, 2, out_stack_depth=5, expansion_ratio=4, pool=False)
    assert set(head.state_dict()) == {
        "conv.0.conv.weight",
        "conv.0.conv.bias",
        "conv.0.adn.A.weight",
        "conv.1.weight",
        "conv.1.bias",
    }
    assert head(torch.rand(1, 224, 16, 16)).shape == (1, 2, 5, 64, 64)


def test_unsqueeze_head_adds_depth():
    assert UnsqueezeHead()(torch.rand(2, 3, 8, 8)).shape == (2, 3, 1, 8, 8)


@pytest.mark.parametrize(("in_channels", "out_channels", "batch"), [(160, 2, 1), (240, 3, 2)])
def test_pixel_to_voxel_shuffle_head_is_parameter_free(in_channels, out_channels, batch):
    head = PixelToVoxelShuffleHead(in_channels, out_channels, out_stack_depth=5, xy_scaling=4)
    assert len(head.state_dict()) == 0
    assert head(torch.rand(batch, in_channels, 16, 16)).shape == (batch, out_channels, 5, 64, 64)


def test_pixel_to_voxel_shuffle_head_rejects_inconsistent_channels():
    with pytest.raises(ValueError, match="= 160, got 150"):
        PixelToVoxelShuffleHead(150, 2, out_stack_depth=5, xy_scaling=4)


def test_icnr_init_replicates_the_kernel_over_sub_pixels():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 64, 3)
    before = conv.weight.detach().clone()
    icnr_init(conv, upsample_factor=2, upsample_dims=2)
    weight = conv.weight.detach()
    assert weight.shape == before.shape
    assert not torch.equal(weight, before) and weight.abs().sum() > 0
    # PixelShuffle(2) maps output channels 4c..4c+3 to the 4 sub-pixels of channel c: they must start identical
    grouped = weight.reshape(16, 4, 16, 3, 3)
    assert torch.equal(grouped, grouped[:, :1].expand_as(grouped))
    assert not torch.equal(grouped[0, 0], grouped[1, 0])


def test_convnext_stage_keeps_shape_and_key_layout():
    stage = _get_convnext_stage(96, 96, depth=2)
    keys = set(stage.state_dict())
    assert len(keys) == 20 and not any(k.startswith("downsample") for k in keys)
    assert "blocks.1.mlp.grn.weight" in keys
    assert stage(torch.rand(1, 96, 32, 32)).shape == (1, 96, 32, 32)
    assert any(k.startswith("downsample.1") for k in _get_convnext_stage(96, 48, depth=1).state_dict())


@pytest.mark.parametrize("mode", ["pixelshuffle", "deconv"])
def test_up_stage_upsamples_and_merges_the_skip(mode):
    stage = UNeXt2UpStage(
        192, 96, 96, scale_factor=2, mode=mode, conv_blocks=2, norm_name="instance", upsample_pre_conv=None
    )
    assert stage(torch.rand(1, 192, 16, 16), torch.rand(1, 96, 32, 32)).shape == (1, 96, 32, 32)


def test_decoder_does_not_mutate_the_feature_list():
    decoder = UNeXt2Decoder(
        [384, 192, 96], norm_name="instance", mode="pixelshuffle", conv_blocks=1, strides=[2, 2], upsample_pre_conv=None
    )
    features = [torch.rand(1, 384, 8, 8), torch.rand(1, 192, 16, 16), torch.rand(1, 96, 32, 32)]
    assert decoder(features).shape == (1, 96, 32, 32)
    assert len(features) == 3


@pytest.mark.parametrize(
    ("filter_steps", "expected"),
    [
        ("first", [(8, 16), (16, 16), (16, 16)]),
        ("last", [(8, 8), (8, 8), (8, 16)]),
        ("linear", [(8, 10), (10, 13), (13, 16)]),
    ],
)
def test_conv_block_2d_filter_schedules(filter_steps, expected):
    block = ConvBlock2D(8, 16, filter_steps=filter_steps)
    convs = [getattr(block, f"Conv2d_{i}") for i in range(3)]
    assert [(c.in_channels, c.out_channels) for c in convs] == expected
    assert block(torch.rand(2, 8, 16, 16)).shape == (2, 16, 16, 16)


def test_conv_block_2d_key_names_and_residual_conv_always_present():
    block = ConvBlock2D(8, 4, residual=False, num_repeats=2, dropout=0.5)
    keys = set(block.state_dict())
    assert {"Conv2d_0.weight", "batch_norm_1.running_mean", "resid_conv.weight"} <= keys
    assert len(keys) == 2 * 2 + 2 * 5 + 2
    names = dict(block.named_children())
    assert "relu_act_0" in names and isinstance(names["dropout_1"], torch.nn.Dropout2d)
    assert names["dropout_1"].p == 0.5


def test_conv_block_2d_linear_activation_and_no_norm():
    block = ConvBlock2D(4, 4, norm="none", activation="linear", num_repeats=1, residual=False)
    x = torch.rand(1, 4, 8, 8)
    torch.testing.assert_close(block(x), _same_conv(block.Conv2d_0, x))


def test_conv_block_2d_residual_pads_channels_when_widening():
    block = ConvBlock2D(2, 4, norm="none", activation="linear", num_repeats=1, residual=True)
    x = torch.rand(1, 2, 8, 8)
    expected = _same_conv(block.Conv2d_0, x) + torch.cat([x, torch.zeros(1, 2, 8, 8)], dim=1)
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kernel_size": 4}, ValueError),
        ({"transpose": True}, NotImplementedError),
        ({"activation": "gelu"}, NotImplementedError),
    ],
)
def test_conv_block_2d_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        ConvBlock2D(4, 8, **kwargs)


def test_conv_block_2d_validates_input_channels_on_request():
    with pytest.raises(ValueError, match=r"\(B, C=4, H, W\)"):
        ConvBlock2D(4, 8)(torch.rand(1, 3, 8, 8), validate_input=True)


@pytest.mark.parametrize("layer_order", ["can", "cna"])
def test_conv_block_3d_keeps_spatial_size(layer_order):
    block = ConvBlock3D(8, 16, layer_order=layer_order, dropout=0.1)
    assert isinstance(block.dropout_0, torch.nn.Dropout3d)
    assert block(torch.rand(1, 8, 5, 32, 32)).shape == (1, 16, 5, 32, 32)


def test_conv_block_3d_valid_padding_shrinks():
    block = ConvBlock3D(2, 2, kernel_size=(3, 3, 3), padding="valid", num_repeats=1, residual=False)
    assert block(torch.rand(1, 2, 5, 8, 8)).shape == (1, 2, 3, 6, 6)
