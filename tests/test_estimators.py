"""Tests for pgnotes.estimators, pgnotes.objectives and pgnotes.monte_carlo: estimators, closed forms, summaries."""

from __future__ import annotations

import functools
import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgnotes.estimators import pathwise_estimates, score_function_estimates
from pgnotes.monte_carlo import EstimateSummary, summarize, z_score
from pgnotes.objectives import (
    EstimatorVariances,
    QuadraticVarianceDerivation,
    exact_gradient_quadratic,
    exact_gradient_step,
    exact_value_quadratic,
    exact_value_step,
    exact_variance_quadratic,
    optimal_baseline_quadratic,
    quadratic_reward,
    quadratic_variance_derivation,
    step_reward,
)
from pgnotes.symbolic import to_torch

F64 = torch.float64

# An unbiased estimator's z-score is close to standard normal for large n, so
# |z| < 5 fails by chance with probability about 6e-7 per component (the seeds
# are fixed, so the tests are deterministic; the bound is what a fresh seed
# would pass with near certainty).
Z_BOUND = 5.0

MEAN = torch.tensor([0.3, -1.0, 2.0], dtype=F64)
STD = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
K = 0.5


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def capture_actions(reward):
    """Wrap ``reward`` to record the actions it is called with."""
    seen: list[torch.Tensor] = []

    def wrapped(actions: torch.Tensor) -> torch.Tensor:
        seen.append(actions.detach().clone())
        return reward(actions)

    return wrapped, seen


# ---------------------------------------------------------------------------
# Shapes, dtypes, reproducibility
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
@pytest.mark.parametrize(
    ("mean", "std", "batch_shape"),
    [
        (0.5, 2.0, ()),
        (torch.tensor(0.5, dtype=F64), torch.tensor(2.0, dtype=F64), ()),
        (MEAN, STD, (3,)),
        (MEAN, 1.5, (3,)),
        (torch.zeros(2, 1, dtype=F64), torch.ones(3, dtype=F64), (2, 3)),
    ],
)
def test_output_shapes(estimator, mean, std, batch_shape):
    g_mean, g_std = estimator(quadratic_reward(K), mean, std, 7, generator=gen(0))
    assert g_mean.shape == (7, *batch_shape)
    assert g_std.shape == (7, *batch_shape)
    assert not g_mean.requires_grad and not g_std.requires_grad


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_kept(estimator, dtype):
    mean = torch.zeros(2, dtype=dtype)
    g_mean, g_std = estimator(quadratic_reward(K), mean, 1.0, 5, generator=gen(1))
    assert g_mean.dtype == dtype and g_std.dtype == dtype


def test_number_mean_takes_dtype_of_tensor_std():
    g_mean, _ = pathwise_estimates(quadratic_reward(K), 0.0, torch.ones(2, dtype=F64), 3, generator=gen(0))
    assert g_mean.dtype == F64


def test_baseline_tensor_broadcasts():
    baseline = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    g_mean, g_std = score_function_estimates(
        quadratic_reward(K), torch.zeros(2, 1, dtype=F64), 1.0 + torch.zeros(3, dtype=F64), 4,
        baseline=baseline, generator=gen(2),
    )
    assert g_mean.shape == (4, 2, 3) and g_std.shape == (4, 2, 3)


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
def test_same_seed_same_estimates(estimator):
    first = estimator(quadratic_reward(K), MEAN, STD, 50, generator=gen(123))
    second = estimator(quadratic_reward(K), MEAN, STD, 50, generator=gen(123))
    other = estimator(quadratic_reward(K), MEAN, STD, 50, generator=gen(124))
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], other[0])


def test_both_estimators_use_common_random_numbers():
    score_f, score_actions = capture_actions(quadratic_reward(K))
    path_f, path_actions = capture_actions(quadratic_reward(K))
    score_function_estimates(score_f, MEAN, STD, 20, generator=gen(5))
    pathwise_estimates(path_f, MEAN, STD, 20, generator=gen(5))
    assert torch.equal(score_actions[0], path_actions[0])


def test_inputs_requiring_grad_are_not_touched():
    mean = MEAN.clone().requires_grad_(True)
    g_mean, _ = pathwise_estimates(quadratic_reward(K), mean, STD, 4, generator=gen(0))
    assert mean.grad is None and not g_mean.requires_grad


def test_pathwise_works_inside_no_grad():
    with torch.no_grad():
        g_mean, _ = pathwise_estimates(quadratic_reward(K), MEAN, STD, 4, generator=gen(0))
    assert g_mean.shape == (4, 3)


# ---------------------------------------------------------------------------
# Per-sample values against independent computations
# ---------------------------------------------------------------------------


