"""Tests for pgnotes.pathwise: pathwise policy gradients through a model, a critic, and deterministic."""

from __future__ import annotations

import pytest
import torch

from pgnotes import action_values, lqr, monte_carlo, pathwise, reinforce, rollouts
from pgnotes.policies import make_policy

F64 = torch.float64
GAIN = torch.tensor([[0.3, 0.1], [0.0, 0.4]], dtype=F64)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear_policy(head: str = "cholesky", std: float = 0.5):
    extra = {"state_dependent": False} if head == "cholesky" else {}
    policy = make_policy(head, 2, 2, init_std=std, dtype=F64, **extra)
    with torch.no_grad():
        policy.mean_head.weight.copy_(-GAIN)
        if head == "cholesky":
            policy.tril_param[1] = 0.2  # an off-diagonal entry, so that L is not diagonal
    return policy


def exact_q(task, policy):
    gain, cov = policy.gain().detach(), policy.noise_covariance().detach()
    return lambda states, actions: action_values.action_value(task, gain, cov, states, actions)


# ------------------------------------------------------------------ through a model


def test_reparameterised_rollout_simulates_the_episodes_of_rollouts():
    task, policy = lqr.task_2d(), linear_policy()
    batch, noise = pathwise.reparameterised_rollout(task, policy, episodes=7, horizon=12, generator=seeded(0))
    reference = rollouts.rollout(task, policy, episodes=7, horizon=12, generator=seeded(0))
    # Same random numbers, same arithmetic order: equal to rounding of the matrix products.
    for ours, theirs in ((batch.states, reference.states), (batch.actions, reference.actions),
                         (batch.rewards, reference.rewards)):
        torch.testing.assert_close(ours.detach(), theirs, rtol=1e-13, atol=1e-13)
    assert batch.rewards.requires_grad
    assert noise.action_noise.shape == (7, 12, 2) and noise.process_noise.shape == (7, 12, 2)


def test_episode_noise_has_the_documented_shapes_and_distributions():
    # s_0 ~ N(m_0, X_0), eps_t ~ N(0, I), w_t ~ N(0, W), with correlated X_0 and W and a nonzero m_0,
    # so that the square root of the wrong matrix, or a missing mean, would show.
    eye = torch.eye(2, dtype=F64)
    W = torch.tensor([[0.2, 0.05], [0.05, 0.1]], dtype=F64)
    X0 = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    m0 = torch.tensor([1.0, -2.0], dtype=F64)
    task = lqr.LQRTask(A=eye, B=eye, Q=eye, R=eye, W=W, X0=X0, gamma=0.9, x0_mean=m0)
    noise = pathwise.draw_episode_noise(task, episodes=20000, horizon=3, generator=seeded(12))
    assert noise.initial_states.shape == (20000, 2)
    assert noise.action_noise.shape == (20000, 3, 2) and noise.process_noise.shape == (20000, 3, 2)
    samples = {
        "initial_states": (noise.initial_states, m0, X0),
        "action_noise": (noise.action_noise.reshape(-1, 2), torch.zeros(2, dtype=F64), eye),
        "process_noise": (noise.process_noise.reshape(-1, 2), torch.zeros(2, dtype=F64), W),
    }
    for name, (values, mean, cov) in samples.items():
        assert monte_carlo.z_score(values, mean).abs().max() < 5, name
        centred = values - mean  # the known mean: each product is an unbiased sample of the covariance
        products = centred.unsqueeze(2) * centred.unsqueeze(1)
        assert monte_carlo.z_score(products, cov).abs().max() < 5, name


