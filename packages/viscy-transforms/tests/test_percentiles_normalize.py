"""Percentile rescaling and NormalizeSampled, per sample and batched."""

import warnings

import monai.transforms as mt
import pytest
import torch
from monai.data.utils import collate_meta_tensor

import viscy_transforms as vt
from viscy_transforms._percentiles import batched_quantile


def test_batched_quantile_matches_torch_quantile():
    values = torch.randn(5, 101)
    for q in (0.0, 0.013, 0.5, 0.99, 1.0):
        torch.testing.assert_close(batched_quantile(values, q), torch.quantile(values, q, dim=-1))


@pytest.mark.parametrize("channel_wise", [False, True])
@pytest.mark.parametrize("relative", [False, True])
def test_percentiles_match_monai_per_sample(device, channel_wise, relative):
    images = torch.randn(4, 2, 3, 8, 8) * torch.arange(1, 5).view(-1, 1, 1, 1, 1)
    kwargs = dict(lower=5, upper=95, b_min=0.0, b_max=1.0, clip=True, relative=relative, channel_wise=channel_wise)
    out = vt.BatchedScaleIntensityRangePercentiles(**kwargs)(images.to(device)).cpu()
    for i in range(4):
        expected = mt.ScaleIntensityRangePercentiles(**kwargs)(images[i])
        torch.testing.assert_close(out[i], torch.as_tensor(expected), atol=1e-5, rtol=1e-5)


def test_constant_sample_is_shifted_with_a_warning():
    images = torch.randn(2, 1, 2, 4, 4)
    images[1] = 3.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = vt.BatchedScaleIntensityRangePercentiles(1, 99, 0.0, 1.0)(images)
    assert any("a_min == a_max" in str(w.message) for w in caught)
    assert torch.equal(out[1], torch.zeros_like(out[1]))


def test_percentile_validation():
    with pytest.raises(ValueError, match="lower"):
        vt.BatchedScaleIntensityRangePercentiles(-1, 99, 0.0, 1.0)


def test_monai_named_percentiles_wrapper_is_per_sample_on_batches():
    images = torch.rand(3, 1, 2, 8, 8) * torch.tensor([1.0, 10.0, 100.0]).view(-1, 1, 1, 1, 1)
    out = vt.ScaleIntensityRangePercentilesd(keys=["img"], lower=50, upper=99, b_min=0.0, b_max=1.0)({"img": images})
    for i in range(3):
        expected = mt.ScaleIntensityRangePercentiles(50, 99, 0.0, 1.0)(images[i])
        torch.testing.assert_close(out["img"][i], torch.as_tensor(expected))
    per_sample = vt.ScaleIntensityRangePercentilesd(keys=["img"], lower=50, upper=99, b_min=0.0, b_max=1.0)(
        {"img": images[2]}
    )
    torch.testing.assert_close(per_sample["img"], out["img"][2])


def norm_meta(mean, std) -> dict:
    return {"ch": {"fov_statistics": {"mean": mean, "std": std}, "dataset_statistics": {"mean": mean, "std": std}}}


def test_normalize_sampled_with_scalar_stats_on_a_sample():
    image = torch.rand(1, 2, 8, 8)
    sample = {"ch": image, "norm_meta": norm_meta(torch.tensor(0.5), torch.tensor(2.0))}
    out = vt.NormalizeSampled(keys=["ch"], level="fov_statistics")(sample)
    torch.testing.assert_close(out["ch"], (image - 0.5) / (2.0 + 1e-8))
    assert "norm_meta" in out


def test_normalize_sampled_with_collated_stats_is_per_sample(device):
    images = torch.rand(3, 1, 2, 8, 8, device=device)
    metas = [norm_meta(torch.tensor(float(i)), torch.tensor(float(i + 1))) for i in range(3)]
    batch = {"ch": images, "norm_meta": collate_meta_tensor(metas)}
    out = vt.NormalizeSampled(keys=["ch"], level="dataset_statistics", remove_meta=True)(batch)
    expected = torch.stack([(images[i] - i) / (i + 1 + 1e-8) for i in range(3)])
    torch.testing.assert_close(out["ch"], expected)
    assert "norm_meta" not in out


def test_normalize_sampled_errors_name_the_missing_piece():
    image = torch.rand(1, 2, 8, 8)
    with pytest.raises(KeyError, match="'other'"):
        vt.NormalizeSampled(keys=["other"], level="fov_statistics")({"ch": image})
    with pytest.raises(KeyError, match="norm_meta"):
        vt.NormalizeSampled(keys=["ch"], level="fov_statistics")({"ch": image})
    with pytest.raises(KeyError, match="median"):
        vt.NormalizeSampled(keys=["ch"], level="fov_statistics", subtrahend="median")(
            {"ch": image, "norm_meta": norm_meta(torch.tensor(0.0), torch.tensor(1.0))}
        )
    with pytest.raises(ValueError, match=r"\(B,\)"):
        vt.NormalizeSampled(keys=["ch"], level="fov_statistics")(
            {"ch": torch.rand(2, 1, 1, 4, 4), "norm_meta": norm_meta(torch.zeros(3), torch.ones(3))}
        )


def test_batched_percentiles_dict_rescales_each_key_on_its_own():
    images = torch.rand(2, 1, 2, 8, 8)
    out = vt.BatchedScaleIntensityRangePercentilesd(keys=["a", "b"], lower=0, upper=100, b_min=0.0, b_max=1.0)(
        {"a": images, "b": 5 * images + 3}
    )
    torch.testing.assert_close(out["a"], out["b"])
    assert out["a"].flatten(1).amin(1).tolist() == [0.0, 0.0] and out["a"].flatten(1).amax(1).tolist() == [1.0, 1.0]
