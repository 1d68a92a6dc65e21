"""pgnotes.objectives: the SymPy derivation and the bandit's variances, checked from their definitions (`make mutation`).

The derivation is called in the test itself (not through a shared fixture), and every field it
returns is compared with an independent computation: Gauss-Hermite quadrature of the per-sample
estimates written in NumPy from their definitions, which is exact for these polynomials.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from pgnotes.objectives import bandit_estimator_variance, quadratic_variance_derivation

# Probabilists' Gauss-Hermite with 12 nodes integrates polynomials of degree <= 23 exactly against
# N(0, 1); the squared estimates here have degree <= 8 in the noise.
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(12)
WEIGHTS = WEIGHTS / WEIGHTS.sum()
RTOL = 1e-9

# (mu, sigma, k, b): both signs of c = mu - k, small and large sigma, zero and non-zero baselines.
POINTS = [(0.3, 0.7, -1.1, 0.0), (-0.4, 1.9, 0.5, 2.5), (1.2, 0.4, 1.0, -0.8)]


def _estimates_from_definitions(noise, mu, sigma, k, b):
    """Per-sample estimates at a = mu + sigma * noise, from the definitions (score of N(mu, sigma^2), f(a) = (a - k)^2)."""
    a = mu + sigma * noise
    f = (a - k) ** 2
    f_prime = 2 * (a - k)
    return {
        "score_mean": (f - b) * (a - mu) / sigma**2,
        "score_std": (f - b) * ((a - mu) ** 2 - sigma**2) / sigma**3,
        "pathwise_mean": f_prime,
        "pathwise_std": f_prime * noise,
    }


def _quadrature_moments(mu, sigma, k, b):
    estimates = _estimates_from_definitions(NODES, mu, sigma, k, b)
    means = {name: float(WEIGHTS @ g) for name, g in estimates.items()}
    variances = {name: float(WEIGHTS @ g**2) - means[name] ** 2 for name, g in estimates.items()}
    return means, variances


def _evaluate(derivation, expr, mu, sigma, k, b) -> float:
    """An expression of the derivation at a point, by exact substitution (c = mu - k)."""
    symbols = derivation.symbols
    values = {symbols["offset"]: mu - k, symbols["mean"]: mu, symbols["std"]: sigma, symbols["k"]: k, symbols["baseline"]: b}
    return float(sp.sympify(expr).subs(values))


def test_quadratic_variance_derivation_agrees_with_quadrature_in_every_field() -> None:
    derivation = quadratic_variance_derivation()
    symbols = derivation.symbols
    noise = symbols["noise"]
    for mu, sigma, k, b in POINTS:
        means, variances = _quadrature_moments(mu, sigma, k, b)
        for name in means:
            assert _evaluate(derivation, derivation.means[name], mu, sigma, k, b) == pytest.approx(means[name], rel=RTOL, abs=RTOL)
            assert _evaluate(derivation, derivation.variances[name], mu, sigma, k, b) == pytest.approx(
                variances[name], rel=RTOL, abs=RTOL
            )
            # The estimate as a function of the noise, at a = mu + sigma * noise (the stated convention).
            for eps in (-1.3, 0.4, 2.0):
                on_noise = derivation.estimates[name].subs(noise, eps)
                expected = _estimates_from_definitions(eps, mu, sigma, k, b)[name]
                assert _evaluate(derivation, on_noise, mu, sigma, k, b) == pytest.approx(expected, rel=RTOL, abs=RTOL)
        # The exact value and gradient of E[(a - k)^2], from quadrature and central differences of it.
        value = _evaluate(derivation, derivation.value, mu, sigma, k, b)
        assert value == pytest.approx(float(WEIGHTS @ (mu + sigma * NODES - k) ** 2), rel=RTOL)
        for parameter, estimator in (("mean", "pathwise_mean"), ("std", "pathwise_std")):
            assert _evaluate(derivation, derivation.gradient[parameter], mu, sigma, k, b) == pytest.approx(
                means[estimator], rel=RTOL, abs=RTOL
            )
    assert all(derivation.unbiased().values())
    # One call for both checks: the derivation takes seconds.
    _check_optimal_baselines_minimise_the_quadrature_variance(derivation)


def _check_optimal_baselines_minimise_the_quadrature_variance(derivation) -> None:
    for mu, sigma, k, _ in POINTS:
        for name in ("score_mean", "score_std"):
            b_star = _evaluate(derivation, derivation.optimal_baselines[name], mu, sigma, k, 0.0)
            # The variance is a quadratic in b: its minimiser is where the two-sided slope vanishes.
            step = 1e-3 * (1 + abs(b_star))
            below = _quadrature_moments(mu, sigma, k, b_star - step)[1][name]
            at = _quadrature_moments(mu, sigma, k, b_star)[1][name]
            above = _quadrature_moments(mu, sigma, k, b_star + step)[1][name]
            assert at < below and at < above
            assert below == pytest.approx(above, rel=1e-9)
            optimal = _evaluate(derivation, derivation.optimal_variances[name], mu, sigma, k, 0.0)
            assert optimal == pytest.approx(at, rel=RTOL)


def test_bandit_estimator_variance_default_is_the_estimator_without_a_baseline() -> None:
    mu, sigma, k = (torch.tensor(v, dtype=torch.float64) for v in (0.3, 0.8, -0.5))
    # The bandit's reward is -(a - k)^2; its estimate (r - b) * score has the variance of the cost's with baseline -b.
    _, cost_variances = _quadrature_moments(0.3, 0.8, -0.5, 0.0)
    var_mean, var_std = bandit_estimator_variance(mu, sigma, k)
    assert float(var_mean) == pytest.approx(cost_variances["score_mean"], rel=RTOL)
    assert float(var_std) == pytest.approx(cost_variances["score_std"], rel=RTOL)


def test_bandit_estimator_variance_with_a_baseline_and_python_numbers() -> None:
    mu, sigma, k, b = -0.2, 1.3, 0.9, -1.7
    _, cost_variances = _quadrature_moments(mu, sigma, k, -b)
    var_mean, var_std = bandit_estimator_variance(mu, sigma, k, baseline=b)
    # Python numbers give torch's default dtype, float32: a relative rounding of about 1e-7.
    assert float(var_mean) == pytest.approx(cost_variances["score_mean"], rel=1e-6)
    assert float(var_std) == pytest.approx(cost_variances["score_std"], rel=1e-6)


def test_bandit_estimator_variance_names_a_baseline_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match=r"^baseline must be a tensor, an array or a number, got str"):
        bandit_estimator_variance(0.0, 1.0, 0.0, baseline="zero")


def test_sympy_reference_of_the_quadrature() -> None:
    """The quadrature used above is exact: E[eps^8] = 105 and E[eps^7] = 0 as SymPy integrates them."""
    t = sp.Symbol("t", real=True)
    density = sp.exp(-(t**2) / 2) / sp.sqrt(2 * sp.pi)
    for power in (7, 8):
        exact = float(sp.integrate(t**power * density, (t, -sp.oo, sp.oo)))
        assert float(WEIGHTS @ NODES**power) == pytest.approx(exact, abs=1e-9)


def test_exact_variance_quadratic_default_is_no_baseline_and_a_baseline_batch_broadcasts() -> None:
    from pgnotes.objectives import exact_variance_quadratic

    mu, sigma, k = (torch.tensor(v, dtype=torch.float64) for v in (0.3, 0.8, -0.5))
    _, without = _quadrature_moments(0.3, 0.8, -0.5, 0.0)
    default = exact_variance_quadratic(mu, sigma, k)
    assert float(default.score_mean) == pytest.approx(without["score_mean"], rel=RTOL)
    assert float(default.score_std) == pytest.approx(without["score_std"], rel=RTOL)
    # A batch of baselines for one (mu, sigma, k): one variance per baseline.
    baselines = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    batched = exact_variance_quadratic(mu, sigma, k, baseline=baselines)
    assert batched.score_mean.shape == batched.pathwise_std.shape == (3,)
    for index, b in enumerate(baselines.tolist()):
        _, expected = _quadrature_moments(0.3, 0.8, -0.5, b)
        assert float(batched.score_mean[index]) == pytest.approx(expected["score_mean"], rel=RTOL)
        assert float(batched.score_std[index]) == pytest.approx(expected["score_std"], rel=RTOL)
        assert float(batched.pathwise_std[index]) == pytest.approx(expected["pathwise_std"], rel=RTOL)


def test_step_reward_is_zero_at_the_threshold() -> None:
    """f(a) = 1[a > k] is strict: the threshold itself earns nothing."""
    from pgnotes.objectives import step_reward

    # 0.1 has no exact float32 form: the threshold must be kept in float64 for float64 actions.
    f = step_reward(0.1)
    got = f(torch.tensor([0.1 - 1e-12, 0.1, 0.1 + 1e-12], dtype=torch.float64))
    assert got.tolist() == [0.0, 0.0, 1.0]
