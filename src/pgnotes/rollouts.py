r"""Batched Monte Carlo rollouts of a linear-quadratic task.

:func:`rollout` simulates a whole batch of episodes at once, for a policy
object of :mod:`pgnotes.policies` or for a gain :math:`K` with Gaussian
exploration noise; the task and its exact solution are in :mod:`pgnotes.lqr`.
Arguments are validated once per call, never inside the time loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pgnotes._validation import check_allocation, check_count, check_generator
from pgnotes.lqr import LQRTask, _check_task, _gain_tensor, _noise_tensor, _psd_sqrt, _symmetric_part_checked

__all__ = ["check_policy_matches", "Rollout", "rollout"]


def check_policy_matches(task: LQRTask, policy: Any) -> None:
    """Raise ``ValueError`` unless the policy's dimensions fit the task's.

    The policy must have ``obs_dim`` equal to ``task.state_dim`` and ``act_dim``
    equal to ``task.action_dim``.
    """
    _check_task(task)
    obs_dim = getattr(policy, "obs_dim", None)
    act_dim = getattr(policy, "act_dim", None)
    if obs_dim is None or act_dim is None:
        raise ValueError(
            f"policy must have integer attributes obs_dim and act_dim, got a {type(policy).__name__}"
        )
    if obs_dim != task.state_dim:
        raise ValueError(
            f"policy.obs_dim = {obs_dim} does not match task.state_dim = {task.state_dim}: "
            "the policy observes the state of a different task"
        )
    if act_dim != task.action_dim:
        raise ValueError(
            f"policy.act_dim = {act_dim} does not match task.action_dim = {task.action_dim}: "
            "the policy acts in a different action space"
        )


def _discounts(horizon: int, gamma: float, dtype: torch.dtype, device: Any = None) -> torch.Tensor:
    r""":math:`\gamma^t` for :math:`t = 0, \dots, T-1` (also used by :mod:`pgnotes.pathwise`)."""
    return torch.as_tensor(gamma, dtype=dtype) ** torch.arange(horizon, dtype=dtype, device=device)


@dataclass(frozen=True)
class Rollout:
    r"""A batch of trajectories of a task.

    Attributes:
        states: :math:`s_0, \dots, s_{T-1}`, shape ``(episodes, T, n)``.
        actions: :math:`a_0, \dots, a_{T-1}`, shape ``(episodes, T, k)``.
        rewards: :math:`r_0, \dots, r_{T-1}`, shape ``(episodes, T)``.
        final_states: :math:`s_T`, shape ``(episodes, n)``.
        gamma: the task's discount factor.
    """

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    final_states: torch.Tensor
    gamma: float

    @property
    def discounts(self) -> torch.Tensor:
        r""":math:`\gamma^t` for :math:`t = 0, \dots, T-1`, shape ``(T,)``."""
        return _discounts(self.rewards.shape[-1], self.gamma, self.rewards.dtype, self.rewards.device)

    @property
    def discounted_return(self) -> torch.Tensor:
        r"""Per-episode return :math:`\sum_{t<T} \gamma^t r_t`, shape ``(episodes,)``."""
        return self.rewards @ self.discounts


def _quadratic_form(x: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    r""":math:`x^\top M x` over the last axis of ``x``."""
    return (x.unsqueeze(-1) * M * x.unsqueeze(-2)).sum((-2, -1))


def _policy_dtype_device(policy: Any) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of a policy's first floating tensor (float64 on CPU if none)."""
    if isinstance(policy, torch.nn.Module):
        for tensor in (*policy.parameters(), *policy.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype, tensor.device
    return torch.float64, torch.device("cpu")


@torch.no_grad()
def rollout(
    task: LQRTask,
    policy: Any,
    *,
    episodes: int,
    horizon: int,
    noise_cov: Any = None,
    generator: torch.Generator | None = None,
) -> Rollout:
    r"""Simulate ``episodes`` independent trajectories of ``horizon`` steps at once.

    The policy is either an object with ``obs_dim``, ``act_dim`` and
    ``sample(obs, generator=None)`` (the :mod:`pgnotes.policies` classes), in
    which case the rollout runs in the dtype of its parameters, or a gain
    :math:`K` (tensor of shape ``(k, n)``), in which case actions are
    :math:`a = -K s + \eta`, :math:`\eta \sim \mathcal{N}(0, S)` with
    :math:`S` = ``noise_cov`` (zero if None), in float64.

    Random numbers are drawn in a fixed order from ``generator`` (initial
    states, then per step: action noise, process noise), so a seeded generator
    reproduces the batch exactly. No gradient is recorded.

    Args:
        task: the task.
        policy: a policy object or a gain.
        episodes: number of trajectories.
        horizon: number of steps :math:`T` (the return is truncated there; see
            :meth:`pgnotes.lqr.LQRTask.effective_horizon`).
        noise_cov: exploration covariance, only with a gain.
        generator: source of randomness.

    Returns:
        A :class:`Rollout`.

    Raises:
        ValueError: on a dimension mismatch between policy and task, ``episodes``
            or ``horizon`` that are not positive integers, or a batch that would
            not fit in memory (refused before anything is allocated).
        TypeError: if ``task`` is not an :class:`~pgnotes.lqr.LQRTask` or
            ``generator`` is not a ``torch.Generator``.
    """
    _check_task(task)
    episodes, horizon = check_count("episodes", episodes), check_count("horizon", horizon)
    check_generator("generator", generator)
    if isinstance(policy, torch.Tensor) or not hasattr(policy, "sample"):
        K = _gain_tensor(task, policy, name="policy").detach()
        S = _noise_tensor(task, noise_cov, K).detach()
        if K.dim() != 2 or S.dim() != 2:
            raise ValueError("rollout takes a single gain (k, n) and covariance (k, k), not a batch")
        noise_root = _psd_sqrt(_symmetric_part_checked("noise_cov", S, definite=False))
        dtype, device = torch.float64, K.device

        def act(obs: torch.Tensor) -> torch.Tensor:
            eps = torch.randn(obs.shape[0], task.action_dim, generator=generator, dtype=dtype, device=device)
            return -obs @ K.mT + eps @ noise_root.mT

    else:
        if noise_cov is not None:
            raise ValueError("noise_cov is only used with a gain; a policy object has its own noise")
        check_policy_matches(task, policy)
        dtype, device = _policy_dtype_device(policy)

        def act(obs: torch.Tensor) -> torch.Tensor:
            return policy.sample(obs, generator=generator)

        # The states below are built here in the policy's dtype and shape, so the
        # policy need not re-validate them at every step.
        trusted = getattr(policy, "_observations_validated", None)
        if trusted is not None:
            with trusted():
                return _simulate(task, act, episodes, horizon, dtype, device, generator)

    return _simulate(task, act, episodes, horizon, dtype, device, generator)


def _simulate(
    task: LQRTask,
    act: Any,
    episodes: int,
    horizon: int,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> Rollout:
    """The time loop of :func:`rollout`, on validated arguments."""
    n, k = task.state_dim, task.action_dim
    # states, actions and rewards, kept for the whole batch, and the largest temporary
    # (the elementwise quadratic forms of the rewards).
    check_allocation(
        "the rollout", episodes * horizon * (n + k + 1 + max(n, k) ** 2), dtype,
        f"episodes={episodes} x horizon={horizon} x state and action entries",
    )
    A, B, Q, R = (m.to(dtype=dtype, device=device) for m in (task.A, task.B, task.Q, task.R))
    w_root = _psd_sqrt(task.W).to(dtype=dtype, device=device)
    x0_root = _psd_sqrt(task.X0).to(dtype=dtype, device=device)
    state = task.x0_mean.to(dtype=dtype, device=device) + torch.randn(
        episodes, n, generator=generator, dtype=dtype, device=device
    ) @ x0_root.mT
    states = torch.empty(episodes, horizon, n, dtype=dtype, device=device)
    actions = torch.empty(episodes, horizon, k, dtype=dtype, device=device)
    for t in range(horizon):
        action = act(state)
        states[:, t] = state
        actions[:, t] = action
        noise = torch.randn(episodes, n, generator=generator, dtype=dtype, device=device) @ w_root.mT
        state = state @ A.mT + action @ B.mT + noise
    # Once for the whole batch after the loop, which holds only what depends on
    # the previous step; elementwise rather than a matrix product, as the inner
    # dimension is tiny and a threaded BLAS call would cost more than the work.
    rewards = -(_quadratic_form(states, Q) + _quadratic_form(actions, R))
    return Rollout(states=states, actions=actions, rewards=rewards, final_states=state, gamma=task.gamma)
