r"""Exact action values, advantages and discounted state distribution of a linear-Gaussian policy on LQR.

For the policy :math:`a = -K s + \eta`, :math:`\eta \sim \mathcal{N}(0, S)`, on a
task of :mod:`pgnotes.lqr`, the value is :math:`V^\pi(s) = -(s^\top P s + c)`
(:func:`pgnotes.lqr.quadratic_value`). One step of the Bellman equation,
:math:`Q^\pi(s, a) = r(s, a) + \gamma\, \mathbb{E}[V^\pi(A s + B a + w)]`, gives
the action value as a quadratic form in :math:`x = (s, a)`:

.. math::

   Q^\pi(s, a) = -\bigl(x^\top H x + h\bigr), \qquad
   H = \begin{pmatrix} Q + \gamma A^\top P A & \gamma A^\top P B \\
                       \gamma B^\top P A & R + \gamma B^\top P B \end{pmatrix}, \qquad
   h = \gamma \bigl(\operatorname{tr}(P W) + c\bigr),

since :math:`\mathbb{E}[s'^\top P s'] = (A s + B a)^\top P (A s + B a) + \operatorname{tr}(P W)`.
The advantage is :math:`A^\pi(s, a) = Q^\pi(s, a) - V^\pi(s)`.

The normalised discounted state distribution
:math:`d^\pi(s) = (1 - \gamma) \sum_{t \ge 0} \gamma^t p_t(s)` is a mixture of
Gaussians; expectations of quadratics under it need only its mean and second
moment, which solve linear equations. With :math:`F = A - B K`,
:math:`N = B S B^\top + W` and :math:`M_{t+1} = F M_t F^\top + N`,

.. math::

   m_d = (1 - \gamma)(I - \gamma F)^{-1} m_0, \qquad
   M_d = (1 - \gamma) M_0 + \gamma \bigl(F M_d F^\top + N\bigr),

the second a discounted Lyapunov equation. They give, for instance,
:math:`J = \mathbb{E}_{s \sim d^\pi, a \sim \pi}[r(s, a)] / (1 - \gamma)`.

References:
    Sutton, R. S., McAllester, D., Singh, S. and Mansour, Y. (2000). Policy
    gradient methods for reinforcement learning with function approximation. NIPS.

    Bertsekas, D. P. (2017). Dynamic Programming and Optimal Control, vol. I,
    4th ed., section 3.2. Athena Scientific.
"""

from __future__ import annotations

from typing import Any

import torch

from pgnotes._validation import as_float_tensor, broadcast_shapes, check_finite
from pgnotes.lqr import (
    LQRTask,
    _check_task,
    _gain_tensor,
    _noise_tensor,
    _quadratic_value_unchecked,
    _raise_if_unstable,
    solve_discounted_lyapunov,
)

__all__ = ["action_value_matrices", "action_value", "advantage", "discounted_state_moments"]