def test_score_estimates_match_autograd_of_log_prob():
    reward, seen = capture_actions(quadratic_reward(K))
    baseline = 0.7
    g_mean, g_std = score_function_estimates(reward, MEAN, STD, 6, baseline=baseline, generator=gen(3))
    actions = seen[0]
    mean = MEAN.clone().requires_grad_(True)
    std = STD.clone().requires_grad_(True)
    log_prob = torch.distributions.Normal(mean, std).log_prob(actions)
    weights = (actions - K) ** 2 - baseline
    d_mean, d_std = torch.autograd.grad((weights * log_prob).sum(), (mean, std))
    # autograd of the summed log-density gives the per-sample sums; compare
    # sample by sample through a second route: scores from torch.distributions.
    per_sample_mean = torch.stack(
        [torch.autograd.grad(torch.distributions.Normal(mean, std).log_prob(x).sum(), mean)[0] for x in actions]
    )
    per_sample_std = torch.stack(
        [torch.autograd.grad(torch.distributions.Normal(mean, std).log_prob(x).sum(), std)[0] for x in actions]
    )
    # float64 arithmetic on O(10) numbers: a few ulps, 1e-12 relative is ample.
    torch.testing.assert_close(g_mean, weights * per_sample_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_std, weights * per_sample_std, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_mean.sum(0), d_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_std.sum(0), d_std, rtol=1e-12, atol=1e-12)


