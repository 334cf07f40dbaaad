"""Linear classifier attribution: logistic regression on embeddings, turned into a torch head on an encoder.

The assembled model (encoder + linear head) can be attributed back to input pixels with integrated
gradients or occlusion (implemented here in torch, no extra dependency). Needs
``pip install 'viscy-utils[eval]'``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from viscy_utils._optional import import_optional

if TYPE_CHECKING:
    from xarray import DataArray

__all__ = ["fit_logistic_regression", "linear_from_binary_logistic_regression", "AssembledClassifier"]

_logger = logging.getLogger(__name__)


def _split_fovs(fov_names: np.ndarray, labels: np.ndarray, train_ratio: float, random_state: int | None) -> np.ndarray:
    """FOVs for training, stratified by each FOV's majority class when every class has two FOVs."""
    model_selection = import_optional("sklearn.model_selection")
    majority = pd.DataFrame({"fov": fov_names, "label": labels}).groupby("fov")["label"].agg(lambda s: s.mode()[0])
    stratify = majority.to_numpy() if majority.value_counts().min() >= 2 else None
    if stratify is None:
        _logger.warning("Some class is the majority of fewer than 2 FOVs; splitting FOVs without stratification.")
    train, _ = model_selection.train_test_split(
        majority.index.to_numpy(), test_size=1 - train_ratio, stratify=stratify, random_state=random_state
    )
    return train