def test_model_estimates_are_the_derivatives_of_each_episode_return():
    # Independent of autograd: central finite differences of one episode's return,
    # same noise, in every parameter direction.
    task, policy = lqr.task_2d(), linear_policy()
    estimates = pathwise.model_gradient_estimates(task, policy, episodes=3, horizon=8, generator=seeded(1))
    step = 1e-6
    for name, parameter in policy.named_parameters():
        for index in range(parameter.numel()):
            values = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    parameter.view(-1)[index] += sign * step
                batch, _ = pathwise.reparameterised_rollout(task, policy, episodes=3, horizon=8, generator=seeded(1))
                values.append(batch.discounted_return.detach())
                with torch.no_grad():
                    parameter.view(-1)[index] -= sign * step
            difference = (values[0] - values[1]) / (2 * step)
            # Returns of order 10: central differences are accurate to about 1e-8 here.
            torch.testing.assert_close(estimates[name].reshape(3, -1)[:, index], difference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("head", ["cholesky", "learned"])
def test_model_estimates_are_unbiased_for_the_exact_gradient(head):
    task, policy, horizon = lqr.task_2d(), linear_policy(head), 30
    estimates = pathwise.model_gradient_estimates(task, policy, episodes=3000, horizon=horizon, generator=seeded(2))
    exact = reinforce.exact_gradient(task, policy, horizon=horizon)
    assert set(estimates) == set(exact)
    for name, values in estimates.items():
        assert values.shape == (3000, *exact[name].shape)
        assert monte_carlo.z_score(values, exact[name]).abs().max() < 5, name


def test_model_estimates_have_lower_variance_than_reinforce_on_the_same_episodes():
    task, policy, horizon, episodes = lqr.task_2d(), linear_policy(), 30, 400
    path = pathwise.model_gradient_estimates(task, policy, episodes=episodes, horizon=horizon, generator=seeded(3))
    score = reinforce.estimate_gradient(task, policy, episodes=episodes, horizon=horizon, baseline="mean",
                                        generator=seeded(3))
    torch.testing.assert_close(score.rollout.states, pathwise.reparameterised_rollout(
        task, policy, episodes=episodes, horizon=horizon, generator=seeded(3))[0].states.detach(), rtol=1e-13, atol=1e-13)
    path_total = sum(v.reshape(episodes, -1).var(0).sum() for v in path.values())
    score_total = sum(v.reshape(episodes, -1).var(0).sum() for v in score.per_episode.values())
    assert path_total < score_total / 10


def test_same_seed_same_estimates():
    task, policy = lqr.task_1d(), make_policy("learned", 1, 1, init_std=0.3, dtype=F64)
    first = pathwise.model_gradient_estimates(task, policy, episodes=4, horizon=5, generator=seeded(4))
    second = pathwise.model_gradient_estimates(task, policy, episodes=4, horizon=5, generator=seeded(4))
    for name in first:
        assert torch.equal(first[name], second[name])


# ------------------------------------------------------------------ through a critic


def test_critic_estimates_with_the_exact_q_are_unbiased_for_the_policy_gradient():
    task, policy, horizon = lqr.task_2d(), linear_policy(), 250  # 0.9^250 ~ 4e-12: no tail left
    batch = rollouts.rollout(task, policy, episodes=1500, horizon=horizon, generator=seeded(5))
    estimates = pathwise.critic_gradient_estimates(exact_q(task, policy), policy, batch.states, generator=seeded(6))
    exact = reinforce.exact_gradient(task, policy)
    for name, values in estimates.items():
        per_episode = torch.einsum("t,nt...->n...", batch.discounts, values)
        assert monte_carlo.z_score(per_episode, exact[name]).abs().max() < 5, name


def test_critic_estimate_is_the_chain_rule_through_the_action():
    # For a = -K s + L eps and Q = -(a - c)^T (a - c): d/dK = 2 (a - c) s^T, by hand.
    policy = linear_policy()
    target = torch.tensor([0.5, -1.0], dtype=F64)
    states = torch.randn(6, 2, generator=seeded(7), dtype=F64)
    estimates = pathwise.critic_gradient_estimates(
        lambda s, a: -(a - target).square().sum(-1), policy, states, generator=seeded(8)
    )
    eps = torch.randn(6, 2, generator=seeded(8), dtype=F64)
    with torch.no_grad():
        actions = states @ -GAIN.mT + eps @ policy.scale_tril(states[0]).mT
    # mean_head.weight is -K, so its gradient is -(d/dK) = -2 (a - c) s^T.
    expected = -2 * (actions - target).unsqueeze(-1) * states.unsqueeze(-2)
    torch.testing.assert_close(estimates["mean_head.weight"], expected, rtol=1e-13, atol=1e-13)


def test_entropy_term_adds_the_entropy_gradient_on_average():
    # E[-d/dtheta log pi(a_theta)] = gradient of the entropy, sum_i log L_ii + const:
    # for the learned log-std head, d/dlog_std = 1 for every component.
    policy = linear_policy("learned")
    states = torch.randn(4000, 2, generator=seeded(9), dtype=F64)

    def zero_critic(s, a):
        return 0.0 * a.sum(-1)

    estimates = pathwise.critic_gradient_estimates(zero_critic, policy, states, entropy_coef=0.3, generator=seeded(10))
    # d/dlog_std of -log N(mu + sigma eps; mu, sigma) = 1 for every sample: no noise at all.
    torch.testing.assert_close(estimates["log_std_param"], torch.full((4000, 2), 0.3, dtype=F64), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(estimates["mean_head.weight"], torch.zeros(4000, 2, 2, dtype=F64), rtol=0, atol=1e-14)


def test_deterministic_policy_gradient_matches_the_exact_gradient_of_the_mean_policy():
    task, horizon = lqr.task_2d(), 250
    policy = linear_policy()
    critic = lambda s, a: action_values.action_value(task, GAIN, None, s, a)  # noqa: E731
    batch = rollouts.rollout(task, GAIN, episodes=1500, horizon=horizon, generator=seeded(11))
    estimates = pathwise.deterministic_policy_gradient_estimates(critic, policy, batch.states)
    per_episode = torch.einsum("t,nt...->n...", batch.discounts, estimates["mean_head.weight"])
    gain = GAIN.clone().requires_grad_(True)
    (d_gain,) = torch.autograd.grad(lqr.expected_return(task, gain), gain)
    assert monte_carlo.z_score(per_episode, -d_gain).abs().max() < 5
    assert torch.count_nonzero(estimates["tril_param"]) == 0


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"episodes": 0}, ValueError, "episodes"),
        ({"episodes": 2.5}, ValueError, "episodes"),
        ({"horizon": -1}, ValueError, "horizon"),
        ({"horizon": True}, ValueError, "horizon"),
        ({"generator": 3}, TypeError, "generator"),
        ({"task": "lqr"}, TypeError, "task"),
        ({"policy": torch.zeros(2, 2)}, TypeError, "policy"),
        ({"episodes": 10**9, "horizon": 10**6}, ValueError, "memory_limit"),
        ({"memory_limit": 100}, ValueError, "memory_limit"),
        ({"memory_limit": -5}, ValueError, "memory_limit"),
    ],
)
def test_model_gradient_refuses_bad_input_naming_it(kwargs, error, match):
    arguments = {"task": lqr.task_2d(), "policy": linear_policy(), "episodes": 3, "horizon": 4, **kwargs}
    task, policy = arguments.pop("task"), arguments.pop("policy")
    with pytest.raises(error, match=match):
        pathwise.model_gradient_estimates(task, policy, **arguments)
    with pytest.raises(error, match=match):
        pathwise.reparameterised_rollout(task, policy, **arguments)


