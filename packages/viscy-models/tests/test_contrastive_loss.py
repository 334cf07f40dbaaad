import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import NTXentLoss

from viscy_models.contrastive.loss import NTXentHCL


def _engine_batch(n: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(2 * n, dim, generator=generator)
    labels = torch.cat([torch.arange(n), torch.arange(n)])
    return embeddings, labels


def _cosine(embeddings):
    z = F.normalize(embeddings.double(), dim=1)
    return z @ z.T


def _reference_hcl(embeddings, labels, temperature, beta, similarity=_cosine):
    """The spec's formula, pair by pair in plain Python (independent of the implementation)."""
    s = similarity(embeddings)
    n = len(labels)
    losses = []
    for i in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[i]]
        weights = torch.exp(beta * s[i, negatives])
        weights = weights * len(negatives) / weights.sum()
        neg_term = (weights * torch.exp(s[i, negatives] / temperature)).sum()
        for p in range(n):
            if p != i and labels[p] == labels[i]:
                pos = torch.exp(s[i, p] / temperature)
                losses.append(-torch.log(pos / (pos + neg_term)))
    return torch.stack(losses).mean()


def _reference_robinson(embeddings, labels, temperature, beta, tau_plus):
    """Robinson et al.'s debiased hard-negative estimator, written per anchor as in the paper."""
    z = F.normalize(embeddings.double(), dim=1)
    s = z @ z.T
    n = len(labels)
    losses = []
    for i in range(n):
        negatives = [k for k in range(n) if labels[k] != labels[i]]
        neg = torch.exp(s[i, negatives] / temperature)
        imp = torch.exp(beta * s[i, negatives] / temperature)
        reweighted = (imp * neg).sum() / imp.mean()
        count = len(negatives)
        for p in range(n):
            if p != i and labels[p] == labels[i]:
                pos = torch.exp(s[i, p] / temperature)
                ng = (-tau_plus * count * pos + reweighted) / (1 - tau_plus)
                ng = torch.clamp(ng, min=count * math.exp(-1 / temperature))
                losses.append(-torch.log(pos / (pos + ng)))
    return torch.stack(losses).mean()


def test_is_an_ntxent_loss_with_recordable_beta():
    loss = NTXentHCL(temperature=0.1, beta=0.3)
    assert isinstance(loss, NTXentLoss)
    assert isinstance(loss, torch.nn.Module)
    assert loss.temperature == 0.1 and loss.beta == 0.3
    assert "beta" in loss._record_these


@pytest.mark.parametrize("n", [2, 7, 32])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_beta_zero_equals_ntxent_on_engine_batches(n, temperature):
    embeddings, labels = _engine_batch(n, seed=n)
    expected = NTXentLoss(temperature=temperature)(embeddings, labels)
    actual = NTXentHCL(temperature=temperature, beta=0.0)(embeddings, labels)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_beta_zero_equals_ntxent_with_arbitrary_labels_and_gradients():
    generator = torch.Generator().manual_seed(3)
    embeddings = torch.randn(24, 8, generator=generator, requires_grad=True)
    labels = torch.randint(0, 5, (24,), generator=generator)
    expected = NTXentLoss(temperature=0.2)(embeddings, labels)
    (expected_grad,) = torch.autograd.grad(expected, embeddings)
    actual = NTXentHCL(temperature=0.2, beta=0.0)(embeddings, labels)
    (actual_grad,) = torch.autograd.grad(actual, embeddings)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(actual_grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_beta_zero_equals_ntxent_with_non_inverted_distance():
    embeddings, labels = _engine_batch(6, seed=11)
    expected = NTXentLoss(temperature=0.5, distance=LpDistance())(embeddings, labels)
    actual = NTXentHCL(temperature=0.5, beta=0.0, distance=LpDistance())(embeddings, labels)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_beta_zero_equals_ntxent_with_mined_pairs():
    embeddings, labels = _engine_batch(5, seed=5)
    a1, p = torch.tensor([0, 1, 5, 6]), torch.tensor([5, 6, 0, 1])
    a2, n = torch.tensor([0, 0, 1, 5, 6]), torch.tensor([1, 2, 3, 4, 9])
    indices = (a1, p, a2, n)
    expected = NTXentLoss(temperature=0.1)(embeddings, labels, indices)
    actual = NTXentHCL(temperature=0.1, beta=0.0)(embeddings, labels, indices)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_beta_zero_equals_ntxent_with_reference_embeddings():
    embeddings, labels = _engine_batch(4, seed=8)
    reference, reference_labels = _engine_batch(6, seed=9)
    expected = NTXentLoss(temperature=0.2)(embeddings, labels, ref_emb=reference, ref_labels=reference_labels)
    actual = NTXentHCL(temperature=0.2, beta=0.0)(embeddings, labels, ref_emb=reference, ref_labels=reference_labels)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_beta_positive_matches_the_spec_formula(beta):
    embeddings, labels = _engine_batch(6, seed=7)
    expected = _reference_hcl(embeddings, labels, 0.1, beta)
    actual = NTXentHCL(temperature=0.1, beta=beta)(embeddings, labels)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-6)


