r"""Fisher information, KL divergence and natural gradients of Gaussian policies.

The Fisher information of a distribution :math:`\pi_\theta` is the covariance
of its score,

.. math::

   F(\theta) = \mathbb{E}_{a \sim \pi_\theta}\bigl[\nabla_\theta \log \pi_\theta(a)\,
   \nabla_\theta \log \pi_\theta(a)^\top\bigr]
   = -\mathbb{E}\bigl[\nabla^2_\theta \log \pi_\theta(a)\bigr]
   = \nabla^2_{\theta'} \operatorname{KL}(\pi_\theta \,\|\, \pi_{\theta'})\big|_{\theta' = \theta},

and it is the curvature behind natural gradients, TRPO and PPO. This module
gives it in closed form for each head of a Gaussian policy (book chapter
"The Fisher information of a Gaussian policy", equations ``fisher-mean``,
``fisher-log-std``, ``fisher-cov`` and ``fisher-tril``):

- the mean, through its Jacobian :math:`J_\mu = \partial\mu/\partial\theta`:
  :math:`F = J_\mu^\top \Sigma^{-1} J_\mu` (:func:`mvn_fisher_mean`);
- a univariate or diagonal Gaussian in :math:`(\mu, \sigma)` or
  :math:`(\mu, \ell)`, :math:`\ell = \log\sigma`: :math:`\operatorname{diag}(1/\sigma^2, 2/\sigma^2)`
  or :math:`\operatorname{diag}(1/\sigma^2, 2)` (:func:`normal_fisher`,
  :func:`normal_fisher_log_std`, :func:`diag_fisher`);
- the covariance, on symmetric directions :math:`U_1, U_2`:
  :math:`F[U_1, U_2] = \tfrac12 \operatorname{tr}(\Sigma^{-1} U_1 \Sigma^{-1} U_2)`
  (:func:`mvn_fisher_cov`, and as a matrix on the free entries
  :func:`mvn_fisher_cov_matrix`);
- the Cholesky factor :math:`L`, the same form pulled back through
  :math:`d\Sigma = dL\, L^\top + L\, dL^\top` (:func:`mvn_fisher_tril`).

In the coordinates :math:`(\mu, \Sigma)` of one Gaussian the cross block of
:math:`F` is zero (an odd moment of the residual :math:`a - \mu`). For the
parameters of a network, the Fisher is therefore block diagonal in mean and
covariance parameters only when no parameter enters both heads; a parameter
shared by both (a common trunk) receives
:math:`J_\mu^\top \Sigma^{-1} J_\mu + J_\Sigma^\top F_\Sigma J_\Sigma`.

The KL divergences between univariate, diagonal and full-covariance Gaussians
(:func:`normal_kl`, :func:`diag_kl`, :func:`mvn_kl`) share one kernel: with
:math:`\Lambda = L_q^{-1} L_p`, :math:`\omega_i = \log \Lambda_{ii}` and
:math:`z = L_q^{-1}(\mu_p - \mu_q)`,

.. math::

   \operatorname{KL}(p \,\|\, q) = \sum_i \tfrac12\bigl(e^{2 \omega_i} - 1 - 2 \omega_i\bigr)
   + \tfrac12 \sum_{i > j} \Lambda_{ij}^2 + \tfrac12 \lVert z \rVert^2,

a sum of nonnegative terms, where :math:`e^{2\omega} - 1 - 2\omega` is evaluated
without cancellation (a series for small :math:`\omega`). So the divergence is
never negative, and for :func:`normal_kl` and :func:`diag_kl`, which take the
scales themselves, it is accurate to a few ulp however close the two
Gaussians are. :func:`mvn_kl` takes covariance matrices, whose Cholesky
factors carry rounding errors: for covariances a relative distance
:math:`\nu` apart its relative error is below
:math:`\epsilon_{\text{mach}}/\nu` in the tests, where the textbook formula,
as ``torch.distributions`` evaluates it, has no correct digit left at
:math:`\nu = 10^{-9}`. The gradients are :func:`normal_kl_grad`,
:func:`diag_kl_grad` and :func:`mvn_kl_grad`.

For the linear-Gaussian policy :math:`a = -K s + \eta`,
:math:`\eta \sim \mathcal{N}(0, S)`, on a task of :mod:`pgnotes.lqr`, the
policy gradient theorem gives the exact gradient from :math:`Q^\pi`
(:mod:`pgnotes.action_values`) and the discounted state distribution
:math:`d^\pi` (:func:`lqr_policy_gradient`); the exact Fisher,
:math:`F = S^{-1} \otimes \mathbb{E}_{d^\pi}[s s^\top]` for the row-major
:math:`\operatorname{vec}` of the gain (:func:`lqr_fisher`), and the natural
gradient :math:`F^{-1} \nabla J` (:func:`lqr_natural_gradient`) follow. From
samples, :func:`empirical_fisher`, :func:`natural_gradient`,
:func:`compatible_weights` (the least-squares fit of a critic with compatible
features) and :func:`trust_region_step` (the first step of TRPO, before its
line search); on LQR, :func:`lqr_compatible_fit` (the critic of a natural
actor-critic) and :func:`lqr_compatible_target`, the exact quantity it
estimates.

Inputs are validated as in :mod:`pgnotes.gaussian`: bad input raises
``ValueError`` naming the argument, before any work.

The module is longer than most because it holds one concept, the Fisher
information of a Gaussian policy, in each of its uses (per head, through the
KL, on samples and on LQR), and each closed form carries its derivation in its
docstring.

References:
    Amari, S. (1998). Natural gradient works efficiently in learning. Neural Computation 10(2).

    Kakade, S. M. (2002). A natural policy gradient. NIPS.

    Sutton, R. S., McAllester, D., Singh, S. and Mansour, Y. (2000). Policy gradient
    methods for reinforcement learning with function approximation. NIPS.

    Peters, J. and Schaal, S. (2008). Natural actor-critic. Neurocomputing 71(7-9).

    Schulman, J., Levine, S., Abbeel, P., Jordan, M. and Moritz, P. (2015). Trust region
    policy optimization. ICML.

    Fazel, M., Ge, R., Kakade, S. M. and Mesbahi, M. (2018). Global convergence of policy
    gradient methods for the linear quadratic regulator. ICML.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from pgnotes import action_values, lqr, reinforce, rollouts
from pgnotes._validation import (
    as_float_tensor,
    broadcast_shapes,
    check_count,
    check_finite,
    check_min_dim,
    check_positive,
    check_real,
    check_scale_tril,
    check_square,
    check_symmetric_matrix,
    cholesky_factor,
)
from pgnotes.gaussian import _as_tensors, _check_event_axis
from pgnotes.lqr import LQRTask

__all__ = [
    "normal_fisher",
    "normal_fisher_log_std",
    "diag_fisher",
    "mvn_fisher_mean",
    "mvn_fisher_cov",
    "mvn_fisher_cov_matrix",
    "mvn_fisher_tril",
    "normal_kl",
    "diag_kl",
    "mvn_kl",
    "normal_kl_grad",
    "diag_kl_grad",
    "mvn_kl_grad",
    "empirical_fisher",
    "natural_gradient",
    "compatible_weights",
    "trust_region_step",
    "lqr_policy_gradient",
    "lqr_fisher",
    "lqr_natural_gradient",
    "lqr_compatible_fit",
    "lqr_compatible_target",
]


# --------------------------------------------------------------------------- #
# Shared kernels
# --------------------------------------------------------------------------- #


def _cholesky_of(name: str, cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factor of a symmetric positive-definite ``cov``, or ``ValueError`` naming ``name``."""
    check_symmetric_matrix(name, cov)
    return cholesky_factor(name, cov)


