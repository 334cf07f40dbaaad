import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from torch import nn

from viscy_utils.evaluation.lca import (
    AssembledClassifier,
    fit_logistic_regression,
    linear_from_binary_logistic_regression,
)


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(2, 3, kernel_size=1)
        self.encoder = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())


def _embeddings(n_fovs: int = 10, per_fov: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    fov_names = np.repeat([f"A/{i}/0" for i in range(n_fovs)], per_fov)
    infected = np.repeat(np.arange(n_fovs) % 2 == 0, per_fov)
    X = rng.normal(size=(n_fovs * per_fov, 4)) + 3 * infected[:, None]
    states = np.where(infected, "infected", "uninfected")
    states[::17] = "background"
    annotations = pd.Series(pd.Categorical(states, categories=["background", "uninfected", "infected"]))
    features = xr.DataArray(X, dims=("sample", "features"), coords={"fov_name": ("sample", fov_names)})
    return features, annotations


def test_logistic_regression_holds_out_whole_fovs():
    features, annotations = _embeddings()
    classifier, ((X_train, y_train), (X_test, y_test)) = fit_logistic_regression(
        features, annotations, train_ratio=0.6, random_state=0
    )
    assert set(np.unique(np.concatenate([y_train, y_test]))) == {0, 1}  # background dropped, codes shifted
    n_labelled = int((annotations != "background").sum())
    assert len(y_train) + len(y_test) == n_labelled
    assert len(y_test) > 0
    assert classifier.score(X_test, y_test) > 0.95
    fov_of_row = {
        row.tobytes(): fov for row, fov in zip(features.to_numpy(), features["fov_name"].to_numpy(), strict=True)
    }
    train_fovs = {fov_of_row[row.tobytes()] for row in X_train}
    test_fovs = {fov_of_row[row.tobytes()] for row in X_test}
    assert train_fovs and test_fovs and not train_fovs & test_fovs


def test_linear_head_reproduces_decision_function():
    features, annotations = _embeddings()
    classifier, ((X_train, _), _) = fit_logistic_regression(features, annotations, train_fovs=["A/0/0", "A/1/0"])
    linear = linear_from_binary_logistic_regression(classifier)
    with torch.no_grad():
        logits = linear(torch.as_tensor(X_train, dtype=torch.float32)).squeeze(1).numpy()
    np.testing.assert_allclose(logits, classifier.decision_function(X_train), rtol=1e-4, atol=1e-4)


def test_attributions_of_a_linear_model_equal_input_times_gradient():
    torch.manual_seed(0)
    model = AssembledClassifier(TinyEncoder(), nn.Linear(3, 1)).eval()
    img = torch.rand(2, 2, 1, 4, 4)
    # the model is affine in the input: d logit / d x is the same everywhere
    x = img[:1].clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x)
    expected = img * gradient
    integrated = model.attribute_integrated_gradients(img, n_steps=4)
    torch.testing.assert_close(integrated, expected, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(
            integrated.flatten(1).sum(1), (model(img) - model(torch.zeros_like(img))).squeeze(1), rtol=1e-4, atol=1e-5
        )
    occlusion = model.attribute_occlusion(img, sliding_window_shapes=(1, 1, 1, 1))
    torch.testing.assert_close(occlusion, expected, rtol=1e-4, atol=1e-6)


def test_occlusion_rejects_mismatched_window():
    model = AssembledClassifier(TinyEncoder(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match="must match input dims"):
        model.attribute_occlusion(torch.rand(1, 2, 1, 4, 4), sliding_window_shapes=(2, 2))