def test_memory_refusal_happens_before_any_allocation():
    # 10^9 episodes of 10^6 steps would need petabytes; the refusal must be immediate.
    task = lqr.task_2d()
    assert pathwise.graph_bytes(task, 10**9, 10**6) > 2**50
    with pytest.raises(ValueError, match="fewer episodes"):
        pathwise.model_gradient_estimates(task, linear_policy(), episodes=10**9, horizon=10**6)


def test_policy_of_another_task_is_refused():
    with pytest.raises(ValueError, match="state_dim"):
        pathwise.model_gradient_estimates(lqr.task_1d(), linear_policy(), episodes=2, horizon=2)


def test_unstable_rollout_is_refused_rather_than_returning_inf():
    task = lqr.LQRTask(A=3.0, B=1.0, Q=1.0, R=1.0, W=0.1, X0=1.0, gamma=0.9)
    policy = make_policy("learned", 1, 1, init_std=0.5, dtype=F64)  # K = 0: s grows like 3^t
    with pytest.raises(ValueError, match="diverged"):
        pathwise.model_gradient_estimates(task, policy, episodes=2, horizon=700, generator=seeded(0))


@pytest.mark.parametrize(
    ("critic", "states", "kwargs", "error", "match"),
    [
        ("q", torch.zeros(3, 2, dtype=F64), {}, TypeError, "critic"),
        (lambda s, a: a, torch.zeros(3, 2, dtype=F64), {}, ValueError, "one value per"),
        (lambda s, a: (a.sum(-1) > 0).double(), torch.zeros(3, 2, dtype=F64), {}, ValueError, "autograd graph"),
        (lambda s, a: s.sum(-1).requires_grad_(), torch.zeros(3, 2, dtype=F64), {}, ValueError, "does not depend"),
        (lambda s, a: a.sum(-1) / 0.0, torch.ones(3, 2, dtype=F64), {}, ValueError, "finite"),
        (lambda s, a: a.sum(-1), torch.zeros(3, 5, dtype=F64), {}, ValueError, "states"),
        (lambda s, a: a.sum(-1), torch.zeros(2, dtype=F64), {}, ValueError, "states"),
        (lambda s, a: a.sum(-1), torch.zeros(3, 2, dtype=torch.float32), {}, ValueError, "dtype"),
        (lambda s, a: a.sum(-1), torch.full((3, 2), float("nan"), dtype=F64), {}, ValueError, "states"),
        (lambda s, a: a.sum(-1), "states", {}, ValueError, "states"),
        (lambda s, a: a.sum(-1), torch.zeros(3, 2, dtype=F64), {"entropy_coef": -1.0}, ValueError, "entropy_coef"),
        (lambda s, a: a.sum(-1), torch.zeros(3, 2, dtype=F64), {"entropy_coef": "a"}, ValueError, "entropy_coef"),
        (lambda s, a: a.sum(-1), torch.zeros(3, 2, dtype=F64), {"generator": 1}, TypeError, "generator"),
    ],
)
def test_critic_gradient_refuses_bad_input_naming_it(critic, states, kwargs, error, match):
    with pytest.raises(error, match=match):
        pathwise.critic_gradient_estimates(critic, linear_policy(), states, **kwargs)


