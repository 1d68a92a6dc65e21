"""Tests for pgnotes.chain_rule: the score through a policy's heads equals autograd through log_prob."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal

from pgnotes import chain_rule
from pgnotes.check import random_spd
from pgnotes.policies import StateDependentStdPolicy, make_policy

F64 = torch.float64

# Closed-form chain rule and autograd through torch.distributions compute the same sums of
# products in a different order. With a batch of at most 64 samples and gradients of order 10,
# rounding differences are about 64 * 2.2e-16 relative to the largest entry (~1e-14); 1e-11
# relative leaves a margin of a few hundred, while a wrong formula is off by O(1).
RTOL64 = 1e-11
# float32: the same argument with eps = 1.2e-7 gives ~1e-5; a factor of 10 on top.
RTOL32 = 1e-4

CONFIGS = [
    ("fixed", {}),
    ("learned", {}),
    ("state", {}),
    ("cholesky", {}),
    ("cholesky", {"state_dependent": False}),
]


def perturbed_policy(head, kwargs, hidden, obs_dim=3, act_dim=2, seed=0, dtype=F64):
    """A policy whose parameters are moved away from their (zero, state-independent) initial values."""
    policy = make_policy(head, obs_dim, act_dim, init_std=0.6, hidden=hidden, seed=seed, dtype=dtype, **kwargs)
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=F64).to(dtype))
    return policy


def batch(policy, size, seed, dtype=F64):
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(*size, policy.obs_dim, generator=generator, dtype=F64).to(dtype)
    act = policy.sample(obs, generator=generator)
    weights = torch.randn(*size, generator=generator, dtype=F64).to(dtype)
    return obs, act, weights


def assert_same_gradients(closed, reference, rtol):
    assert closed.keys() == reference.keys()
    scale = max(float(g.abs().max()) for g in reference.values())
    assert scale > 0, "the reference gradient is zero: the test would prove nothing"
    for name in reference:
        assert closed[name].shape == reference[name].shape, name
        error = float((closed[name] - reference[name]).abs().max())
        assert error <= rtol * scale, f"{name}: max error {error:.3g} vs scale {scale:.3g}"


# Every head with every route of the chain rule it supports (a Cholesky head has no log std).
ROUTES = [
    (head, kwargs, through)
    for head, kwargs in CONFIGS
    for through in ("default", "log_std", "scale_tril", "cov")
    if not (head == "cholesky" and through == "log_std")
]


@pytest.mark.parametrize("head,kwargs,through", ROUTES)
@pytest.mark.parametrize("hidden", [(), (16,)])
def test_policy_chain_rule_equals_autograd(head, kwargs, through, hidden):
    policy = perturbed_policy(head, kwargs, hidden)
    obs, act, weights = batch(policy, (64,), seed=1)
    reference = chain_rule.policy_autograd_score(policy, obs, act, weights=weights)
    closed = chain_rule.policy_chain_rule(
        policy, obs, act, weights=weights, through=None if through == "default" else through
    )
    assert_same_gradients(closed, reference, RTOL64)


def test_policy_chain_rule_two_batch_dimensions_and_float32():
    policy = perturbed_policy("cholesky", {}, (8,), dtype=torch.float32)
    obs, act, weights = batch(policy, (4, 5), seed=2, dtype=torch.float32)
    reference = chain_rule.policy_autograd_score(policy, obs, act, weights=weights)
    closed = chain_rule.policy_chain_rule(policy, obs, act, weights=weights)
    assert all(g.dtype == torch.float32 for g in closed.values())
    assert_same_gradients(closed, reference, RTOL32)


def test_no_weights_is_unit_weights():
    policy = perturbed_policy("state", {}, (8,))
    obs, act, _ = batch(policy, (16,), seed=3)
    unweighted = chain_rule.policy_chain_rule(policy, obs, act)
    ones = chain_rule.policy_chain_rule(policy, obs, act, weights=torch.ones(16, dtype=F64))
    reference = chain_rule.policy_autograd_score(policy, obs, act)
    assert_same_gradients(unweighted, reference, RTOL64)
    assert_same_gradients(ones, unweighted, RTOL64)


def test_fixed_std_policy_has_only_mean_gradients():
    policy = perturbed_policy("fixed", {}, (8,))
    obs, act, _ = batch(policy, (16,), seed=4)
    closed = chain_rule.policy_chain_rule(policy, obs, act)
    assert not any("log_std" in name for name in closed)
    assert_same_gradients(closed, chain_rule.policy_autograd_score(policy, obs, act), RTOL64)


def test_clamped_log_std_head_gets_no_gradient():
    # Bounds far above the head's output: every log_std is clamped to the lower bound, so
    # the log-std head's parameters receive exactly zero, by the chain rule as by autograd.
    policy = StateDependentStdPolicy(3, 2, init_std=0.6, hidden=(8,), log_std_bounds=(-1.0, 2.0), dtype=F64)
    with torch.no_grad():
        policy.log_std_head.bias.fill_(-5.0)
    obs, act, _ = batch(policy, (16,), seed=5)
    closed = chain_rule.policy_chain_rule(policy, obs, act)
    reference = chain_rule.policy_autograd_score(policy, obs, act)
    for name in ("log_std_head.weight", "log_std_head.bias"):
        assert torch.equal(closed[name], torch.zeros_like(closed[name]))
        assert torch.equal(reference[name], torch.zeros_like(reference[name]))
    assert_same_gradients(closed, reference, RTOL64)


def _covariance_network(seed: int, k: int = 3, n: int = 4):
    """A covariance head Sigma(s) = A(s) A(s)^T + I with A(s) linear in s, and a linear mean."""
    generator = torch.Generator().manual_seed(seed)
    weight_a = (0.5 * torch.randn(k * k, n, generator=generator, dtype=F64)).requires_grad_(True)
    weight_mu = torch.randn(k, n, generator=generator, dtype=F64).requires_grad_(True)

    def heads(obs):
        a_matrix = (obs @ weight_a.T).reshape(*obs.shape[:-1], k, k)
        cov = a_matrix @ a_matrix.mT + torch.eye(k, dtype=F64)
        # Symmetrise exactly: the matrix product is symmetric only up to rounding.
        return obs @ weight_mu.T, 0.5 * (cov + cov.mT)

    return heads, [weight_mu, weight_a], generator


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), size=st.integers(1, 12))
def test_mvn_chain_rule_equals_autograd_through_multivariate_normal(seed, size):
    heads, parameters, generator = _covariance_network(seed)
    obs = torch.randn(size, 4, generator=generator, dtype=F64)
    act = torch.randn(size, 3, generator=generator, dtype=F64)
    weights = torch.randn(size, generator=generator, dtype=F64)
    mean, cov = heads(obs)
    closed = chain_rule.mvn_chain_rule(act, mean, cov, parameters, weights=weights)
    mean, cov = heads(obs)
    objective = (weights * MultivariateNormal(mean, covariance_matrix=cov).log_prob(act)).sum()
    reference = torch.autograd.grad(objective, parameters)
    assert_same_gradients(dict(enumerate(closed)), dict(enumerate(reference)), RTOL64)


def test_mvn_chain_rule_with_a_covariance_shared_by_the_batch():
    generator = torch.Generator().manual_seed(6)
    cov_root = torch.linalg.cholesky(random_spd(3, 10.0, generator=generator)).requires_grad_(True)
    mean = torch.randn(3, generator=generator, dtype=F64).requires_grad_(True)
    act = torch.randn(2, 5, 3, generator=generator, dtype=F64)
    weights = torch.randn(2, 1, generator=generator, dtype=F64)  # broadcast over the second batch axis
    cov = cov_root @ cov_root.mT
    # Symmetrise exactly: the matrix product is symmetric only up to rounding.
    closed = chain_rule.mvn_chain_rule(act, mean, 0.5 * (cov + cov.mT), [mean, cov_root], weights=weights)
    cov = cov_root @ cov_root.mT
    objective = (weights * MultivariateNormal(mean, covariance_matrix=0.5 * (cov + cov.mT)).log_prob(act)).sum()
    reference = torch.autograd.grad(objective, [mean, cov_root])
    assert_same_gradients(dict(enumerate(closed)), dict(enumerate(reference)), RTOL64)


def test_tril_and_diag_chain_rules_on_shared_parameters():
    generator = torch.Generator().manual_seed(7)
    mean = torch.randn(4, 2, generator=generator, dtype=F64).requires_grad_(True)
    log_std = (0.3 * torch.randn(2, generator=generator, dtype=F64)).requires_grad_(True)
    act = torch.randn(4, 2, generator=generator, dtype=F64)
    closed = chain_rule.diag_chain_rule(act, mean, log_std, [mean, log_std])
    objective = Independent(Normal(mean, log_std.exp()), 1).log_prob(act).sum()
    reference = torch.autograd.grad(objective, [mean, log_std])
    assert_same_gradients(dict(enumerate(closed)), dict(enumerate(reference)), RTOL64)

    scale_tril = torch.diag_embed(log_std.exp())
    closed_tril = chain_rule.tril_chain_rule(act, mean, scale_tril, [mean, log_std])
    assert_same_gradients(dict(enumerate(closed_tril)), dict(enumerate(reference)), RTOL64)


def test_retain_graph_allows_a_second_pass():
    generator = torch.Generator().manual_seed(8)
    theta = torch.randn(2, generator=generator, dtype=F64).requires_grad_(True)
    mean, log_std = theta * 2.0, theta.flip(0) * 0.1
    act = torch.randn(3, 2, generator=generator, dtype=F64)
    first = chain_rule.diag_chain_rule(act, mean, log_std, [theta], retain_graph=True)
    second = chain_rule.diag_chain_rule(act, mean, log_std, [theta])
    assert torch.equal(first[0], second[0])


def test_unused_input_gets_zeros():
    generator = torch.Generator().manual_seed(9)
    theta = torch.randn(2, generator=generator, dtype=F64).requires_grad_(True)
    unused = torch.randn(5, generator=generator, dtype=F64).requires_grad_(True)
    act = torch.randn(2, generator=generator, dtype=F64)
    gradients = chain_rule.diag_chain_rule(act, theta, torch.zeros(2, dtype=F64), [theta, unused])
    assert torch.equal(gradients[1], torch.zeros(5, dtype=F64))
    # With log_std = 0 (sigma = 1) the mean score is the residual itself.
    torch.testing.assert_close(gradients[0], act - theta.detach(), rtol=0, atol=0)


def test_errors_name_the_problem():
    policy = perturbed_policy("cholesky", {}, ())
    obs, act, _ = batch(policy, (4,), seed=10)
    with pytest.raises(ValueError, match="through must be one of"):
        chain_rule.policy_chain_rule(policy, obs, act, through="std")
    with pytest.raises(ValueError, match="needs a diagonal policy"):
        chain_rule.policy_chain_rule(policy, obs, act, through="log_std")
    with pytest.raises(ValueError, match="weights of shape"):
        chain_rule.policy_chain_rule(policy, obs, act, weights=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="weights of shape"):
        chain_rule.policy_autograd_score(policy, obs, act, weights=torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="weights must be finite"):
        chain_rule.policy_chain_rule(policy, obs, act, weights=torch.full((4,), float("nan"), dtype=F64))
    mean = torch.zeros(2, dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match="at least one tensor"):
        chain_rule.diag_chain_rule(act[0], mean, torch.zeros(2, dtype=F64), [])
    with pytest.raises(ValueError, match="requires_grad=True"):
        chain_rule.diag_chain_rule(act[0], mean, torch.zeros(2, dtype=F64), [torch.zeros(2, dtype=F64)])
    for p in policy.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter with requires_grad=True"):
        chain_rule.policy_chain_rule(policy, obs, act)
