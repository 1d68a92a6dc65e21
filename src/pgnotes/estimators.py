r"""Monte Carlo gradient estimators for a Gaussian: score function against pathwise.

Both estimators target the gradient of an expected reward under a Gaussian
"policy" with mean :math:`\mu` and standard deviation :math:`\sigma`,

.. math::

   \nabla_{\mu,\sigma}\, \E_{a \sim \Normal(\mu, \sigma^2)}[f(a)],

elementwise over a batch of independent one-dimensional Gaussians.

- The *score-function* (REINFORCE, log-derivative) estimator uses
  :math:`\nabla \E[f(a)] = \E[(f(a) - b)\, \nabla \log \pi(a)]` and needs only the
  values :math:`f(a)` (Williams 1992; Sutton & Barto 2018, ch. 13).
- The *pathwise* (reparameterisation) estimator writes
  :math:`a = \mu + \sigma \varepsilon` with :math:`\varepsilon \sim \Normal(0, 1)` and
  differentiates through :math:`f`, so it needs :math:`f'(a)` (Kingma & Welling 2014).

Both return one estimate per sample; :func:`pgnotes.monte_carlo.summarize` and
:func:`pgnotes.monte_carlo.z_score` (also importable from here) turn them into a
mean with a standard error. The objectives with closed forms to test them on
live in :mod:`pgnotes.objectives`.

References:
    Williams, R. J. (1992). Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Machine Learning 8.

    Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. ICLR.

    Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient
    estimation in machine learning. JMLR 21(132).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from pgnotes._validation import (
    as_float_tensor,
    broadcast_shapes,
    check_allocation,
    check_callable,
    check_count,
    check_finite,
    check_generator,
    mean_and_std,
)
from pgnotes.gaussian import normal_score
from pgnotes.monte_carlo import EstimateSummary, summarize, z_score

__all__ = [
    "score_function_estimates",
    "pathwise_estimates",
    "EstimateSummary",
    "summarize",
    "z_score",
]

Reward = Callable[[torch.Tensor], torch.Tensor]

_PATHWISE_NEEDS_DERIVATIVE = (
    "pathwise_estimates needs the derivative df/da, but {why}. "
    "score_function_estimates needs only the values f(a) and works for such f."
)

# Closed forms that lived here before :mod:`pgnotes.objectives` existed: still
# importable from this module for one release, with a DeprecationWarning.
_MOVED_TO_OBJECTIVES = frozenset(
    {
        "quadratic_reward",
        "exact_value_quadratic",
        "exact_gradient_quadratic",
        "EstimatorVariances",
        "exact_variance_quadratic",
        "optimal_baseline_quadratic",
        "QuadraticVarianceDerivation",
        "quadratic_variance_derivation",
        "step_reward",
        "exact_value_step",
        "exact_gradient_step",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_OBJECTIVES:
        warnings.warn(
            f"pgnotes.estimators.{name} has moved to pgnotes.objectives.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        from pgnotes import objectives

        return getattr(objectives, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------


def _standard_normal(
    n: int, shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw ``(n, *shape)`` standard-normal noise without gradient tracking."""
    check_generator("generator", generator)
    # The noise, the actions, the rewards, two scores and two estimates: about seven
    # tensors of this size live at once.
    check_allocation("the estimates", 7 * n * shape.numel(), like.dtype, f"n={n} samples x batch shape {tuple(shape)}")
    # Draw on the generator's own device (a CPU generator cannot fill a CUDA
    # tensor), then move, so a seed gives the same noise whatever the device.
    device = generator.device if generator is not None else like.device
    with torch.no_grad():
        noise = torch.randn((n, *shape), generator=generator, dtype=like.dtype, device=device)
    return noise.to(like.device)


def _check_reward_values(rewards: Any, actions: torch.Tensor) -> torch.Tensor:
    """Check that ``f(a)`` is an elementwise, finite, floating-point result."""
    if not isinstance(rewards, torch.Tensor):
        raise ValueError(
            f"f must return a torch.Tensor of the same shape as its input, got {type(rewards).__name__}"
        )
    if not rewards.is_floating_point():
        raise ValueError(f"f must return a floating-point tensor, got dtype {rewards.dtype}")
    if rewards.shape != actions.shape:
        raise ValueError(
            "f must be elementwise: f(a) must have the shape of a, "
            f"got {tuple(rewards.shape)} for a of shape {tuple(actions.shape)}"
        )
    check_finite("f(a)", rewards.detach())
    return rewards


# ---------------------------------------------------------------------------
# The two estimators
# ---------------------------------------------------------------------------


