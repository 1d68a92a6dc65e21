"""Exercises on pathwise policy gradients (:mod:`pgnotes.pathwise`), on one-dimensional linear-quadratic tasks."""

from __future__ import annotations

import math

import torch

from pgnotes import action_values, lqr, pathwise
from pgnotes.exercises._registry import Case, register
from pgnotes.policies import LearnedStdPolicy

# Forward-mode sensitivities and backpropagation through time sum the same products in different
# orders: returns of order 10 over 40 steps agree to about 1e-13 in float64; 1e-9 is far from any
# wrong derivative, which is off by O(1).
_SENSITIVITY = (1e-9, 1e-9)
# sqrt(alpha / (2 H_aa)) from two short formulas: a few ulp apart.
_CLOSED_FORM = (1e-12, 1e-12)


def _tasks() -> list[tuple[str, lqr.LQRTask]]:
    return [
        ("the 1-D task of the chapter", lqr.task_1d()),
        ("a stable task with a = 0.8, b = 0.5, gamma = 0.95", lqr.task_1d(a=0.8, b=0.5, q=2.0, r=0.5, gamma=0.95)),
    ]


def _return_derivative_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (task, gain, std, noise): 1-D tasks, stabilising gains, a batch of episodes' noise."""
    cases = []
    for (label, task), gain, std, episodes, horizon in zip(_tasks(), (0.5, 0.3), (0.5, 1.2), (6, 4), (40, 25)):
        noise = pathwise.draw_episode_noise(task, episodes=episodes, horizon=horizon, generator=generator)
        cases.append(
            Case(
                f"{label}, K = {gain}, sigma = {std}, {episodes} episodes of {horizon} steps",
                {"task": task, "gain": gain, "std": std, "noise": noise},
            )
        )
    return cases


def _return_derivative_reference(task: lqr.LQRTask, gain: float, std: float, noise: pathwise.EpisodeNoise) -> torch.Tensor:
    """dG_0/dK per episode, by backpropagation through time in pgnotes.pathwise (the weight of the mean is -K)."""
    policy = LearnedStdPolicy(1, 1, init_std=float(std), dtype=torch.float64)
    with torch.no_grad():
        policy.mean_head.weight.fill_(-float(gain))
    return -pathwise.model_gradient_estimates(task, policy, noise=noise)["mean_head.weight"].reshape(-1)


register(
    "return_derivative_gain",
    "dG_0/dK of each episode's discounted return on a 1-D task, at fixed noise (forward-mode sensitivities)",
    _return_derivative_reference,
    _return_derivative_cases,
    _SENSITIVITY,
    forbidden=(pathwise.model_gradient_estimates, pathwise.reparameterised_rollout),
)


def _sac_std_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (task, gain, alpha): 1-D tasks, stabilising gains, temperatures over two decades."""
    cases = []
    for label, task in _tasks():
        gain = float(lqr.optimal_gain(task))
        for alpha in (0.01, 0.1, 1.0):
            cases.append(Case(f"{label}, K = K* = {gain:.4f}, alpha = {alpha}", {"task": task, "gain": gain, "alpha": alpha}))
    gain = 0.2 + 0.3 * float(torch.rand((), generator=generator, dtype=torch.float64))
    cases.append(Case(f"the 1-D task, K = {gain:.4f}, alpha = 0.3", {"task": lqr.task_1d(), "gain": gain, "alpha": 0.3}))
    return cases


def _sac_std_reference(task: lqr.LQRTask, gain: float, alpha: float) -> torch.Tensor:
    """sigma* = sqrt(alpha / (2 H_aa)), with H_aa from pgnotes.action_values."""
    H, _ = action_values.action_value_matrices(task, torch.tensor([[float(gain)]], dtype=torch.float64))
    return torch.tensor(math.sqrt(alpha / (2.0 * float(H[-1, -1]))), dtype=torch.float64)


register(
    "sac_optimal_std",
    "the sigma maximising J(K, sigma^2) + alpha log(sigma) / (1 - gamma) on a 1-D task",
    _sac_std_reference,
    _sac_std_cases,
    _CLOSED_FORM,
    forbidden=(action_values.action_value_matrices,),
)
