"""Tests of pgnotes.check: the gradient comparisons, the Monte Carlo identities, random_spd."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.gradcheck import GradcheckError
from torch.distributions import MultivariateNormal, Normal

from pgnotes import check, gaussian

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
HYPOTHESIS = settings(max_examples=20, deadline=None, derandomize=True)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def normal_inputs(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "a": torch.randn(6, 3, dtype=F64, generator=g),
        "mean": torch.randn(6, 3, dtype=F64, generator=g),
        "std": torch.exp(0.3 * torch.randn(3, dtype=F64, generator=g)),
    }


def normal_log_density(a, mean, std):
    return Normal(mean, std).log_prob(a)


# --------------------------------------------------------------------------------------------
# compare_with_autograd and GradCheck


def test_compare_with_autograd_accepts_a_correct_score_and_prints_one_line():
    d_mean, d_std = check.compare_with_autograd(gaussian.normal_score, normal_log_density, normal_inputs, ("mean", "std"))
    for result in (d_mean, d_std):
        assert result.ok
        # Same expression evaluated in a different order: a few ulp of the largest entry.
        assert result.max_rel_err <= 1e-14
    assert d_std.shape == (3,)  # the shared std: per-sample scores summed, as autograd does
    assert re.fullmatch(
        r"GradCheck\(wrt='mean', max_abs_err=\S+, max_rel_err=\S+, ok=True @ atol=1e-10, rtol=1e-08\)", repr(d_mean)
    )
    d_mean.assert_ok()
    check.assert_ok([d_mean, d_std])


def test_compare_with_autograd_rejects_a_wrong_score_with_a_clear_message():
    def wrong_score(a, mean, std):
        d = a - mean
        return d / std**2, (d**2 - std) / std**3  # sigma instead of sigma^2 in d_std

    d_mean, d_std = check.compare_with_autograd(wrong_score, normal_log_density, normal_inputs, ("mean", "std"))
    assert d_mean.ok and not d_std.ok
    assert "ok=False" in repr(d_std)
    with pytest.raises(AssertionError, match=r"w.r.t. 'std' \(shape \(3,\)\) differs from autograd: max \|closed - autograd\| = "):
        d_std.assert_ok()
    with pytest.raises(AssertionError, match="'std'"):
        check.assert_ok((d_mean, d_std))


def test_compare_with_autograd_single_name_and_given_inputs():
    inputs = normal_inputs(gen(1))
    result = check.compare_with_autograd(
        lambda a, mean, std: gaussian.normal_score(a, mean, std)[0], normal_log_density, inputs, "mean"
    )
    assert isinstance(result, check.GradCheck) and result.wrt == "mean" and result.ok


def test_compare_with_autograd_casts_to_float64_and_seeds_random_inputs():
    def float32_inputs(g):
        return {name: value.float() for name, value in normal_inputs(g).items()}

    first = check.compare_with_autograd(gaussian.normal_score, normal_log_density, float32_inputs, ("mean", "std"), seed=3)
    second = check.compare_with_autograd(gaussian.normal_score, normal_log_density, float32_inputs, ("mean", "std"), seed=3)
    assert first == second
    # float64 arithmetic: agreement at float64 precision even though the inputs were float32.
    assert all(c.max_rel_err <= 1e-14 for c in first)


def test_compare_with_autograd_reports_misuse():
    with pytest.raises(ValueError, match=r"wrt names \['scale'\] are not among the inputs"):
        check.compare_with_autograd(gaussian.normal_score, normal_log_density, normal_inputs, "scale")
    with pytest.raises(ValueError, match="closed_form returned 2 outputs but wrt='mean' names one"):
        check.compare_with_autograd(gaussian.normal_score, normal_log_density, normal_inputs, "mean")
    with pytest.raises(ValueError, match=r"returned 1 output\(s\) for wrt=\('mean', 'std'\)"):
        check.compare_with_autograd(
            lambda a, mean, std: a - mean, normal_log_density, normal_inputs, ("mean", "std")
        )
    with pytest.raises(ValueError, match=r"has shape \(5,\), which does not reduce to the argument's shape \(3,\)"):
        check.compare_with_autograd(
            lambda a, mean, std: torch.zeros(5, dtype=F64), normal_log_density, normal_inputs, "std"
        )


def test_mvn_score_through_compare_with_autograd():
    def inputs(g):
        cov = check.random_spd(4, 100.0, batch_shape=(5,), generator=g)
        a, mean = torch.randn(5, 4, dtype=F64, generator=g), torch.randn(5, 4, dtype=F64, generator=g)
        return {"a": a, "mean": mean, "cov": cov}

    results = check.compare_with_autograd(
        gaussian.mvn_score,
        lambda a, mean, cov: MultivariateNormal(mean, covariance_matrix=cov).log_prob(a),
        inputs,
        ("mean", "cov"),
    )
    check.assert_ok(results)


# --------------------------------------------------------------------------------------------
# gradcheck_log_density


def test_gradcheck_log_density_on_normal_and_own_log_probs():
    assert check.gradcheck_log_density(normal_log_density, normal_inputs, ("mean", "std"))
    assert check.gradcheck_log_density(
        gaussian.normal_log_prob, normal_inputs, ("a", "mean", "std")
    )
    assert check.gradcheck_log_density(
        gaussian.squashed_log_prob,
        lambda g: {"u": 2 * torch.randn(4, 3, dtype=F64, generator=g), "mean": torch.zeros(3, dtype=F64),
                   "log_std": torch.zeros(3, dtype=F64)},
        ("u", "mean", "log_std"),
    )


def mvn_inputs(g):
    return {
        "a": torch.randn(3, dtype=F64, generator=g),
        "mean": torch.randn(3, dtype=F64, generator=g),
        "cov": check.random_spd(3, 10.0, generator=g),
    }


def test_gradcheck_log_density_needs_symmetric_for_a_covariance():
    def log_density(a, mean, cov):
        return MultivariateNormal(mean, covariance_matrix=cov, validate_args=False).log_prob(a)

    assert check.gradcheck_log_density(log_density, mvn_inputs, ("mean", "cov"), symmetric=("cov",))
    assert check.gradcheck_log_density(gaussian.mvn_log_prob, mvn_inputs, "cov", symmetric=("cov",))
    # Perturbing one entry at a time: the Cholesky factorisation ignores the upper triangle, while
    # autograd reports the symmetric G there, so finite differences disagree.
    with pytest.raises(GradcheckError):
        check.gradcheck_log_density(log_density, mvn_inputs, "cov")


# --------------------------------------------------------------------------------------------
# Monte Carlo identities

MEAN = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
LOG_STD = torch.tensor([0.0, -0.7, 0.4], dtype=F64)
NUM_SAMPLES = 20_000
# 5 standard errors: with at most 36 components, the chance that a correct identity fails is
# below 36 * 5.7e-7 = 2e-5 (and the seeds are fixed, so the outcome is deterministic anyway).
NUM_SE = 5.0


def sample_diag(n, g):
    return MEAN + LOG_STD.exp() * torch.randn(n, 3, dtype=F64, generator=g)


def test_score_has_mean_zero():
    result = check.score_mean_check(sample_diag, lambda a: gaussian.diag_score(a, MEAN, LOG_STD), NUM_SAMPLES)
    assert result.estimate.shape == result.standard_error.shape == result.z_score.shape == (6,)
    assert bool((result.standard_error > 0).all())
    result.assert_within(NUM_SE)
    assert "E[score]" in repr(result) and "num_samples=20000" in repr(result)


def test_biased_score_fails_the_mean_zero_check():
    result = check.score_mean_check(
        sample_diag, lambda a: gaussian.diag_score(a, MEAN, LOG_STD)[0] + 0.1, NUM_SAMPLES
    )
    with pytest.raises(AssertionError, match=r"E\[score\]: component \[\d\] is .* standard errors"):
        result.assert_within(NUM_SE)


def test_fisher_information_of_diagonal_gaussian():
    # Fisher information w.r.t. (mean, log_std): diag(1 / sigma^2, 2), zero elsewhere.
    expected = torch.diag(torch.cat([torch.exp(-2 * LOG_STD), torch.full((3,), 2.0, dtype=F64)]))
    result = check.fisher_check(sample_diag, lambda a: gaussian.diag_score(a, MEAN, LOG_STD), expected, NUM_SAMPLES)
    assert result.estimate.shape == (6, 6)
    result.assert_within(NUM_SE)
    # The std (not log_std) parametrisation has Fisher information 2 / sigma^2: 2 is wrong for it.
    wrong = check.fisher_check(
        sample_diag, lambda a: gaussian.normal_score(a, MEAN, LOG_STD.exp()), expected, NUM_SAMPLES
    )
    with pytest.raises(AssertionError, match="standard errors from its exact value"):
        wrong.assert_within(NUM_SE)


def test_fisher_information_of_full_covariance_mean_is_inverse_covariance():
    cov = check.random_spd(3, 10.0, generator=gen(2))
    scale_tril = torch.linalg.cholesky(cov)
    mean = torch.tensor([1.0, 0.0, -1.0], dtype=F64)

    def sample(n, g):
        return mean + (scale_tril @ torch.randn(n, 3, 1, dtype=F64, generator=g)).squeeze(-1)

    result = check.fisher_check(
        sample, lambda a: gaussian.mvn_score(a, mean, cov)[0], torch.linalg.inv(cov), NUM_SAMPLES
    )
    result.assert_within(NUM_SE)


def test_monte_carlo_misuse():
    with pytest.raises(ValueError, match="leading sample axis of size 10"):
        check.score_mean_check(sample_diag, lambda a: a.sum(), 10)
    with pytest.raises(ValueError, match=r"expected must have shape \(3, 3\)"):
        check.fisher_check(sample_diag, lambda a: a, torch.eye(2), 10)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
        check.score_mean_check(sample_diag, lambda a: a, 1)


def test_zero_variance_components_get_finite_z_scores():
    result = check.score_mean_check(sample_diag, lambda a: torch.zeros(a.shape[0], 2, dtype=F64), 10)
    assert torch.equal(result.z_score, torch.zeros(2, dtype=F64))


# --------------------------------------------------------------------------------------------
# random_spd


@HYPOTHESIS
@given(k=st.integers(1, 16), log10_condition=st.floats(0.0, 8.0), seed=st.integers(0, 2**16))
def test_random_spd_has_the_requested_condition_number(k, log10_condition, seed):
    condition_number = 10.0**log10_condition
    matrix = check.random_spd(k, condition_number, batch_shape=(2,), generator=gen(seed))
    assert matrix.shape == (2, k, k) and matrix.dtype == F64
    assert torch.equal(matrix, matrix.mT)
    eigenvalues = torch.linalg.eigvalsh(matrix)
    expected = torch.logspace(0.0, math.log10(condition_number), k, dtype=F64)
    # Eigenvalues of a symmetric matrix are perturbed by about k eps lambda_max (Weyl), which is
    # relative error k eps cond for the smallest; 16 k eps cond leaves margin.
    tolerance = 16 * k * EPS64 * condition_number
    assert bool(((eigenvalues - expected) / expected).abs().max() <= tolerance)


def test_random_spd_dtype_seed_and_errors():
    a = check.random_spd(5, 1e3, batch_shape=(3, 2), dtype=torch.float32, generator=gen(0))
    b = check.random_spd(5, 1e3, batch_shape=(3, 2), dtype=torch.float32, generator=gen(0))
    assert a.dtype == torch.float32 and a.shape == (3, 2, 5, 5)
    assert torch.equal(a, b) and torch.equal(a, a.mT)
    assert torch.equal(check.random_spd(1, 50.0, generator=gen(0)), torch.ones(1, 1, dtype=F64))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        check.random_spd(0, 10.0)
    with pytest.raises(ValueError, match="condition_number must be a finite number >= 1"):
        check.random_spd(3, 0.5)
