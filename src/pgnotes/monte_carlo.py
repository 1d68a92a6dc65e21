r"""Monte Carlo summaries: sample mean, standard error and z-score against an exact value.

One home for the statistics every check in the book rests on: :func:`summarize`
gives the sample mean, the unbiased sample variance and their standard errors,
and :func:`z_score` the distance of the mean from a known value in standard
errors, with a defined answer (0 or :math:`\pm\infty`, never 0/0) when every
sample is equal. :mod:`pgnotes.check` and :mod:`pgnotes.estimators` use them.

References:
    Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient
    estimation in machine learning. JMLR 21(132).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from pgnotes._validation import as_float_tensor, broadcast_shapes, check_finite

__all__ = ["EstimateSummary", "summarize", "z_score"]


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
            e.g. one of the outputs of :func:`pgnotes.estimators.score_function_estimates`.

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
