"""Tests of pgnotes.numerics: the high-precision references and the shortcuts they measure."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from pgnotes import gaussian, numerics
from pgnotes.check import random_spd

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps

HYPOTHESIS = settings(max_examples=30, deadline=None, derandomize=True)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(shape, dtype=F64, generator=g).to(dtype)


def mvn_case(seed: int, k: int, condition_number: float, *batch: int):
    g = gen(seed)
    cov = random_spd(k, condition_number, batch_shape=batch, generator=g)
    mean = randn(g, *batch, k)
    # Actions drawn from the distribution itself, as a policy's actions are.
    eps = randn(g, *batch, k)
    a = mean + (torch.linalg.cholesky(cov) @ eps.unsqueeze(-1)).squeeze(-1)
    return a, mean, cov


# ----------------------------------------------------------------------------- relative_error


def test_relative_error_values():
    assert numerics.relative_error(torch.tensor([1.0, 2.25], dtype=F64), torch.tensor([1.0, 2.0], dtype=F64)) == 0.125
    assert numerics.relative_error(3.0, 3.0) == 0.0
    # A zero reference falls back to the absolute error.
    assert numerics.relative_error(torch.tensor([0.5]), torch.zeros(1)) == 0.5
    assert numerics.relative_error(torch.tensor([math.nan]), torch.ones(1)) == math.inf
    assert numerics.relative_error(torch.tensor([-math.inf]), torch.ones(1)) == math.inf


# ----------------------------------------------------------------------------- MVN references


def test_mvn_log_prob_reference_matches_torch_when_well_conditioned():
    a, mean, cov = mvn_case(0, 5, 10.0, 4)
    reference = numerics.mvn_log_prob_reference(a, mean, cov)
    torch_value = MultivariateNormal(mean, covariance_matrix=cov).log_prob(a)
    assert reference.shape == (4,) and reference.dtype == F64
    # cond = 10 and values of order 10: float64 algorithms agree with the exact value to ~1e-15;
    # 1e-13 relative is 450 ulp of margin.
    assert numerics.relative_error(torch_value, reference) < 1e-13


def test_mvn_log_prob_reference_exact_on_a_diagonal_case():
    # Powers of two make every float64 step below exact except the logarithms, so an
    # independent float64 evaluation with math.fsum is correct to a few ulp.
    variances = [0.25, 1.0, 4.0, 16.0]
    residuals = [0.5, -1.0, 3.0, 2.0]
    cov = torch.diag(torch.tensor(variances, dtype=F64))
    a = torch.tensor(residuals, dtype=F64)
    expected = math.fsum(
        [-0.5 * d * d / v for d, v in zip(residuals, variances)]
        + [-0.5 * math.log(v) for v in variances]
        + [-0.5 * len(variances) * math.log(2 * math.pi)]
    )
    got = float(numerics.mvn_log_prob_reference(a, torch.zeros(4, dtype=F64), cov))
    # A handful of correctly rounded terms summed exactly: within 4 ulp of the result.
    assert got == pytest.approx(expected, rel=4 * EPS64, abs=0)


def test_mvn_references_are_converged_in_digits():
    a, mean, cov = mvn_case(1, 6, 1e12)
    # If 50 digits were not enough, 80 digits would give a different float64.
    assert torch.equal(
        numerics.mvn_log_prob_reference(a, mean, cov), numerics.mvn_log_prob_reference(a, mean, cov, digits=80)
    )
    for low, high in zip(
        numerics.mvn_score_reference(a, mean, cov), numerics.mvn_score_reference(a, mean, cov, digits=80)
    ):
        assert torch.equal(low, high)


def test_mvn_score_reference_matches_closed_form_and_broadcasts():
    g = gen(2)
    cov = random_spd(3, 10.0, batch_shape=(2, 1), generator=g)
    mean = randn(g, 3)
    a = randn(g, 2, 4, 3)
    d_mean, d_cov = numerics.mvn_score_reference(a, mean, cov)
    assert d_mean.shape == (2, 4, 3) and d_cov.shape == (2, 4, 3, 3)
    closed_mean, closed_cov = gaussian.mvn_score(a, mean, cov)
    # cond = 10: the closed form's float64 error is ~1e-15 relative; 1e-13 leaves a wide margin.
    assert numerics.relative_error(closed_mean, d_mean) < 1e-13
    assert numerics.relative_error(closed_cov, d_cov) < 1e-13
    assert torch.equal(d_cov, d_cov.mT)


ZERO2 = torch.zeros(2, dtype=F64)


@pytest.mark.parametrize(
    "a, cov, message",
    [
        (ZERO2, torch.tensor([[1.0, 0.5], [0.4, 1.0]], dtype=F64), "symmetric"),
        (ZERO2, torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64), "positive definite"),
        (torch.zeros(3, dtype=F64), torch.eye(2, dtype=F64), "event size"),
        (torch.tensor([math.nan, 0.0], dtype=F64), torch.eye(2, dtype=F64), "finite"),
    ],
)
def test_mvn_references_reject_bad_input(a, cov, message):
    mean = torch.zeros_like(a)
    with pytest.raises(ValueError, match=message):
        numerics.mvn_log_prob_reference(a, mean, cov)
    with pytest.raises(ValueError, match=message):
        numerics.mvn_score_reference(a, mean, cov)


def test_references_reject_too_few_digits():
    with pytest.raises(ValueError, match="digits"):
        numerics.mvn_log_prob_reference(ZERO2, ZERO2, torch.eye(2, dtype=F64), digits=10)
    with pytest.raises(ValueError, match="digits"):
        numerics.tanh_log_abs_det_jacobian_reference(torch.zeros(1), digits=16)


# ----------------------------------------------------------------------------- explicit inverse


def test_explicit_inverse_agrees_when_well_conditioned():
    a, mean, cov = mvn_case(3, 4, 10.0, 5)
    # cond = 10: both routes are accurate to ~1e-15 relative; 1e-12 is a generous bound.
    assert numerics.relative_error(
        numerics.mvn_log_prob_explicit_inverse(a, mean, cov), gaussian.mvn_log_prob(a, mean, cov)
    ) < 1e-12
    for naive, closed in zip(numerics.mvn_score_explicit_inverse(a, mean, cov), gaussian.mvn_score(a, mean, cov)):
        assert numerics.relative_error(naive, closed) < 1e-12


@pytest.mark.parametrize("condition_number", [1e2, 1e6, 1e10, 1e13])
def test_both_routes_have_error_below_k_cond_eps(condition_number):
    # Higham (2002), chapters 10 and 14: both the Cholesky route and the explicit inverse have
    # a forward error of order k * cond * eps on these problems. The worst observed ratio over many
    # seeds (k = 4, 8, cond 1e1..1e14) is 0.3; the bound k * cond * eps is asserted.
    k = 5
    bound = k * condition_number * EPS64
    a, mean, cov = mvn_case(4, k, condition_number, 3)
    reference = numerics.mvn_log_prob_reference(a, mean, cov)
    d_mean, d_cov = numerics.mvn_score_reference(a, mean, cov)
    assert numerics.relative_error(gaussian.mvn_log_prob(a, mean, cov), reference) <= bound
    assert numerics.relative_error(numerics.mvn_log_prob_explicit_inverse(a, mean, cov), reference) <= bound
    for got in (gaussian.mvn_score(a, mean, cov), numerics.mvn_score_explicit_inverse(a, mean, cov)):
        assert numerics.relative_error(got[0], d_mean) <= bound
        assert numerics.relative_error(got[1], d_cov) <= bound


def test_explicit_determinant_underflows_where_log_det_does_not():
    k = 32
    cov = 0.01 * torch.eye(k, dtype=torch.float32)
    a = torch.zeros(k, dtype=torch.float32)
    # det = 1e-64 is below float32's smallest subnormal (1.4e-45): it rounds to 0.
    assert not torch.isfinite(numerics.mvn_log_prob_explicit_inverse(a, a, cov))
    exact = -0.5 * k * math.log(0.01) - 0.5 * k * math.log(2 * math.pi)
    # float32 arithmetic on values of order 100: 1e-5 relative is ~100 float32 ulp.
    assert float(gaussian.mvn_log_prob(a, a, cov)) == pytest.approx(exact, rel=1e-5)


def test_explicit_inverse_accepts_an_indefinite_matrix():
    # Two negative eigenvalues: det > 0, so inverse and log-determinant are finite numbers.
    cov = torch.diag(torch.tensor([-1.0, -2.0, 3.0], dtype=F64))
    a = torch.ones(3, dtype=F64)
    assert torch.isfinite(numerics.mvn_log_prob_explicit_inverse(a, torch.zeros(3, dtype=F64), cov))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian.mvn_log_prob(a, torch.zeros(3, dtype=F64), cov)


# ----------------------------------------------------------------------------- tanh corrections


def test_tanh_reference_is_log_one_minus_tanh_squared():
    values = [0.0, 0.3, -2.5, 7.0, 19.0, -40.0]
    got = numerics.tanh_log_abs_det_jacobian_reference(torch.tensor(values, dtype=F64))
    with mpmath.workdps(120):
        # The literal formula, at a precision where 1 - tanh^2(40) ~ 1e-34 keeps 80 digits.
        expected = [float(mpmath.log(1 - mpmath.tanh(mpmath.mpf(v)) ** 2)) for v in values]
    assert got.tolist() == expected


@given(st.floats(min_value=-300.0, max_value=300.0, allow_nan=False))
@HYPOTHESIS
def test_stable_correction_matches_reference(u):
    stable = gaussian.tanh_log_abs_det_jacobian(torch.tensor(u, dtype=F64))
    reference = numerics.tanh_log_abs_det_jacobian_reference(torch.tensor(u, dtype=F64))
    # pgnotes.gaussian documents a few ulp relative error, and a few ulp of log 2 in absolute
    # terms near u = 0 where the value is ~ -u^2: 8 ulp of each.
    assert abs(float(stable) - float(reference)) <= 8 * EPS64 * (abs(float(reference)) + math.log(2.0))


def test_reference_of_float32_input_is_exact_at_that_value():
    u32 = torch.tensor([0.1, 9.5], dtype=torch.float32)
    from_32 = numerics.tanh_log_abs_det_jacobian_reference(u32)
    from_64 = numerics.tanh_log_abs_det_jacobian_reference(u32.to(F64))
    assert from_32.dtype == F64 and torch.equal(from_32, from_64)


@pytest.mark.parametrize("dtype, saturated", [(torch.float32, 9.5), (F64, 19.5)])
def test_naive_correction_is_minus_infinity_once_tanh_rounds_to_one(dtype, saturated):
    u = torch.tensor([saturated, -saturated], dtype=dtype)
    assert torch.all(torch.tanh(u).abs() == 1.0)
    assert torch.all(numerics.tanh_log_abs_det_jacobian_naive(u) == -math.inf)
    assert torch.all(torch.isfinite(gaussian.tanh_log_abs_det_jacobian(u)))


def test_naive_correction_is_accurate_for_small_u():
    u = torch.linspace(-2.0, 2.0, 41, dtype=F64)
    # No cancellation for |u| <= 2 (1 - tanh^2 u >= 0.07): error of order eps / 0.07 ~ 3e-15.
    assert numerics.relative_error(
        numerics.tanh_log_abs_det_jacobian_naive(u), numerics.tanh_log_abs_det_jacobian_reference(u)
    ) < 1e-13


def test_eps_correction_error_is_log1p_eps_cosh_squared():
    # log(1 - tanh^2 u + eps) - log(1 - tanh^2 u) = log(1 + eps cosh^2 u), exactly.
    u = torch.tensor([0.0, 1.0, 3.0, 5.0, 7.0], dtype=F64)
    eps = 1e-6
    error = numerics.tanh_log_abs_det_jacobian_eps(u, eps) - numerics.tanh_log_abs_det_jacobian_reference(u)
    with mpmath.workdps(50):
        expected = [float(mpmath.log1p(eps * mpmath.cosh(mpmath.mpf(v)) ** 2)) for v in u.tolist()]
    # The float64 evaluation of the eps form has absolute error ~ eps64 / (1 - tanh^2 u + eps) <= 1e-10
    # for these u; 1e-9 leaves room.
    assert torch.allclose(error, torch.tensor(expected, dtype=F64), rtol=0, atol=1e-9)


def test_eps_correction_levels_off_at_log_eps():
    u = torch.tensor([15.0, 20.0, -25.0], dtype=F64)
    got = numerics.tanh_log_abs_det_jacobian_eps(u, 1e-6)
    # 1 - tanh^2 u < 4e-13 here, so the value is log(1e-6 + tiny) = log(1e-6) + O(4e-7).
    assert torch.allclose(got, torch.full_like(got, math.log(1e-6)), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="eps"):
        numerics.tanh_log_abs_det_jacobian_eps(u, -1.0)


# ----------------------------------------------------------------------------- entropy


def test_squashed_entropy_small_std_is_delta_method():
    mean, std = 0.7, 1e-3
    h = numerics.squashed_normal_entropy_reference(mean, std)
    # For small std, a ~ N(tanh mean, (1 - tanh^2 mean)^2 std^2): the error is O(std^2) = 1e-6.
    approx = 0.5 * math.log(2 * math.pi * math.e * std**2) + math.log(1 - math.tanh(mean) ** 2)
    assert h == pytest.approx(approx, abs=1e-5)


def test_squashed_entropy_is_even_in_the_mean():
    assert numerics.squashed_normal_entropy_reference(2.0, 1.5) == pytest.approx(
        numerics.squashed_normal_entropy_reference(-2.0, 1.5), rel=1e-14
    )


@pytest.mark.parametrize("mean, std", [(0.0, 1.0), (2.0, 3.0)])
def test_squashed_entropy_matches_monte_carlo(mean, std):
    n = 200_000
    u = mean + std * torch.randn(n, 1, dtype=F64, generator=gen(5))
    log_prob = gaussian.squashed_log_prob(u, mean, math.log(std))
    estimate = float(-log_prob.mean())
    standard_error = float(log_prob.std()) / math.sqrt(n)
    # A correct reference is within 5 standard errors with probability 1 - 6e-7.
    assert abs(estimate - numerics.squashed_normal_entropy_reference(mean, std)) < 5 * standard_error


def test_squashed_entropy_rejects_bad_std():
    with pytest.raises(ValueError, match="std"):
        numerics.squashed_normal_entropy_reference(0.0, 0.0)
