"""Tests for pgnotes.policies: Gaussian policies with four covariance heads."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal

from pgnotes import policies
from pgnotes.gaussian import diag_log_prob, mvn_log_prob
from pgnotes.policies import (
    CholeskyPolicy,
    FixedStdPolicy,
    GaussianPolicy,
    LearnedStdPolicy,
    StateDependentStdPolicy,
    make_policy,
)

F64 = torch.float64
EPS64 = torch.finfo(F64).eps

# Every head, linear and MLP, as (name, constructor keyword arguments).
CONFIGS = [
    ("fixed", {}),
    ("learned", {}),
    ("state", {}),
    ("cholesky", {}),
    ("cholesky", {"state_dependent": False}),
]
HIDDEN = [(), (8, 8)]


def perturbed_policy(head: str, kwargs: dict, hidden: tuple, obs_dim: int, act_dim: int, seed: int) -> GaussianPolicy:
    """A float64 policy whose parameters are moved away from their special initial values."""
    policy = make_policy(head, obs_dim, act_dim, init_std=0.7, hidden=hidden, seed=seed, dtype=F64, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return policy


def data(obs_dim: int, act_dim: int, batch: tuple, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(*batch, obs_dim, generator=generator, dtype=F64)
    act = torch.randn(*batch, act_dim, generator=generator, dtype=F64)
    return obs, act


def reference_log_prob(policy: GaussianPolicy, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """pgnotes.gaussian's log-density at the policy's mean and covariance."""
    mean = policy.mean(obs)
    if isinstance(policy, CholeskyPolicy):
        return mvn_log_prob(act, mean, policy.covariance(obs))
    return diag_log_prob(act, mean, policy.std(obs).log())


# ------------------------------------------------------------------ log-density


@pytest.mark.parametrize(("head", "kwargs"), CONFIGS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_log_prob_matches_pgnotes_gaussian(head: str, kwargs: dict, hidden: tuple) -> None:
    policy = perturbed_policy(head, kwargs, hidden, obs_dim=3, act_dim=2, seed=0)
    obs, act = data(3, 2, (5, 4), seed=1)
    log_prob = policy.log_prob(obs, act)
    assert log_prob.shape == (5, 4)
    # Two float64 evaluations of the same closed form with different algebra
    # (Cholesky of LL^T and a triangular solve): agreement to ~100 eps of |log p|.
    torch.testing.assert_close(log_prob, reference_log_prob(policy, obs, act), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("head", "kwargs"), CONFIGS)
def test_log_prob_matches_the_torch_distribution(head: str, kwargs: dict) -> None:
    policy = perturbed_policy(head, kwargs, (), obs_dim=2, act_dim=3, seed=2)
    obs, act = data(2, 3, (7,), seed=3)
    distribution = policy.distribution(obs)
    expected_type = MultivariateNormal if head == "cholesky" else Independent
    assert isinstance(distribution, expected_type)
    if head != "cholesky":
        assert isinstance(distribution.base_dist, Normal)
    assert distribution.event_shape == (3,) and distribution.batch_shape == (7,)
    # Same formula as torch.distributions, different operation order: rounding only.
    torch.testing.assert_close(policy.log_prob(obs, act), distribution.log_prob(act), rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    config=st.sampled_from(CONFIGS),
    obs_dim=st.integers(1, 4),
    act_dim=st.integers(1, 4),
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
    seed=st.integers(0, 1000),
)
def test_log_prob_matches_pgnotes_gaussian_for_any_shape(
    config: tuple, obs_dim: int, act_dim: int, batch: tuple, seed: int
) -> None:
    head, kwargs = config
    policy = perturbed_policy(head, kwargs, (), obs_dim, act_dim, seed)
    obs, act = data(obs_dim, act_dim, batch, seed)
    log_prob = policy.log_prob(obs, act)
    assert log_prob.shape == batch
    torch.testing.assert_close(log_prob, reference_log_prob(policy, obs, act), rtol=1e-12, atol=1e-12)


def test_log_prob_broadcasts_one_state_against_many_actions() -> None:
    policy = perturbed_policy("cholesky", {}, (), 2, 2, seed=4)
    obs, act = data(2, 2, (6,), seed=5)
    one_state = policy.log_prob(obs[0], act)
    assert one_state.shape == (6,)
    # Broadcast and explicitly expanded inputs take different kernels (a batched
    # triangular solve or not): equal up to a few eps.
    torch.testing.assert_close(one_state, policy.log_prob(obs[0].expand(6, 2), act), rtol=1e-14, atol=1e-14)


def test_float32_policies_work_by_default() -> None:
    policy = LearnedStdPolicy(2, 2)
    assert policy.log_std_param.dtype == torch.float32
    obs = torch.zeros(3, 2)
    assert policy.log_prob(obs, torch.zeros(3, 2)).dtype == torch.float32
    # numbers and lists take the policy's dtype
    assert policy.log_prob([0.0, 1.0], [0.5, 0.5]).shape == ()


# ------------------------------------------------------------------ heads


def test_initial_policy_is_zero_mean_with_the_initial_std() -> None:
    obs, _ = data(3, 2, (4,), seed=6)
    for head, kwargs in CONFIGS:
        policy = make_policy(head, 3, 2, init_std=0.7, dtype=F64, **kwargs)
        torch.testing.assert_close(policy.mean(obs), torch.zeros(4, 2, dtype=F64), rtol=0.0, atol=0.0)
        # init_std goes through log, exp and softplus^-1: a few eps.
        torch.testing.assert_close(policy.std(obs), torch.full((4, 2), 0.7, dtype=F64), rtol=1e-14, atol=0.0)


def test_fixed_std_is_not_a_parameter() -> None:
    policy = FixedStdPolicy(2, 3, std=[0.1, 0.2, 0.3], dtype=F64)
    names = [name for name, _ in policy.named_parameters()]
    assert names == ["mean_head.weight"]
    torch.testing.assert_close(
        policy.std(torch.zeros(2, dtype=F64)), torch.tensor([0.1, 0.2, 0.3], dtype=F64), rtol=1e-15, atol=0.0
    )


def test_state_dependent_log_std_is_clamped() -> None:
    policy = StateDependentStdPolicy(2, 2, dtype=F64, log_std_bounds=(-3.0, 1.0))
    with torch.no_grad():
        policy.log_std_head.bias.copy_(torch.tensor([10.0, -10.0]))
    obs = torch.zeros(2, dtype=F64)
    torch.testing.assert_close(policy.log_std(obs), torch.tensor([1.0, -3.0], dtype=F64), rtol=0.0, atol=0.0)
    unclamped = StateDependentStdPolicy(2, 2, dtype=F64, log_std_bounds=None)
    with torch.no_grad():
        unclamped.log_std_head.bias.copy_(torch.tensor([10.0, -10.0]))
    torch.testing.assert_close(unclamped.log_std(obs), torch.tensor([10.0, -10.0], dtype=F64), rtol=0.0, atol=0.0)


def test_state_dependent_std_varies_with_the_state() -> None:
    policy = perturbed_policy("state", {}, (), 2, 2, seed=7)
    obs, _ = data(2, 2, (2,), seed=8)
    std = policy.std(obs)
    assert not torch.allclose(std[0], std[1])
    assert policy.noise_covariance() is None


def test_cholesky_factor_is_valid_and_floored() -> None:
    policy = CholeskyPolicy(2, 3, min_diag=1e-3, dtype=F64, state_dependent=False)
    with torch.no_grad():
        policy.tril_param.fill_(-1e4)  # softplus underflows to 0: the floor takes over
    tril = policy.scale_tril(torch.zeros(2, dtype=F64))
    assert torch.equal(tril, torch.tril(tril))
    torch.testing.assert_close(torch.diagonal(tril), torch.full((3,), 1e-3, dtype=F64), rtol=1e-15, atol=0.0)
    assert bool(torch.isfinite(policy.log_prob(torch.zeros(2, dtype=F64), torch.zeros(3, dtype=F64))))


def test_cholesky_covariance_is_full() -> None:
    policy = perturbed_policy("cholesky", {"state_dependent": False}, (), 2, 3, seed=9)
    cov = policy.noise_covariance()
    assert cov is not None and cov.shape == (3, 3)
    assert float(cov[1, 0].detach().abs()) > 0.0
    torch.testing.assert_close(cov, policy.covariance(torch.zeros(2, dtype=F64)), rtol=1e-15, atol=1e-15)
    assert torch.linalg.eigvalsh(cov).min() > 0


# ------------------------------------------------------------------ sampling


@pytest.mark.parametrize(("head", "kwargs"), CONFIGS)
def test_sampling_is_seeded(head: str, kwargs: dict) -> None:
    policy = perturbed_policy(head, kwargs, (), 2, 2, seed=10)
    obs, _ = data(2, 2, (4,), seed=11)
    first = policy.sample(obs, generator=torch.Generator().manual_seed(12))
    second = policy.sample(obs, generator=torch.Generator().manual_seed(12))
    assert torch.equal(first, second)
    assert first.shape == (4, 2) and not first.requires_grad


@pytest.mark.parametrize(("head", "kwargs"), CONFIGS)
def test_samples_have_the_policy_mean_and_covariance(head: str, kwargs: dict) -> None:
    policy = perturbed_policy(head, kwargs, (), 2, 2, seed=13)
    obs = torch.tensor([0.3, -0.8], dtype=F64)
    n = 40_000
    samples = policy.sample(obs.expand(n, 2), generator=torch.Generator().manual_seed(14))
    mean, cov = policy.mean(obs).detach(), policy.covariance(obs).detach()
    # Sample mean: each coordinate within 4 standard errors sqrt(Sigma_ii / n).
    se_mean = (torch.diagonal(cov) / n).sqrt()
    assert bool(((samples.mean(0) - mean).abs() <= 4 * se_mean).all())
    # Sample covariance: entry (i, j) has variance (Sigma_ii Sigma_jj + Sigma_ij^2) / n
    # for a Gaussian; again 4 standard errors.
    sample_cov = torch.cov(samples.T)
    se_cov = ((torch.diagonal(cov)[:, None] * torch.diagonal(cov)[None, :] + cov.square()) / n).sqrt()
    assert bool(((sample_cov - cov).abs() <= 4 * se_cov).all())


def test_rsample_is_differentiable_and_sample_is_not() -> None:
    policy = LearnedStdPolicy(2, 2, dtype=F64)
    obs = torch.ones(3, 2, dtype=F64)
    draw = policy.rsample(obs, generator=torch.Generator().manual_seed(15))
    draw.sum().backward()
    # d a / d log sigma = sigma * eps, so the gradient is sum over the batch of sigma * eps.
    same = policy.sample(obs, generator=torch.Generator().manual_seed(15))
    eps = same / policy.log_std_param.exp().detach()  # the mean is zero
    expected = (policy.log_std_param.exp() * eps).sum(0).detach()
    torch.testing.assert_close(policy.log_std_param.grad, expected, rtol=1e-14, atol=0.0)


# ------------------------------------------------------------------ links to the task


def test_linear_mean_is_minus_gain_times_state() -> None:
    policy = perturbed_policy("learned", {}, (), 3, 2, seed=16)
    obs, _ = data(3, 2, (5,), seed=17)
    K = policy.gain()
    assert K.shape == (2, 3) and K.requires_grad
    torch.testing.assert_close(policy.mean(obs), -obs @ K.T, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(policy(obs), policy.mean(obs), rtol=0.0, atol=0.0)
    torch.testing.assert_close(
        policy.noise_covariance(), torch.diag(policy.log_std_param.exp().square()), rtol=1e-15, atol=0.0
    )


def test_mlp_policy_has_no_gain() -> None:
    policy = LearnedStdPolicy(2, 2, hidden=(4,))
    assert not policy.is_linear
    with pytest.raises(ValueError, match=r"only a linear-mean policy has a gain; .* hidden layers \(4,\)"):
        policy.gain()


def test_initialisation_is_seeded() -> None:
    first = StateDependentStdPolicy(2, 2, hidden=(5,), seed=3)
    second = StateDependentStdPolicy(2, 2, hidden=(5,), seed=3)
    other = StateDependentStdPolicy(2, 2, hidden=(5,), seed=4)
    for (name, p), q, r in zip(first.named_parameters(), second.parameters(), other.parameters()):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, r) for p, r in zip(first.parameters(), other.parameters()))


# ------------------------------------------------------------------ errors


def test_wrong_observation_dimension_names_both() -> None:
    policy = LearnedStdPolicy(3, 2)
    with pytest.raises(ValueError, match=r"obs has 2 state components .* obs_dim = 3 \(act_dim = 2\)"):
        policy.mean(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"act has 3 action components .* act_dim = 2 \(obs_dim = 3\)"):
        policy.log_prob(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="obs must have at least 1 dimension"):
        policy.mean(torch.tensor(1.0))


def test_dtype_mismatch_is_explained() -> None:
    policy = LearnedStdPolicy(2, 2)
    with pytest.raises(ValueError, match=r"obs has dtype torch.float64 but the policy's parameters are torch.float32"):
        policy.mean(torch.zeros(2, dtype=F64))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LearnedStdPolicy(0, 2), "obs_dim must be a positive integer"),
        (lambda: LearnedStdPolicy(2, 2.0), "act_dim must be a positive integer"),
        (lambda: LearnedStdPolicy(2, 2, hidden=(0,)), r"hidden\[0\] must be a positive integer"),
        (lambda: LearnedStdPolicy(2, 2, init_std=0.0), "init_std must be a finite number > 0"),
        (lambda: FixedStdPolicy(2, 2, std=-1.0), "std must be > 0"),
        (lambda: StateDependentStdPolicy(2, 2, log_std_bounds=(1.0, 0.0)), "min < max"),
        (lambda: StateDependentStdPolicy(2, 2, init_std=100.0), "outside log_std_bounds"),
        (lambda: CholeskyPolicy(2, 2, init_std=1e-5, min_diag=1e-4), "init_std must be finite and > min_diag"),
        (lambda: CholeskyPolicy(2, 2, min_diag=-1.0), "min_diag must be"),
        (lambda: make_policy("diagonal", 2, 2), "unknown head 'diagonal'"),
        (lambda: make_policy("fixed", 2, 2, std=0.1, init_std=0.1), "either std or init_std"),
    ],
)
def test_invalid_construction_is_refused(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_heads_table_lists_every_class() -> None:
    assert set(policies.HEADS) == {"fixed", "learned", "state", "cholesky"}
    for name, cls in policies.HEADS.items():
        assert isinstance(make_policy(name, 1, 1), cls)
    assert math.isclose(float(make_policy("fixed", 1, 1, init_std=0.25).std(torch.zeros(1))), 0.25, rel_tol=1e-6)
