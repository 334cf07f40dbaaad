"""Channel stacking, decollation and the plain MONAI wrappers."""

import monai.transforms as mt
import pytest
import torch

import viscy_transforms as vt


def test_stack_channels_per_sample_and_batched_and_drops_other_keys():
    a, b, c = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4), torch.full((1, 2, 4, 4), 2.0)
    transform = vt.StackChannelsd({"source": ["a", "b"], "target": ["c"]})
    out = transform({"a": a, "b": b, "c": c, "norm_meta": {}})
    assert set(out) == {"source", "target"}
    assert out["source"].shape == (2, 2, 4, 4) and torch.equal(out["source"][1], b[0])
    batched = transform({"a": a[None], "b": b[None], "c": c[None]})
    assert batched["source"].shape == (1, 2, 2, 4, 4)


def test_stack_channels_names_missing_channel():
    with pytest.raises(KeyError, match="'b'"):
        vt.StackChannelsd({"source": ["a", "b"]})({"a": torch.zeros(1, 2, 2)})


def test_decollate_splits_batches():
    samples = vt.Decollate()(torch.arange(6.0).view(3, 2))
    assert len(samples) == 3 and torch.equal(samples[2], torch.tensor([4.0, 5.0]))
    dicts = vt.Decollated(keys=["img", "name"])({"img": torch.zeros(2, 1, 4), "name": ["x", "y"]})
    assert [d["name"] for d in dicts] == ["x", "y"]


def test_plain_monai_wrappers_behave_as_monai(batch):
    sample = {"img": batch[0]}
    torch.testing.assert_close(
        vt.CenterSpatialCropd(keys=["img"], roi_size=(1, 8, 8))(sample)["img"],
        mt.CenterSpatialCropd(keys=["img"], roi_size=(1, 8, 8))(sample)["img"],
    )
    normalized = vt.NormalizeIntensityd(keys=["img"])(sample)["img"]
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-5)
    flipped = vt.RandFlipd(keys=["img"], prob=1.0, spatial_axis=2)(sample)["img"]
    torch.testing.assert_close(flipped.as_tensor(), batch[0].flip(3))
    assert vt.RandSpatialCropd(keys=["img"], roi_size=(1, 8, 8))(sample)["img"].shape == (1, 1, 8, 8)
    weights = torch.zeros(1, 3, 16, 16)
    weights[0, 1, 8, 8] = 1.0
    crops = vt.RandWeightedCropd(keys=["img"], w_key="w", spatial_size=(1, 4, 4), num_samples=2)(
        {"img": batch[0], "w": weights}
    )
    assert len(crops) == 2 and crops[0]["img"].shape == (1, 1, 4, 4)
    assert vt.ToDeviced(keys=["img"], device="cpu")(sample)["img"].device.type == "cpu"


@pytest.mark.gpu
def test_to_deviced_moves_to_gpu(batch):
    assert vt.ToDeviced(keys=["img"], device="cuda")({"img": batch})["img"].is_cuda