def test_beta_positive_matches_the_spec_formula_with_several_positives_per_anchor():
    generator = torch.Generator().manual_seed(2)
    embeddings = torch.randn(15, 8, generator=generator)
    labels = torch.randint(0, 4, (15,), generator=generator)
    expected = _reference_hcl(embeddings, labels, 0.2, 1.0)
    actual = NTXentHCL(temperature=0.2, beta=1.0)(embeddings, labels)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_beta_zero_equals_ntxent_on_random_inputs(seed):
    """Random sizes, dimensions, scales, label patterns (singletons, big groups) and temperatures."""
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(3, 40, (1,), generator=generator))
    dim = int(torch.randint(2, 64, (1,), generator=generator))
    scale = float(10 ** torch.empty(1).uniform_(-2, 2, generator=generator))
    embeddings = (torch.randn(n, dim, generator=generator) * scale).requires_grad_(True)
    labels = torch.randint(0, max(2, n // (seed + 1)), (n,), generator=generator)
    temperature = float(torch.empty(1).uniform_(0.05, 1.0, generator=generator))
    expected = NTXentLoss(temperature=temperature)(embeddings, labels)
    actual = NTXentHCL(temperature=temperature, beta=0.0)(embeddings, labels)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    if expected.requires_grad:
        (expected_grad,) = torch.autograd.grad(expected, embeddings)
        (actual_grad,) = torch.autograd.grad(actual, embeddings)
        torch.testing.assert_close(actual_grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_beta_positive_with_a_distance_negates_it_into_a_similarity():
    embeddings, labels = _engine_batch(5, seed=13)

    def negative_distance(x):
        z = F.normalize(x.double(), dim=1)
        return -torch.cdist(z, z)

    expected = _reference_hcl(embeddings, labels, 0.5, 1.0, similarity=negative_distance)
    actual = NTXentHCL(temperature=0.5, beta=1.0, distance=LpDistance())(embeddings, labels)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-6)


def test_hard_negatives_raise_the_loss():
    """Up-weighting the most similar negatives can only increase the loss, and more so as beta grows."""
    embeddings, labels = _engine_batch(8, seed=1)
    losses = [float(NTXentHCL(temperature=0.5, beta=beta)(embeddings, labels)) for beta in (0.0, 0.5, 1.0, 2.0)]
    assert losses == sorted(losses)
    assert losses[1] > losses[0] + 1e-4


def test_a_harder_negative_increases_the_reweighting_gap():
    """Pull negative 1 towards anchor 0: the HCL-minus-NT-Xent gap of anchor 0's pair grows."""
    embeddings, labels = _engine_batch(8, seed=1)
    harder = embeddings.clone()
    harder[1] = 0.3 * embeddings[1] + embeddings[0]

    def gap(x):
        return float(NTXentHCL(temperature=0.5, beta=2.0)(x, labels) - NTXentHCL(temperature=0.5, beta=0.0)(x, labels))

    assert gap(harder) > gap(embeddings)


def test_identical_negatives_make_weights_uniform():
    """All negatives at the same similarity: weights are 1 and the loss equals NT-Xent for any beta."""
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(
        NTXentHCL(temperature=0.3, beta=3.0)(embeddings, labels), NTXentLoss(temperature=0.3)(embeddings, labels)
    )


def test_single_pair_and_no_negatives_give_zero_without_nan():
    loss = NTXentHCL()(torch.randn(2, 4), torch.tensor([0, 0]))
    assert float(loss) == 0.0
    same = NTXentHCL(estimator="robinson")(torch.randn(6, 4), torch.zeros(6, dtype=torch.long))
    assert float(same) == 0.0


def test_extreme_similarities_stay_finite():
    embeddings, labels = _engine_batch(4, seed=4)
    embeddings = embeddings.clone().requires_grad_(True)
    loss = NTXentHCL(temperature=0.01, beta=5.0)(embeddings * 1e3, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize(("beta", "tau_plus"), [(0.0, 0.0), (0.5, 0.0), (1.0, 0.1), (0.5, 0.3)])
def test_robinson_estimator_matches_the_paper(beta, tau_plus):
    embeddings, labels = _engine_batch(6, seed=9)
    expected = _reference_robinson(embeddings, labels, 0.5, beta, tau_plus)
    actual = NTXentHCL(temperature=0.5, beta=beta, estimator="robinson", tau_plus=tau_plus)(embeddings, labels)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-6)


def test_robinson_clamp_is_active_for_large_tau_plus():
    """With tau_plus near 1 the debiased estimate goes negative and the clamp at M exp(-1/t) takes over."""
    embeddings, labels = _engine_batch(4, seed=12)
    embeddings[4:] = embeddings[:4]  # positives identical to anchors: large positive term
    expected = _reference_robinson(embeddings, labels, 0.5, 0.0, 0.9)
    actual = NTXentHCL(temperature=0.5, beta=0.0, estimator="robinson", tau_plus=0.9)(embeddings, labels)
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"beta": -1.0}, "beta"),
        ({"estimator": "debiased"}, "estimator"),
        ({"tau_plus": 1.0}, "tau_plus"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NTXentHCL(**kwargs)


def test_gather_distributed_is_a_no_op_without_a_process_group():
    embeddings, labels = _engine_batch(4, seed=6)
    torch.testing.assert_close(NTXentHCL(gather_distributed=True)(embeddings, labels), NTXentHCL()(embeddings, labels))
