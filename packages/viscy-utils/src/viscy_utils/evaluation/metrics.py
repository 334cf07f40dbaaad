"""Segmentation and image-similarity metrics for virtual staining.

Needs ``pip install 'viscy-utils[metrics]'`` (monai, torchmetrics, torchvision, pycocotools, scipy).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from viscy_utils._optional import import_optional

__all__ = [
    "VOI_metric",
    "POD_metric",
    "labels_to_masks",
    "labels_to_detection",
    "mean_average_precision",
    "ssim_25d",
    "ms_ssim_25d",
]


def _entropy(probabilities: np.ndarray) -> float:
    nonzero = probabilities[probabilities > 0]
    return float(-(nonzero * np.log(nonzero)).sum())


def VOI_metric(target: np.ndarray, prediction: np.ndarray) -> list[float]:
    """Variation of information between two binary masks (nonzero = foreground), in nats.

    Parameters
    ----------
    target : np.ndarray
        Reference mask or label image.
    prediction : np.ndarray
        Predicted mask or label image of the same shape.

    Returns
    -------
    list[float]
        ``[H(T|P) + H(P|T)]``; 0 for identical masks.
    """
    target = np.asarray(target).astype(bool).ravel()
    prediction = np.asarray(prediction).astype(bool).ravel()
    joint = np.bincount(2 * target + prediction, minlength=4).reshape(2, 2) / target.size
    joint_entropy = _entropy(joint)
    return [2 * joint_entropy - _entropy(joint.sum(axis=1)) - _entropy(joint.sum(axis=0))]


def POD_metric(target_bin: np.ndarray, pred_bin: np.ndarray) -> list[float]:
    """Object detection counts and scores from binary masks, matching objects by centroid distance.

    Objects are connected components. Centroids are paired by Hungarian assignment; a pair counts as a
    true positive when its distance is at most half the mean major axis length of the target objects.

    Parameters
    ----------
    target_bin : np.ndarray
        Binary reference mask (2-D or 3-D).
    pred_bin : np.ndarray
        Binary predicted mask.

    Returns
    -------
    list[float]
        ``[tp, fp, fn, precision, recall, f1]``.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    from skimage.measure import label, regionprops

    target_props = regionprops(label(np.asarray(target_bin) > 0))
    pred_props = regionprops(label(np.asarray(pred_bin) > 0))
    tp = 0
    if target_props and pred_props:
        target_centroids = np.array([p.centroid for p in target_props])
        pred_centroids = np.array([p.centroid for p in pred_props])
        cost = cdist(target_centroids, pred_centroids)
        rows, cols = linear_sum_assignment(cost)
        max_distance = np.mean([p.axis_major_length for p in target_props]) / 2
        tp = int((cost[rows, cols] <= max_distance).sum())
    fp = len(pred_props) - tp
    fn = len(target_props) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return [tp, fp, fn, precision, recall, f1]


def labels_to_masks(labels: Tensor) -> Tensor:
    """One boolean mask per nonzero label of a 2-D label image.

    Parameters
    ----------
    labels : Tensor
        ``(H, W)`` integer labels, 0 is background.

    Returns
    -------
    Tensor
        ``(N, H, W)`` bool masks in increasing label order.
    """
    if labels.ndim != 2:
        raise ValueError(f"Labels must be 2D, got shape {tuple(labels.shape)}.")
    ids = torch.unique(labels)
    ids = ids[ids != 0]
    return labels.unsqueeze(0) == ids[:, None, None]


def labels_to_detection(labels: Tensor) -> dict[str, Tensor]:
    """Detection dict (torchmetrics format) of the objects of a 2-D label image.

    Returns
    -------
    dict[str, Tensor]
        ``boxes`` (N, 4) xyxy, ``scores`` ones float32, ``labels`` zeros uint8, ``masks`` (N, H, W) bool.
    """
    ops = import_optional("torchvision.ops")
    masks = labels_to_masks(labels)
    n = masks.shape[0]
    return {
        "boxes": ops.masks_to_boxes(masks),
        "scores": torch.ones(n, dtype=torch.float32),
        "labels": torch.zeros(n, dtype=torch.uint8),
        "masks": masks,
    }