def test_pathwise_estimates_match_closed_form_derivative():
    reward, seen = capture_actions(quadratic_reward(K))
    g_mean, g_std = pathwise_estimates(reward, MEAN, STD, 6, generator=gen(4))
    actions = seen[0]
    noise = (actions - MEAN) / STD
    # f'(a) = 2 (a - k); the only error is the rounding in recovering the noise.
    torch.testing.assert_close(g_mean, 2 * (actions - K), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_std, 2 * (actions - K) * noise, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# Unbiasedness
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
def test_unbiased_on_quadratic(estimator):
    exact_mean, exact_std = exact_gradient_quadratic(MEAN, STD, K)
    g_mean, g_std = estimator(quadratic_reward(K), MEAN, STD, 200_000, generator=gen(10))
    assert z_score(g_mean, exact_mean).abs().max() < Z_BOUND
    assert z_score(g_std, exact_std).abs().max() < Z_BOUND


def test_score_function_unbiased_on_step():
    exact_mean, exact_std = exact_gradient_step(MEAN, STD, K)
    g_mean, g_std = score_function_estimates(step_reward(K), MEAN, STD, 200_000, generator=gen(11))
    assert z_score(g_mean, exact_mean).abs().max() < Z_BOUND
    assert z_score(g_std, exact_std).abs().max() < Z_BOUND


def test_score_function_unbiased_with_broadcast_k_and_baseline():
    mean = torch.tensor([[0.3], [-1.0]], dtype=F64)
    k = torch.tensor([[-1.0], [1.5]], dtype=F64)
    baseline = torch.tensor([1.0, 0.0, 3.0], dtype=F64)
    exact_mean, exact_std = exact_gradient_quadratic(mean, STD, k)
    g_mean, g_std = score_function_estimates(
        quadratic_reward(k), mean, STD, 100_000, baseline=baseline, generator=gen(12)
    )
    assert g_mean.shape == (100_000, 2, 3)
    assert z_score(g_mean, exact_mean).abs().max() < Z_BOUND
    assert z_score(g_std, exact_std).abs().max() < Z_BOUND


def test_step_exact_gradient_matches_autograd_of_normal_cdf():
    mean = MEAN.clone().requires_grad_(True)
    std = STD.clone().requires_grad_(True)
    probability = 1 - torch.distributions.Normal(mean, std).cdf(torch.tensor(K, dtype=F64))
    d_mean, d_std = torch.autograd.grad(probability.sum(), (mean, std))
    exact_mean, exact_std = exact_gradient_step(MEAN, STD, K)
    # Two float64 evaluations of the same smooth expression: rounding only.
    torch.testing.assert_close(exact_mean, d_mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(exact_std, d_std, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(exact_value_step(MEAN, STD, K), probability.detach(), rtol=1e-12, atol=1e-14)


def test_quadratic_exact_value_and_gradient_match_autograd():
    mean = MEAN.clone().requires_grad_(True)
    std = STD.clone().requires_grad_(True)
    value = (mean - K) ** 2 + std**2  # E[(a-k)^2] = bias^2 + variance
    d_mean, d_std = torch.autograd.grad(value.sum(), (mean, std))
    exact_mean, exact_std = exact_gradient_quadratic(MEAN, STD, K)
    torch.testing.assert_close(exact_mean, d_mean, rtol=0, atol=0)
    torch.testing.assert_close(exact_std, d_std, rtol=0, atol=0)
    # Monte Carlo value check: |z| < 5 as above.
    samples = quadratic_reward(K)(MEAN + STD * torch.randn(100_000, 3, generator=gen(13), dtype=F64))
    assert z_score(samples, exact_value_quadratic(MEAN, STD, K)).abs().max() < Z_BOUND


def test_pathwise_silently_zero_for_zero_derivative_reward():
    # floor is differentiable almost everywhere with derivative 0, so autograd
    # gives 0 although d/dmu E[floor(a)] is not zero: the documented pitfall.
    g_mean, g_std = pathwise_estimates(torch.floor, MEAN, STD, 100, generator=gen(14))
    assert torch.count_nonzero(g_mean) == 0 and torch.count_nonzero(g_std) == 0
    s_mean, _ = score_function_estimates(torch.floor, MEAN, STD, 100_000, generator=gen(14))
    # E[floor(a)] increases with mu (derivative between 0 and 1, ~1 for wide sigma):
    # the score-function mean is far from 0 in standard errors.
    assert (z_score(s_mean, 0.0) > Z_BOUND).all()


# ---------------------------------------------------------------------------
# Exact variances
# ---------------------------------------------------------------------------


_t = sp.Symbol("t", real=True)


@functools.lru_cache(maxsize=None)
def _standard_normal_moment(power: int) -> sp.Expr:
    """E[t**power] for t ~ N(0, 1), by symbolic integration against the density."""
    density = sp.exp(-(_t**2) / 2) / sp.sqrt(2 * sp.pi)
    return sp.integrate(_t**power * density, (_t, -sp.oo, sp.oo))


def _sympy_variances(mu, sigma, k, b):
    """Per-sample variances by symbolic integration against the N(mu, sigma^2) density.

    Each estimate is written in terms of the action a (scores as d/sigma^2 and
    (d^2 - sigma^2)/sigma^3), then a = mu + sigma t is substituted and every
    monomial integrated against the standard normal density.
    """
    a = sp.Symbol("a", real=True)
    f = (a - k) ** 2
    score_mean = (a - mu) / sigma**2
    score_std = ((a - mu) ** 2 - sigma**2) / sigma**3
    estimates = {
        "score_mean": (f - b) * score_mean,
        "score_std": (f - b) * score_std,
        "pathwise_mean": sp.diff(f, a),
        "pathwise_std": sp.diff(f, a) * (a - mu) / sigma,
    }

    def expect(expr):
        polynomial = sp.Poly(sp.expand(expr.subs(a, mu + sigma * _t)), _t)
        return sum(coeff * _standard_normal_moment(power) for (power,), coeff in polynomial.terms())

    return {name: sp.nsimplify(sp.simplify(expect(g**2) - expect(g) ** 2)) for name, g in estimates.items()}


@pytest.mark.parametrize(
    ("mu", "sigma", "k", "b"),
    [
        (sp.Rational(3, 10), sp.Rational(7, 5), sp.Rational(-1, 2), sp.Integer(2)),
        (sp.Integer(1), sp.Integer(1), sp.Integer(3), sp.Integer(0)),
    ],
)
def test_exact_variance_matches_sympy_integration(mu, sigma, k, b):
    expected = _sympy_variances(mu, sigma, k, b)
    got = exact_variance_quadratic(
        torch.tensor(float(mu), dtype=F64), float(sigma), float(k), baseline=float(b)
    )
    for name, value in expected.items():
        # Exact rationals against a float64 polynomial of O(1) inputs: rounding only.
        assert float(getattr(got, name)) == pytest.approx(float(value), rel=1e-12), name


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    mu=st.floats(-3, 3),
    sigma=st.floats(0.1, 3),
    k=st.floats(-3, 3),
    b=st.floats(-5, 10),
)
def test_exact_variance_matches_gauss_hermite_quadrature(mu, sigma, k, b):
    # Gauss-Hermite (probabilists') with 8 nodes integrates polynomials of
    # degree <= 15 in eps exactly; the squared estimates have degree <= 8.
    nodes, weights = np.polynomial.hermite_e.hermegauss(8)
    weights = weights / weights.sum()
    eps = nodes
    a = mu + sigma * eps
    f = (a - k) ** 2
    estimates = {
        "score_mean": (f - b) * eps / sigma,
        "score_std": (f - b) * (eps**2 - 1) / sigma,
        "pathwise_mean": 2 * (a - k),
        "pathwise_std": 2 * (a - k) * eps,
    }
    got = exact_variance_quadratic(torch.tensor(mu, dtype=F64), sigma, k, baseline=b)
    for name, g in estimates.items():
        expected = float(weights @ g**2 - (weights @ g) ** 2)
        # Quadrature is exact up to rounding of terms as large as ~1e6 (c^4/sigma^2
        # with c = 6, sigma = 0.1) that cancel in E[g^2] - E[g]^2: 1e-9 relative
        # to the largest term bounds that.
        scale = float(weights @ g**2)
        assert abs(float(getattr(got, name)) - expected) <= 1e-9 * scale + 1e-12, name


@pytest.mark.parametrize("baseline", [0.0, 3.0, "optimal_mean"])
def test_monte_carlo_variance_matches_exact(baseline):
    mean, std, k = torch.tensor([0.0, 1.0], dtype=F64), torch.tensor([1.0, 0.5], dtype=F64), 1.5
    if baseline == "optimal_mean":
        baseline = (mean - k) ** 2 + 3 * std**2  # minimiser of the mean-gradient variance
    exact = exact_variance_quadratic(mean, std, k, baseline=baseline)
    s_mean, s_std = score_function_estimates(
        quadratic_reward(k), mean, std, 200_000, baseline=baseline, generator=gen(20)
    )
    p_mean, p_std = pathwise_estimates(quadratic_reward(k), mean, std, 200_000, generator=gen(21))
    for name, estimates in [("score_mean", s_mean), ("score_std", s_std), ("pathwise_mean", p_mean),
                            ("pathwise_std", p_std)]:
        summary = summarize(estimates)
        # The sample variance is asymptotically normal around the true variance
        # with the fourth-moment standard error: |z| < 5 as for the means.
        z = (summary.variance - getattr(exact, name)) / summary.variance_standard_error
        assert z.abs().max() < Z_BOUND, name


def test_baseline_keeps_mean_and_changes_variance_as_the_formula_says():
    mean, std, k = torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64), 2.0
    optimal = float((mean - k) ** 2 + 3 * std**2)
    exact_mean, _ = exact_gradient_quadratic(mean, std, k)
    variances = {}
    for b in (0.0, optimal, 3 * optimal):
        g_mean, _ = score_function_estimates(quadratic_reward(k), mean, std, 100_000, baseline=b, generator=gen(30))
        assert abs(float(z_score(g_mean, exact_mean))) < Z_BOUND
        variances[b] = float(exact_variance_quadratic(mean, std, k, baseline=b).score_mean)
        summary = summarize(g_mean)
        assert abs(float(summary.variance) - variances[b]) < Z_BOUND * float(summary.variance_standard_error)
    # The formula is a quadratic in b minimised at c^2 + 3 sigma^2.
    assert variances[optimal] < variances[0.0] and variances[optimal] < variances[3 * optimal]
    for nearby in (optimal - 0.1, optimal + 0.1):
        assert float(exact_variance_quadratic(mean, std, k, baseline=nearby).score_mean) > variances[optimal]


def test_exact_variance_shapes_and_pathwise_independent_of_baseline():
    got = exact_variance_quadratic(MEAN, STD, torch.tensor([[0.0], [1.0]], dtype=F64), baseline=2.0)
    assert isinstance(got, EstimatorVariances)
    for name in ("score_mean", "score_std", "pathwise_mean", "pathwise_std"):
        assert getattr(got, name).shape == (2, 3)
    without = exact_variance_quadratic(MEAN, STD, torch.tensor([[0.0], [1.0]], dtype=F64))
    assert torch.equal(got.pathwise_mean, without.pathwise_mean)
    assert torch.equal(got.pathwise_std, without.pathwise_std)
    assert "score_mean=" in repr(got)


# ---------------------------------------------------------------------------
# Optimal baselines and the SymPy derivation
# ---------------------------------------------------------------------------


ESTIMATOR_NAMES = ("score_mean", "score_std", "pathwise_mean", "pathwise_std")


@pytest.fixture(scope="module")
def derivation() -> QuadraticVarianceDerivation:
    return quadratic_variance_derivation()


def _grid(seed: int, n: int = 50):
    """Random float64 parameters covering both signs of c = mu - k and small and large sigma."""
    g = gen(seed)
    mean = 3 * torch.rand(n, generator=g, dtype=F64) * 2 - 3
    std = 0.1 + 2.9 * torch.rand(n, generator=g, dtype=F64)
    k = 3 * torch.rand(n, generator=g, dtype=F64) * 2 - 3
    baseline = 15 * torch.rand(n, generator=g, dtype=F64) - 5
    return mean, std, k, baseline


def test_derivation_means_are_the_exact_gradient(derivation):
    assert derivation.unbiased() == {name: True for name in ESTIMATOR_NAMES}
    mean, std, k, _ = _grid(50)
    exact_mean, exact_std = exact_gradient_quadratic(mean, std, k)
    zero = torch.zeros((), dtype=F64)
    # Both are 2c and 2 sigma evaluated in float64: a few ulps.
    torch.testing.assert_close(derivation.to_torch(derivation.gradient["mean"])(mean, std, k, zero), exact_mean,
                               rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(derivation.to_torch(derivation.gradient["std"])(mean, std, k, zero), exact_std,
                               rtol=1e-13, atol=1e-13)
    value = derivation.to_torch(derivation.value)(mean, std, k, zero)
    torch.testing.assert_close(value, exact_value_quadratic(mean, std, k), rtol=1e-13, atol=1e-13)


def test_derivation_variances_match_closed_forms(derivation):
    mean, std, k, baseline = _grid(51)
    exact = exact_variance_quadratic(mean, std, k, baseline=baseline)
    for name in ESTIMATOR_NAMES:
        derived = derivation.to_torch(derivation.variances[name])(mean, std, k, baseline)
        # Two float64 evaluations of the same polynomial, arranged differently; terms
        # up to c^4 / sigma^2 ~ 4e3 cancel partly, so allow 1e-11 relative.
        torch.testing.assert_close(derived, getattr(exact, name), rtol=1e-11, atol=1e-11, msg=name)


@pytest.mark.parametrize(
    ("mu", "sigma", "k", "b"),
    [
        (sp.Rational(3, 10), sp.Rational(7, 5), sp.Rational(-1, 2), sp.Integer(2)),
        (sp.Integer(1), sp.Integer(1), sp.Integer(3), sp.Integer(0)),
    ],
)
def test_derivation_matches_independent_sympy_integration(derivation, mu, sigma, k, b):
    # The test's own derivation works in the action a and substitutes a = mu + sigma t;
    # at rational points both are exact rationals and must be equal.
    expected = _sympy_variances(mu, sigma, k, b)
    symbols = derivation.symbols
    at_point = {symbols["offset"]: mu - k, symbols["std"]: sigma, symbols["baseline"]: b}
    for name in ESTIMATOR_NAMES:
        assert sp.nsimplify(derivation.variances[name].subs(at_point)) == expected[name], name


def test_derivation_estimates_match_the_per_sample_estimates(derivation):
    reward, seen = capture_actions(quadratic_reward(K))
    baseline = 1.3
    g_mean, g_std = score_function_estimates(reward, MEAN, STD, 8, baseline=baseline, generator=gen(52))
    p_mean, p_std = pathwise_estimates(quadratic_reward(K), MEAN, STD, 8, generator=gen(52))
    noise = (seen[0] - MEAN) / STD
    symbols = derivation.symbols
    arguments = [symbols["noise"], symbols["mean"], symbols["std"], symbols["k"], symbols["baseline"]]
    k = torch.tensor(K, dtype=F64)
    b = torch.tensor(baseline, dtype=F64)
    for name, got in zip(ESTIMATOR_NAMES, (g_mean, g_std, p_mean, p_std)):
        expr = derivation.estimates[name].subs(symbols["offset"], symbols["mean"] - symbols["k"])
        expected = to_torch(expr, arguments)(noise, MEAN, STD, k, b)
        # The noise is recovered from the actions with a rounding error of a few ulps.
        torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-11, msg=name)


def test_optimal_baselines_match_derivation_and_minimise(derivation):
    mean, std, k, _ = _grid(53)
    b_mean, b_std = optimal_baseline_quadratic(mean, std, k)
    zero = torch.zeros((), dtype=F64)
    for name, got in (("score_mean", b_mean), ("score_std", b_std)):
        derived = derivation.to_torch(derivation.optimal_baselines[name])(mean, std, k, zero)
        torch.testing.assert_close(got, derived, rtol=1e-13, atol=1e-13, msg=name)
        optimal = derivation.to_torch(derivation.optimal_variances[name])(mean, std, k, zero)
        at_optimum = getattr(exact_variance_quadratic(mean, std, k, baseline=got), name)
        # Terms up to c^4 / sigma^2 cancel at the minimum: allow 1e-12 relative to them.
        scale = ((mean - k) ** 4 / std**2 + std**2).max()
        assert (optimal - at_optimum).abs().max() <= 1e-12 * scale
        for shift in (-0.5, 0.5):
            assert (getattr(exact_variance_quadratic(mean, std, k, baseline=got + shift), name) > at_optimum).all()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(mu=st.floats(-3, 3), sigma=st.floats(0.1, 3), k=st.floats(-3, 3))
def test_optimal_baseline_is_the_general_formula(mu, sigma, k):
    # b* = E[f s^2] / E[s^2] for a score s, by Gauss-Hermite quadrature (exact for these
    # polynomials of degree <= 8 in eps, 8 nodes integrate up to degree 15).
    nodes, weights = np.polynomial.hermite_e.hermegauss(8)
    weights = weights / weights.sum()
    a = mu + sigma * nodes
    f = (a - k) ** 2
    scores = {"mean": nodes / sigma, "std": (nodes**2 - 1) / sigma}
    b_mean, b_std = optimal_baseline_quadratic(torch.tensor(mu, dtype=F64), sigma, k)
    for name, got in (("mean", b_mean), ("std", b_std)):
        s2 = scores[name] ** 2
        expected = float(weights @ (f * s2) / (weights @ s2))
        # Quadrature of O(100) terms in float64: 1e-12 relative.
        assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-12), name


