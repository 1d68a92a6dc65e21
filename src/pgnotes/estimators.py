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

The module also holds the closed forms used to check them: the exact gradient
of :math:`\E[(a - k)^2]` and of :math:`P(a > k)`, the exact per-sample
variances of both estimators for the quadratic reward, the setting of
Mohamed et al. (2020), Figure 2, and the optimal constant baselines; and
:func:`quadratic_variance_derivation`, which derives those variances and
baselines in SymPy.

References:
    Williams, R. J. (1992). Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Machine Learning 8.

    Kingma, D. P. and Welling, M. (2014). Auto-encoding variational Bayes. ICLR.

    Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient
    estimation in machine learning. JMLR 21(132).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sympy as sp
import torch

from pgnotes._validation import as_float_tensor, broadcast_shapes, check_finite, check_positive
from pgnotes.gaussian import normal_score
from pgnotes.symbolic import to_torch, univariate_log_density

__all__ = [
    "score_function_estimates",
    "pathwise_estimates",
    "EstimateSummary",
    "summarize",
    "z_score",
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
]

Reward = Callable[[torch.Tensor], torch.Tensor]

_PATHWISE_NEEDS_DERIVATIVE = (
    "pathwise_estimates needs the derivative df/da, but {why}. "
    "score_function_estimates needs only the values f(a) and works for such f."
)


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------