def mean_average_precision(pred_labels: Tensor, target_labels: Tensor, **kwargs) -> dict[str, Tensor]:
    """COCO-style mean average precision of instance masks.

    Parameters
    ----------
    pred_labels : Tensor
        ``(H, W)`` predicted instance labels.
    target_labels : Tensor
        ``(H, W)`` reference instance labels.
    **kwargs
        Override ``torchmetrics.detection.MeanAveragePrecision`` arguments (defaults: ``iou_type="segm"``,
        ``box_format="xyxy"``, ``max_detection_thresholds=[1, 100, 10000]``).

    Returns
    -------
    dict[str, Tensor]
        The metric's ``compute()`` result (``map``, ``map_50``, ``mar_100``...).
    """
    detection = import_optional("torchmetrics.detection")
    arguments = {"iou_type": "segm", "box_format": "xyxy", "max_detection_thresholds": [1, 100, 10000], **kwargs}
    metric = detection.MeanAveragePrecision(**arguments)
    metric.update([labels_to_detection(pred_labels)], [labels_to_detection(target_labels)])
    return metric.compute()


def ssim_25d(
    preds: Tensor,
    target: Tensor,
    in_plane_window_size: tuple[int, int] = (11, 11),
    return_contrast_sensitivity: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """SSIM of 2.5-D stacks: a uniform window spanning the whole depth and ``in_plane_window_size`` in YX.

    Parameters
    ----------
    preds : Tensor
        ``(B, C, D, H, W)`` predictions.
    target : Tensor
        ``(B, C, D, H, W)`` targets; ``target.max()`` is the data range.
    in_plane_window_size : tuple[int, int]
        Window size in H and W.
    return_contrast_sensitivity : bool
        Also return the contrast-sensitivity term.

    Returns
    -------
    Tensor | tuple[Tensor, Tensor]
        ``(B,)`` mean SSIM of each sample (and ``(B,)`` mean contrast sensitivity).
    """
    regression = import_optional("monai.metrics.regression")
    if preds.ndim != 5:
        raise ValueError(f"Input shape must be (B, C, D, W, H), got {tuple(preds.shape)}")
    depth = preds.shape[2]
    if depth > 15:
        warnings.warn(f"Depth {depth} is large for a 2.5-D SSIM window spanning the whole stack.", stacklevel=2)
    ssim, contrast = regression.compute_ssim_and_cs(
        preds,
        target,
        spatial_dims=3,
        kernel_size=(depth, *in_plane_window_size),
        kernel_sigma=(1.5, 1.5, 1.5),
        data_range=float(target.max()),
        kernel_type="uniform",
    )
    ssim = ssim.flatten(1).mean(1)
    if return_contrast_sensitivity:
        return ssim, contrast.flatten(1).mean(1)
    return ssim


def ms_ssim_25d(
    preds: Tensor,
    target: Tensor,
    in_plane_window_size: tuple[int, int] = (11, 11),
    clamp: bool = False,
    betas: Sequence[float] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
) -> Tensor:
    """Multi-scale 2.5-D SSIM: one scale per beta, halving H and W (not depth) between scales.

    Parameters
    ----------
    preds : Tensor
        ``(B, C, D, H, W)`` predictions.
    target : Tensor
        ``(B, C, D, H, W)`` targets.
    in_plane_window_size : tuple[int, int]
        Window size in H and W (must fit the coarsest scale).
    clamp : bool
        Clamp each scale's term to at least 1e-4 (avoids NaN from negative values raised to a power).
    betas : Sequence[float]
        Exponent of each scale; the last scale uses SSIM, the others contrast sensitivity.

    Returns
    -------
    Tensor
        Scalar: batch mean of the product of the per-scale terms raised to their betas.
    """
    terms = []
    for scale in range(len(betas)):
        ssim, contrast = ssim_25d(preds, target, in_plane_window_size, return_contrast_sensitivity=True)
        terms.append(ssim if scale == len(betas) - 1 else contrast)
        if scale < len(betas) - 1:
            preds = F.avg_pool3d(preds, kernel_size=(1, 2, 2))
            target = F.avg_pool3d(target, kernel_size=(1, 2, 2))
    stacked = torch.stack(terms)  # (scales, B)
    if clamp:
        stacked = stacked.clamp(min=1e-4)
    weights = torch.as_tensor(betas, dtype=stacked.dtype, device=stacked.device)[:, None]
    return torch.prod(stacked**weights, dim=0).mean()
