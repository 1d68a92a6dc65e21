"""Tests for the bandit of pgnotes.objectives: the one-step Gaussian bandit with a quadratic reward."""

from __future__ import annotations

import functools

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import warnings

from pgnotes import estimators, monte_carlo, objectives, symbolic

F64 = torch.float64

# An unbiased Monte Carlo estimate's z-score is close to standard normal, so |z| < 5 fails by
# chance with probability about 6e-7 per component; the seeds are fixed, the tests deterministic.
Z_BOUND = 5.0

# Closed forms against autograd or SymPy in float64: values of order 10 computed in a handful of
# operations agree to a few ulp; 1e-12 relative leaves a wide margin and rejects any wrong formula.
RTOL = 1e-12

finite = st.floats(-3.0, 3.0, allow_nan=False)
positive = st.floats(0.1, 3.0, allow_nan=False)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_reward_values_and_derivative():
    a = torch.linspace(-2.0, 3.0, 11, dtype=F64, requires_grad=True)
    r = objectives.bandit_reward(0.7)(a)
    assert r.dtype == F64
    torch.testing.assert_close(r, -((a.detach() - 0.7) ** 2), rtol=0, atol=0)
    (derivative,) = torch.autograd.grad(r.sum(), a)
    torch.testing.assert_close(derivative, -2 * (a.detach() - 0.7), rtol=RTOL, atol=0)


def test_reward_broadcasts_and_keeps_dtype():
    a = torch.zeros(4, 1, dtype=torch.float32)
    k = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float32)
    r = objectives.bandit_reward(k)(a)
    assert r.shape == (4, 3) and r.dtype == torch.float32
    assert objectives.bandit_reward(1.0)(a).dtype == torch.float32
    assert objectives.bandit_reward(k)(a.double()).dtype == F64


@pytest.mark.parametrize(("k", "match"), [(float("inf"), "k must be finite"), (float("nan"), "k must be finite")])
def test_reward_rejects_bad_target(k, match):
    with pytest.raises(ValueError, match=match):
        objectives.bandit_reward(k)