def score_function_estimates(
    f: Reward,
    mean: torch.Tensor | float,
    std: torch.Tensor | float,
    n: int,
    *,
    baseline: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample score-function (REINFORCE) estimates of the gradient of E[f(a)].

    For :math:`a_i \sim \Normal(\mu, \sigma^2)`, :math:`i = 1, \dots, n`, elementwise,

    .. math::

       \hat g_\mu^{(i)} = (f(a_i) - b)\, \frac{a_i - \mu}{\sigma^2}, \qquad
       \hat g_\sigma^{(i)} = (f(a_i) - b)\, \frac{(a_i - \mu)^2 - \sigma^2}{\sigma^3},

    the two factors on the right being :math:`\partial \log \pi(a_i) / \partial(\mu, \sigma)`
    (from :func:`pgnotes.gaussian.normal_score`). Each is unbiased for
    :math:`\partial \E[f(a)] / \partial(\mu, \sigma)` for any constant baseline :math:`b`,
    because the score has mean zero; :math:`b` changes only the variance (see
    :func:`pgnotes.objectives.exact_variance_quadratic`). Only the values :math:`f(a)` are used, so
    :math:`f` may be non-differentiable, discontinuous or computed outside torch.

    The actions are :math:`a_i = \mu + \sigma \varepsilon_i` with the same noise that
    :func:`pathwise_estimates` draws for the same ``generator`` state, so the two
    estimators can be compared on common random numbers.

    Args:
        f: Elementwise reward. Called once, without gradient tracking, on the
            actions of shape ``(n, *batch_shape)``; must return a finite
            floating-point tensor of that same shape.
        mean: Mean :math:`\mu`, a tensor or a number.
        std: Standard deviation :math:`\sigma > 0`, broadcastable with ``mean``.
        n: Number of samples, a positive integer.
        baseline: Constant baseline :math:`b`, a number or a tensor broadcastable
            to the batch shape; ``None`` means :math:`b = 0`.
        generator: Seeds the sampling; the same seed gives identical estimates.

    Returns:
        ``(g_mean, g_std)``, each of shape ``(n, *batch_shape)`` where
        ``batch_shape`` is the broadcast shape of ``mean`` and ``std``. They carry
        no autograd history.

    Raises:
        ValueError: If ``mean`` or ``std`` are not finite, ``std`` is not positive,
            their shapes (or the baseline's) do not broadcast to the batch shape,
            ``n`` is not a positive integer, or ``f`` returns a non-tensor, a
            tensor of the wrong shape, or non-finite values.

    References:
        Book: equation :eq:`policy-gradient-log-derivative` of :doc:`/book/policy_gradient`.
        Williams (1992), sec. 4 and 6; Sutton & Barto (2018), sec. 13.3, 13.4 and 13.7;
        Mohamed et al. (2020), sec. 4.
    """
    check_callable("f", f)
    mean, std, batch_shape = mean_and_std(mean, std)
    count = check_count("n", n)
    if baseline is None:
        baseline_tensor = torch.zeros((), dtype=mean.dtype, device=mean.device)
    else:
        baseline_tensor = as_float_tensor("baseline", baseline, like=mean).detach()
        baseline_tensor = baseline_tensor.to(dtype=mean.dtype, device=mean.device)
        check_finite("baseline", baseline_tensor)
        if broadcast_shapes(batch=batch_shape, baseline=baseline_tensor) != batch_shape:
            raise ValueError(
                f"baseline of shape {tuple(baseline_tensor.shape)} must broadcast to the batch "
                f"shape {tuple(batch_shape)} of mean and std"
            )
    noise = _standard_normal(count, batch_shape, mean, generator)
    with torch.no_grad():
        actions = mean + std * noise
        rewards = _check_reward_values(f(actions), actions).detach().to(mean.dtype)
        score_mean, score_std = normal_score(actions, mean, std)
        centred = rewards - baseline_tensor
        return centred * score_mean, centred * score_std


def pathwise_estimates(
    f: Reward,
    mean: torch.Tensor | float,
    std: torch.Tensor | float,
    n: int,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-sample pathwise (reparameterisation) estimates of the gradient of E[f(a)].

    With :math:`a_i = \mu + \sigma \varepsilon_i`, :math:`\varepsilon_i \sim \Normal(0, 1)`,

    .. math::

       \hat g_\mu^{(i)} = \frac{\partial f(\mu + \sigma\varepsilon_i)}{\partial \mu}
       = f'(a_i), \qquad
       \hat g_\sigma^{(i)} = \frac{\partial f(\mu + \sigma\varepsilon_i)}{\partial \sigma}
       = f'(a_i)\, \varepsilon_i .

    :math:`f'` is computed by autograd in one backward pass through
    :math:`\sum_i f(a_i)`. That gives every per-sample derivative at once only
    because ``f`` is *elementwise* (each output entry depends on the matching
    input entry alone); the output shape is checked, and a second backward pass
    with a fixed pseudo-random weighting checks that the Jacobian is diagonal, so a
    non-elementwise ``f`` such as a cumulative sum is refused.

    The estimate is unbiased when :math:`f` is differentiable with
    :math:`\E[f(a)]` differentiable under the integral sign. A step function
    :math:`\mathbb{1}[a > k]` is not: built from comparisons it has no autograd
    graph, and ``torch.heaviside`` has no derivative formula, so both are
    refused here. A reward that autograd *can* differentiate but
    whose derivative is zero almost everywhere (``torch.floor``, or a step
    written as ``a * 0 + (a > k)``) is not detected and silently gives zero
    estimates, although the true gradient is not zero; use
    :func:`score_function_estimates` for such rewards.

    Args:
        f: Elementwise reward, differentiable in torch. Called once on actions of
            shape ``(n, *batch_shape)`` that require grad; must return a finite
            floating-point tensor of that shape connected to its input by autograd.
        mean: Mean :math:`\mu`, a tensor or a number.
        std: Standard deviation :math:`\sigma > 0`, broadcastable with ``mean``.
        n: Number of samples, a positive integer.
        generator: Seeds the sampling; the same seed gives identical estimates,
            and the same actions as :func:`score_function_estimates`.

    Returns:
        ``(g_mean, g_std)``, each of shape ``(n, *batch_shape)``, without autograd
        history.

    Raises:
        ValueError: For the argument errors of :func:`score_function_estimates`;
            if ``f(a)`` is not differentiable in torch (no autograd graph, not
            connected to ``a``, computed via NumPy or after ``detach``); if ``f``
            is not elementwise; or if :math:`f'(a)` is not finite.

    References:
        Book: equation :eq:`estimators-pathwise-sufficient` of :doc:`/book/score_vs_pathwise`.
        Kingma & Welling (2014), sec. 2.4; Mohamed et al. (2020), sec. 5.
    """
    check_callable("f", f)
    mean, std, batch_shape = mean_and_std(mean, std)
    count = check_count("n", n)
    noise = _standard_normal(count, batch_shape, mean, generator)
    actions = (mean + std * noise).requires_grad_(True)
    # Differentiate even when the caller is inside ``torch.no_grad()``.
    with torch.enable_grad():
        try:
            rewards = f(actions)
        except RuntimeError as exc:
            # Decided by behaviour, not by the wording of torch's message: if f
            # works on the same actions without autograd, what failed was the
            # graph (for instance ``numpy()`` on a tensor that requires grad).
            if not _works_without_autograd(f, actions):
                raise
            raise ValueError(
                _PATHWISE_NEEDS_DERIVATIVE.format(why=f"f(a) leaves torch ({exc})")
            ) from exc
        rewards = _check_reward_values(rewards, actions)
        if not rewards.requires_grad:
            raise ValueError(
                _PATHWISE_NEEDS_DERIVATIVE.format(
                    why="f(a) has no autograd graph (built from comparisons such as a > k, "
                    "casts of booleans, detach or NumPy)"
                )
            )
        try:
            (derivative,) = torch.autograd.grad(
                rewards.sum(), actions, retain_graph=True, allow_unused=True
            )
        except RuntimeError as exc:
            # The forward pass worked, so a failing backward pass means an
            # operation in f has no derivative in torch (e.g. torch.heaviside).
            raise ValueError(
                _PATHWISE_NEEDS_DERIVATIVE.format(why=f"autograd cannot differentiate f ({exc})")
            ) from exc
        if derivative is None:
            raise ValueError(
                _PATHWISE_NEEDS_DERIVATIVE.format(
                    why="f(a) is not connected to a in the autograd graph"
                )
            )
        _check_elementwise(rewards, actions, derivative)
    derivative = derivative.detach()
    check_finite("df/da", derivative)
    return derivative, derivative * noise


def _works_without_autograd(f: Reward, actions: torch.Tensor) -> bool:
    """Whether ``f`` runs on a detached copy of ``actions`` (so only differentiating it failed)."""
    try:
        with torch.no_grad():
            f(actions.detach().clone())
    except Exception:  # noqa: BLE001 - any failure means f itself is broken, not the graph
        return False
    return True


def _check_elementwise(rewards: torch.Tensor, actions: torch.Tensor, derivative: torch.Tensor) -> None:
    r"""Refuse an ``f`` whose Jacobian is not diagonal.

    For a diagonal Jacobian :math:`J`, :math:`J^\top w = (J^\top \mathbf 1) \odot w`
    for every weighting :math:`w`; for a non-diagonal one, with pairwise
    distinct weights, the two differ unless the off-diagonal terms cancel
    exactly. The weights :math:`w_i = 1 + i / N` are distinct for every entry
    (so a coupling between any two entries shows), and deterministic (the
    caller's random stream is left alone). For an elementwise ``f`` the two
    sides differ only by the rounding of the backward pass's products, a few
    ulp per operation: the tolerance is 64 ulp relative, plus a few subnormals.
    """
    if actions.numel() <= 1:
        return
    count = rewards.numel()
    weights = (1.0 + torch.arange(count, dtype=torch.float64) / count).reshape(rewards.shape)
    weights = weights.to(dtype=rewards.dtype, device=rewards.device)
    (weighted,) = torch.autograd.grad(rewards, actions, grad_outputs=weights, allow_unused=True)
    expected = derivative * weights.to(derivative.dtype)
    tiny = torch.finfo(actions.dtype).tiny
    eps = torch.finfo(actions.dtype).eps
    if weighted is None or not torch.allclose(weighted, expected, rtol=64 * eps, atol=4 * tiny, equal_nan=True):
        raise ValueError(
            "f must be elementwise (each f(a) entry a function of the matching a entry only): "
            "its Jacobian is not diagonal, so one backward pass cannot give per-sample derivatives"
        )