def fit_logistic_regression(
    features: DataArray,
    annotations: pd.Series,
    train_fovs: Sequence[str] | None = None,
    train_ratio: float = 0.8,
    remove_background_class: bool = True,
    scale_features: bool = False,
    class_weight: str | dict | None = "balanced",
    random_state: int | None = None,
    solver: str = "liblinear",
) -> tuple[Any, tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    """Fit a logistic regression on embeddings, holding out whole FOVs for testing.

    Parameters
    ----------
    features : DataArray
        ``(n_samples, n_features)`` with a ``fov_name`` coordinate on the sample dimension.
    annotations : pd.Series
        Categorical labels, one per sample; missing labels are dropped.
    train_fovs : Sequence[str] | None
        FOVs used for training; None splits FOVs randomly (stratified by majority class when possible).
    train_ratio : float
        Fraction of FOVs for training when ``train_fovs`` is None.
    remove_background_class : bool
        Drop the first category (background) and shift the other codes down by one.
    scale_features : bool
        Standardize features with statistics of the training split.
    class_weight : str | dict | None
        ``LogisticRegression`` class weights.
    random_state : int | None
        Seed of the FOV split and the classifier.
    solver : str
        ``LogisticRegression`` solver.

    Returns
    -------
    tuple
        The fitted classifier and ``((X_train, y_train), (X_test, y_test))``.
    """
    linear_model = import_optional("sklearn.linear_model")
    metrics = import_optional("sklearn.metrics")
    codes = np.asarray(pd.Series(annotations).astype("category").cat.codes)
    keep = codes >= (1 if remove_background_class else 0)
    X = np.asarray(features.values)[keep]
    y = codes[keep] - (1 if remove_background_class else 0)
    fov_names = np.asarray(features["fov_name"].values)[keep].astype(str)
    if train_fovs is None:
        train_fovs = _split_fovs(fov_names, y, train_ratio, random_state)
    train = np.isin(fov_names, np.asarray(train_fovs, dtype=str))
    X_train, y_train, X_test, y_test = X[train], y[train], X[~train], y[~train]
    if scale_features:
        scaler = import_optional("sklearn.preprocessing").StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    classifier = linear_model.LogisticRegression(class_weight=class_weight, random_state=random_state, solver=solver)
    classifier.fit(X_train, y_train)
    for name, (X_split, y_split) in (("Training", (X_train, y_train)), ("Test", (X_test, y_test))):
        if len(y_split):
            report = metrics.classification_report(y_split, classifier.predict(X_split), zero_division=0)
            _logger.info(f"{name} set:\n{report}")
    return classifier, ((X_train, y_train), (X_test, y_test))


def linear_from_binary_logistic_regression(logistic_regression: Any) -> nn.Linear:
    """A ``nn.Linear(n_features, 1)`` computing the decision function of a binary logistic regression."""
    coef = torch.as_tensor(logistic_regression.coef_, dtype=torch.float32)
    if coef.shape[0] != 1:
        raise ValueError(f"Expected a binary logistic regression (1 row of coefficients), got {coef.shape[0]}.")
    linear = nn.Linear(coef.shape[1], 1)
    with torch.no_grad():
        linear.weight.copy_(coef)
        linear.bias.copy_(torch.as_tensor(logistic_regression.intercept_, dtype=torch.float32))
    return linear.eval()


class AssembledClassifier(nn.Module):
    """Encoder features followed by a linear head, for pixel attribution.

    Parameters
    ----------
    backbone : nn.Module
        Contrastive encoder with ``stem`` and ``encoder`` submodules (``encoder(stem(x))`` gives features).
    classifier : nn.Linear
        Linear head on the features.
    """

    def __init__(self, backbone: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    @staticmethod
    def scale_features(x: Tensor) -> Tensor:
        """Standardize features over the batch dimension (biased standard deviation)."""
        return (x - x.mean(dim=-2, keepdim=True)) / x.std(dim=-2, keepdim=True, unbiased=False)

    def forward(self, x: Tensor, scale_features: bool = False) -> Tensor:
        """Classifier logits ``(B, 1)`` of images ``(B, C, Z, Y, X)``."""
        features = self.backbone.encoder(self.backbone.stem(x))
        if scale_features:
            features = self.scale_features(features)
        return self.classifier(features)

    def attribute_integrated_gradients(
        self, img: Tensor, baselines: Tensor | float = 0.0, n_steps: int = 50, scale_features: bool = False
    ) -> Tensor:
        """Integrated gradients of the logit with respect to the input (midpoint Riemann sum).

        Parameters
        ----------
        img : Tensor
            Input images.
        baselines : Tensor | float
            Reference input (broadcast to ``img``).
        n_steps : int
            Number of interpolation steps.
        scale_features : bool
            Passed to :meth:`forward`.

        Returns
        -------
        Tensor
            Attributions with the shape of ``img``; they sum to ``f(img) - f(baseline)`` up to the
            approximation error.
        """
        self.zero_grad()
        baseline = torch.as_tensor(baselines, dtype=img.dtype, device=img.device).expand_as(img)
        difference = img - baseline
        total = torch.zeros_like(img)
        for alpha in (torch.arange(n_steps, dtype=img.dtype) + 0.5) / n_steps:
            point = (baseline + alpha * difference).detach().requires_grad_(True)
            output = self(point, scale_features=scale_features).sum()
            total += torch.autograd.grad(output, point)[0]
        return difference * total / n_steps

    @torch.no_grad()
    def attribute_occlusion(
        self,
        img: Tensor,
        sliding_window_shapes: Sequence[int],
        strides: int | Sequence[int] = 1,
        baselines: float = 0.0,
        scale_features: bool = False,
    ) -> Tensor:
        """Occlusion attribution: mean logit drop when a window covering each element is set to ``baselines``.

        Parameters
        ----------
        img : Tensor
            Input images ``(B, ...)``.
        sliding_window_shapes : Sequence[int]
            Window shape over the non-batch dimensions.
        strides : int | Sequence[int]
            Window step per non-batch dimension.
        baselines : float
            Value of occluded elements.
        scale_features : bool
            Passed to :meth:`forward`.

        Returns
        -------
        Tensor
            Attributions with the shape of ``img``.
        """
        spatial = img.shape[1:]
        if len(sliding_window_shapes) != len(spatial):
            raise ValueError(f"sliding_window_shapes {tuple(sliding_window_shapes)} must match input dims {spatial}.")
        strides = [strides] * len(spatial) if isinstance(strides, int) else list(strides)
        reference = self(img, scale_features=scale_features).flatten(1).sum(1)
        attribution = torch.zeros_like(img)
        coverage = torch.zeros_like(img)
        starts = [
            range(0, size - window + 1, step)
            for size, window, step in zip(spatial, sliding_window_shapes, strides, strict=True)
        ]
        for corner in itertools.product(*starts):
            window = (slice(None), *(slice(c, c + w) for c, w in zip(corner, sliding_window_shapes, strict=True)))
            occluded = img.clone()
            occluded[window] = baselines
            drop = reference - self(occluded, scale_features=scale_features).flatten(1).sum(1)
            attribution[window] += drop.view(-1, *([1] * len(spatial)))
            coverage[window] += 1
        return attribution / coverage.clamp(min=1)
