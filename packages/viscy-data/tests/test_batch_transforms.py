import copy

import pytest
import torch
from monai.transforms import MapTransform

from viscy_data.batch_transforms import TripletBatchTransform, stack_norm_meta_lists
from viscy_data.channel_dropout import ChannelDropout
from viscy_transforms import BatchedRandGaussianNoised

CHANNELS = ["Phase3D", "GFP"]
B, Z, Y, X = 4, 3, 10, 10
ROI = (2, 4, 4)
MEANS = [10.0, 20.0, 30.0, 40.0]


class SubtractMean(MapTransform):
    """Subtract each sample's ``fov_statistics`` mean (a normalization reading ``norm_meta``)."""

    def __call__(self, data):
        out = dict(data)
        for key in self.keys:
            mean = data["norm_meta"][key]["fov_statistics"]["mean"]
            out[key] = data[key] - mean.view(-1, *([1] * (data[key].ndim - 1)))
        return out


class AddAndRecordShape(MapTransform):
    """An augmentation adding 1000 and recording the spatial shape it saw (so it must run before the crop)."""

    def __init__(self, keys):
        super().__init__(keys)
        self.seen = []

    def __call__(self, data):
        self.seen.append(tuple(data[self.keys[0]].shape[2:]))
        return {k: (v + 1000 if k in self.keys else v) for k, v in data.items()}


def _meta(mean: float) -> dict:
    return {name: {"fov_statistics": {"mean": torch.tensor(mean)}} for name in CHANNELS}


def _batch(z: int = Z) -> dict:
    """anchor/positive/negative of ramps, anchor metadata as a per-sample list, the others stacked."""
    ramp = torch.arange(B * 2 * z * Y * X, dtype=torch.float32).view(B, 2, z, Y, X)
    metas = [_meta(m) for m in MEANS]
    return {
        "anchor": ramp.clone(),
        "anchor_norm_meta": metas,
        "positive": ramp + 1,
        "positive_norm_meta": stack_norm_meta_lists({"positive_norm_meta": metas})["positive_norm_meta"],
        "negative": ramp + 2,
        "negative_norm_meta": [_meta(m) for m in MEANS[::-1]],
        "index": [{"t": i} for i in range(B)],
    }


def _crop(x: torch.Tensor, roi=ROI) -> torch.Tensor:
    starts = [(n - r) // 2 for n, r in zip(x.shape[2:], roi, strict=True)]
    return x[(slice(None), slice(None), *(slice(s, s + r) for s, r in zip(starts, roi, strict=True)))]


@pytest.mark.parametrize("z", [1, Z])
def test_normalize_then_augment_then_crop_then_drop_channels(z):
    augment = AddAndRecordShape(keys=CHANNELS)
    dropout = ChannelDropout(channels=[1], p=1.0)
    roi = (min(z, ROI[0]), *ROI[1:])
    step = TripletBatchTransform(CHANNELS, [SubtractMean(keys=CHANNELS)], [augment], roi, channel_dropout=dropout)
    batch = _batch(z)
    raw = {key: batch[key].clone() for key in ("anchor", "positive", "negative")}
    out = step(batch, augment=("positive", "negative"))
    assert out is batch and set(out) == {"anchor", "positive", "negative", "index"}
    assert out["index"] == [{"t": i} for i in range(B)]
    assert augment.seen == [(z, Y, X)] * 2  # before the crop, once per augmented key
    means = torch.tensor(MEANS).view(-1, 1, 1, 1, 1)
    expected = {
        "anchor": _crop(raw["anchor"] - means, roi),
        "positive": _crop(raw["positive"] - means + 1000, roi),
        "negative": _crop(raw["negative"] - means.flip(0) + 1000, roi),
    }
    expected["anchor"][:, 1] = 0  # dropped: anchor and positive only
    expected["positive"][:, 1] = 0
    for key, value in expected.items():
        assert out[key].shape == (B, 2, *roi)
        torch.testing.assert_close(out[key], value, rtol=0, atol=0)


def test_evaluation_dropout_and_no_augmentation_leave_patches_normalized_and_cropped():
    dropout = ChannelDropout(channels=[0, 1], p=1.0).eval()
    augment = AddAndRecordShape(keys=CHANNELS)
    step = TripletBatchTransform(CHANNELS, [SubtractMean(keys=CHANNELS)], [augment], ROI, channel_dropout=dropout)
    batch = _batch()
    expected = _crop(batch["anchor"] - torch.tensor(MEANS).view(-1, 1, 1, 1, 1))
    out = step(batch, augment=())
    assert augment.seen == []
    torch.testing.assert_close(out["anchor"], expected, rtol=0, atol=0)


def _random_step() -> TripletBatchTransform:
    noise = BatchedRandGaussianNoised(keys=CHANNELS, prob=1.0, std=1.0)
    return TripletBatchTransform(CHANNELS, [], [noise], ROI, channel_dropout=ChannelDropout(channels=[0, 1], p=0.5))


def test_seed_fixes_the_augmentations_and_the_dropped_channels():
    batch = _batch()
    first, second, other = (_random_step()(copy.deepcopy(batch), seed=s) for s in (7, 7, 8))
    for key in ("anchor", "positive", "negative"):
        assert torch.equal(first[key], second[key]), key
        assert not torch.equal(first[key], other[key]), key
    dropped = (first["anchor"] == 0).flatten(2).all(2)
    assert dropped.any() and not dropped.all()


def test_a_tensor_passes_unchanged():
    example = torch.rand(1, 2, Z, Y, X)
    assert _random_step()(example) is example


def test_nonfinite_pixels_are_checked_before_any_transform():
    augment = AddAndRecordShape(keys=CHANNELS)
    step = TripletBatchTransform(CHANNELS, [], [augment], ROI, owner="MyModule")
    batch = _batch()
    batch["negative"][2, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"MyModule: .*'negative': 1 NaN/Inf pixels in samples \[2\]"):
        step(batch)
    assert augment.seen == []
    zeroing = TripletBatchTransform(CHANNELS, [], [], ROI, nonfinite="zero")
    batch["negative"][2, 0, 1, 5, 5] = float("inf")
    assert torch.isfinite(zeroing(batch)["negative"]).all()
    with pytest.raises(ValueError, match=r"MyModule: nonfinite must be one of \['raise', 'zero'\], got 'drop'"):
        TripletBatchTransform(CHANNELS, [], [], ROI, nonfinite="drop", owner="MyModule")


def test_stack_norm_meta_lists_stacks_lists_only():
    stacked = stack_norm_meta_lists(_batch())
    assert stacked["anchor_norm_meta"]["GFP"]["fov_statistics"]["mean"].tolist() == MEANS
    assert stacked["negative_norm_meta"]["Phase3D"]["fov_statistics"]["mean"].tolist() == MEANS[::-1]
    with_missing = stack_norm_meta_lists({"anchor_norm_meta": [_meta(1.0), None]})
    assert with_missing["anchor_norm_meta"] is None


@pytest.mark.gpu
def test_runs_on_the_batch_device_and_repeats_for_a_seed():
    from lightning.fabric.utilities.apply_func import move_data_to_device

    batch = move_data_to_device(stack_norm_meta_lists(_batch()), torch.device("cuda"))
    first, second = (_random_step()(copy.deepcopy(batch), seed=5) for _ in range(2))
    for key in ("anchor", "positive", "negative"):
        assert first[key].device.type == "cuda" and first[key].shape == (B, 2, *ROI)
        assert torch.equal(first[key], second[key]), key