def test_optimal_baseline_errors():
    with pytest.raises(ValueError, match="std must be > 0"):
        optimal_baseline_quadratic(0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="k must be finite"):
        optimal_baseline_quadratic(0.0, 1.0, float("nan"))


def test_derivation_to_torch_broadcasts(derivation):
    variance = derivation.to_torch(derivation.variances["pathwise_std"])
    out = variance(torch.zeros(2, 1, dtype=F64), torch.ones(3, dtype=F64), torch.tensor(1.0, dtype=F64),
                   torch.tensor(0.0, dtype=F64))
    assert out.shape == (2, 3)


# ---------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------


def test_summarize_matches_numpy():
    estimates = torch.randn(50, 3, generator=gen(40), dtype=F64) * 2 + 1
    summary = summarize(estimates)
    array = estimates.numpy()
    # float64 reductions of 50 numbers by two libraries: rounding only.
    np.testing.assert_allclose(summary.mean.numpy(), array.mean(0), rtol=1e-13)
    np.testing.assert_allclose(summary.variance.numpy(), array.var(0, ddof=1), rtol=1e-13)
    np.testing.assert_allclose(summary.standard_error.numpy(), np.sqrt(array.var(0, ddof=1) / 50), rtol=1e-13)
    m4 = ((array - array.mean(0)) ** 4).mean(0)
    s2 = array.var(0, ddof=1)
    np.testing.assert_allclose(
        summary.variance_standard_error.numpy(), np.sqrt((m4 - s2**2 * 47 / 49) / 50), rtol=1e-12
    )
    assert summary.n == 50
    assert isinstance(summary, EstimateSummary)