def _solve_lower(factor: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """:math:`L^{-1} X` for matrices ``rhs`` of shape (..., k, m), broadcasting the batch axes."""
    batch = torch.broadcast_shapes(factor.shape[:-2], rhs.shape[:-2])
    k = factor.shape[-1]
    return torch.linalg.solve_triangular(
        factor.expand(*batch, k, k), rhs.expand(*batch, *rhs.shape[-2:]), upper=False
    )


def _whiten(factor: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    r""":math:`L^{-1} U L^{-\top}` for a symmetric direction :math:`U` (similar to :math:`\Sigma^{-1} U`)."""
    half = _solve_lower(factor, direction)
    return _solve_lower(factor, half.mT)


def _covariance_gram(factor: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    r""":math:`F_{ab} = \tfrac12 \operatorname{tr}(\Sigma^{-1} U_a \Sigma^{-1} U_b)` for directions (..., m, k, k).

    With :math:`\tilde U_a = L^{-1} U_a L^{-\top}` (symmetric), the trace is
    :math:`\operatorname{tr}(\tilde U_a \tilde U_b) = \langle \tilde U_a, \tilde U_b \rangle_F`: one Gram matrix.
    """
    whitened = _whiten(factor.unsqueeze(-3), directions)
    return 0.5 * torch.einsum("...aij,...bij->...ab", whitened, whitened)


def _tril_basis(k: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit matrices :math:`e_i e_j^\\top`, :math:`i \\ge j`, in ``torch.tril_indices`` order, and those indices."""
    rows, cols = torch.tril_indices(k, k, device=device)
    basis = torch.zeros(rows.numel(), k, k, dtype=dtype, device=device)
    basis[torch.arange(rows.numel(), device=device), rows, cols] = 1.0
    return basis, torch.stack([rows, cols])


def _half_expm1_minus(t: torch.Tensor) -> torch.Tensor:
    r""":math:`\tfrac12(e^{2t} - 1 - 2t) \ge 0`, without the cancellation of the naive form near :math:`t = 0`.

    For :math:`|2t| < 1/2` the Taylor series :math:`\sum_{n \ge 2} x^n / n!`,
    :math:`x = 2t`, summed to :math:`n = 17` (the next term is below
    :math:`10^{-21}` of the first); elsewhere ``expm1(x) - x``, where the
    subtraction amplifies the rounding of ``expm1`` at most 4.4-fold (at
    :math:`x = 1/2`): the tests find the result within
    :math:`8\,\epsilon_{\text{mach}}` on both sides of the switch.
    """
    x = 2.0 * t
    small = x.abs() < 0.5
    xs = torch.where(small, x, torch.zeros_like(x))
    series = torch.full_like(xs, 1.0 / math.factorial(17))
    for n in range(16, 1, -1):
        series = series * xs + 1.0 / math.factorial(n)
    series = series * xs.square()
    return 0.5 * torch.where(small, series, torch.expm1(x) - x)


def _diag_kl_parts(
    mean_p: torch.Tensor, log_std_p: torch.Tensor, mean_q: torch.Tensor, log_std_q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-component ``(omega, z)``: log ratio of the scales and the standardised difference of the means."""
    return log_std_p - log_std_q, (mean_p - mean_q) * torch.exp(-log_std_q)


def _normal_kl_parts(
    mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(omega, z)`` of :func:`_diag_kl_parts` from standard deviations, after checking they are positive."""
    check_positive("std_p", std_p)
    check_positive("std_q", std_q)
    # log1p of the relative difference: exact for nearly equal scales, where log(p) - log(q) is not.
    return torch.log1p((std_p - std_q) / std_q), (mean_p - mean_q) / std_q


# --------------------------------------------------------------------------- #
# Fisher information of each head
# --------------------------------------------------------------------------- #


def _two_by_two(mean_information: torch.Tensor, scale_information: torch.Tensor) -> torch.Tensor:
    """Per-element 2 x 2 diagonal matrices diag(mean_information, scale_information)."""
    return torch.diag_embed(torch.stack([mean_information, scale_information], dim=-1))


def normal_fisher(std: torch.Tensor | float) -> torch.Tensor:
    r"""Fisher information of :math:`\mathcal{N}(\mu, \sigma^2)` in :math:`(\mu, \sigma)`: :math:`\operatorname{diag}(1/\sigma^2, 2/\sigma^2)`.

    Args:
        std: :math:`\sigma > 0`, any shape.

    Returns:
        A tensor of shape ``(*std.shape, 2, 2)``, rows and columns in the order :math:`(\mu, \sigma)`.
    """
    (std,) = _as_tensors(std=std)
    check_positive("std", std)
    inverse_variance = std.reciprocal().square()
    return _two_by_two(inverse_variance, 2.0 * inverse_variance)


def normal_fisher_log_std(log_std: torch.Tensor | float) -> torch.Tensor:
    r"""Fisher information of :math:`\mathcal{N}(\mu, e^{2\ell})` in :math:`(\mu, \ell = \log\sigma)`: :math:`\operatorname{diag}(e^{-2\ell}, 2)`.

    Args:
        log_std: :math:`\log\sigma`, any shape.

    Returns:
        A tensor of shape ``(*log_std.shape, 2, 2)``, order :math:`(\mu, \log\sigma)`.
    """
    (log_std,) = _as_tensors(log_std=log_std)
    return _two_by_two(torch.exp(-2.0 * log_std), torch.full_like(log_std, 2.0))


def diag_fisher(log_std: torch.Tensor | float) -> torch.Tensor:
    r"""Fisher information of a diagonal Gaussian in :math:`(\mu_1..\mu_k, \log\sigma_1..\log\sigma_k)`.

    Block diagonal: :math:`\operatorname{diag}(e^{-2\ell_1}, \dots, e^{-2\ell_k}, 2, \dots, 2)`.

    Args:
        log_std: shape ``(..., k)``.

    Returns:
        A tensor of shape ``(..., 2k, 2k)``, in the order of :func:`pgnotes.gaussian.diag_score`'s outputs.
    """
    (log_std,) = _as_tensors(log_std=log_std)
    _check_event_axis(log_std.shape, "log_std")
    return torch.diag_embed(torch.cat([torch.exp(-2.0 * log_std), torch.full_like(log_std, 2.0)], dim=-1))


def mvn_fisher_mean(cov: torch.Tensor, jacobian: torch.Tensor) -> torch.Tensor:
    r"""Fisher information of the mean's parameters: :math:`F = J_\mu^\top \Sigma^{-1} J_\mu`, :math:`J_\mu = \partial\mu/\partial\theta` (book equation ``fisher-mean``).

    Computed as :math:`(L^{-1}J_\mu)^\top (L^{-1}J_\mu)` with the Cholesky factor of
    :math:`\Sigma`: symmetric positive semidefinite by construction.

    Args:
        cov: :math:`\Sigma`, shape ``(..., k, k)``, symmetric positive definite.
        jacobian: :math:`J_\mu`, shape ``(..., k, p)``.

    Returns:
        A tensor of shape ``(..., p, p)``.
    """
    cov, jacobian = _as_tensors(cov=cov, jacobian=jacobian)
    check_min_dim("jacobian", jacobian, 2, "(k, p): one row per action component")
    check_square("cov", cov)
    if jacobian.shape[-2] != cov.shape[-1]:
        raise ValueError(
            f"jacobian must have shape (..., {cov.shape[-1]}, p) for a {cov.shape[-1]}x{cov.shape[-1]} cov, "
            f"got {tuple(jacobian.shape)}"
        )
    broadcast_shapes(**{"batch shape of cov": cov.shape[:-2], "batch shape of jacobian": jacobian.shape[:-2]})
    whitened = _solve_lower(_cholesky_of("cov", cov), jacobian)
    return whitened.mT @ whitened


def mvn_fisher_cov(cov: torch.Tensor, direction: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
    r"""The Fisher form of the covariance on symmetric directions, :math:`\tfrac12 \operatorname{tr}(\Sigma^{-1} U_1 \Sigma^{-1} U_2)` (book equation ``fisher-cov``).

    It is the second derivative of :math:`\operatorname{KL}(\mathcal{N}(\mu, \Sigma)
    \,\|\, \mathcal{N}(\mu, \Sigma + x_1 U_1 + x_2 U_2))` in
    :math:`x_1, x_2` at zero.

    Args:
        cov: :math:`\Sigma`, shape ``(..., k, k)``.
        direction: :math:`U_1`, symmetric, shape ``(..., k, k)``.
        other: :math:`U_2`, symmetric; :math:`U_1` if None (the quadratic form).

    Returns:
        The broadcast batch shape.
    """
    other_value = direction if other is None else other
    cov, direction, other_value = _as_tensors(cov=cov, direction=direction, other=other_value)
    for name, matrix in (("direction", direction), ("other", other_value)):
        check_symmetric_matrix(name, matrix)
        if matrix.shape[-1] != cov.shape[-1]:
            raise ValueError(f"{name} must be {cov.shape[-1]}x{cov.shape[-1]} like cov, got {tuple(matrix.shape)}")
    broadcast_shapes(
        **{"batch shape of cov": cov.shape[:-2], "batch shape of direction": direction.shape[:-2],
           "batch shape of other": other_value.shape[:-2]}
    )
    factor = _cholesky_of("cov", cov)
    return 0.5 * (_whiten(factor, direction) * _whiten(factor, other_value)).sum((-2, -1))


def mvn_fisher_cov_matrix(cov: torch.Tensor) -> torch.Tensor:
    r"""The covariance Fisher as a matrix on the :math:`k(k+1)/2` free entries :math:`\Sigma_{ij}`, :math:`i \ge j`.

    The coordinate of an off-diagonal entry moves :math:`\Sigma_{ij}` and
    :math:`\Sigma_{ji}` together (direction :math:`e_i e_j^\top + e_j e_i^\top`),
    a diagonal one :math:`\Sigma_{ii}` (direction :math:`e_i e_i^\top`); entries
    are in ``torch.tril_indices(k, k)`` order. The gradient in these coordinates
    is :math:`2G - \operatorname{diag}(G)` of :func:`pgnotes.gaussian.mvn_score`.

    Args:
        cov: :math:`\Sigma`, shape ``(..., k, k)``.

    Returns:
        A tensor of shape ``(..., m, m)``, :math:`m = k(k+1)/2`.
    """
    (cov,) = _as_tensors(cov=cov)
    factor = _cholesky_of("cov", cov)
    basis, _ = _tril_basis(cov.shape[-1], cov.dtype, cov.device)
    return _covariance_gram(factor, basis + basis.mT - torch.diag_embed(torch.diagonal(basis, dim1=-2, dim2=-1)))


def mvn_fisher_tril(scale_tril: torch.Tensor) -> torch.Tensor:
    r"""The covariance Fisher as a matrix on the entries of the Cholesky factor :math:`L_{ij}`, :math:`i \ge j`.

    Pulled back through :math:`d\Sigma = dL\, L^\top + L\, dL^\top`; with
    :math:`Y = L^{-1} dL` (lower triangular) it equals
    :math:`\langle Y_1, Y_2 \rangle_F + \sum_i (Y_1)_{ii} (Y_2)_{ii}` (book equation ``fisher-tril``): in the
    whitened coordinates, 1 on the off-diagonal entries and 2 on the diagonal,
    the :math:`\log\sigma` value. Entries in ``torch.tril_indices(k, k)`` order.

    Args:
        scale_tril: :math:`L`, lower triangular with a positive diagonal, shape ``(..., k, k)``.

    Returns:
        A tensor of shape ``(..., m, m)``, :math:`m = k(k+1)/2`.
    """
    (scale_tril,) = _as_tensors(scale_tril=scale_tril)
    check_scale_tril("scale_tril", scale_tril)
    basis, _ = _tril_basis(scale_tril.shape[-1], scale_tril.dtype, scale_tril.device)
    lower = scale_tril.unsqueeze(-3)
    directions = basis @ lower.mT + lower @ basis.mT
    return _covariance_gram(scale_tril, directions)


# --------------------------------------------------------------------------- #
# KL divergences and their gradients
# --------------------------------------------------------------------------- #


def normal_kl(
    mean_p: torch.Tensor | float, std_p: torch.Tensor | float, mean_q: torch.Tensor | float, std_q: torch.Tensor | float
) -> torch.Tensor:
    r"""Elementwise :math:`\operatorname{KL}(\mathcal{N}(\mu_p, \sigma_p^2) \,\|\, \mathcal{N}(\mu_q, \sigma_q^2))`.

    .. math::

       \log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2\sigma_q^2} - \frac12 .

    Args:
        mean_p, std_p: the first distribution (the one the expectation is over).
        mean_q, std_q: the second; all broadcastable.

    Returns:
        The broadcast shape.
    """
    mean_p, std_p, mean_q, std_q = _as_tensors(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    broadcast_shapes(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    t, z = _normal_kl_parts(mean_p, std_p, mean_q, std_q)
    return _half_expm1_minus(t) + 0.5 * z.square()


def diag_kl(mean_p: Any, log_std_p: Any, mean_q: Any, log_std_q: Any) -> torch.Tensor:
    r""":math:`\operatorname{KL}(p \,\|\, q)` of two diagonal Gaussians given by means and log standard deviations, summed over the event axis.

    .. math::

       \sum_{i=1}^k \Bigl[\tfrac12\bigl(e^{2\omega_i} - 1 - 2\omega_i\bigr) + \tfrac12 z_i^2\Bigr],
       \qquad \omega_i = \ell_{p,i} - \ell_{q,i}, \quad z_i = (\mu_{p,i} - \mu_{q,i}) e^{-\ell_{q,i}} .

    Args:
        mean_p, log_std_p, mean_q, log_std_q: shape ``(..., k)``, broadcastable.

    Returns:
        The broadcast batch shape (without the event axis).
    """
    mean_p, log_std_p, mean_q, log_std_q = _as_tensors(
        mean_p=mean_p, log_std_p=log_std_p, mean_q=mean_q, log_std_q=log_std_q
    )
    shape = broadcast_shapes(mean_p=mean_p, log_std_p=log_std_p, mean_q=mean_q, log_std_q=log_std_q)
    _check_event_axis(shape, "mean_p, log_std_p, mean_q and log_std_q")
    t, z = _diag_kl_parts(mean_p, log_std_p, mean_q, log_std_q)
    return (_half_expm1_minus(t) + 0.5 * z.square()).sum(-1)


def _mvn_pair(mean_p: Any, cov_p: Any, mean_q: Any, cov_q: Any) -> tuple[torch.Tensor, ...]:
    mean_p, cov_p, mean_q, cov_q = _as_tensors(mean_p=mean_p, cov_p=cov_p, mean_q=mean_q, cov_q=cov_q)
    for name, matrix in (("cov_p", cov_p), ("cov_q", cov_q)):
        check_square(name, matrix)
    k = cov_p.shape[-1]
    if cov_q.shape[-1] != k:
        raise ValueError(f"cov_p is {k}x{k} but cov_q is {cov_q.shape[-1]}x{cov_q.shape[-1]}")
    for name, mean in (("mean_p", mean_p), ("mean_q", mean_q)):
        check_min_dim(name, mean, 1, "the event axis, of size k")
        if mean.shape[-1] != k:
            raise ValueError(f"{name} must have event size {k} like the covariances, got shape {tuple(mean.shape)}")
    broadcast_shapes(
        **{"batch shape of mean_p": mean_p.shape[:-1], "batch shape of cov_p": cov_p.shape[:-2],
           "batch shape of mean_q": mean_q.shape[:-1], "batch shape of cov_q": cov_q.shape[:-2]}
    )
    return mean_p, _cholesky_of("cov_p", cov_p), mean_q, _cholesky_of("cov_q", cov_q), cov_p, cov_q


def mvn_kl(mean_p: Any, cov_p: Any, mean_q: Any, cov_q: Any) -> torch.Tensor:
    r""":math:`\operatorname{KL}(\mathcal{N}(\mu_p, \Sigma_p) \,\|\, \mathcal{N}(\mu_q, \Sigma_q))`.

    .. math::

       \tfrac12\Bigl[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p)
       + (\mu_q - \mu_p)^\top \Sigma_q^{-1} (\mu_q - \mu_p) - k
       + \log\det\Sigma_q - \log\det\Sigma_p\Bigr],

    computed through :math:`\Lambda = L_q^{-1} L_p` as in the module docstring
    (book equation ``fisher-kl-mvn``).

    Args:
        mean_p, cov_p: shapes ``(..., k)`` and ``(..., k, k)``.
        mean_q, cov_q: the same, broadcastable.

    Returns:
        The broadcast batch shape.
    """
    mean_p, tril_p, mean_q, tril_q, _, _ = _mvn_pair(mean_p, cov_p, mean_q, cov_q)
    ratio = _solve_lower(tril_q, tril_p)
    diag_p = torch.diagonal(tril_p, dim1=-2, dim2=-1)
    diag_q = torch.diagonal(tril_q, dim1=-2, dim2=-1)
    t = torch.log1p((diag_p - diag_q) / diag_q)
    z = _solve_lower(tril_q, (mean_p - mean_q).unsqueeze(-1)).squeeze(-1)
    off_diagonal = torch.tril(ratio, diagonal=-1).square().sum((-2, -1))
    return _half_expm1_minus(t).sum(-1) + 0.5 * off_diagonal + 0.5 * z.square().sum(-1)


def diag_kl_grad(mean_p: Any, log_std_p: Any, mean_q: Any, log_std_q: Any) -> tuple[torch.Tensor, ...]:
    r"""Per-component gradient of :func:`diag_kl` in ``(mean_p, log_std_p, mean_q, log_std_q)``.

    .. math::

       \frac{\partial}{\partial\mu_p} = \frac{z}{\sigma_q} = -\frac{\partial}{\partial\mu_q}, \qquad
       \frac{\partial}{\partial\ell_p} = e^{2\omega} - 1, \qquad
       \frac{\partial}{\partial\ell_q} = 1 - e^{2\omega} - z^2 .

    Returns:
        Four tensors of the broadcast shape (not summed over a shared argument).
    """
    mean_p, log_std_p, mean_q, log_std_q = _as_tensors(
        mean_p=mean_p, log_std_p=log_std_p, mean_q=mean_q, log_std_q=log_std_q
    )
    shape = broadcast_shapes(mean_p=mean_p, log_std_p=log_std_p, mean_q=mean_q, log_std_q=log_std_q)
    _check_event_axis(shape, "mean_p, log_std_p, mean_q and log_std_q")
    t, z = _diag_kl_parts(mean_p, log_std_p, mean_q, log_std_q)
    d_mean_p = (z * torch.exp(-log_std_q)).expand(shape)
    d_log_std_p = torch.expm1(2.0 * t).expand(shape)
    return d_mean_p, d_log_std_p, -d_mean_p, (-d_log_std_p - z.square()).expand(shape)


def normal_kl_grad(mean_p: Any, std_p: Any, mean_q: Any, std_q: Any) -> tuple[torch.Tensor, ...]:
    r"""Elementwise gradient of :func:`normal_kl` in ``(mean_p, std_p, mean_q, std_q)``.

    The :math:`\log\sigma` gradients of :func:`diag_kl_grad` divided by :math:`\sigma`
    (:math:`\partial/\partial\sigma = \sigma^{-1}\,\partial/\partial\log\sigma`):
    :math:`\partial/\partial\sigma_p = (\sigma_p^2/\sigma_q^2 - 1)/\sigma_p`,
    :math:`\partial/\partial\sigma_q = (1 - (\sigma_p^2 + (\mu_p - \mu_q)^2)/\sigma_q^2)/\sigma_q`.
    """
    mean_p, std_p, mean_q, std_q = _as_tensors(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    shape = broadcast_shapes(mean_p=mean_p, std_p=std_p, mean_q=mean_q, std_q=std_q)
    t, z = _normal_kl_parts(mean_p, std_p, mean_q, std_q)
    d_log_std_p = torch.expm1(2.0 * t)
    d_mean_p = (z / std_q).expand(shape)
    return d_mean_p, (d_log_std_p / std_p).expand(shape), -d_mean_p, ((-d_log_std_p - z.square()) / std_q).expand(shape)


def mvn_kl_grad(mean_p: Any, cov_p: Any, mean_q: Any, cov_q: Any) -> tuple[torch.Tensor, ...]:
    r"""Gradient of :func:`mvn_kl` in ``(mean_p, cov_p, mean_q, cov_q)``, covariances in the convention of :func:`pgnotes.gaussian.mvn_score`.

    With :math:`\delta = \mu_p - \mu_q`,

    .. math::

       \nabla_{\mu_p} = \Sigma_q^{-1}\delta = -\nabla_{\mu_q}, \qquad
       \nabla_{\Sigma_p} = \tfrac12(\Sigma_q^{-1} - \Sigma_p^{-1}), \qquad
       \nabla_{\Sigma_q} = \tfrac12\bigl(\Sigma_q^{-1} - \Sigma_q^{-1}(\Sigma_p + \delta\delta^\top)\Sigma_q^{-1}\bigr),

    the gradients with respect to all :math:`k^2` entries at a symmetric
    matrix (symmetric themselves; the Matrix Cookbook, eqs. (57), (61)).

    Returns:
        ``(d_mean_p, d_cov_p, d_mean_q, d_cov_q)`` with the broadcast batch shape.
    """
    mean_p, tril_p, mean_q, tril_q, cov_p, _ = _mvn_pair(mean_p, cov_p, mean_q, cov_q)
    inverse_p = torch.cholesky_inverse(tril_p)
    inverse_q = torch.cholesky_inverse(tril_q)
    d_mean_p = (inverse_q @ (mean_p - mean_q).unsqueeze(-1)).squeeze(-1)
    d_cov_p = 0.5 * (inverse_q - inverse_p)
    outer = cov_p + (mean_p - mean_q).unsqueeze(-1) * (mean_p - mean_q).unsqueeze(-2)
    d_cov_q = 0.5 * (inverse_q - inverse_q @ outer @ inverse_q)
    d_cov_q = 0.5 * (d_cov_q + d_cov_q.mT)
    return d_mean_p, d_cov_p, -d_mean_p, d_cov_q


# --------------------------------------------------------------------------- #
# From samples
# --------------------------------------------------------------------------- #


def _sample_matrix(name: str, value: Any) -> torch.Tensor:
    tensor = as_float_tensor(name, value)
    if tensor.dim() != 2 or tensor.shape[0] < 1 or tensor.shape[1] < 1:
        raise ValueError(f"{name} must have shape (num_samples, p) with at least one sample, got {tuple(tensor.shape)}")
    check_finite(name, tensor.detach())
    return tensor


def empirical_fisher(scores: Any) -> torch.Tensor:
    r"""The sample Fisher :math:`\hat F = \frac1N \sum_i \psi_i \psi_i^\top` from per-sample scores :math:`\psi_i`.

    Unbiased for :math:`F` when the :math:`(s_i, a_i)` are drawn from the
    distribution :math:`F` averages over (for a policy, :math:`d^\pi \times \pi`).

    Args:
        scores: shape ``(N, p)``.

    Returns:
        A tensor of shape ``(p, p)``, symmetric.
    """
    psi = _sample_matrix("scores", scores)
    return psi.mT @ psi / psi.shape[0]


def _check_damping(damping: Any) -> float:
    return check_real("damping", damping, low=0.0)


def natural_gradient(fisher: Any, gradient: Any, damping: float = 0.0) -> torch.Tensor:
    r"""The natural gradient :math:`(F + \lambda I)^{-1} g`, by a Cholesky solve.

    Args:
        fisher: :math:`F`, symmetric positive definite (or semidefinite with
            ``damping > 0``), shape ``(..., p, p)``.
        gradient: :math:`g`, shape ``(..., p)``.
        damping: :math:`\lambda \ge 0`, the Tikhonov damping of TRPO and K-FAC.

    Returns:
        A tensor with the broadcast shape of ``gradient`` and the batch of ``fisher``, ``(..., p)``.
    """
    fisher, gradient = _as_tensors(fisher=fisher, gradient=gradient)
    lam = _check_damping(damping)
    check_min_dim("gradient", gradient, 1, "the parameter axis, of size p")
    check_square("fisher", fisher)
    if gradient.shape[-1] != fisher.shape[-1]:
        raise ValueError(f"gradient has {gradient.shape[-1]} components but fisher is {fisher.shape[-1]}x{fisher.shape[-1]}")
    broadcast_shapes(**{"batch shape of fisher": fisher.shape[:-2], "batch shape of gradient": gradient.shape[:-1]})
    eye = torch.eye(fisher.shape[-1], dtype=fisher.dtype, device=fisher.device)
    factor = _cholesky_of("fisher", fisher + lam * eye)
    return torch.cholesky_solve(gradient.unsqueeze(-1).expand(*torch.broadcast_shapes(fisher.shape[:-2], gradient.shape[:-1]), -1, 1), factor).squeeze(-1)


def compatible_weights(scores: Any, advantages: Any) -> torch.Tensor:
    r"""Least-squares weights of the compatible critic :math:`A_w(s, a) = w^\top \psi(s, a)`.

    :math:`w = \arg\min_w \sum_i (w^\top \psi_i - \hat A_i)^2 = \hat F^{-1} \frac1N\sum_i \psi_i \hat A_i`:
    with samples from :math:`d^\pi \times \pi` and the features
    :math:`\psi = \nabla_\theta \log \pi_\theta`, it estimates
    :math:`(1 - \gamma) F^{-1} \nabla_\theta J`, the natural gradient up to the
    factor :math:`1 - \gamma` (Sutton et al. 2000; Kakade 2002; book equation
    ``fisher-compatible``): consistently, as :math:`N \to \infty`; for small
    :math:`N` the least-squares fit is biased. Targets :math:`Q^\pi` in place
    of :math:`A^\pi` (as in Sutton et al.) have the same population weights,
    because :math:`\mathbb{E}[\psi \mid s] = 0`. Solved by
    ``torch.linalg.lstsq`` (SVD driver), never through :math:`\hat F^{-1}`.

    Args:
        scores: :math:`\psi_i`, shape ``(N, p)`` with :math:`N \ge p`.
        advantages: :math:`\hat A_i`, shape ``(N,)``.

    Returns:
        :math:`w`, shape ``(p,)``.
    """
    psi = _sample_matrix("scores", scores)
    target = as_float_tensor("advantages", advantages, like=psi)
    if target.shape != psi.shape[:1]:
        raise ValueError(f"advantages must have shape ({psi.shape[0]},) like the scores' rows, got {tuple(target.shape)}")
    check_finite("advantages", target.detach())
    if psi.shape[0] < psi.shape[1]:
        raise ValueError(f"scores must have at least as many samples as features (p = {psi.shape[1]}), got {psi.shape[0]}")
    dtype = torch.promote_types(psi.dtype, target.dtype)
    driver = "gelsd" if psi.device.type == "cpu" else None
    return torch.linalg.lstsq(psi.to(dtype), target.to(dtype).unsqueeze(-1), driver=driver).solution.squeeze(-1)


def trust_region_step(fisher: Any, gradient: Any, max_kl: float) -> torch.Tensor:
    r"""The natural-gradient step scaled to a KL budget: :math:`\Delta = \sqrt{2\delta / (g^\top F^{-1} g)}\, F^{-1} g`.

    It maximises the linear model :math:`g^\top \Delta` subject to the
    quadratic model of the KL, :math:`\tfrac12 \Delta^\top F \Delta \le \delta`;
    the constraint is active. This is the first step TRPO proposes
    (Schulman et al. 2015, appendix C); the full algorithm solves
    :math:`F x = g` by conjugate gradient with Fisher-vector products instead of
    a factorisation, and shrinks the step by a backtracking line search on its
    surrogate objective and the sample KL.

    Args:
        fisher: :math:`F`, shape ``(p, p)``, symmetric positive definite.
        gradient: :math:`g`, shape ``(p,)``, not zero.
        max_kl: :math:`\delta > 0`.

    Returns:
        :math:`\Delta`, shape ``(p,)``.
    """
    max_kl = check_real("max_kl", max_kl, low=0.0, low_open=True)
    direction = natural_gradient(fisher, gradient)
    gradient = torch.as_tensor(gradient, dtype=direction.dtype)
    curvature = (gradient * direction).sum(-1, keepdim=True)
    if bool((curvature <= 0).any()):
        raise ValueError("gradient must not be zero: the trust-region step has no direction")
    return torch.sqrt(2.0 * max_kl / curvature) * direction


# --------------------------------------------------------------------------- #
# The linear-Gaussian policy on LQR
# --------------------------------------------------------------------------- #


def _lqr_policy(task: LQRTask, gain: Any, noise_cov: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Gain and positive-definite exploration covariance of a stable policy (a score needs S > 0)."""
    if noise_cov is None:
        raise ValueError("noise_cov must be given: the score and the Fisher of a deterministic policy do not exist")
    K, S = action_values._policy(task, gain, noise_cov)
    _cholesky_of("noise_cov", S)
    return K, S


def lqr_policy_gradient(task: LQRTask, gain: Any, noise_cov: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact :math:`\nabla_K J` and :math:`\nabla_S J` from the policy gradient theorem.

    :math:`\nabla_\theta J = \frac{1}{1-\gamma}\,\mathbb{E}_{s \sim d^\pi,\, a \sim \pi}
    [\nabla_\theta \log \pi(a \mid s)\, Q^\pi(s, a)]` with
    :math:`Q^\pi(s, a) = -(x^\top H x + h)`, :math:`x = (s, a)`
    (:func:`pgnotes.action_values.action_value_matrices`). With the scores
    :math:`\nabla_K \log\pi = -S^{-1}\eta s^\top` and
    :math:`\nabla_S \log\pi = \tfrac12(S^{-1}\eta\eta^\top S^{-1} - S^{-1})`,
    Gaussian moments (Isserlis: :math:`\mathbb{E}[\eta\eta^\top\, \eta^\top H_{aa}\eta]
    = S \operatorname{tr}(H_{aa} S) + 2 S H_{aa} S`) give (book equation ``fisher-pgt-lqr``)

    .. math::

       \nabla_K J = \frac{2 (H_{as} - H_{aa} K) M_d}{1 - \gamma}, \qquad
       \nabla_S J = -\frac{H_{aa}}{1 - \gamma},

    with :math:`M_d = \mathbb{E}_{d^\pi}[s s^\top]`
    (:func:`pgnotes.action_values.discounted_state_moments`).

    Args:
        task: the task.
        gain: :math:`K`, shape ``(k, n)``, stabilising.
        noise_cov: :math:`S`, shape ``(k, k)``, positive definite.

    Returns:
        ``(grad_gain, grad_cov)``, shapes ``(k, n)`` and ``(k, k)``; ``grad_cov``
        in the convention of :func:`pgnotes.gaussian.mvn_score`.
    """
    K, S = _lqr_policy(task, gain, noise_cov)
    H, _ = action_values.action_value_matrices(task, K, S)
    n = task.state_dim
    H_as, H_aa = H[n:, :n], H[n:, n:]
    _, second_moment = action_values.discounted_state_moments(task, K, S)
    scale = 1.0 - task.gamma
    return 2.0 * (H_as - H_aa @ K) @ second_moment / scale, -H_aa / scale


def lqr_fisher(task: LQRTask, gain: Any, noise_cov: Any) -> torch.Tensor:
    r"""Exact Fisher of the gain, :math:`F = \mathbb{E}_{s \sim d^\pi, a \sim \pi}[\psi\psi^\top] = S^{-1} \otimes M_d`.

    :math:`\psi = \operatorname{vec}(\nabla_K \log\pi) = \operatorname{vec}(-S^{-1}\eta s^\top)`
    in row-major order (entry :math:`K_{ij}` at :math:`i n + j`, as ``K.reshape(-1)``), and
    :math:`\mathbb{E}[\psi_{ij}\psi_{i'j'}] = (S^{-1})_{ii'} (M_d)_{jj'}`, the
    Kronecker product :math:`S^{-1} \otimes M_d` (book equation ``fisher-lqr``; with
    column-stacking :math:`\operatorname{vec}` it would be :math:`M_d \otimes S^{-1}`).
    Normalised by :math:`d^\pi` (a distribution). The Fisher of
    the covariance parameters is the state-independent block of
    :func:`mvn_fisher_cov_matrix` (or :func:`mvn_fisher_tril`, :func:`diag_fisher`),
    and the cross block is zero.

    Returns:
        A tensor of shape ``(k n, k n)``.

    Raises:
        ValueError: if :math:`M_d` is singular (the states do not excite every
            direction, so some gain directions are not identifiable).
    """
    K, S = _lqr_policy(task, gain, noise_cov)
    _, second_moment = action_values.discounted_state_moments(task, K, S)
    _cholesky_of("discounted state second moment", second_moment)
    inverse_noise = torch.cholesky_inverse(torch.linalg.cholesky(S))
    return torch.kron(inverse_noise.contiguous(), second_moment.contiguous())


def lqr_natural_gradient(task: LQRTask, gain: Any, noise_cov: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact natural gradient :math:`F^{-1}\nabla J` of the gain and of the covariance.

    The gain part solves :func:`lqr_fisher` against the flattened
    :func:`lqr_policy_gradient`; the covariance part solves the Fisher form
    :func:`mvn_fisher_cov` against :math:`\nabla_S J`:
    :math:`\tfrac12 S^{-1}\Delta S^{-1} = \nabla_S J`, so :math:`\Delta = 2 S\, \nabla_S J\, S`,
    the same tangent whichever parameterisation of :math:`S` is used.

    Returns:
        ``(natural_gain, natural_cov)``, shapes ``(k, n)`` and ``(k, k)``.
    """
    K, S = _lqr_policy(task, gain, noise_cov)
    grad_gain, grad_cov = lqr_policy_gradient(task, K, S)
    natural_gain = natural_gradient(lqr_fisher(task, K, S), grad_gain.reshape(-1)).reshape(K.shape)
    return natural_gain, 2.0 * S @ grad_cov @ S


def lqr_compatible_fit(task: LQRTask, gain: Any, noise_cov: Any, batch: Any) -> torch.Tensor:
    r"""The natural actor-critic's critic: compatible weights :math:`w` fitted to one batch of rollouts.

    Fits the discounted rewards-to-go :math:`G_t` by least squares, each
    square weighted by :math:`\gamma^t` (the weights of :math:`d^\pi`), with the
    compatible critic plus a value function,
    :math:`G_t \approx w^\top \psi_t + v^\top \phi_V(s_t, t)`, where
    :math:`\psi_t = \operatorname{vec}(-S^{-1}\eta_t s_t^\top)` (row-major) and :math:`\phi_V` are
    :func:`pgnotes.reinforce.value_features`. As :math:`\mathbb{E}[\psi_t \mid s_t] = 0`,
    the value part does not change :math:`w` in the limit of many episodes, and
    :math:`w` tends to :func:`lqr_compatible_target` for the batch's episode
    length :math:`T`: the natural gradient of the return truncated at :math:`T`,
    which tends to :math:`(1 - \gamma) F^{-1} \nabla_K J` as :math:`T \to \infty`.
    For a few episodes per batch the fit is biased towards zero: on the 2-D
    task at :math:`K = 0`, with 8 episodes of 66 steps, its mean projected on
    :math:`w_T` is about 0.86 of it (the tests assert 0.75 to 0.95).

    Peters and Schaal (2008) fit the compatible critic by LSTD-Q(:math:`\lambda`);
    this fit regresses Monte Carlo rewards-to-go instead.

    Args:
        task: the task.
        gain: :math:`K` that generated the batch, shape ``(k, n)``.
        noise_cov: :math:`S`, positive definite, shape ``(k, k)``.
        batch: a :class:`pgnotes.rollouts.Rollout` of the policy :math:`a = -K s + \eta`.

    Returns:
        :math:`w` as a ``(k, n)`` matrix, the shape of the gain.
    """
    K, S = _lqr_policy(task, gain, noise_cov)
    if not isinstance(batch, rollouts.Rollout):
        raise TypeError(f"batch must be a pgnotes.rollouts.Rollout, got {type(batch).__name__}")
    if batch.gamma != task.gamma:
        raise ValueError(f"batch was drawn with gamma = {batch.gamma}, but the task has gamma = {task.gamma}")
    states, actions = batch.states.to(torch.float64), batch.actions.to(torch.float64)
    if (
        states.dim() != 3
        or states.shape[-1] != task.state_dim
        or actions.shape != (*states.shape[:-1], task.action_dim)
    ):
        raise ValueError(
            f"batch must hold states (N, T, {task.state_dim}) and actions (N, T, {task.action_dim}), got "
            f"{tuple(states.shape)} and {tuple(actions.shape)}"
        )
    eta = actions + states @ K.mT
    psi = -torch.linalg.solve(S, eta.unsqueeze(-1)) * states.unsqueeze(-2)
    horizon = states.shape[1]
    features = torch.cat([psi.flatten(-2), reinforce.value_features(states, horizon)], -1)
    targets = reinforce.reward_to_go(batch.rewards.to(torch.float64), task.gamma)
    root_weight = batch.discounts.to(torch.float64).sqrt()[None, :, None]
    solution = torch.linalg.lstsq(
        (features * root_weight).flatten(0, 1), (targets.unsqueeze(-1) * root_weight).flatten(0, 1), driver="gelsd"
    ).solution
    return solution[: K.numel()].reshape(K.shape)


def lqr_compatible_target(task: LQRTask, gain: Any, noise_cov: Any, horizon: int) -> torch.Tensor:
    r"""What :func:`lqr_compatible_fit` estimates: :math:`w_T = F_T^{-1} \nabla_K J_T` for episodes of ``horizon`` steps.

    The weighted least-squares fit solves
    :math:`\sum_{t<T} \gamma^t \mathbb{E}[\psi_t (G_t - w^\top\psi_t - v^\top\phi_V)] = 0`;
    the value features drop out because :math:`\mathbb{E}[\psi_t \mid s_t] = 0`, and
    :math:`\sum_{t<T} \gamma^t \mathbb{E}[\psi_t G_t] = \nabla_K J_T`, the gradient of the
    truncated return :math:`J_T` (the reward-to-go form of the policy gradient). So

    .. math::

       F_T = S^{-1} \otimes \sum_{t<T} \gamma^t M_t, \qquad
       w_T = F_T^{-1} \operatorname{vec}(\nabla_K J_T)
       = \operatorname{vec}\Bigl(S\, \nabla_K J_T \Bigl(\sum_{t<T} \gamma^t M_t\Bigr)^{-1}\Bigr),

    with :math:`M_t = \mathbb{E}[s_t s_t^\top]`, :math:`M_0 = X_0 + m_0 m_0^\top`,
    :math:`M_{t+1} = (A - BK) M_t (A - BK)^\top + B S B^\top + W`, and the row-major
    :math:`\operatorname{vec}`. :math:`F_T` is unnormalised (its weights sum to
    :math:`(1 - \gamma^T)/(1 - \gamma)`); as :math:`T \to \infty`,
    :math:`w_T \to (1 - \gamma) F^{-1} \nabla_K J` (:func:`lqr_natural_gradient`).
    :math:`\nabla_K J_T` is taken by autograd through
    ``lqr.expected_return(..., horizon=T)``.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(k, n)``, stabilising.
        noise_cov: :math:`S`, shape ``(k, k)``, positive definite.
        horizon: :math:`T`, the number of steps of each episode, a positive integer.

    Returns:
        :math:`w_T` as a ``(k, n)`` matrix, the shape of the gain.
    """
    horizon = check_count("horizon", horizon)
    K, S = _lqr_policy(task, gain, noise_cov)
    K, S = K.detach(), S.detach()
    with torch.enable_grad():
        leaf = K.clone().requires_grad_(True)
        (grad_gain,) = torch.autograd.grad(lqr.expected_return(task, leaf, S, horizon=horizon), leaf)
    closed_loop = task.A - task.B @ K
    injected = task.B @ S @ task.B.mT + task.W
    moment = task.X0 + torch.outer(task.x0_mean, task.x0_mean)
    weighted = torch.zeros_like(moment)
    for t in range(horizon):
        weighted = weighted + task.gamma**t * moment
        moment = closed_loop @ moment @ closed_loop.mT + injected
    factor = _cholesky_of("discounted sum of state second moments", 0.5 * (weighted + weighted.mT))
    # S G Mbar^-1 = (Mbar^-1 G^T S)^T, with Mbar symmetric.
    return torch.cholesky_solve((S @ grad_gain).mT, factor).mT
