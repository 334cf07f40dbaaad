import pytest
import torch

from viscy_data.channel_dropout import ChannelDropout


def _batch(b=8, c=3):
    return torch.rand(b, c, 2, 4, 4) + 1.0  # strictly positive, so zeros mean dropped


def test_eval_mode_is_identity_without_copy():
    dropout = ChannelDropout([0, 1], p=1.0).eval()
    x = _batch()
    assert dropout(x) is x


def test_zero_probability_is_identity():
    x = _batch()
    assert ChannelDropout([0], p=0.0).train()(x) is x


def test_probability_one_drops_every_sample_and_only_listed_channels():
    x = _batch()
    out = ChannelDropout([1], p=1.0).train()(x)
    assert torch.all(out[:, 1] == 0)
    torch.testing.assert_close(out[:, [0, 2]], x[:, [0, 2]])


def test_input_is_not_modified_and_dtype_kept():
    x = _batch().to(torch.float16)
    before = x.clone()
    out = ChannelDropout([0, 2], p=1.0).train()(x)
    torch.testing.assert_close(x, before)
    assert out.dtype == torch.float16 and out.device == x.device and out.shape == x.shape


def test_drop_rate_matches_p_per_sample_and_channel():
    torch.manual_seed(0)
    dropout = ChannelDropout([0, 1], p=0.3).train()
    x = torch.ones(4000, 3, 1, 2, 2)
    out = dropout(x)
    dropped = out[:, :2].flatten(2).eq(0).all(dim=2)  # (B, 2): whole channel zeroed
    assert torch.all(out[:, :2].flatten(2).eq(0).any(dim=2) == dropped)  # all-or-nothing per channel
    rate = dropped.float().mean().item()
    # binomial std for n=8000 at p=0.3 is ~0.005; allow 4 sigma
    assert abs(rate - 0.3) < 0.02
    # channels are drawn independently: joint rate ~ p^2
    joint = (dropped[:, 0] & dropped[:, 1]).float().mean().item()
    assert abs(joint - 0.09) < 0.02


def test_invalid_probability_raises():
    with pytest.raises(ValueError, match="p must be in"):
        ChannelDropout([0], p=1.5)


def test_channel_out_of_range_raises():
    with pytest.raises(IndexError, match="out of range"):
        ChannelDropout([5], p=0.5).train()(_batch(c=2))


@pytest.mark.gpu
def test_cuda_tensor_stays_on_device_without_sync():
    x = _batch().cuda()
    dropout = ChannelDropout([0], p=0.5).train()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = dropout(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.is_cuda and out.dtype == x.dtype


def test_dropped_channels_are_exact_zeros_even_for_non_finite_values():
    x = torch.full((3, 2, 1, 2, 2), float("nan"))
    out = ChannelDropout([-1], p=1.0).train()(x)
    assert torch.all(out[:, 1] == 0) and torch.all(out[:, 0].isnan())


def test_each_sample_is_drawn_independently():
    torch.manual_seed(1)
    out = ChannelDropout([0], p=0.5).train()(torch.ones(64, 1, 1, 1, 1))
    dropped = out.flatten().eq(0)
    assert 0 < int(dropped.sum()) < 64  # neither all nor none of the samples share one draw


def test_generator_makes_the_mask_reproducible_whatever_the_global_rng():
    dropout = ChannelDropout([0, 1], p=0.5).train()
    x = torch.ones(64, 3, 1, 2, 2)
    torch.manual_seed(1)
    first = dropout(x, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(2)
    again = dropout(x, generator=torch.Generator().manual_seed(7))
    other = dropout(x, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    assert 0 < int((first[:, :2] == 0).sum()) < first[:, :2].numel()