def _policy(task: LQRTask, gain: Any, noise_cov: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated single (unbatched) gain and noise covariance of a stable policy."""
    _check_task(task)
    K = _gain_tensor(task, gain)
    S = _noise_tensor(task, noise_cov, K)
    if K.dim() != 2 or S.dim() != 2:
        raise ValueError(
            f"gain and noise_cov must be a single (k, n) gain and (k, k) covariance, got shapes "
            f"{tuple(K.shape)} and {tuple(S.shape)}"
        )
    check_finite("gain", K.detach())
    check_finite("noise_cov", S.detach())
    _raise_if_unstable(task, K)
    return K, S


def action_value_matrices(task: LQRTask, gain: Any, noise_cov: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The matrix :math:`H` and constant :math:`h` of :math:`Q^\pi(s, a) = -(x^\top H x + h)`, :math:`x = (s, a)`.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(k, n)``.
        noise_cov: :math:`S`, shape ``(k, k)``; zero if None.

    Returns:
        ``(H, h)``, shapes ``(n + k, n + k)`` and ``()``, float64, differentiable in
        ``gain`` and ``noise_cov``.

    Raises:
        ValueError: on a shape mismatch, a non-finite entry, or an unstable closed loop.
    """
    K, S = _policy(task, gain, noise_cov)
    P, c = _quadratic_value_unchecked(task, K, S)
    A, B, gamma = task.A, task.B, task.gamma
    top = torch.cat([task.Q + gamma * A.mT @ P @ A, gamma * A.mT @ P @ B], dim=1)
    bottom = torch.cat([gamma * B.mT @ P @ A, task.R + gamma * B.mT @ P @ B], dim=1)
    H = torch.cat([top, bottom], dim=0)
    h = gamma * (torch.einsum("ij,ji->", P, task.W) + c)
    return H, h


def _states_and_actions(task: LQRTask, states: Any, actions: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s = as_float_tensor("states", states, like=task.A).to(torch.float64)
    a = as_float_tensor("actions", actions, like=task.A).to(torch.float64)
    n, k = task.state_dim, task.action_dim
    if s.dim() < 1 or s.shape[-1] != n:
        raise ValueError(f"states must have shape (..., {n}) for this task, got {tuple(s.shape)}")
    if a.dim() < 1 or a.shape[-1] != k:
        raise ValueError(f"actions must have shape (..., {k}) for this task, got {tuple(a.shape)}")
    batch = broadcast_shapes(states=s.shape[:-1], actions=a.shape[:-1])
    check_finite("states", s.detach())
    check_finite("actions", a.detach())
    return s.expand(*batch, n), a.expand(*batch, k)


def action_value(task: LQRTask, gain: Any, noise_cov: Any, states: Any, actions: Any) -> torch.Tensor:
    r"""Exact :math:`Q^\pi(s, a)` of the policy :math:`a = -K s + \eta`, :math:`\eta \sim \mathcal{N}(0, S)`.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(k, n)``.
        noise_cov: :math:`S`, shape ``(k, k)``; None for the deterministic policy.
        states: shape ``(..., n)``.
        actions: shape ``(..., k)``, broadcastable with ``states`` over the batch axes.

    Returns:
        :math:`Q^\pi`, with the broadcast batch shape, float64, differentiable in
        every argument.
    """
    H, h = action_value_matrices(task, gain, noise_cov)
    s, a = _states_and_actions(task, states, actions)
    x = torch.cat([s, a], dim=-1)
    return -((x @ H) * x).sum(-1) - h


def advantage(task: LQRTask, gain: Any, noise_cov: Any, states: Any, actions: Any) -> torch.Tensor:
    r"""Exact advantage :math:`A^\pi(s, a) = Q^\pi(s, a) - V^\pi(s)`, with :math:`\mathbb{E}_{a \sim \pi}[A^\pi(s, a)] = 0`.

    Same arguments and result shape as :func:`action_value`.
    """
    K, S = _policy(task, gain, noise_cov)
    P, c = _quadratic_value_unchecked(task, K, S)
    s, _ = _states_and_actions(task, states, actions)
    value = -((s @ P) * s).sum(-1) - c
    return action_value(task, K, S, states, actions) - value


def discounted_state_moments(task: LQRTask, gain: Any, noise_cov: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean :math:`m_d` and second moment :math:`M_d = \mathbb{E}_{d^\pi}[s s^\top]` of the normalised discounted state distribution.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(k, n)``.
        noise_cov: :math:`S`, shape ``(k, k)``; zero if None.

    Returns:
        ``(m_d, M_d)``, shapes ``(n,)`` and ``(n, n)``, float64, differentiable in
        ``gain`` and ``noise_cov``.

    Raises:
        ValueError: on a shape mismatch, a non-finite entry, or an unstable closed loop.
    """
    K, S = _policy(task, gain, noise_cov)
    gamma = task.gamma
    F = task.A - task.B @ K
    m0 = task.x0_mean
    second_moment_0 = task.X0 + torch.outer(m0, m0)
    injected = task.B @ S @ task.B.mT + task.W
    eye = torch.eye(task.state_dim, dtype=torch.float64)
    mean = (1.0 - gamma) * torch.linalg.solve(eye - gamma * F, m0)
    # M_d = M + gamma F M_d F^T is the Lyapunov form P = M + gamma F'^T P F' with F' = F^T.
    second_moment = solve_discounted_lyapunov(F.mT, (1.0 - gamma) * second_moment_0 + gamma * injected, gamma)
    return mean, second_moment