def test_deterministic_gradient_refuses_a_non_policy():
    with pytest.raises(TypeError, match="policy"):
        pathwise.deterministic_policy_gradient_estimates(lambda s, a: a.sum(-1), object(), torch.zeros(3, 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.int64, "float64"])
def test_episode_noise_refuses_a_dtype_outside_float32_and_float64(dtype):
    with pytest.raises(ValueError, match="dtype"):
        pathwise.draw_episode_noise(lqr.task_1d(), episodes=2, horizon=3, dtype=dtype)


def test_given_noise_is_checked_before_use():
    task = lqr.task_1d()
    policy = make_policy("learned", 1, 1, init_std=0.5, dtype=torch.float64)
    noise = pathwise.draw_episode_noise(task, episodes=2, horizon=3, generator=torch.Generator().manual_seed(0))
    flat = pathwise.EpisodeNoise(noise.initial_states, noise.action_noise.reshape(-1), noise.process_noise)
    with pytest.raises(ValueError, match="noise.action_noise must be a tensor with 3 axes"):
        pathwise.model_gradient_estimates(task, policy, noise=flat)
    with pytest.raises(TypeError, match="noise must be an EpisodeNoise"):
        pathwise.model_gradient_estimates(task, policy, noise=[noise])
    with pytest.raises(ValueError, match="either noise"):
        pathwise.model_gradient_estimates(task, policy, noise=noise, episodes=2)
