import numpy as np
import torch

from viscy_utils.log_images import detach_sample, render_images


def test_detach_sample_takes_middle_slice_of_first_samples():
    anchor = torch.arange(3 * 1 * 5 * 4 * 4, dtype=torch.float32).reshape(3, 1, 5, 4, 4)
    positive = anchor + 1000
    samples = detach_sample([anchor, positive], log_samples_per_batch=2)
    assert len(samples) == 2 and all(len(row) == 2 for row in samples)
    np.testing.assert_array_equal(samples[1][0], anchor[1, 0, 2].numpy())
    np.testing.assert_array_equal(samples[0][1], positive[0, 0, 2].numpy())
    assert samples[0][0].shape == (4, 4)


def test_detach_sample_is_limited_by_batch_size():
    assert len(detach_sample([torch.zeros(1, 2, 3, 4, 4)], log_samples_per_batch=5)) == 1


def test_render_images_grid_shape_and_colormaps():
    ramp = np.tile(np.linspace(0, 1, 8), (8, 1))
    two_channels = np.stack([ramp, ramp.T])
    grid = render_images([[ramp, two_channels], [ramp, two_channels]])
    assert grid.shape == (16, 24, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[0, 0], [0, 0, 0])  # gray minimum
    np.testing.assert_array_equal(grid[0, 7], [255, 255, 255])  # gray maximum
    assert grid[0, 15, 0] > grid[0, 15, 2]  # inferno maximum is yellow


def test_render_images_uses_given_colormaps():
    ramp = np.tile(np.linspace(0, 1, 4), (4, 1))
    grid = render_images([[ramp, ramp]], cmaps=["gray", "gray"])
    np.testing.assert_array_equal(grid[:, :4], grid[:, 4:])