def test_summary_repr_is_readable():
    summary = summarize(torch.tensor([1.0, 2.0, 3.0], dtype=F64))
    assert repr(summary) == "EstimateSummary(n=3, mean=2, variance=1, standard_error=0.5774)"


def test_z_score_accepts_summary_and_handles_zero_standard_error():
    constant = torch.full((10, 3), 2.0, dtype=F64)
    z = z_score(constant, torch.tensor([2.0, 1.0, 3.0], dtype=F64))
    assert z[0] == 0 and z[1] == float("inf") and z[2] == float("-inf")
    estimates = torch.tensor([[1.0], [3.0]], dtype=F64)
    assert torch.equal(z_score(summarize(estimates), 1.0), z_score(estimates, 1.0))
    assert float(z_score(estimates, 1.0)[0]) == pytest.approx(1.0, rel=1e-15)  # mean 2, variance 2, se sqrt(2/2) = 1


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def numpy_reward(actions):
    return torch.as_tensor(np.sin(actions))


@pytest.mark.parametrize(
    ("reward", "why"),
    [
        (step_reward(0.0), "no autograd graph"),
        (lambda a: torch.heaviside(a, torch.tensor(0.5, dtype=a.dtype)), "autograd cannot differentiate f"),
        (lambda a: (a > 0).to(a.dtype), "no autograd graph"),
        (lambda a: a.detach() ** 2, "no autograd graph"),
        (numpy_reward, "leaves torch"),
        (lambda a: torch.ones(a.shape, dtype=a.dtype, requires_grad=True) * 1.0, "not connected"),
    ],
)
def test_pathwise_refuses_non_differentiable_reward(reward, why):
    with pytest.raises(ValueError, match=f"needs the derivative df/da, but .*{why}.*score_function_estimates"):
        pathwise_estimates(reward, MEAN, STD, 10, generator=gen(0))


