r"""Closed-form log-densities and scores of Gaussian policies, in PyTorch.

These are the reference answers of the course: the log-likelihood
:math:`\log \pi_\theta(a \mid s)` of a Gaussian policy and its score, the
gradient of that log-likelihood with respect to the distribution parameters,
for the univariate, diagonal, full-covariance and tanh-squashed Gaussian.
Everything is written with the residual :math:`d = a - \mu`.

All functions broadcast over leading batch dimensions like
``torch.distributions``, work in float32 and float64 on any device, and are
differentiable, so autograd through them agrees with the closed forms. Linear
algebra goes through a Cholesky factor and triangular solves; no explicit
matrix inverse is formed unless it is itself part of the answer
(:math:`\Sigma^{-1}` in :func:`mvn_score`).

Bad input raises ``ValueError`` naming the argument: shapes that do not
broadcast, a non-positive standard deviation, NaN or inf, a covariance that is
not square, not symmetric or not positive definite, a ``scale_tril`` that is not
lower triangular with a positive diagonal.

The module is longer than most because each of its ten functions carries its
formula, shapes and numerical care in the docstring; the kernels that compute
them are a few lines each, and :mod:`pgnotes.policies` reuses them.

References:
    Williams (1992), Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Sutton & Barto (2018), Reinforcement
    Learning: An Introduction, 2nd ed., ch. 13. Petersen & Pedersen (2012),
    The Matrix Cookbook. Haarnoja et al. (2018), Soft Actor-Critic, appendix C.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pgnotes._validation import (
    as_float_tensors,
    broadcast_shapes,
    check_min_dim,
    check_positive,
    check_scale_tril,
    check_square,
    check_symmetric_matrix,
    cholesky_factor,
    warn_if_ill_conditioned,
)

__all__ = [
    "normal_log_prob",
    "normal_score",
    "normal_score_log_std",
    "diag_log_prob",
    "diag_score",
    "mvn_log_prob",
    "mvn_score",
    "mvn_score_tril",
    "tanh_log_abs_det_jacobian",
    "squashed_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


def _as_tensors(**named: Any) -> list[torch.Tensor]:
    """The inputs as tensors of one floating dtype, checked finite (the package's dtype rule)."""
    return as_float_tensors(**named)


def _standardised(residual: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    r"""``z = d / sigma`` for :math:`\sigma = e^{\ell}`, computed without over- or underflow.

    :math:`e^{-\ell}` overflows for :math:`\ell < -88.7` in float32 (and is
    subnormal, so inaccurate, for :math:`\ell > 87.3`), although :math:`z` may be
    perfectly representable. Beyond those bounds the factor is applied in two
    halves, :math:`z = (d\, e^{-\ell/2})\, e^{-\ell/2}`, which is exact to
    rounding for :math:`|\ell|` up to twice the exponent range. Inside them the
    one-factor form is kept (one rounding fewer). Elementwise selections, no
    data-dependent branch, so the kernels also run under ``torch.func`` transforms;
    each branch sees a harmless ``log_std`` where it is not selected, so no
    inf or NaN reaches the gradients.

    Returns:
        ``z`` and the factors that :func:`_times_inv_std` reuses.
    """
    bound = -math.log(torch.finfo(log_std.dtype).tiny) - 1.0
    beyond = log_std.abs() > bound
    zero = torch.zeros_like(log_std)
    inv_std = torch.exp(-torch.where(beyond, zero, log_std))
    half = torch.exp(-0.5 * torch.where(beyond, log_std, zero))
    factors = (inv_std, half, beyond)
    return _times_inv_std(residual, factors), factors


def _times_inv_std(value: torch.Tensor, factors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    r"""``value / sigma`` with the factors of :func:`_standardised` (in two halves beyond exp's range)."""
    inv_std, half, beyond = factors
    return torch.where(beyond, (value * half) * half, value * inv_std)


def _residual_over_std(a: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    r""":math:`(a - \mu) / \sigma`; where :math:`a - \mu` overflows, :math:`a/\sigma - \mu/\sigma` instead."""
    residual = a - mean
    finite = torch.isfinite(residual)
    safe = torch.where(finite, residual, torch.zeros_like(residual))
    return torch.where(finite, safe / std, a / std - mean / std)


def _check_event_axis(shape: torch.Size, names: str) -> None:
    if len(shape) == 0:
        raise ValueError(
            f"{names} broadcast to a scalar, but a diagonal Gaussian needs an event axis "
            f"(the last dimension, of size k)"
        )


def _mvn_inputs(
    a: Any, mean: Any, matrix: Any, matrix_name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate (a, mean, matrix) of a k-dimensional Gaussian and return them as tensors."""
    a, mean, matrix = _as_tensors(**{"a": a, "mean": mean, matrix_name: matrix})
    check_min_dim("a", a, 1, "the event axis, of size k")
    check_min_dim("mean", mean, 1, "the event axis, of size k")
    check_square(matrix_name, matrix)
    k = matrix.shape[-1]
    for name, t in (("a", a), ("mean", mean)):
        if t.shape[-1] != k:
            raise ValueError(
                f"{name} has event size {t.shape[-1]} (shape {tuple(t.shape)}), but {matrix_name} is "
                f"{k}x{k} (shape {tuple(matrix.shape)}): the last dimension of {name} must be {k}"
            )
    broadcast_shapes(
        **{
            "batch shape of a": a.shape[:-1],
            "batch shape of mean": mean.shape[:-1],
            f"batch shape of {matrix_name}": matrix.shape[:-2],
        }
    )
    return a, mean, matrix


def _tril_solve(scale_tril: torch.Tensor, rhs: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    r"""Solve :math:`L x = b` (or :math:`L^\top x = b`) for vectors ``rhs`` of shape (..., k), broadcasting."""
    k = scale_tril.shape[-1]
    factor = scale_tril.mT if transpose else scale_tril
    if scale_tril.dim() == 2:
        # One factor shared by the whole batch: a single solve with the batch as columns
        # instead of one small solve per batch element.
        columns = rhs.reshape(rhs.shape[:-1].numel(), k).mT
        return torch.linalg.solve_triangular(factor, columns, upper=transpose).mT.reshape(rhs.shape)
    batch = torch.broadcast_shapes(scale_tril.shape[:-2], rhs.shape[:-1])
    solution = torch.linalg.solve_triangular(
        factor.expand(batch + (k, k)), rhs.expand(batch + (k,)).unsqueeze(-1), upper=transpose
    )
    return solution.squeeze(-1)


def normal_log_prob(
    a: torch.Tensor | float, mean: torch.Tensor | float, std: torch.Tensor | float
) -> torch.Tensor:
    r"""Elementwise log-density of a univariate Gaussian.

    .. math::

        \log \mathcal{N}(a; \mu, \sigma^2) = -\frac{d^2}{2\sigma^2} - \log \sigma - \tfrac12 \log 2\pi,
        \qquad d = a - \mu.

    Args:
        a: Actions, a tensor or a Python number.
        mean: Means :math:`\mu`, broadcastable with ``a``.
        std: Standard deviations :math:`\sigma > 0`, broadcastable with ``a``.

    Returns:
        The log-densities, with the broadcast shape of the inputs.

    References:
        Williams (1992); Sutton & Barto (2018), section 13.7.
    """
    a, mean, std = _as_tensors(a=a, mean=mean, std=std)
    broadcast_shapes(a=a, mean=mean, std=std)
    check_positive("std", std)
    # Standardise first: (d / sigma)^2 cannot overflow where d^2 would.
    z = _residual_over_std(a, mean, std)
    return -0.5 * z.square() - torch.log(std) - 0.5 * _LOG_2PI


def normal_score(
    a: torch.Tensor | float, mean: torch.Tensor | float, std: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score of a univariate Gaussian with respect to its mean and standard deviation.

    .. math::

        \frac{\partial}{\partial \mu} \log \mathcal{N}(a; \mu, \sigma^2) = \frac{d}{\sigma^2},
        \qquad
        \frac{\partial}{\partial \sigma} \log \mathcal{N}(a; \mu, \sigma^2) = \frac{d^2 - \sigma^2}{\sigma^3}.

    Args:
        a: Actions.
        mean: Means :math:`\mu`, broadcastable with ``a``.
        std: Standard deviations :math:`\sigma > 0`, broadcastable with ``a``.

    Returns:
        ``(d_mean, d_std)``, each with the broadcast shape of the inputs.

    References:
        Williams (1992), the characteristic eligibility of a Gaussian unit.
    """
    a, mean, std = _as_tensors(a=a, mean=mean, std=std)
    broadcast_shapes(a=a, mean=mean, std=std)
    check_positive("std", std)
    # Written through z = d / sigma, which cannot overflow where d^2 or sigma^3 would.
    z = _residual_over_std(a, mean, std)
    return z / std, (z.square() - 1.0) / std


def normal_score_log_std(
    a: torch.Tensor | float, mean: torch.Tensor | float, log_std: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score of a univariate Gaussian parametrised by its mean and log standard deviation.

    With :math:`\sigma = e^{\ell}`, :math:`\ell = \log \sigma`, the chain rule
    :math:`\partial/\partial \ell = \sigma\, \partial/\partial \sigma` gives

    .. math::

        \frac{\partial \log \mathcal{N}}{\partial \mu} = \frac{d}{\sigma^2},
        \qquad
        \frac{\partial \log \mathcal{N}}{\partial \log \sigma} = \frac{d^2}{\sigma^2} - 1.

    Args:
        a: Actions.
        mean: Means :math:`\mu`, broadcastable with ``a``.
        log_std: Log standard deviations :math:`\log \sigma` (any finite real), broadcastable with ``a``.

    Returns:
        ``(d_mean, d_log_std)``, each with the broadcast shape of the inputs.

    References:
        Book: equation :eq:`univariate-chain-rule-general` of :doc:`/book/univariate_gaussian`.
        Williams (1992); Sutton & Barto (2018), section 13.7.
    """
    a, mean, log_std = _as_tensors(a=a, mean=mean, log_std=log_std)
    broadcast_shapes(a=a, mean=mean, log_std=log_std)
    z, factors = _standardised(a - mean, log_std)
    return _times_inv_std(z, factors), z.square() - 1.0


def diag_log_prob(
    a: torch.Tensor | float, mean: torch.Tensor | float, log_std: torch.Tensor | float
) -> torch.Tensor:
    r"""Log-density of a Gaussian with diagonal covariance, summed over the last (event) axis.

    .. math::

        \log \mathcal{N}(a; \mu, \operatorname{diag} \sigma^2)
        = \sum_{i=1}^{k} \Bigl( -\frac{d_i^2}{2\sigma_i^2} - \log \sigma_i \Bigr) - \frac{k}{2} \log 2\pi.

    The same as ``Independent(Normal(mean, log_std.exp()), 1).log_prob(a)``.

    Args:
        a: Actions of shape (..., k).
        mean: Means, broadcastable with ``a``.
        log_std: Log standard deviations, broadcastable with ``a``; a vector of shape (k,)
            shared by a batch is the usual state-independent parametrisation.

    Returns:
        The log-densities, with the broadcast shape of the inputs without its last axis.

    References:
        Sutton & Barto (2018), section 13.7.
    """
    a, mean, log_std = _as_tensors(a=a, mean=mean, log_std=log_std)
    _check_event_axis(broadcast_shapes(a=a, mean=mean, log_std=log_std), "a, mean and log_std")
    return _diag_log_prob(a, mean, log_std)


def _diag_log_prob(a: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """The diagonal log-density kernel, on validated tensors (also used by :mod:`pgnotes.policies`)."""
    # exp(-log_std) rather than 1 / exp(log_std): one rounding fewer, and no 1/0 when exp underflows;
    # in two halves when log_std is beyond exp's range (see _standardised).
    z, _ = _standardised(a - mean, log_std)
    return (-0.5 * z.square() - log_std - 0.5 * _LOG_2PI).sum(-1)


def diag_score(
    a: torch.Tensor | float, mean: torch.Tensor | float, log_std: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-component score of a diagonal Gaussian with respect to its mean and log standard deviation.

    .. math::

        \frac{\partial \log \pi}{\partial \mu_i} = \frac{d_i}{\sigma_i^2},
        \qquad
        \frac{\partial \log \pi}{\partial \log \sigma_i} = \frac{d_i^2}{\sigma_i^2} - 1.

    Args:
        a: Actions of shape (..., k).
        mean: Means, broadcastable with ``a``.
        log_std: Log standard deviations, broadcastable with ``a``.

    Returns:
        ``(d_mean, d_log_std)``, each with the broadcast shape of the inputs (per sample,
        not summed over a batch: a parameter shared by the batch gets one score per sample).

    References:
        Williams (1992); Sutton & Barto (2018), section 13.7.
    """
    a, mean, log_std = _as_tensors(a=a, mean=mean, log_std=log_std)
    _check_event_axis(broadcast_shapes(a=a, mean=mean, log_std=log_std), "a, mean and log_std")
    z, factors = _standardised(a - mean, log_std)
    return _times_inv_std(z, factors), z.square() - 1.0


def mvn_log_prob(a: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    r"""Log-density of a Gaussian with full covariance.

    .. math::

        \log \mathcal{N}(a; \mu, \Sigma)
        = -\tfrac12 d^\top \Sigma^{-1} d - \tfrac12 \log\det \Sigma - \tfrac{k}{2} \log 2\pi.

    Computed through the Cholesky factor :math:`\Sigma = L L^\top`: with
    :math:`z = L^{-1} d` (a triangular solve), :math:`d^\top \Sigma^{-1} d = \lVert z \rVert^2`
    and :math:`\tfrac12 \log\det\Sigma = \sum_i \log L_{ii}`.

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        cov: Symmetric positive-definite covariances of shape (..., k, k).

    Returns:
        The log-densities, with the broadcast batch shape of the inputs.

    References:
        Book: equation :eq:`full-covariance-log-density` of :doc:`/book/full_covariance`.
        Petersen & Pedersen, The Matrix Cookbook, section 8.1.
    """
    a, mean, cov = _mvn_inputs(a, mean, cov, "cov")
    check_symmetric_matrix("cov", cov)
    scale_tril = cholesky_factor("cov", cov)
    return _tril_log_prob(a - mean, scale_tril)


def _tril_log_prob(residual: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """The Cholesky log-density kernel, on validated tensors (also used by :mod:`pgnotes.policies`)."""
    k = scale_tril.shape[-1]
    z = _tril_solve(scale_tril, residual)
    half_log_det = torch.log(torch.diagonal(scale_tril, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * z.square().sum(-1) - half_log_det - 0.5 * k * _LOG_2PI


def mvn_score(a: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score of a full-covariance Gaussian with respect to its mean and covariance.

    .. math::

        \frac{\partial \log \mathcal{N}}{\partial \mu} = \Sigma^{-1} d,
        \qquad
        G = \frac{\partial \log \mathcal{N}}{\partial \Sigma}
          = \tfrac12 \bigl( \Sigma^{-1} d d^\top \Sigma^{-1} - \Sigma^{-1} \bigr).

    Convention: ``d_cov`` is :math:`G`, the gradient with respect to the
    :math:`k^2` entries of :math:`\Sigma` treated as independent variables
    (The Matrix Cookbook, eqs. (57) and (61), evaluated at a symmetric
    :math:`\Sigma`). It is symmetric, and it is exactly what autograd returns
    for ``MultivariateNormal(mean, covariance_matrix=cov).log_prob(a)`` with
    respect to ``cov``: ``torch.linalg.cholesky`` reads only the lower
    triangle, but its backward symmetrises the gradient, i.e. returns the
    gradient of :math:`X \mapsto f(\tfrac12 (X + X^\top))` at :math:`X = \Sigma`,
    which is :math:`G`.

    If instead :math:`\Sigma` is parametrised by its :math:`k(k+1)/2` free
    entries (one variable for :math:`\Sigma_{ij} = \Sigma_{ji}`), an
    off-diagonal variable appears twice and its derivative is
    :math:`2 G_{ij}`: the gradient with respect to the free entries is
    :math:`2G - \operatorname{diag}(G)`. Use :math:`G` with a gradient step
    that keeps :math:`\Sigma` symmetric, e.g.
    :math:`\Sigma \leftarrow \Sigma + \alpha G`.

    :math:`\Sigma^{-1}`, which is part of the answer, is computed by
    ``torch.cholesky_inverse`` from the Cholesky factor, and
    :math:`\Sigma^{-1} d` as a product with it (cheaper than two more
    triangular solves, and as accurate).

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        cov: Symmetric positive-definite covariances of shape (..., k, k).

    Returns:
        ``(d_mean, d_cov)`` of shapes (..., k) and (..., k, k), with the broadcast batch shape.

    References:
        Book: equation :eq:`full-covariance-G` of :doc:`/book/full_covariance`.
        Book: equation :eq:`univariate-textbook-multivariate` of :doc:`/book/univariate_gaussian`.
        Petersen & Pedersen, The Matrix Cookbook, eqs. (57), (61); Williams (1992).
    """
    a, mean, cov = _mvn_inputs(a, mean, cov, "cov")
    check_symmetric_matrix("cov", cov)
    scale_tril = cholesky_factor("cov", cov)
    # Sigma^{-1} itself is part of the answer: LAPACK's potri computes it from the factor (one
    # triangle, mirrored), so it is exactly symmetric and so is d_cov, as autograd's gradient is.
    cov_inv = torch.cholesky_inverse(scale_tril)
    # Sigma^{-1} d as a matrix-vector product with that inverse: cheaper than two more
    # triangular solves, and as accurate (both lose about log10 cond(Sigma) digits).
    d_mean = (cov_inv @ (a - mean).unsqueeze(-1)).squeeze(-1)
    d_cov = torch.addcmul(cov_inv, d_mean.unsqueeze(-1), d_mean.unsqueeze(-2), value=-1.0).mul_(-0.5)
    return d_mean, d_cov


def mvn_score_tril(a: torch.Tensor, mean: torch.Tensor, scale_tril: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score of a full-covariance Gaussian with respect to its mean and Cholesky factor.

    With :math:`\Sigma = L L^\top`, :math:`L` lower triangular with a positive
    diagonal, :math:`d\Sigma = dL\, L^\top + L\, dL^\top` and the symmetric
    :math:`G` of :func:`mvn_score` give
    :math:`d \log \mathcal{N} = \operatorname{tr}(G\, d\Sigma) = \operatorname{tr}(2 L^\top G\, dL)`,
    so the gradient with respect to the free (lower-triangular) entries is

    .. math::

        \frac{\partial \log \mathcal{N}}{\partial L} = \operatorname{tril}(2 G L)
        = \operatorname{tril}(w z^\top) - \operatorname{diag}(1 / L_{ii}),
        \qquad z = L^{-1} d,\; w = L^{-\top} z = \Sigma^{-1} d.

    The second form follows from :math:`w^\top L = z^\top` and
    :math:`\Sigma^{-1} L = L^{-\top}`, which is upper triangular with diagonal
    :math:`1/L_{ii}`; it needs two triangular solves and no inverse. It equals
    autograd through ``MultivariateNormal(mean, scale_tril=L).log_prob(a)``
    (whose gradient is lower triangular, as the solver reads only the lower
    triangle).

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        scale_tril: Lower-triangular factors :math:`L` with a positive diagonal, shape (..., k, k).

    Returns:
        ``(d_mean, d_scale_tril)`` of shapes (..., k) and (..., k, k), ``d_scale_tril`` lower triangular.

    References:
        Book: equation :eq:`full-covariance-cholesky-score` of :doc:`/book/full_covariance`.
        Petersen & Pedersen, The Matrix Cookbook, section 2; Kingma & Welling (2014) for the
        Cholesky parametrisation of Gaussian covariances.
    """
    a, mean, scale_tril = _mvn_inputs(a, mean, scale_tril, "scale_tril")
    check_scale_tril("scale_tril", scale_tril)
    warn_if_ill_conditioned("scale_tril", scale_tril)
    z = _tril_solve(scale_tril, a - mean)
    d_mean = _tril_solve(scale_tril, z, transpose=True)
    diagonal = torch.diagonal(scale_tril, dim1=-2, dim2=-1)
    d_scale_tril = torch.tril(d_mean.unsqueeze(-1) * z.unsqueeze(-2)) - torch.diag_embed(1.0 / diagonal)
    return d_mean, d_scale_tril


def tanh_log_abs_det_jacobian(u: torch.Tensor | float) -> torch.Tensor:
    r"""Elementwise :math:`\log |\mathrm{d} \tanh u / \mathrm{d} u| = \log(1 - \tanh^2 u)`, computed stably.

    .. math::

        \log(1 - \tanh^2 u) = 2 \bigl( \log 2 - u - \operatorname{softplus}(-2u) \bigr)
        = 2 \bigl( \log 2 - |u| - \log(1 + e^{-2|u|}) \bigr).

    The naive ``log(1 - tanh(u)**2)`` loses all accuracy once :math:`\tanh u`
    rounds to :math:`\pm 1` (:math:`|u| \gtrsim 9` in float32, :math:`|u|
    \gtrsim 19` in float64) and returns :math:`-\infty`. The right-hand form
    is the same function (it is even in :math:`u`), and with :math:`|u|` the
    softplus becomes ``log1p(exp(-2|u|))`` of an argument in (0, 1]: no
    overflow, and exact where ``torch.nn.functional.softplus`` would switch to
    its linear approximation (above its threshold of 20). That form cancels near
    :math:`u = 0`, where the value is :math:`\approx -u^2`, so for
    :math:`|u| < 1` the equivalent
    :math:`-2 \log\cosh u = -2\, \operatorname{log1p}\bigl(2 \sinh^2(u/2)\bigr)`
    is used instead. The result has a relative error of a few ulp for every
    :math:`u` up to the overflow of :math:`u` itself, in float32 as in float64.

    Args:
        u: Pre-squash values, any shape.

    Returns:
        :math:`\log(1 - \tanh^2 u)`, same shape as ``u``.

    References:
        Book: equation :eq:`squashed-stable-correction` of :doc:`/book/squashed_gaussians`.
        Haarnoja et al. (2018), Soft Actor-Critic, appendix C, eq. (21).
    """
    (u,) = _as_tensors(u=u)
    return _tanh_log_abs_det_jacobian(u)


def _tanh_log_abs_det_jacobian(u: torch.Tensor) -> torch.Tensor:
    # softplus(-2|u|) = log1p(exp(-2|u|)) with exp(...) in (0, 1]: never overflows, never approximated.
    abs_u = u.abs()
    large = 2.0 * (_LOG_2 - abs_u - torch.log1p(torch.exp(-2.0 * abs_u)))
    # Near 0 that form cancels (log 2 - log 2): there use -2 log cosh u = -2 log1p(2 sinh^2(u/2)),
    # accurate to a few ulp in relative terms. The branches are not mixed in gradients.
    small_u = torch.where(abs_u < 1.0, u, torch.zeros_like(u))
    small = -2.0 * torch.log1p(2.0 * torch.sinh(0.5 * small_u).square())
    return torch.where(abs_u < 1.0, small, large)


def squashed_log_prob(
    u: torch.Tensor | float, mean: torch.Tensor | float, log_std: torch.Tensor | float
) -> torch.Tensor:
    r"""Log-density of the tanh-squashed diagonal Gaussian action :math:`a = \tanh u`, from the pre-squash ``u``.

    With :math:`u \sim \mathcal{N}(\mu, \operatorname{diag} \sigma^2)` and the
    change of variables :math:`a = \tanh u` (elementwise),

    .. math::

        \log \pi(a) = \log \mathcal{N}(u; \mu, \operatorname{diag}\sigma^2) - \sum_{i=1}^{k} \log(1 - \tanh^2 u_i).

    It takes ``u``, not ``a``: recovering :math:`u = \operatorname{atanh}(a)`
    from a squashed action is ill-conditioned as :math:`|a| \to 1` (and
    infinite once :math:`a` rounds to :math:`\pm 1`), so keep the pre-squash
    sample from the policy's forward pass.

    Args:
        u: Pre-squash samples of shape (..., k).
        mean: Means, broadcastable with ``u``.
        log_std: Log standard deviations, broadcastable with ``u``.

    Returns:
        The log-densities of :math:`a = \tanh u`, with the broadcast shape of the inputs without
        its last axis.

    References:
        Book: equation :eq:`squashed-stable-correction` of :doc:`/book/squashed_gaussians`.
        Haarnoja et al. (2018), Soft Actor-Critic, appendix C, eq. (21).
    """
    u, mean, log_std = _as_tensors(u=u, mean=mean, log_std=log_std)
    shape = broadcast_shapes(u=u, mean=mean, log_std=log_std)
    _check_event_axis(shape, "u, mean and log_std")
    # One Jacobian factor per component of the broadcast event, also when u itself is shorter.
    return _diag_log_prob(u, mean, log_std) - _tanh_log_abs_det_jacobian(u).expand(shape).sum(-1)
