r"""A one-step continuous bandit with a Gaussian policy and a quadratic reward.

The smallest policy-gradient problem with everything in closed form: one
action :math:`a \sim \mathcal{N}(\mu, \sigma^2)`, no state, and the reward

.. math::

   r(a) = -(a - k)^2,

largest at the target :math:`k`. The objective and its gradient are

.. math::

   J(\mu, \sigma) = \mathbb{E}[r(a)] = -\bigl((\mu - k)^2 + \sigma^2\bigr), \qquad
   \nabla_{\mu, \sigma} J = \bigl(-2(\mu - k),\, -2\sigma\bigr),

so a Monte Carlo estimate of :math:`\nabla J` can be compared with the exact
value, and the exact per-sample variance of the score-function estimator is
known for any constant baseline. The reward is the negative of the cost
:math:`(a - k)^2` of :mod:`pgnotes.estimators`, whose closed forms this module
reuses with the signs turned around.

References:
    Williams, R. J. (1992). Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Machine Learning 8.

    Sutton, R. S. and Barto, A. G. (2018). Reinforcement Learning: An
    Introduction, 2nd ed., ch. 13.

    Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient
    estimation in machine learning. JMLR 21(132).
"""

from __future__ import annotations

from typing import Any

import torch

from pgnotes import estimators
from pgnotes._validation import as_float_tensor, broadcast_shapes, check_finite

__all__ = [
    "reward",
    "objective",
    "objective_gradient",
    "score_function_estimates",
    "estimator_variance",
]


def reward(a: Any, k: Any) -> torch.Tensor:
    r"""The quadratic reward :math:`r(a) = -(a - k)^2`, elementwise and differentiable.

    Args:
        a: Actions, a tensor or a number.
        k: Target :math:`k`, broadcastable with ``a``.

    Returns:
        The rewards, with the broadcast shape of ``a`` and ``k``.

    Raises:
        ValueError: If ``a`` or ``k`` is not finite or their shapes do not broadcast.

    References:
        Mohamed et al. (2020), Figure 2 (with the sign of a reward instead of a cost).
    """
    like = next((v for v in (a, k) if isinstance(v, torch.Tensor)), None)
    a = as_float_tensor("a", a, like=like)
    target = as_float_tensor("k", k, like=like)
    dtype = torch.promote_types(a.dtype, target.dtype)
    a, target = a.to(dtype), target.to(dtype)
    check_finite("a", a.detach())
    check_finite("k", target.detach())
    broadcast_shapes(a=a, k=target)
    return -((a - target) ** 2)


def objective(mean: Any, std: Any, k: Any) -> torch.Tensor:
    r"""The exact expected reward :math:`J(\mu, \sigma) = -\bigl((\mu - k)^2 + \sigma^2\bigr)`.

    From :math:`a = \mu + \sigma\varepsilon` and
    :math:`(a - k)^2 = (\mu - k)^2 + 2(\mu - k)\sigma\varepsilon + \sigma^2\varepsilon^2`,
    with :math:`\mathbb{E}[\varepsilon] = 0` and :math:`\mathbb{E}[\varepsilon^2] = 1`.

    Args:
        mean: Mean :math:`\mu` of the policy.
        std: Standard deviation :math:`\sigma > 0` of the policy.
        k: Target :math:`k` of the reward.

    Returns:
        :math:`J`, with the broadcast shape of the arguments. Like the closed forms of
        :mod:`pgnotes.estimators` it carries no autograd history: its gradient is
        :func:`objective_gradient`.

    References:
        Sutton & Barto (2018), section 13.2 (the objective :math:`J(\theta)`).
    """
    return -estimators.exact_value_quadratic(mean, std, k)