def test_score_function_accepts_the_rewards_pathwise_refuses():
    for reward in (step_reward(0.0), lambda a: torch.heaviside(a, torch.tensor(0.5, dtype=a.dtype)),
                   lambda a: np.sin(a.numpy())):
        g_mean, _ = score_function_estimates(
            lambda a, r=reward: torch.as_tensor(r(a)), MEAN, STD, 10, generator=gen(0)
        )
        assert torch.isfinite(g_mean).all()


def test_pathwise_refuses_non_elementwise_reward():
    with pytest.raises(ValueError, match="f must be elementwise.*Jacobian is not diagonal"):
        pathwise_estimates(lambda a: a.cumsum(0), MEAN, STD, 10, generator=gen(0))
    with pytest.raises(ValueError, match="f must be elementwise.*Jacobian is not diagonal"):
        pathwise_estimates(lambda a: a.flip(-1) ** 2, MEAN, STD, 10, generator=gen(0))


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
def test_wrong_reward_shape_or_type(estimator):
    with pytest.raises(ValueError, match="f must be elementwise: f\\(a\\) must have the shape of a"):
        estimator(lambda a: a.sum(-1), MEAN, STD, 10)
    with pytest.raises(ValueError, match="f must return a torch.Tensor"):
        estimator(lambda a: 1.0, MEAN, STD, 10)
    with pytest.raises(ValueError, match="f must return a floating-point tensor"):
        estimator(lambda a: a > 0, MEAN, STD, 10)


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
def test_non_finite_reward(estimator):
    with pytest.raises(ValueError, match=r"f\(a\) must be finite"):
        estimator(lambda a: a / 0.0, MEAN, STD, 10, generator=gen(0))


