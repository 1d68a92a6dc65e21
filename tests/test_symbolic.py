"""Tests of pgnotes.symbolic: the derivations equal the book's closed forms and pgnotes.gaussian."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
from torch.distributions import MultivariateNormal

from pgnotes import gaussian, symbolic
from pgnotes.check import random_spd

F64 = torch.float64
# The symbolic expressions and the closed forms evaluate the same mathematics in a different
# order; with covariances of condition number 10 the results agree to ~1e-14. 1e-11 is safe.
TOL = dict(atol=1e-11, rtol=1e-11)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, dtype=F64, generator=g)


@pytest.fixture(scope="module")
def full_covariance():
    """Derivations shared by several tests (the k = 3 ones take about a second to build)."""
    return {
        (k, symmetric): symbolic.full_covariance_gaussian(k, symmetric=symmetric)
        for k in (1, 2, 3)
        for symmetric in (True, False)
    }


@pytest.fixture(scope="module")
def cholesky():
    return {k: symbolic.cholesky_gaussian(k) for k in (1, 2, 3)}


# --------------------------------------------------------------------------------------------
# Exact agreement with the closed forms


@pytest.mark.parametrize("parametrisation", ["std", "log_std"])
def test_univariate_derivatives_equal_closed_forms(parametrisation):
    derivation = symbolic.univariate_gaussian(parametrisation)
    assert derivation.verify() == {"mean": True, parametrisation: True}


def test_univariate_simplified_is_what_the_book_prints():
    d, sigma, ell = sp.Symbol("d", real=True), sp.Symbol("sigma", positive=True), sp.Symbol("ell", real=True)
    by_std = symbolic.univariate_gaussian("std").simplified()
    assert sp.simplify(by_std["mean"] - d / sigma**2) == 0
    assert sp.simplify(by_std["std"] - (d**2 - sigma**2) / sigma**3) == 0
    by_log_std = symbolic.univariate_gaussian("log_std").simplified()
    assert sp.simplify(by_log_std["log_std"] - (d**2 * sp.exp(-2 * ell) - 1)) == 0
    # The scores depend on a and mu only through d.
    for value in (*by_std.values(), *by_log_std.values()):
        assert not value.has(sp.Symbol("a", real=True), sp.Symbol("mu", real=True))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("parametrisation", ["std", "log_std"])
def test_diagonal_derivatives_equal_closed_forms(k, parametrisation):
    assert all(symbolic.diagonal_gaussian(k, parametrisation).verify().values())


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("symmetric", [True, False])
def test_full_covariance_derivatives_equal_closed_forms(full_covariance, k, symmetric):
    assert full_covariance[(k, symmetric)].verify() == {"mean": True, "cov": True}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cholesky_derivatives_equal_closed_forms(cholesky, k):
    assert cholesky[k].verify() == {"mean": True, "scale_tril": True}


def test_verify_detects_a_wrong_closed_form():
    derivation = symbolic.univariate_gaussian("std")
    a, mean, std = derivation.arguments
    wrong = symbolic.Derivation(
        derivation.name, derivation.log_density, derivation.symbols, derivation.derivatives,
        {"std": ((a - mean) ** 2 - std) / std**3},
    )
    assert wrong.verify() == {"std": False}


@pytest.mark.parametrize("k", [1, 2])  # k = 3 is covered by the closed-form tests above, 4 s slower here
def test_free_entry_gradient_is_two_g_minus_diag_g(k):
    conventions = symbolic.covariance_gradient_conventions(k)
    assert conventions["free - (2G - diag G)"] == sp.zeros(k, k)
    if k > 1:  # off the diagonal the two conventions really differ, by a factor 2
        assert sp.cancel(conventions["free"][0, 1] - 2 * conventions["independent"][0, 1]) == 0
        assert sp.cancel(conventions["free"][0, 1] - conventions["independent"][0, 1]) != 0


def test_matrixsymbol_logdet_derivative_is_silently_zero():
    result = symbolic.matrixsymbol_logdet_derivative(3)
    assert result == sp.ZeroMatrix(3, 3), (
        f"SymPy {sp.__version__} now returns {result!r} for diff(log(Determinant(Sigma)), Sigma) "
        "instead of a silent ZeroMatrix: SymPy fixed its matrix-calculus derivative of log det, "
        "so the book's remark about it (and matrixsymbol_logdet_derivative's docstring) must be updated."
    )


# --------------------------------------------------------------------------------------------
# Numerical agreement with pgnotes.gaussian and autograd, via to_torch


def test_univariate_to_torch_matches_gaussian():
    g = gen(0)
    a, mean = randn(g, 4, 3), randn(g, 3)
    std = torch.exp(0.5 * randn(g, 4, 1))
    by_std = symbolic.univariate_gaussian("std")
    torch.testing.assert_close(by_std.to_torch()(a, mean, std), gaussian.normal_log_prob(a, mean, std), **TOL)
    expected = gaussian.normal_score(a, mean, std)
    torch.testing.assert_close(by_std.to_torch("mean")(a, mean, std), expected[0], **TOL)
    torch.testing.assert_close(by_std.to_torch("std")(a, mean, std), expected[1], **TOL)
    by_log_std = symbolic.univariate_gaussian("log_std")
    expected = gaussian.normal_score_log_std(a, mean, std.log())
    torch.testing.assert_close(by_log_std.to_torch("mean")(a, mean, std.log()), expected[0], **TOL)
    torch.testing.assert_close(by_log_std.to_torch("log_std")(a, mean, std.log()), expected[1], **TOL)


@pytest.mark.parametrize("k", [1, 3])
def test_diagonal_to_torch_matches_gaussian(k):
    g = gen(k)
    a, mean, log_std = randn(g, 5, k), randn(g, 5, k), 0.5 * randn(g, k)
    derivation = symbolic.diagonal_gaussian(k)
    torch.testing.assert_close(derivation.to_torch()(a, mean, log_std), gaussian.diag_log_prob(a, mean, log_std), **TOL)
    d_mean, d_log_std = gaussian.diag_score(a, mean, log_std)
    torch.testing.assert_close(derivation.to_torch("mean")(a, mean, log_std), d_mean, **TOL)
    torch.testing.assert_close(derivation.to_torch("log_std")(a, mean, log_std), d_log_std, **TOL)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_full_covariance_to_torch_matches_gaussian_and_autograd(full_covariance, k):
    g = gen(10 + k)
    cov = random_spd(k, 10.0, batch_shape=(4,), generator=g)
    a, mean = randn(g, 4, k), randn(g, 4, k)
    d_mean, d_cov = gaussian.mvn_score(a, mean, cov)

    general = full_covariance[(k, False)]
    torch.testing.assert_close(general.to_torch()(a, mean, cov), gaussian.mvn_log_prob(a, mean, cov), **TOL)
    torch.testing.assert_close(general.to_torch("mean")(a, mean, cov), d_mean, **TOL)
    # k^2 independent entries at a symmetric point: G, the convention of mvn_score and autograd.
    torch.testing.assert_close(general.to_torch("cov")(a, mean, cov), d_cov, **TOL)
    cov_leaf = cov.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(MultivariateNormal(mean, covariance_matrix=cov_leaf).log_prob(a).sum(), cov_leaf)
    torch.testing.assert_close(general.to_torch("cov")(a, mean, cov), autograd, **TOL)

    # Free entries of a symmetric matrix: 2G - diag(G).
    free = full_covariance[(k, True)].to_torch("cov")(a, mean, cov)
    torch.testing.assert_close(free, 2 * d_cov - torch.diag_embed(torch.diagonal(d_cov, dim1=-2, dim2=-1)), **TOL)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cholesky_to_torch_matches_gaussian(cholesky, k):
    g = gen(20 + k)
    scale_tril = torch.linalg.cholesky(random_spd(k, 10.0, batch_shape=(3,), generator=g))
    a, mean = randn(g, 3, k), randn(g, 3, k)
    derivation = cholesky[k]
    d_mean, d_scale_tril = gaussian.mvn_score_tril(a, mean, scale_tril)
    torch.testing.assert_close(derivation.to_torch("mean")(a, mean, scale_tril), d_mean, **TOL)
    torch.testing.assert_close(derivation.to_torch("scale_tril")(a, mean, scale_tril), d_scale_tril, **TOL)
    expected_log_prob = MultivariateNormal(mean, scale_tril=scale_tril).log_prob(a)
    torch.testing.assert_close(derivation.to_torch()(a, mean, scale_tril), expected_log_prob, **TOL)


# --------------------------------------------------------------------------------------------
# to_torch itself


def test_to_torch_broadcasts_and_keeps_autograd():
    x, y = sp.symbols("x y", real=True)
    f = symbolic.to_torch(sp.log(x) * y + sp.pi, [x, y])
    xs = torch.tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    out = f(xs, torch.tensor(2.0, dtype=F64))
    assert out.shape == (3,) and out.dtype == F64
    torch.testing.assert_close(out, 2 * torch.log(xs) + math.pi, atol=0.0, rtol=0.0)
    (grad,) = torch.autograd.grad(out.sum(), xs)
    # d/dx (2 log x) = 2 / x: one division, exact up to an ulp.
    torch.testing.assert_close(grad, 2 / xs.detach(), atol=0.0, rtol=2 * torch.finfo(F64).eps)


def test_to_torch_constant_entries_broadcast():
    x = sp.Symbol("x", real=True)
    f = symbolic.to_torch(sp.Matrix([[x, 0], [1, x**2]]), [x])
    out = f(torch.tensor([2.0, 3.0], dtype=F64))
    expected = torch.tensor([[[2.0, 0.0], [1.0, 4.0]], [[3.0, 0.0], [1.0, 9.0]]], dtype=F64)
    assert torch.equal(out, expected)


def test_to_torch_rejects_missing_symbols():
    x, y = sp.symbols("x y")
    with pytest.raises(ValueError, match=r"not given as arguments: \['y'\]"):
        symbolic.to_torch(x + y, [x])


def test_builders_reject_bad_arguments():
    with pytest.raises(ValueError, match="k must be a positive integer"):
        symbolic.full_covariance_gaussian(0)
    with pytest.raises(ValueError, match="parametrisation must be"):
        symbolic.univariate_gaussian("variance")