def objective_gradient(mean: Any, std: Any, k: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact gradient of :func:`objective`.

    .. math::

       \frac{\partial J}{\partial \mu} = -2(\mu - k), \qquad
       \frac{\partial J}{\partial \sigma} = -2\sigma .

    Args:
        mean: Mean :math:`\mu` of the policy.
        std: Standard deviation :math:`\sigma > 0` of the policy.
        k: Target :math:`k` of the reward.

    Returns:
        ``(d_mean, d_std)``, each with the broadcast shape of the arguments.

    References:
        Sutton & Barto (2018), section 13.2.
    """
    d_mean, d_std = estimators.exact_gradient_quadratic(mean, std, k)
    return -d_mean, -d_std


def score_function_estimates(
    mean: Any,
    std: Any,
    k: Any,
    n: int,
    *,
    baseline: Any = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample score-function (REINFORCE) estimates of :math:`\nabla_{\mu, \sigma} J`.

    For :math:`a_i \sim \mathcal{N}(\mu, \sigma^2)`,

    .. math::

       \hat g_\mu^{(i)} = \bigl(r(a_i) - b\bigr)\, \frac{a_i - \mu}{\sigma^2}, \qquad
       \hat g_\sigma^{(i)} = \bigl(r(a_i) - b\bigr)\, \frac{(a_i - \mu)^2 - \sigma^2}{\sigma^3},

    unbiased for any constant baseline :math:`b`. The average over the ``n``
    samples is the estimate of :math:`\nabla J`; keeping the samples gives its
    standard error (:func:`pgnotes.estimators.summarize`).

    Args:
        mean: Mean :math:`\mu` of the policy.
        std: Standard deviation :math:`\sigma > 0`, broadcastable with ``mean``.
        k: Target :math:`k` of the reward, broadcastable with ``mean``.
        n: Number of samples.
        baseline: Constant baseline :math:`b` (``None`` for :math:`b = 0`).
        generator: Seeds the sampling.

    Returns:
        ``(g_mean, g_std)``, each of shape ``(n, *batch_shape)``.

    References:
        Williams (1992), sections 4 and 6; Sutton & Barto (2018), sections 13.3, 13.4 and 13.7.
    """
    return estimators.score_function_estimates(
        lambda actions: reward(actions, k), mean, std, n, baseline=baseline, generator=generator
    )


def estimator_variance(
    mean: Any, std: Any, k: Any, *, baseline: Any = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact per-sample variances of :func:`score_function_estimates` for a constant baseline.

    With the cost :math:`f(a) = (a - k)^2 = -r(a)`, the estimate with baseline
    :math:`b` is :math:`(r(a) - b)\,\nabla \log \pi(a) = -\bigl(f(a) - (-b)\bigr)\,\nabla\log\pi(a)`:
    the negative of the cost's estimate with baseline :math:`-b`, which has the
    same variance (:func:`pgnotes.estimators.exact_variance_quadratic`). With
    :math:`c = \mu - k`,

    .. math::

       \operatorname{Var}[\hat g_\mu]
         = \frac{(c^2 + b)^2 + 14 c^2 \sigma^2 + 6 b \sigma^2 + 15 \sigma^4}{\sigma^2},

    a quadratic in :math:`b`, smallest at :math:`b^\star = -(c^2 + 3\sigma^2)`.

    Args:
        mean: Mean :math:`\mu` of the policy.
        std: Standard deviation :math:`\sigma > 0`.
        k: Target :math:`k` of the reward.
        baseline: Constant baseline :math:`b` subtracted from the reward.

    Returns:
        ``(var_mean, var_std)``, the variances of :math:`\hat g_\mu^{(i)}` and
        :math:`\hat g_\sigma^{(i)}`, with the broadcast shape of the arguments.

    References:
        Mohamed et al. (2020), section 4 and their discussion of baselines as control variates.
    """
    like = next((v for v in (mean, std, k) if isinstance(v, torch.Tensor)), None)
    b = as_float_tensor("baseline", baseline, like=like)
    variances = estimators.exact_variance_quadratic(mean, std, k, baseline=-b)
    return variances.score_mean, variances.score_std