def test_non_finite_derivative():
    # sqrt(|a|) at a = 0 exactly: finite value, infinite derivative.
    with pytest.raises(ValueError, match="df/da must be finite"):
        pathwise_estimates(lambda a: (a * 0).abs().sqrt(), MEAN, STD, 10, generator=gen(0))


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
@pytest.mark.parametrize(
    ("mean", "std", "n", "match"),
    [
        (MEAN, torch.tensor([1.0, 0.0, 1.0], dtype=F64), 5, "std must be > 0"),
        (MEAN, -1.0, 5, "std must be > 0"),
        (torch.tensor([0.0, float("nan"), 0.0], dtype=F64), STD, 5, "mean must be finite"),
        (MEAN, torch.tensor([1.0, float("inf"), 1.0], dtype=F64), 5, "std must be finite"),
        (torch.zeros(2, dtype=F64), STD, 5, "shapes do not broadcast"),
        (torch.zeros(3, dtype=torch.complex128), STD, 5, "mean must be real"),
        (torch.zeros(3, dtype=torch.float16), STD, 5, "mean has dtype torch.float16"),
        ("zero", STD, 5, "mean must be a tensor, an array or a number"),
        (MEAN, STD, 0, "n must be a positive integer"),
        (MEAN, STD, -3, "n must be a positive integer"),
        (MEAN, STD, 2.5, "n must be a positive integer"),
        (MEAN, STD, True, "n must be a positive integer"),
    ],
)
def test_argument_errors(estimator, mean, std, n, match):
    with pytest.raises(ValueError, match=match):
        estimator(quadratic_reward(K), mean, std, n)


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
def test_generator_must_be_a_generator(estimator):
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        estimator(quadratic_reward(K), MEAN, STD, 5, generator=0)


@pytest.mark.parametrize("estimator", [score_function_estimates, pathwise_estimates])
def test_integer_mean_is_promoted_to_the_dtype_of_std(estimator):
    promoted = estimator(quadratic_reward(K), torch.zeros(3, dtype=torch.int64), STD, 5, generator=gen(0))
    floating = estimator(quadratic_reward(K), torch.zeros(3, dtype=F64), STD, 5, generator=gen(0))
    for got, expected in zip(promoted, floating):
        assert got.dtype == F64
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_baseline_errors():
    with pytest.raises(ValueError, match="baseline must be finite"):
        score_function_estimates(quadratic_reward(K), MEAN, STD, 5, baseline=float("nan"))
    with pytest.raises(ValueError, match="baseline of shape \\(2, 3\\) must broadcast to the batch shape \\(3,\\)"):
        score_function_estimates(quadratic_reward(K), MEAN, STD, 5, baseline=torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        score_function_estimates(quadratic_reward(K), MEAN, STD, 5, baseline=torch.zeros(2, dtype=F64))


def test_summary_errors():
    with pytest.raises(ValueError, match="n >= 2 samples"):
        summarize(torch.zeros(1, 3, dtype=F64))
    with pytest.raises(ValueError, match="n >= 2 samples"):
        summarize(torch.tensor(1.0, dtype=F64))
    with pytest.raises(ValueError, match="estimates must be finite"):
        summarize(torch.tensor([1.0, float("inf")], dtype=F64))
    with pytest.raises(ValueError, match="exact must be finite"):
        z_score(torch.zeros(4, 3, dtype=F64), float("nan"))
    with pytest.raises(ValueError, match="exact of shape \\(2, 3\\) must broadcast"):
        z_score(torch.zeros(4, 3, dtype=F64), torch.zeros(2, 3, dtype=F64))


def test_closed_form_errors():
    with pytest.raises(ValueError, match="k must be finite"):
        quadratic_reward(float("inf"))
    with pytest.raises(ValueError, match="k must be finite"):
        step_reward(float("nan"))
    with pytest.raises(ValueError, match="std must be > 0"):
        exact_gradient_quadratic(0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="std must be > 0"):
        exact_gradient_step(0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="k must be finite"):
        exact_variance_quadratic(0.0, 1.0, float("nan"))
    with pytest.raises(ValueError, match="baseline must be finite"):
        exact_variance_quadratic(0.0, 1.0, 0.0, baseline=float("inf"))
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        exact_gradient_quadratic(MEAN, STD, torch.zeros(2, dtype=F64))


# ---------------------------------------------------------------------------
# Homework checkers registered in pgnotes.exercises
# ---------------------------------------------------------------------------


def student_exact_gradient_step(mean, std, k):
    # Written from d/dmu Phi((mu - k)/sigma) with the density of torch.distributions.
    z = (mean - k) / std
    density = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).exp()
    return density / std, -density * z / std


