"""Tests for pgnotes.action_values: exact Q, advantage and discounted state moments on LQR."""

from __future__ import annotations

import math

import pytest
import torch

from pgnotes import action_values, lqr
from pgnotes.check import seeded
from pgnotes.monte_carlo import z_score

F64 = torch.float64
# Exact closed forms against an independent exact computation, in float64: a few
# dozen operations on entries of order 1-10 agree to ~1e-14; 1e-10 is far from any wrong formula.
RTOL = 1e-10
Z_BOUND = 5.0  # |z| > 5 by chance: about 6e-7 per component


def policy_2d():
    task = lqr.task_2d()
    gain = torch.tensor([[0.3, 0.1], [-0.2, 0.4]], dtype=F64)
    noise_cov = torch.tensor([[0.3, 0.05], [0.05, 0.2]], dtype=F64)
    return task, gain, noise_cov


def value(task, gain, noise_cov, states):
    P, c = lqr.quadratic_value(task, gain, noise_cov)
    return -((states @ P) * states).sum(-1) - c


def test_action_value_averaged_over_the_policy_is_the_value():
    # E_{a ~ N(-Ks, S)}[-(x^T H x + h)] = Q(s, -Ks) - tr(H_aa S): exact, and must equal V(s) of quadratic_value.
    task, gain, noise_cov = policy_2d()
    H, _ = action_values.action_value_matrices(task, gain, noise_cov)
    states = torch.randn(7, 2, generator=seeded(0), dtype=F64)
    at_mean = action_values.action_value(task, gain, noise_cov, states, -states @ gain.mT)
    averaged = at_mean - torch.einsum("ij,ji->", H[2:, 2:], noise_cov)
    torch.testing.assert_close(averaged, value(task, gain, noise_cov, states), rtol=RTOL, atol=0)


def test_action_value_is_one_bellman_step_by_monte_carlo():
    # Q(s, a) = r(s, a) + gamma E_w[V(A s + B a + w)], the expectation over the process noise sampled.
    task, gain, noise_cov = policy_2d()
    s = torch.tensor([0.7, -1.2], dtype=F64)
    a = torch.tensor([0.4, 0.9], dtype=F64)
    w = torch.randn(200_000, 2, generator=seeded(1), dtype=F64) @ torch.linalg.cholesky(task.W).mT
    next_states = s @ task.A.mT + a @ task.B.mT + w
    reward = -(s @ task.Q @ s + a @ task.R @ a)
    samples = reward + task.gamma * value(task, gain, noise_cov, next_states)
    exact = action_values.action_value(task, gain, noise_cov, s, a)
    assert abs(float(z_score(samples, exact))) < Z_BOUND


def test_advantage_has_zero_mean_under_the_policy_and_matches_q_minus_v():
    task, gain, noise_cov = policy_2d()
    s = torch.tensor([1.1, 0.3], dtype=F64)
    eta = torch.randn(100_000, 2, generator=seeded(2), dtype=F64) @ torch.linalg.cholesky(noise_cov).mT
    actions = -s @ gain.mT + eta
    samples = action_values.advantage(task, gain, noise_cov, s, actions)
    assert abs(float(z_score(samples, 0.0))) < Z_BOUND
    a = torch.tensor([0.2, -0.5], dtype=F64)
    q = action_values.action_value(task, gain, noise_cov, s, a)
    torch.testing.assert_close(
        action_values.advantage(task, gain, noise_cov, s, a), q - value(task, gain, noise_cov, s), rtol=RTOL, atol=0
    )


def test_discounted_moments_match_the_truncated_series():
    task = lqr.LQRTask(A=[[0.9, 0.2], [0.0, 0.8]], B=[[1.0], [0.5]], Q=torch.eye(2), R=[[1.0]], W=0.1 * torch.eye(2),
                       X0=0.5 * torch.eye(2), gamma=0.95, x0_mean=[1.0, -2.0])
    gain, noise_cov = torch.tensor([[0.2, 0.1]], dtype=F64), torch.tensor([[0.3]], dtype=F64)
    F = task.A - task.B @ gain
    injected = task.B @ noise_cov @ task.B.mT + task.W
    m, M = task.x0_mean.clone(), task.X0 + torch.outer(task.x0_mean, task.x0_mean)
    mean_sum, second_sum = torch.zeros(2, dtype=F64), torch.zeros(2, 2, dtype=F64)
    for t in range(2000):  # gamma^2000 ~ 1e-45: the tail is below rounding
        mean_sum += (1 - task.gamma) * task.gamma**t * m
        second_sum += (1 - task.gamma) * task.gamma**t * M
        m, M = F @ m, F @ M @ F.mT + injected
    mean, second = action_values.discounted_state_moments(task, gain, noise_cov)
    torch.testing.assert_close(mean, mean_sum, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(second, second_sum, rtol=RTOL, atol=1e-12)


def test_return_is_the_discounted_average_reward():
    # J = E_{s ~ d, a ~ pi}[r(s, a)] / (1 - gamma), against lqr.expected_return (Lyapunov on the value side).
    task, gain, noise_cov = policy_2d()
    _, M = action_values.discounted_state_moments(task, gain, noise_cov)
    average_cost = torch.einsum("ij,ji->", task.Q + gain.mT @ task.R @ gain, M) + torch.einsum("ij,ji->", task.R, noise_cov)
    torch.testing.assert_close(-average_cost / (1 - task.gamma), lqr.expected_return(task, gain, noise_cov), rtol=RTOL, atol=0)


def test_differentiable_in_gain():
    task, gain, noise_cov = policy_2d()
    gain = gain.clone().requires_grad_(True)
    q = action_values.action_value(task, gain, noise_cov, torch.ones(2, dtype=F64), torch.zeros(2, dtype=F64))
    (g,) = torch.autograd.grad(q, gain)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"states": torch.zeros(3, 3)}, ValueError, "states must have shape"),
        ({"actions": torch.zeros(3)}, ValueError, "actions must have shape"),
        ({"states": torch.zeros(4, 2), "actions": torch.zeros(3, 2)}, ValueError, "states"),
        ({"states": torch.tensor([math.nan, 0.0])}, ValueError, "states must be finite"),
        ({"gain": torch.zeros(2, 2, 2)}, ValueError, "single"),
        ({"gain": 5 * torch.eye(2)}, ValueError, "unstable"),
        ({"gain": torch.full((2, 2), math.nan)}, ValueError, "gain must be finite"),
        ({"task": "task_2d"}, TypeError, "task must be an LQRTask"),
        ({"states": torch.zeros(2, dtype=torch.complex128)}, ValueError, "states must be real"),
        ({"noise_cov": -0.1 * torch.eye(2)}, ValueError, "noise_cov must be positive semidefinite"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(kwargs, error, match):
    task, gain, noise_cov = policy_2d()
    arguments = {"task": task, "gain": gain, "noise_cov": noise_cov, "states": torch.zeros(2), "actions": torch.zeros(2)}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        action_values.action_value(**arguments)
