import numpy as np
import pytest

from dynaclr.tau_sampling import sample_tau


def test_equal_bounds_return_int_without_touching_rng():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    tau = sample_tau(3, 3, rng)
    assert tau == 3 and type(tau) is int
    assert rng.bit_generator.state == state


def test_returns_python_int_within_bounds():
    rng = np.random.default_rng(1)
    draws = [sample_tau(2, 8, rng) for _ in range(200)]
    assert all(type(d) is int for d in draws)
    assert min(draws) >= 2 and max(draws) <= 8


def test_frequencies_follow_exponential_decay():
    rng = np.random.default_rng(2)
    draws = np.array([sample_tau(1, 4, rng, decay_rate=2.0) for _ in range(20000)])
    # weights exp(-2 * k / 3) for k = 0..3, computed by hand
    weights = np.array([1.0, 0.513417, 0.263597, 0.135335])
    expected = weights / weights.sum()
    observed = np.bincount(draws - 1, minlength=4) / len(draws)
    np.testing.assert_allclose(observed, expected, atol=0.012)


def test_zero_decay_is_uniform_and_larger_decay_favours_tau_min():
    rng = np.random.default_rng(3)
    uniform = np.array([sample_tau(0, 4, rng, decay_rate=0.0) for _ in range(10000)])
    np.testing.assert_allclose(np.bincount(uniform, minlength=5) / len(uniform), 0.2, atol=0.015)
    steep = np.array([sample_tau(0, 4, rng, decay_rate=8.0) for _ in range(2000)])
    assert steep.mean() < uniform.mean() - 1.0


def test_same_seed_same_draws():
    a = [sample_tau(1, 6, np.random.default_rng(7)) for _ in range(5)]
    b = [sample_tau(1, 6, np.random.default_rng(7)) for _ in range(5)]
    assert a == b


def test_inverted_bounds_raise():
    with pytest.raises(ValueError, match="tau_min must be <= tau_max, got tau_min=5, tau_max=2"):
        sample_tau(5, 2, np.random.default_rng(0))
