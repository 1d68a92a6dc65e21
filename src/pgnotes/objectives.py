r"""One-dimensional objectives with everything in closed form, to test gradient estimators on.

For :math:`a \sim \Normal(\mu, \sigma^2)`, elementwise over a batch:

- the quadratic cost :math:`f(a) = (a - k)^2` of Mohamed et al. (2020), Figure 2:
  :math:`\E[f(a)]`, its gradient, the exact per-sample variances of the
  score-function and pathwise estimators of that gradient for any constant
  baseline, and the optimal baselines; :func:`quadratic_variance_derivation`
  derives the same variances in SymPy;
- the bandit of chapter 1, whose reward is the negative cost,
  :math:`r(a) = -(a - k)^2`: its objective :math:`J(\mu, \sigma)`, gradient and
  estimator variances, obtained from the cost's closed forms by a change of sign;
- the step reward :math:`f(a) = \mathbb{1}[a > k]`: :math:`P(a > k)` and its
  gradient, which the pathwise estimator cannot see.

The module is longer than most because each closed form carries its
derivation in the docstring; the code of each is a few lines.

References:
    Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient
    estimation in machine learning. JMLR 21(132).

    Williams, R. J. (1992). Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Machine Learning 8.

    Sutton, R. S. and Barto, A. G. (2018). Reinforcement Learning: An
    Introduction, 2nd ed., ch. 13.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sympy as sp
import torch

from pgnotes._validation import as_float_tensor, broadcast_shapes, check_finite, mean_and_std
from pgnotes.monte_carlo import _format_tensor
from pgnotes.symbolic import to_torch, univariate_log_density

__all__ = [
    "quadratic_reward",
    "exact_value_quadratic",
    "exact_gradient_quadratic",
    "EstimatorVariances",
    "exact_variance_quadratic",
    "optimal_baseline_quadratic",
    "QuadraticVarianceDerivation",
    "quadratic_variance_derivation",
    "bandit_reward",
    "bandit_objective",
    "bandit_objective_gradient",
    "bandit_estimator_variance",
    "step_reward",
    "exact_value_step",
    "exact_gradient_step",
]

Reward = Callable[[torch.Tensor], torch.Tensor]

_FLOAT64 = torch.empty(0, dtype=torch.float64)


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
    # A Python number is kept in float64 and rounded once, to the actions' dtype.
    target = as_float_tensor("k", k, like=_FLOAT64).detach()
    check_finite("k", target)

    def reward(actions: torch.Tensor) -> torch.Tensor:
        return (actions - target.to(dtype=actions.dtype, device=actions.device)) ** 2

    return reward


def _closed_form_parameters(
    mean: Any, std: Any, k: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Size]:
    """Validated ``mean``, ``std``, ``k`` and the batch shape of all three."""
    mean, std, batch_shape = mean_and_std(mean, std)
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
# The bandit: the reward is the negative quadratic cost
# ---------------------------------------------------------------------------


def bandit_reward(k: torch.Tensor | float) -> Reward:
    r"""The bandit's reward :math:`r(a) = -(a - k)^2`, largest at the target :math:`k`, differentiable in torch.

    Args:
        k: Target :math:`k`, a finite number or tensor broadcastable to the
            actions' batch shape.

    Returns:
        The elementwise function ``r(a) = -(a - k) ** 2``.

    Raises:
        ValueError: If ``k`` is not finite.

    References:
        Mohamed et al. (2020), Figure 2 (with the sign of a reward instead of a cost).
    """
    cost = quadratic_reward(k)

    def reward(actions: torch.Tensor) -> torch.Tensor:
        return -cost(actions)

    return reward


def bandit_objective(mean: Any, std: Any, k: Any) -> torch.Tensor:
    r"""The bandit's exact expected reward :math:`J(\mu, \sigma) = -\bigl((\mu - k)^2 + \sigma^2\bigr)`.

    From :math:`a = \mu + \sigma\varepsilon` and
    :math:`(a - k)^2 = (\mu - k)^2 + 2(\mu - k)\sigma\varepsilon + \sigma^2\varepsilon^2`,
    with :math:`\E[\varepsilon] = 0` and :math:`\E[\varepsilon^2] = 1`. Like the other
    closed forms it carries no autograd history: its gradient is
    :func:`bandit_objective_gradient`.

    References:
        Sutton & Barto (2018), section 13.2 (the objective :math:`J(\theta)`).
    """
    return -exact_value_quadratic(mean, std, k)


def bandit_objective_gradient(mean: Any, std: Any, k: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The exact gradient :math:`(\partial J/\partial\mu, \partial J/\partial\sigma) = (-2(\mu - k), -2\sigma)` of :func:`bandit_objective`."""
    d_mean, d_std = exact_gradient_quadratic(mean, std, k)
    return -d_mean, -d_std


def bandit_estimator_variance(
    mean: Any, std: Any, k: Any, *, baseline: Any = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact per-sample variances of the bandit's score-function estimates with a constant baseline :math:`b`.

    The estimate with baseline :math:`b` is
    :math:`(r(a) - b)\,\nabla \log \pi(a) = -\bigl(f(a) - (-b)\bigr)\,\nabla\log\pi(a)`
    for the cost :math:`f = -r`: the negative of the cost's estimate with baseline
    :math:`-b`, which has the same variance (:func:`exact_variance_quadratic`). With
    :math:`c = \mu - k`,

    .. math::

       \operatorname{Var}[\hat g_\mu]
         = \frac{(c^2 + b)^2 + 14 c^2 \sigma^2 + 6 b \sigma^2 + 15 \sigma^4}{\sigma^2},

    a quadratic in :math:`b`, smallest at :math:`b^\star = -(c^2 + 3\sigma^2)`.

    Returns:
        ``(var_mean, var_std)``, with the broadcast shape of the arguments.

    References:
        Mohamed et al. (2020), section 4 and their discussion of baselines as control variates.
    """
    like = next((v for v in (mean, std, k) if isinstance(v, torch.Tensor)), None)
    b = as_float_tensor("baseline", baseline, like=like)
    variances = exact_variance_quadratic(mean, std, k, baseline=-b)
    return variances.score_mean, variances.score_std


# ---------------------------------------------------------------------------
# Closed forms: step reward
# ---------------------------------------------------------------------------


def step_reward(k: torch.Tensor | float) -> Reward:
    r"""The step reward :math:`f(a) = \mathbb{1}[a > k]`, as a floating-point tensor.

    Built from a comparison, its output has no autograd graph:
    :func:`pgnotes.estimators.pathwise_estimates` refuses it, :func:`pgnotes.estimators.score_function_estimates`
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
    threshold = as_float_tensor("k", k, like=_FLOAT64).detach()
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