def student_exact_variances(mean, std, k, baseline):
    # Expanded in moments of eps (E[eps^2] = 1, E[eps^4] = 3, E[eps^6] = 15, E[eps^8] = 105), with
    # e = c^2 - b: E[(e + 2 c s eps + s^2 eps^2)^2 eps^2] = e^2 + 6 e s^2 + 12 c^2 s^2 + 15 s^4 and
    # E[(...)^2 (eps^2 - 1)^2] = 2 e^2 + 20 e s^2 + 40 c^2 s^2 + 78 s^4.
    c, s, b = mean - k, std, baseline
    e = c**2 - b
    second_mean = (e**2 + 6 * e * s**2 + 12 * c**2 * s**2 + 15 * s**4) / s**2
    second_std = (2 * e**2 + 20 * e * s**2 + 40 * c**2 * s**2 + 78 * s**4) / s**2
    return (
        second_mean - (2 * c) ** 2,
        second_std - (2 * s) ** 2,
        4 * s**2 * torch.ones_like(c),
        4 * c**2 + 8 * s**2,
    )


def test_exercise_exact_gradient_step(capsys):
    from pgnotes import exercises

    exercises.check("exact_gradient_step", student_exact_gradient_step)
    assert capsys.readouterr().out.startswith("exact_gradient_step: all 3 cases passed")
    with pytest.raises(AssertionError, match=r"exact_gradient_step: d_std is wrong at index .*\n  case: mean \[0.3"):
        exercises.check("exact_gradient_step", lambda m, s, k: (student_exact_gradient_step(m, s, k)[0],
                                                                -student_exact_gradient_step(m, s, k)[1]))


def test_exercise_exact_variance_quadratic(capsys):
    from pgnotes import exercises

    def student(mean, std, k, baseline):
        score_mean, score_std, path_mean, path_std = student_exact_variances(mean, std, k, baseline)
        shape = torch.broadcast_shapes(mean.shape, std.shape, k.shape, baseline.shape)
        return tuple(x.expand(shape) for x in (score_mean, score_std, path_mean, path_std))

    exercises.check("exact_variance_quadratic", student)
    assert capsys.readouterr().out.startswith("exact_variance_quadratic: all 4 cases passed")

    def forgets_the_baseline(mean, std, k, baseline):
        return student(mean, std, k, torch.zeros_like(baseline))

    with pytest.raises(AssertionError, match=r"exact_variance_quadratic: score_mean is wrong at index"):
        exercises.check("exact_variance_quadratic", forgets_the_baseline)


def student_step_gradient(mean, std, k, n, score="right", seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = torch.broadcast_shapes(mean.shape, std.shape, k.shape)
    eps = torch.randn((n, *shape), generator=g, dtype=torch.float64)
    a = mean + std * eps
    reward = (a > k).to(a.dtype)
    if score == "right":
        d_mean, d_std = (a - mean) / std**2, ((a - mean) ** 2 - std**2) / std**3
    else:  # the erratum (a - mu) / sigma
        d_mean, d_std = (a - mean) / std, ((a - mean) ** 2 - std**2) / std**3
    return (reward * d_mean).mean(0), (reward * d_std).mean(0)


def test_exercise_score_function_step_gradient(capsys):
    from pgnotes import exercises

    # Several seeds: a correct estimator passes for each (the tolerance is > 6 standard errors).
    for seed in range(3):
        exercises.check("score_function_step_gradient", lambda *args, s=seed: student_step_gradient(*args, seed=s))
    assert capsys.readouterr().out.count("score_function_step_gradient: all 2 cases passed") == 3
    with pytest.raises(AssertionError, match=r"score_function_step_gradient: d_mean is wrong"):
        exercises.check("score_function_step_gradient", lambda *args: student_step_gradient(*args, score="wrong"))
    # The pathwise estimate of a step reward is zero: far from the gradient.
    with pytest.raises(AssertionError, match=r"score_function_step_gradient: d_mean is wrong"):
        exercises.check(
            "score_function_step_gradient",
            lambda mean, std, k, n: tuple(torch.zeros(torch.broadcast_shapes(mean.shape, std.shape, k.shape),
                                                      dtype=torch.float64) for _ in range(2)),
        )