def test_old_bandit_module_still_works_with_a_warning():
    from pgnotes import bandit

    with pytest.warns(DeprecationWarning, match="bandit_objective"):
        old = bandit.objective(0.3, 0.7, -1.1)
    assert old.item() == pytest.approx(objectives.bandit_objective(0.3, 0.7, -1.1).item(), rel=0)
    with pytest.warns(DeprecationWarning, match="bandit_reward"):
        assert bandit.reward(torch.tensor([1.0], dtype=F64), 0.5).item() == pytest.approx(-0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import pgnotes.objectives  # noqa: F401  (the new home warns about nothing)


@functools.lru_cache(maxsize=1)
def symbolic_objective():
    """J as the integral of r(a) against the Gaussian density, computed by SymPy, and its symbols."""
    a, mean, k = sp.symbols("a mu k", real=True)
    std = sp.Symbol("sigma", positive=True)
    density = sp.exp(symbolic.univariate_log_density(a, mean, std))
    integral = sp.integrate(-((a - k) ** 2) * density, (a, -sp.oo, sp.oo))
    return integral, (mean, std, k)


def test_objective_is_the_integral_of_the_reward_against_the_density():
    integral, (mean, std, k) = symbolic_objective()
    assert sp.simplify(integral + (mean - k) ** 2 + std**2) == 0
    expected = float(integral.subs({mean: 0.3, std: 0.7, k: -1.1}))
    got = objectives.bandit_objective(torch.tensor(0.3, dtype=F64), 0.7, -1.1)
    assert got.dtype == F64
    assert abs(got.item() - expected) <= RTOL * abs(expected)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(mean=finite, std=positive, k=finite)
def test_objective_gradient_is_the_derivative_of_the_integral(mean, std, k):
    integral, symbols = symbolic_objective()
    d_mean = sp.lambdify(symbols, sp.diff(integral, symbols[0]))(mean, std, k)
    d_std = sp.lambdify(symbols, sp.diff(integral, symbols[1]))(mean, std, k)
    closed_mean, closed_std = objectives.bandit_objective_gradient(mean, torch.tensor(std, dtype=F64), k)
    assert closed_mean.dtype == closed_std.dtype == F64
    assert closed_mean.item() == pytest.approx(d_mean, rel=RTOL, abs=1e-15)
    assert closed_std.item() == pytest.approx(d_std, rel=RTOL)


@pytest.mark.parametrize("baseline", [None, -3.0, 2.5])
def test_score_function_estimates_are_unbiased(baseline):
    mean = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    std = torch.tensor([0.8, 1.5, 0.3], dtype=F64)
    k = torch.tensor([1.5, 0.0, 2.2], dtype=F64)
    g_mean, g_std = estimators.score_function_estimates(objectives.bandit_reward(k), mean, std, 200_000, baseline=baseline, generator=gen(1))
    assert g_mean.shape == g_std.shape == (200_000, 3)
    exact_mean, exact_std = objectives.bandit_objective_gradient(mean, std, k)
    assert monte_carlo.z_score(g_mean, exact_mean).abs().max() < Z_BOUND
    assert monte_carlo.z_score(g_std, exact_std).abs().max() < Z_BOUND


def test_score_function_estimates_are_reproducible_and_signed_like_the_cost():
    first = estimators.score_function_estimates(objectives.bandit_reward(1.5), 0.5, 0.8, 50, generator=gen(3))
    second = estimators.score_function_estimates(objectives.bandit_reward(1.5), 0.5, 0.8, 50, generator=gen(3))
    cost = estimators.score_function_estimates(objectives.quadratic_reward(1.5), 0.5, 0.8, 50, generator=gen(3))
    for ours, again, theirs in zip(first, second, cost):
        assert torch.equal(ours, again)
        torch.testing.assert_close(ours, -theirs, rtol=RTOL, atol=0)


@pytest.mark.parametrize("baseline", [0.0, -1.64, -2.92, 4.0])
def test_estimator_variance_matches_sample_variance(baseline):
    mean, std, k = torch.tensor(0.5, dtype=F64), 0.8, 1.5
    samples = estimators.score_function_estimates(objectives.bandit_reward(k), mean, std, 200_000, baseline=baseline, generator=gen(2))
    exact = objectives.bandit_estimator_variance(mean, std, k, baseline=baseline)
    for estimates, variance in zip(samples, exact):
        summary = monte_carlo.summarize(estimates)
        z = (summary.variance - variance) / summary.variance_standard_error
        assert abs(z.item()) < Z_BOUND, (baseline, summary.variance.item(), variance.item())


@settings(max_examples=25, deadline=None, derandomize=True)
@given(mean=finite, std=positive, k=finite, b=st.floats(-10.0, 10.0, allow_nan=False))
def test_estimator_variance_formula_and_optimal_baseline(mean, std, k, b):
    mean_t = torch.tensor(mean, dtype=F64)
    var_mean, _ = objectives.bandit_estimator_variance(mean_t, std, k, baseline=b)
    c2, s2 = (mean - k) ** 2, std**2
    by_hand = ((c2 + b) ** 2 + 14 * c2 * s2 + 6 * b * s2 + 15 * s2**2) / s2
    assert var_mean.item() == pytest.approx(by_hand, rel=1e-12)
    best = -(c2 + 3 * s2)
    at_best, _ = objectives.bandit_estimator_variance(mean_t, std, k, baseline=best)
    # The variance is a parabola in b with curvature 2 / sigma^2, minimal at b*.
    assert var_mean.item() - at_best.item() == pytest.approx((b - best) ** 2 / s2, rel=1e-9, abs=1e-9)


def test_estimator_variance_broadcasts():
    var_mean, var_std = objectives.bandit_estimator_variance(
        torch.zeros(2, 1, dtype=F64), torch.ones(3, dtype=F64), 1.0, baseline=torch.tensor([0.0, -1.0, 1.0], dtype=F64)
    )
    assert var_mean.shape == var_std.shape == (2, 3)
    assert var_mean.dtype == F64
