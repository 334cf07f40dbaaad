import numpy as np
import pytest
import torch

from viscy_utils.evaluation.metrics import (
    POD_metric,
    VOI_metric,
    labels_to_detection,
    labels_to_masks,
    mean_average_precision,
    ms_ssim_25d,
    ssim_25d,
)


def _two_squares(shift: int = 0) -> np.ndarray:
    labels = np.zeros((32, 32), dtype=np.int16)
    labels[4 + shift : 12 + shift, 4:12] = 1
    labels[18:28, 18:28] = 2
    return labels


def test_voi_is_zero_for_identical_masks_and_ln2_for_independent_halves():
    mask = _two_squares() > 0
    assert VOI_metric(mask, mask)[0] == pytest.approx(0.0, abs=1e-12)
    rows = np.zeros((4, 4), bool)
    rows[:2] = True
    assert VOI_metric(rows, rows.T)[0] == pytest.approx(2 * np.log(2))


def test_pod_counts_matches_misses_and_false_positives():
    target = _two_squares() > 0
    prediction = _two_squares(shift=1) > 0
    prediction[0:3, 28:31] = True  # an extra object
    tp, fp, fn, precision, recall, f1 = POD_metric(target, prediction)
    assert (tp, fp, fn) == (2, 1, 0)
    assert precision == pytest.approx(2 / 3) and recall == 1.0 and f1 == pytest.approx(0.8)


def test_labels_to_masks_and_detection():
    labels = torch.from_numpy(_two_squares())
    masks = labels_to_masks(labels)
    assert masks.shape == (2, 32, 32) and masks.dtype == torch.bool
    assert masks[0].sum() == 64 and masks[1].sum() == 100
    detection = labels_to_detection(labels)
    torch.testing.assert_close(detection["boxes"], torch.tensor([[4.0, 4.0, 11.0, 11.0], [18.0, 18.0, 27.0, 27.0]]))
    assert detection["scores"].dtype == torch.float32 and detection["labels"].dtype == torch.uint8
    with pytest.raises(ValueError, match="Labels must be 2D"):
        labels_to_masks(labels[None])


def test_mean_average_precision_is_one_for_perfect_prediction():
    pytest.importorskip("pycocotools")
    labels = torch.from_numpy(_two_squares())
    assert float(mean_average_precision(labels, labels)["map"]) == pytest.approx(1.0)


def test_ssim_is_one_for_identical_stacks_and_lower_for_noise():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 3, 32, 32, generator=generator)
    torch.testing.assert_close(ssim_25d(target, target, (5, 5)), torch.ones(2))
    noisy = target + 0.5 * torch.rand(2, 1, 3, 32, 32, generator=generator)
    assert (ssim_25d(noisy, target, (5, 5)) < 0.9).all()
    with pytest.raises(ValueError, match="Input shape must be"):
        ssim_25d(target[0], target[0])


def test_ms_ssim_is_one_for_identical_stacks():
    target = torch.rand(1, 1, 2, 32, 32, generator=torch.Generator().manual_seed(1))
    value = ms_ssim_25d(target, target, in_plane_window_size=(3, 3), betas=(0.3, 0.3, 0.4))
    assert float(value) == pytest.approx(1.0, abs=1e-5)