def _mean_and_std(mean: Any, std: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """Validate ``mean`` and ``std`` and return them with their broadcast shape."""
    # A Python number next to a tensor takes the tensor's dtype and device, so
    # ``mean=0.0, std=torch.tensor(..., dtype=torch.float64)`` stays float64.
    if not isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        std = as_float_tensor("std", std)
        mean = as_float_tensor("mean", mean, like=std)
    else:
        mean = as_float_tensor("mean", mean)
        std = as_float_tensor("std", std, like=mean)
    for name, value in (("mean", mean), ("std", std)):
        if value.is_complex():
            raise ValueError(f"{name} must be a real floating-point tensor, got dtype {value.dtype}")
    if mean.device != std.device:
        raise ValueError(f"mean and std must be on the same device, got {mean.device} and {std.device}")
    dtype = torch.promote_types(mean.dtype, std.dtype)
    # The estimates are numbers, not parts of a graph: gradients never flow
    # back into mean or std.
    mean = mean.detach().to(dtype)
    std = std.detach().to(dtype)
    check_finite("mean", mean)
    check_finite("std", std)
    check_positive("std", std)
    return mean, std, broadcast_shapes(mean=mean, std=std)


def _sample_count(n: Any) -> int:
    """Return ``n`` as a positive ``int`` or raise ``ValueError``."""
    if isinstance(n, bool):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    try:
        count = operator.index(n)
    except TypeError as exc:
        raise ValueError(f"n must be a positive integer, got {n!r}") from exc
    if count <= 0:
        raise ValueError(f"n must be a positive integer, got {count}")
    return count


def _standard_normal(
    n: int, shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw ``(n, *shape)`` standard-normal noise without gradient tracking."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
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
    :func:`exact_variance_quadratic`). Only the values :math:`f(a)` are used, so
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
        Williams (1992), sec. 4 and 6; Sutton & Barto (2018), sec. 13.3, 13.4 and 13.7;
        Mohamed et al. (2020), sec. 4.
    """
    mean, std, batch_shape = _mean_and_std(mean, std)
    count = _sample_count(n)
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
        Kingma & Welling (2014), sec. 2.4; Mohamed et al. (2020), sec. 5.
    """
    mean, std, batch_shape = _mean_and_std(mean, std)
    count = _sample_count(n)
    noise = _standard_normal(count, batch_shape, mean, generator)
    actions = (mean + std * noise).requires_grad_(True)
    # Differentiate even when the caller is inside ``torch.no_grad()``.
    with torch.enable_grad():
        try:
            rewards = f(actions)
        except RuntimeError as exc:
            # ``numpy()`` on a tensor that requires grad: f leaves torch.
            if "requires grad" not in str(exc):
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
            # An operation in f that has no backward formula, e.g. torch.heaviside.
            if "not implemented" not in str(exc):
                raise
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


def _check_elementwise(rewards: torch.Tensor, actions: torch.Tensor, derivative: torch.Tensor) -> None:
    r"""Refuse an ``f`` whose Jacobian is not diagonal.

    For a diagonal Jacobian :math:`J`, :math:`J^\top w = (J^\top \mathbf 1) \odot w`
    for every weighting :math:`w`; for a non-diagonal one the two differ for
    almost every :math:`w`. The weights are random powers of two from a private,
    fixed-seed generator (the caller's random stream is left alone), so both
    sides are computed with the same roundings and agree to the last bit for an
    elementwise ``f``; the tolerance only absorbs subnormal underflow.
    """
    if actions.numel() <= 1:
        return
    private = torch.Generator().manual_seed(0)
    exponents = torch.randint(-2, 3, tuple(rewards.shape), generator=private)
    weights = torch.pow(2.0, exponents.to(rewards.dtype)).to(rewards.device)
    (weighted,) = torch.autograd.grad(rewards, actions, grad_outputs=weights, allow_unused=True)
    expected = derivative * weights.to(derivative.dtype)
    tiny = torch.finfo(actions.dtype).tiny
    eps = torch.finfo(actions.dtype).eps
    if weighted is None or not torch.allclose(weighted, expected, rtol=16 * eps, atol=4 * tiny, equal_nan=True):
        raise ValueError(
            "f must be elementwise (each f(a) entry a function of the matching a entry only): "
            "its Jacobian is not diagonal, so one backward pass cannot give per-sample derivatives"
        )


# ---------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------


def _format_tensor(value: torch.Tensor) -> str:
    """Short human-readable rendering of a small tensor (4 significant digits)."""
    if value.numel() > 24:
        return f"<tensor of shape {tuple(value.shape)}>"

    def render(item: Any) -> str:
        if isinstance(item, list):
            return "[" + ", ".join(render(x) for x in item) + "]"
        return f"{item:.4g}"

    return render(value.detach().cpu().tolist())


@dataclass(frozen=True, eq=False)
class EstimateSummary:
    r"""Sample mean, variance and standard errors of ``n`` per-sample estimates.

    Returned by :func:`summarize`; every tensor field has shape ``batch_shape``.
    """

    #: Sample mean over the samples.
    mean: torch.Tensor
    #: Unbiased sample variance (divisor :math:`n - 1`) per component.
    variance: torch.Tensor
    #: Standard error of the mean, :math:`\sqrt{s^2 / n}`.
    standard_error: torch.Tensor
    #: Number of samples.
    n: int
    #: Approximate standard error of ``variance``,
    #: :math:`\sqrt{(m_4 - s^4 (n - 3)/(n - 1)) / n}` with :math:`m_4` the
    #: sample fourth central moment.
    variance_standard_error: torch.Tensor

    def __repr__(self) -> str:
        return (
            f"EstimateSummary(n={self.n}, mean={_format_tensor(self.mean)}, "
            f"variance={_format_tensor(self.variance)}, "
            f"standard_error={_format_tensor(self.standard_error)})"
        )


def summarize(estimates: torch.Tensor) -> EstimateSummary:
    r"""Summarise per-sample estimates of shape ``(n, *batch_shape)`` along the first axis.

    .. math::

       \bar g = \frac{1}{n}\sum_i \hat g^{(i)}, \qquad
       s^2 = \frac{1}{n - 1}\sum_i (\hat g^{(i)} - \bar g)^2, \qquad
       \operatorname{se} = \sqrt{s^2 / n}.

    The standard error of :math:`s^2` uses the exact variance of the sample
    variance of i.i.d. draws, :math:`\Var(s^2) = (\mu_4 - \sigma^4 (n-3)/(n-1))/n`,
    with the population moments replaced by sample ones (clamped at zero, since
    the plug-in value can be slightly negative for small ``n``).

    Args:
        estimates: Tensor of shape ``(n, *batch_shape)`` with :math:`n \ge 2`,
            e.g. one of the outputs of :func:`score_function_estimates`.

    Returns:
        An :class:`EstimateSummary`.

    Raises:
        ValueError: If ``estimates`` is not a floating-point tensor with at least
            one dimension and two samples, or holds NaN or inf.

    References:
        Mohamed et al. (2020), on the bias and variance of Monte Carlo estimators.
    """
    estimates = as_float_tensor("estimates", estimates).detach()
    if estimates.dim() < 1 or estimates.shape[0] < 2:
        raise ValueError(
            "estimates must have shape (n, *batch_shape) with n >= 2 samples, "
            f"got shape {tuple(estimates.shape)}"
        )
    check_finite("estimates", estimates)
    count = estimates.shape[0]
    mean = estimates.mean(dim=0)
    variance = estimates.var(dim=0, correction=1)
    fourth = ((estimates - mean) ** 4).mean(dim=0)
    variance_of_variance = (fourth - variance**2 * (count - 3) / (count - 1)) / count
    return EstimateSummary(
        mean=mean,
        variance=variance,
        standard_error=torch.sqrt(variance / count),
        n=count,
        variance_standard_error=torch.sqrt(variance_of_variance.clamp(min=0.0)),
    )


def z_score(estimates: torch.Tensor | EstimateSummary, exact: torch.Tensor | float) -> torch.Tensor:
    r"""Distance of the sample mean from a known value, in standard errors.

    .. math::

       z = \frac{\bar g - g_\text{exact}}{\operatorname{se}(\bar g)} .

    For an unbiased estimator and large ``n``, :math:`z` is close to standard
    normal, so :math:`|z| < 5` fails by chance with probability below
    :math:`10^{-6}` per component. Where the standard error is zero (all
    samples equal) the result is 0 if the mean equals ``exact`` and
    :math:`\pm\infty` otherwise, instead of a NaN from 0/0.

    Args:
        estimates: Per-sample estimates of shape ``(n, *batch_shape)``, or their
            :class:`EstimateSummary`.
        exact: Known value, broadcastable to ``batch_shape``.

    Returns:
        Tensor of shape ``batch_shape``.

    Raises:
        ValueError: As :func:`summarize`, or if ``exact`` is not finite or does
            not broadcast to ``batch_shape``.
    """
    summary = estimates if isinstance(estimates, EstimateSummary) else summarize(estimates)
    exact_tensor = as_float_tensor("exact", exact, like=summary.mean).detach()
    exact_tensor = exact_tensor.to(dtype=summary.mean.dtype, device=summary.mean.device)
    check_finite("exact", exact_tensor)
    batch_shape = summary.mean.shape
    if broadcast_shapes(batch=batch_shape, exact=exact_tensor) != batch_shape:
        raise ValueError(
            f"exact of shape {tuple(exact_tensor.shape)} must broadcast to the batch shape "
            f"{tuple(batch_shape)} of the estimates"
        )
    difference = summary.mean - exact_tensor
    error = summary.standard_error
    # Divide only where the standard error is positive, so a degenerate
    # (constant) estimator gives 0 or +-inf rather than NaN.
    safe_error = torch.where(error > 0, error, torch.ones_like(error))
    degenerate = torch.where(
        difference == 0, torch.zeros_like(difference), torch.sign(difference) * math.inf
    )
    return torch.where(error > 0, difference / safe_error, degenerate)


# ---------------------------------------------------------------------------
# Closed forms: quadratic reward
# ---------------------------------------------------------------------------


def quadratic_reward(k: torch.Tensor | float) -> Reward:
    r"""The quadratic reward :math:`f(a) = (a - k)^2`, differentiable in torch.

    Args:
        k: Target :math:`k`, a finite number or tensor broadcastable to the
            actions' batch shape.

    Returns:
        The elementwise function ``f(a) = (a - k) ** 2``.

    Raises:
        ValueError: If ``k`` is not finite.

    References:
        Mohamed et al. (2020), Figure 2.
    """
    target = as_float_tensor("k", k).detach()
    check_finite("k", target)

    def reward(actions: torch.Tensor) -> torch.Tensor:
        return (actions - target.to(dtype=actions.dtype, device=actions.device)) ** 2

    return reward


def _closed_form_parameters(
    mean: Any, std: Any, k: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Size]:
    """Validated ``mean``, ``std``, ``k`` and the batch shape of all three."""
    mean, std, batch_shape = _mean_and_std(mean, std)
    target = as_float_tensor("k", k, like=mean).detach().to(dtype=mean.dtype, device=mean.device)
    check_finite("k", target)
    return mean, std, target, broadcast_shapes(batch=batch_shape, k=target)


def exact_value_quadratic(
    mean: torch.Tensor | float, std: torch.Tensor | float, k: torch.Tensor | float
) -> torch.Tensor:
    r"""Exact :math:`\E[(a - k)^2] = (\mu - k)^2 + \sigma^2` for :math:`a \sim \Normal(\mu, \sigma^2)`.

    Args:
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma > 0`.
        k: Target :math:`k`.

    Returns:
        Tensor of the broadcast shape of ``mean``, ``std`` and ``k``.
    """
    mean, std, target, shape = _closed_form_parameters(mean, std, k)
    return ((mean - target) ** 2 + std**2).expand(shape)


def exact_gradient_quadratic(
    mean: torch.Tensor | float, std: torch.Tensor | float, k: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact gradient of :math:`\E[(a - k)^2]` with respect to :math:`(\mu, \sigma)`.

    .. math::

       \frac{\partial}{\partial\mu}\E[(a-k)^2] = 2(\mu - k), \qquad
       \frac{\partial}{\partial\sigma}\E[(a-k)^2] = 2\sigma .

    Args:
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma > 0`.
        k: Target :math:`k`.

    Returns:
        ``(d_mean, d_std)``, each of the broadcast shape of the arguments.
    """
    mean, std, target, shape = _closed_form_parameters(mean, std, k)
    return (2 * (mean - target)).expand(shape), (2 * std).expand(shape)


@dataclass(frozen=True, eq=False)
class EstimatorVariances:
    """Exact per-sample variances of the two estimators, per parameter.

    Returned by :func:`exact_variance_quadratic`.
    """

    #: Variance of the score-function estimate of the mean gradient.
    score_mean: torch.Tensor
    #: Variance of the score-function estimate of the std gradient.
    score_std: torch.Tensor
    #: Variance of the pathwise estimate of the mean gradient.
    pathwise_mean: torch.Tensor
    #: Variance of the pathwise estimate of the std gradient.
    pathwise_std: torch.Tensor

    def __repr__(self) -> str:
        fields = ("score_mean", "score_std", "pathwise_mean", "pathwise_std")
        body = ", ".join(f"{name}={_format_tensor(getattr(self, name))}" for name in fields)
        return f"EstimatorVariances({body})"


def exact_variance_quadratic(
    mean: torch.Tensor | float,
    std: torch.Tensor | float,
    k: torch.Tensor | float,
    *,
    baseline: torch.Tensor | float = 0.0,
) -> EstimatorVariances:
    r"""Exact per-sample variances of both estimators for :math:`f(a) = (a - k)^2`.

    With :math:`c = \mu - k`, :math:`a = \mu + \sigma\varepsilon` and a constant
    baseline :math:`b` in the score-function estimator,

    .. math::

       \Var\bigl[(f(a) - b)\,\tfrac{a - \mu}{\sigma^2}\bigr]
         &= \frac{(c^2 - b)^2 + 14 c^2 \sigma^2 - 6 b \sigma^2 + 15 \sigma^4}{\sigma^2}, \\
       \Var\bigl[(f(a) - b)\,\tfrac{(a - \mu)^2 - \sigma^2}{\sigma^3}\bigr]
         &= \frac{2\bigl((c^2 - b)^2 + 30 c^2 \sigma^2 - 10 b \sigma^2 + 37 \sigma^4\bigr)}{\sigma^2}, \\
       \Var[f'(a)] &= 4 \sigma^2, \\
       \Var[f'(a)\,\varepsilon] &= 4 c^2 + 8 \sigma^2 .

    They follow from the moments :math:`\E[\varepsilon^{2j}] = (2j - 1)!!`
    (up to :math:`\E[\varepsilon^8] = 105`) after expanding
    :math:`\E[\hat g^2] - (\E \hat g)^2` as polynomials in :math:`\varepsilon`.
    The score-function variances are quadratics in :math:`b`, minimised by
    :math:`b^\star = c^2 + 3\sigma^2` for the mean and :math:`b^\star = c^2 + 5\sigma^2`
    for the std (:func:`optimal_baseline_quadratic`), both above
    :math:`\E[f(a)] = c^2 + \sigma^2`; :func:`quadratic_variance_derivation` derives
    all of these in SymPy. Without a baseline they
    grow like :math:`c^4 / \sigma^2` as :math:`k` moves away from :math:`\mu`,
    while the pathwise ones grow at most like :math:`c^2`: Figure 2 of
    Mohamed et al. (2020) compares these variances as functions of :math:`k`.

    Args:
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma > 0`.
        k: Target :math:`k`.
        baseline: Constant baseline :math:`b` of the score-function estimator
            (the pathwise variances do not depend on it).

    Returns:
        An :class:`EstimatorVariances` whose fields have the broadcast shape of
        ``mean``, ``std``, ``k`` and ``baseline``.

    References:
        Mohamed et al. (2020), sec. 4 and 5, Figure 2.
    """
    mean, std, target, shape = _closed_form_parameters(mean, std, k)
    b = as_float_tensor("baseline", baseline, like=mean).detach().to(dtype=mean.dtype, device=mean.device)
    check_finite("baseline", b)
    shape = broadcast_shapes(batch=shape, baseline=b)
    c2 = (mean - target) ** 2
    s2 = std**2
    shifted = (c2 - b) ** 2
    return EstimatorVariances(
        score_mean=((shifted + 14 * c2 * s2 - 6 * b * s2 + 15 * s2**2) / s2).expand(shape),
        score_std=(2 * (shifted + 30 * c2 * s2 - 10 * b * s2 + 37 * s2**2) / s2).expand(shape),
        pathwise_mean=(4 * s2).expand(shape),
        pathwise_std=(4 * c2 + 8 * s2).expand(shape),
    )


def optimal_baseline_quadratic(
    mean: torch.Tensor | float, std: torch.Tensor | float, k: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Variance-minimising constant baselines of the score-function estimator for :math:`f(a) = (a - k)^2`.

    For a per-sample estimate :math:`(f(a) - b)\, s(a)` with score :math:`s` (one
    parameter at a time), :math:`\E[(f - b)\, s]` does not depend on :math:`b` and
    :math:`\E[(f - b)^2 s^2]` is a quadratic in :math:`b` with minimiser

    .. math::

       b^\star = \frac{\E[f(a)\, s(a)^2]}{\E[s(a)^2]} .

    With :math:`c = \mu - k` this is

    .. math::

       b^\star_\mu = c^2 + 3\sigma^2, \qquad b^\star_\sigma = c^2 + 5\sigma^2,

    different for the two parameters and larger than the "natural" baseline
    :math:`\E[f(a)] = c^2 + \sigma^2`, because :math:`f` and :math:`s^2` are
    positively correlated. The optimal variances are
    :math:`8c^2 + 6\sigma^2` (mean) and :math:`40c^2 + 24\sigma^2` (std).

    Args:
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma > 0`.
        k: Target :math:`k`.

    Returns:
        ``(b_mean, b_std)``, each of the broadcast shape of the arguments.

    References:
        Mohamed et al. (2020), sec. 7.4 (control variates; the optimal coefficient).
    """
    mean, std, target, shape = _closed_form_parameters(mean, std, k)
    c2 = (mean - target) ** 2
    s2 = std**2
    return (c2 + 3 * s2).expand(shape), (c2 + 5 * s2).expand(shape)


# ---------------------------------------------------------------------------
# The same variances, derived in SymPy
# ---------------------------------------------------------------------------

_ESTIMATOR_NAMES = ("score_mean", "score_std", "pathwise_mean", "pathwise_std")
_NOISE = sp.Symbol("epsilon", real=True)


@functools.lru_cache(maxsize=None)
def _standard_normal_moment(power: int) -> sp.Expr:
    r""":math:`\E[\varepsilon^j]` for :math:`\varepsilon \sim \Normal(0, 1)`, by integrating against the density."""
    density = sp.exp(-(_NOISE**2) / 2) / sp.sqrt(2 * sp.pi)
    return sp.integrate(_NOISE**power * density, (_NOISE, -sp.oo, sp.oo))


def _expect_over_noise(expr: sp.Expr) -> sp.Expr:
    r"""Expectation over :math:`\varepsilon \sim \Normal(0, 1)` of a polynomial in :math:`\varepsilon`.

    Every estimate here is a polynomial in the noise once :math:`a = \mu + \sigma\varepsilon`
    is substituted, so its expectation is a sum of moments; integrating the
    expanded polynomial term by term is exact and much faster than asking SymPy
    to integrate the whole product against the density.
    """
    polynomial = sp.Poly(sp.expand(expr), _NOISE)
    return sp.expand(sum(coeff * _standard_normal_moment(power) for (power,), coeff in polynomial.terms()))


@dataclass(frozen=True)
class QuadraticVarianceDerivation:
    r"""Per-sample means and variances of both estimators for :math:`f(a) = (a - k)^2`, in SymPy.

    Returned by :func:`quadratic_variance_derivation`. The estimator names are
    ``"score_mean"``, ``"score_std"``, ``"pathwise_mean"`` and ``"pathwise_std"``
    (estimator, then the parameter :math:`\mu` or :math:`\sigma`).

    Attributes:
        symbols: The symbols by role: ``"mean"`` (:math:`\mu`), ``"std"`` (:math:`\sigma`),
            ``"k"``, ``"baseline"`` (:math:`b`), ``"noise"`` (:math:`\varepsilon`) and
            ``"offset"`` (:math:`c = \mu - k`).
        value: :math:`\E[f(a)]`, written with :math:`c`.
        gradient: Its exact derivatives with respect to :math:`\mu` and :math:`\sigma`
            (keys ``"mean"`` and ``"std"``), taken at fixed :math:`k` and then written with :math:`c`.
        estimates: Each per-sample estimate as a function of :math:`\varepsilon`, :math:`c`,
            :math:`\sigma` and :math:`b`.
        means: The expectation of each estimate.
        variances: The variance of each estimate, written with :math:`c`, as a
            polynomial in :math:`b` with factored coefficients.
        optimal_baselines: For ``"score_mean"`` and ``"score_std"``, the :math:`b`
            that minimises the variance.
        optimal_variances: The variances at those baselines.
    """

    symbols: Mapping[str, sp.Symbol]
    value: sp.Expr
    gradient: Mapping[str, sp.Expr]
    estimates: Mapping[str, sp.Expr]
    means: Mapping[str, sp.Expr]
    variances: Mapping[str, sp.Expr]
    optimal_baselines: Mapping[str, sp.Expr]
    optimal_variances: Mapping[str, sp.Expr]

    def unbiased(self) -> dict[str, bool]:
        """Whether each estimator's mean equals the exact gradient, as an exact symbolic identity."""
        return {
            name: sp.simplify(self.means[name] - self.gradient[name.split("_")[1]]) == 0
            for name in _ESTIMATOR_NAMES
        }

    def to_torch(self, expr: sp.Expr) -> Callable[..., torch.Tensor]:
        r"""A batched PyTorch function ``(mean, std, k, baseline)`` of one of the expressions.

        The offset :math:`c` is replaced by :math:`\mu - k`; the arguments broadcast
        (see :func:`pgnotes.symbolic.to_torch`).

        Args:
            expr: An expression in the symbols of the derivation, without :math:`\varepsilon`,
                e.g. ``derivation.variances["score_mean"]``.

        Returns:
            A function of four tensors, ``mean``, ``std``, ``k`` and ``baseline``.
        """
        symbols = self.symbols
        in_mean_and_k = sp.sympify(expr).subs(symbols["offset"], symbols["mean"] - symbols["k"])
        return to_torch(in_mean_and_k, [symbols["mean"], symbols["std"], symbols["k"], symbols["baseline"]])


def quadratic_variance_derivation() -> QuadraticVarianceDerivation:
    r"""Derive the exact per-sample variances of both estimators for :math:`f(a) = (a - k)^2` in SymPy.

    The steps follow the definitions, without using any of the closed forms of
    this module:

    1. Score-function estimates: :math:`(f(a) - b)\, \partial_\theta \log \pi(a)`, the
       derivative taken at a *fixed* action :math:`a` (of
       :func:`pgnotes.symbolic.univariate_log_density`), then :math:`a = \mu + \sigma\varepsilon`.
    2. Pathwise estimates: :math:`\partial_\theta f(\mu + \sigma\varepsilon)` at a *fixed*
       noise :math:`\varepsilon`.
    3. Expectations over :math:`\varepsilon \sim \Normal(0, 1)`, from the moments
       :math:`\E[\varepsilon^j]` obtained by integrating against the standard normal
       density; variances as :math:`\E[g^2] - (\E g)^2`.
    4. Optimal baselines by solving :math:`\partial \Var / \partial b = 0`.

    The results equal :func:`exact_variance_quadratic`,
    :func:`exact_gradient_quadratic` and :func:`optimal_baseline_quadratic`
    (checked in the tests). Takes about a second.

    Returns:
        A :class:`QuadraticVarianceDerivation`.

    References:
        Mohamed et al. (2020), sec. 3 (Figure 2), 4 and 5.
    """
    mean, k, baseline, action = sp.symbols("mu k b a", real=True)
    std = sp.Symbol("sigma", positive=True)
    offset = sp.Symbol("c", real=True)
    noise = _NOISE
    reward = (action - k) ** 2
    log_density = univariate_log_density(action, mean, std)
    on_path = {action: mean + std * noise}
    estimates = {
        "score_mean": ((reward - baseline) * sp.diff(log_density, mean)).subs(on_path),
        "score_std": ((reward - baseline) * sp.diff(log_density, std)).subs(on_path),
        "pathwise_mean": sp.diff(reward.subs(on_path), mean),
        "pathwise_std": sp.diff(reward.subs(on_path), std),
    }
    # The estimates depend on mu and k only through c = mu - k: writing them
    # with c (after differentiating at fixed k) keeps the polynomials short and
    # gives the forms the book prints.
    with_offset = {k: mean - offset}
    value = _expect_over_noise(reward.subs(on_path))
    gradient = {
        "mean": sp.factor(sp.diff(value, mean).subs(with_offset)),
        "std": sp.factor(sp.diff(value, std).subs(with_offset)),
    }
    means = {}
    variances = {}
    for name in _ESTIMATOR_NAMES:
        estimate = sp.expand(estimates[name].subs(with_offset))
        estimates[name] = sp.collect(estimate, noise, sp.factor)
        first = _expect_over_noise(estimate)
        second = _expect_over_noise(estimate**2)
        means[name] = sp.factor(first)
        variances[name] = sp.collect(sp.expand(second - first**2), baseline, sp.factor)
    optimal_baselines = {}
    optimal_variances = {}
    for name in ("score_mean", "score_std"):
        # The variance is a quadratic in b, so d Var / db = 0 is linear in b.
        slope, intercept = sp.Poly(sp.diff(variances[name], baseline), baseline).all_coeffs()
        solution = sp.factor(-intercept / slope)
        optimal_baselines[name] = solution
        optimal_variances[name] = sp.factor(variances[name].subs(baseline, solution))
    freeze = MappingProxyType
    return QuadraticVarianceDerivation(
        symbols=freeze(
            {"mean": mean, "std": std, "k": k, "baseline": baseline, "noise": noise, "offset": offset}
        ),
        value=sp.factor(value.subs(with_offset)),
        gradient=freeze(gradient),
        estimates=freeze(estimates),
        means=freeze(means),
        variances=freeze(variances),
        optimal_baselines=freeze(optimal_baselines),
        optimal_variances=freeze(optimal_variances),
    )


# ---------------------------------------------------------------------------
# Closed forms: step reward
# ---------------------------------------------------------------------------


def step_reward(k: torch.Tensor | float) -> Reward:
    r"""The step reward :math:`f(a) = \mathbb{1}[a > k]`, as a floating-point tensor.

    Built from a comparison, its output has no autograd graph:
    :func:`pathwise_estimates` refuses it, :func:`score_function_estimates`
    handles it.

    Args:
        k: Threshold :math:`k`, a finite number or tensor broadcastable to the
            actions' batch shape.

    Returns:
        The elementwise function ``f(a) = (a > k)`` cast to the dtype of ``a``.

    Raises:
        ValueError: If ``k`` is not finite.

    References:
        Mohamed et al. (2020), sec. 5 (the pathwise estimator needs a differentiable cost).
    """
    threshold = as_float_tensor("k", k).detach()
    check_finite("k", threshold)

    def reward(actions: torch.Tensor) -> torch.Tensor:
        return (actions > threshold.to(dtype=actions.dtype, device=actions.device)).to(actions.dtype)

    return reward


def _standard_normal_pdf(z: torch.Tensor) -> torch.Tensor:
    """Standard normal density."""
    return torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)


def exact_value_step(
    mean: torch.Tensor | float, std: torch.Tensor | float, k: torch.Tensor | float
) -> torch.Tensor:
    r"""Exact :math:`P(a > k) = \Phi((\mu - k)/\sigma)` for :math:`a \sim \Normal(\mu, \sigma^2)`.

    Args:
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma > 0`.
        k: Threshold :math:`k`.

    Returns:
        Tensor of the broadcast shape of the arguments.
    """
    mean, std, target, shape = _closed_form_parameters(mean, std, k)
    z = (mean - target) / std
    # Phi(z) = erfc(-z / sqrt 2) / 2 keeps full relative accuracy in the lower
    # tail, where 1 + erf(z / sqrt 2) would cancel to zero.
    return (0.5 * torch.erfc(-z / math.sqrt(2.0))).expand(shape)


def exact_gradient_step(
    mean: torch.Tensor | float, std: torch.Tensor | float, k: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact gradient of :math:`P(a > k)` with respect to :math:`(\mu, \sigma)`.

    With :math:`z = (\mu - k)/\sigma`, :math:`P(a > k) = \Phi(z)` and

    .. math::

       \frac{\partial}{\partial\mu} P(a > k) = \frac{\varphi(z)}{\sigma}, \qquad
       \frac{\partial}{\partial\sigma} P(a > k) = \frac{\varphi(z)\,(k - \mu)}{\sigma^2},

    where :math:`\varphi` is the standard normal density. The pathwise
    estimator of this gradient is zero almost surely (or undefined), while the
    score-function estimator is unbiased.

    Args:
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma > 0`.
        k: Threshold :math:`k`.

    Returns:
        ``(d_mean, d_std)``, each of the broadcast shape of the arguments.

    References:
        Mohamed et al. (2020), sec. 4 and 5.
    """
    mean, std, target, shape = _closed_form_parameters(mean, std, k)
    density = _standard_normal_pdf((mean - target) / std)
    return (density / std).expand(shape), (density * (target - mean) / std**2).expand(shape)
