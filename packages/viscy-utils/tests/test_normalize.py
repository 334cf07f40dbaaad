import numpy as np
import pytest

from viscy_utils.normalize import hist_adapteq_2D, hist_clipping, unzscore, zscore


def test_zscore_uses_image_statistics_by_default():
    image = np.array([1.0, 2.0, 3.0, np.nan])
    normalized = zscore(image)
    np.testing.assert_allclose(normalized[:3], (image[:3] - 2.0) / np.sqrt(2 / 3))


def test_zscore_honours_a_zero_mean():
    image = np.array([1.0, 3.0])
    np.testing.assert_allclose(zscore(image, im_mean=0.0, im_std=2.0), [0.5, 1.5])


def test_unzscore_inverts_zscore():
    image = np.random.default_rng(0).normal(5, 2, size=100)
    normalized = zscore(image, im_mean=5.0, im_std=2.0)
    np.testing.assert_allclose(unzscore(normalized, 5.0, 2.0), image)


def test_hist_clipping_clips_to_percentiles():
    image = np.arange(101, dtype=float)
    clipped = hist_clipping(image, 10, 90)
    assert clipped.min() == 10 and clipped.max() == 90
    np.testing.assert_array_equal(clipped[10:91], image[10:91])


@pytest.mark.parametrize("low, high", [(50, 50), (90, 10), (0, 101), (-1, 50)])
def test_hist_clipping_rejects_bad_percentiles(low, high):
    with pytest.raises(ValueError, match="min_percentile"):
        hist_clipping(np.zeros(4), low, high)


def test_hist_adapteq_2d_returns_unit_range():
    image = np.random.default_rng(0).random((32, 32))
    equalized = hist_adapteq_2D(image, kernel_size=8, clip_limit=0.02)
    assert equalized.shape == image.shape
    assert 0 <= equalized.min() and equalized.max() <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel_size": 40}, "smaller than the image"),
        ({"kernel_size": (4,)}, "length 2"),
        ({"kernel_size": 2.5}, "kernel size invalid"),
        ({"clip_limit": 2}, "clip_limit"),
    ],
)
def test_hist_adapteq_2d_validates_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hist_adapteq_2D(np.zeros((32, 32)), **kwargs)
