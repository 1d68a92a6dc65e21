"""The chain rule through a mean head and a covariance head, derived by SymPy (pgnotes.symbolic)."""

import dataclasses

import pytest
import sympy as sp
import torch
from torch.distributions import MultivariateNormal, Normal

from pgnotes import symbolic


@pytest.fixture(scope="module")
def heads():
    return {"linear": symbolic.linear_heads_chain_rule(2), "cholesky": symbolic.cholesky_head_chain_rule(2)}


@pytest.mark.parametrize("name", ["linear", "cholesky"])
def test_direct_derivative_equals_chain_rule(heads, name):
    assert heads[name].verify()


@pytest.mark.parametrize("name", ["linear", "cholesky"])
def test_verify_rejects_a_chain_rule_without_the_log_determinant_term(heads, name):
    head = heads[name]
    cov_inv = head.cov.inv()
    w = cov_inv * (head.action - head.mean)
    k = head.cov.shape[0]
    # Only the quadratic-form half of G = (w w^T - Sigma^-1)/2: the -tr(Sigma^-1 dSigma)/2 term is dropped.
    wrong = sp.Matrix(
        [
            sum(w[i] * sp.diff(head.mean[i], p) for i in range(k))
            + sum(w[i] * w[j] / 2 * sp.diff(head.cov[i, j], p) for i in range(k) for j in range(k))
            for p in head.parameters
        ]
    )
    assert not dataclasses.replace(head, chain_rule=wrong).verify()


def test_linear_heads_match_autograd(heads):
    head = heads["linear"]
    generator = torch.Generator().manual_seed(0)
    phi, action = torch.randn(2, generator=generator, dtype=torch.float64), torch.randn(1, generator=generator, dtype=torch.float64)
    theta = torch.randn(4, generator=generator, dtype=torch.float64).requires_grad_(True)
    log_density = Normal(theta[:2] @ phi, torch.exp(theta[2:] @ phi)).log_prob(action[0])
    (expected,) = torch.autograd.grad(log_density, theta)
    for which in ("derivative", "chain_rule"):
        got = head.to_function(which)(phi, action, theta.detach())
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(head.to_function("log_density")(phi, action, theta.detach()), log_density.detach(), rtol=1e-12, atol=1e-12)


def test_cholesky_head_matches_autograd(heads):
    head = heads["cholesky"]
    generator = torch.Generator().manual_seed(1)
    phi, action = torch.randn(2, generator=generator, dtype=torch.float64), torch.randn(2, generator=generator, dtype=torch.float64)
    theta = (0.5 * torch.randn(10, generator=generator, dtype=torch.float64)).requires_grad_(True)
    W, c1, c2, c3 = theta[:4].reshape(2, 2), theta[4:6], theta[6:8], theta[8:]
    zero = torch.zeros((), dtype=torch.float64)
    tril = torch.stack([torch.stack([torch.exp(c1 @ phi), zero]), torch.stack([c2 @ phi, torch.exp(c3 @ phi)])])
    (expected,) = torch.autograd.grad(MultivariateNormal(W @ phi, scale_tril=tril).log_prob(action), theta)
    got = head.to_function("chain_rule")(phi, action, theta.detach())
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [0, -1, 1.5, True, "2"])
@pytest.mark.parametrize("builder", [symbolic.linear_heads_chain_rule, symbolic.cholesky_head_chain_rule])
def test_bad_number_of_features(builder, p):
    with pytest.raises(ValueError, match="p must be a positive int"):
        builder(p)


def test_to_function_rejects_unknown_expression_and_wrong_lengths(heads):
    head = heads["linear"]
    with pytest.raises(ValueError, match="which must be"):
        head.to_function("hessian")
    function = head.to_function()
    with pytest.raises(ValueError, match="expected 7 values"):
        function(torch.zeros(2), torch.zeros(1), torch.zeros(3))
