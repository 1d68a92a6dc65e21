r"""Numerical accuracy of Gaussian and squashed-Gaussian log-densities: references and the usual shortcuts.

Two kinds of functions, used to measure how accurate the computations of
:mod:`pgnotes.gaussian` are and what the common alternatives cost in accuracy:

- **High-precision references**, computed with ``mpmath`` at a chosen number
  of significant digits (50 by default). They treat their floating-point
  inputs as exact numbers, so the difference between a float64 computation and
  the reference is the error of the float64 algorithm alone:
  :func:`mvn_log_prob_reference`, :func:`mvn_score_reference`,
  :func:`tanh_log_abs_det_jacobian_reference` and
  :func:`squashed_normal_entropy_reference`.
- **The shortcuts found in code**, implemented faithfully so that they can be
  compared with the references: the log-density and score of a full-covariance
  Gaussian through an explicit inverse and determinant
  (:func:`mvn_log_prob_explicit_inverse`, :func:`mvn_score_explicit_inverse`),
  and the naive and :math:`\varepsilon`-regularised tanh corrections
  (:func:`tanh_log_abs_det_jacobian_naive`,
  :func:`tanh_log_abs_det_jacobian_eps`). They are here to be measured, not
  used: :mod:`pgnotes.gaussian` has the accurate versions.

:func:`relative_error` is the normwise relative error used throughout.

References:
    Higham (2002), Accuracy and Stability of Numerical Algorithms, 2nd ed.,
    chapters 1 and 10. Petersen & Pedersen, The Matrix Cookbook, eqs. (57),
    (61). Haarnoja et al. (2018), Soft Actor-Critic, appendix C.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import torch

from pgnotes._validation import (
    as_float_tensor,
    as_float_tensors,
    broadcast_shapes,
    check_real,
    check_finite,
    check_symmetric,
)
from pgnotes.gaussian import _mvn_inputs

__all__ = [
    "relative_error",
    "mvn_log_prob_reference",
    "mvn_score_reference",
    "mvn_log_prob_explicit_inverse",
    "mvn_score_explicit_inverse",
    "tanh_log_abs_det_jacobian_reference",
    "tanh_log_abs_det_jacobian_naive",
    "tanh_log_abs_det_jacobian_eps",
    "squashed_normal_entropy_reference",
]

_LOG_2PI = math.log(2.0 * math.pi)


def relative_error(computed: Any, reference: Any) -> float:
    r"""Normwise relative error :math:`\max_i |x_i - y_i| / \max_i |y_i|` of ``computed`` against ``reference``.

    Both are compared in float64. A reference that is exactly zero gives the
    absolute error instead (0 if ``computed`` is zero too). NaN or inf in
    ``computed`` gives ``inf``.

    Args:
        computed: The value to judge (tensor or number).
        reference: The exact (or high-precision) value, broadcastable with ``computed``.

    Returns:
        The relative error as a Python float.

    References:
        Higham (2002), section 1.2 (normwise relative error).
    """
    x = as_float_tensor("computed", computed).detach().to(torch.float64)
    y = as_float_tensor("reference", reference).detach().to(torch.float64)
    check_finite("reference", y)
    shape = broadcast_shapes(computed=x, reference=y)
    x, y = x.expand(shape), y.expand(shape)
    if not bool(torch.isfinite(x).all()):
        return math.inf
    error = float((x - y).abs().max()) if x.numel() else 0.0
    scale = float(y.abs().max()) if y.numel() else 0.0
    return error / scale if scale > 0 else error


def _mvn_tensors(a: Any, mean: Any, cov: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate (a, mean, cov) for the references and broadcast them to one batch shape."""
    # The argument rules of pgnotes.gaussian (one home for them); then exact symmetry.
    a, mean, cov = _mvn_inputs(a, mean, cov, "cov")
    # The reference treats the given entries as exact, so the matrix must be exactly symmetric:
    # otherwise G below would not be the gradient, and the "exact" answer would depend on which
    # triangle an algorithm reads.
    check_symmetric("cov", cov, 0.0)
    k = cov.shape[-1]
    batch = torch.broadcast_shapes(a.shape[:-1], mean.shape[:-1], cov.shape[:-2])
    return a.expand(batch + (k,)), mean.expand(batch + (k,)), cov.expand(batch + (k, k))


def _mvn_batch_entries(a: Any, mean: Any, cov: Any) -> tuple[torch.Size, int, list[tuple[torch.Tensor, ...]]]:
    """The batch shape, ``k`` and each batch entry's ``(a, mean, cov)``, for the per-entry mpmath loops."""
    a, mean, cov = _mvn_tensors(a, mean, cov)
    k = cov.shape[-1]
    entries = list(zip(a.reshape(-1, k), mean.reshape(-1, k), cov.reshape(-1, k, k)))
    return a.shape[:-1], k, entries


def _mp_matrix(t: torch.Tensor) -> mpmath.matrix:
    """An mpmath matrix (or column) holding exactly the floating-point values of ``t``."""
    values = t.detach().to(torch.float64).cpu().tolist()
    return mpmath.matrix(values)


def _mvn_reference_one(a: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, index: int) -> tuple:
    """log N, Sigma^{-1} d and G for one (k,), (k,), (k, k) triple, at the current mpmath precision."""
    k = cov.shape[-1]
    sigma = _mp_matrix(cov)
    residual = _mp_matrix(a) - _mp_matrix(mean)
    try:
        tril = mpmath.cholesky(sigma)
    except ValueError as exc:
        raise ValueError(f"cov must be positive definite, but cov (batch element {index}) is not") from exc
    # At 50 digits the rounding error of the inverse (about cond * 1e-50) is far below float64's
    # resolution for any condition number below 1e30, so the plain inverse is good enough here.
    cov_inv = sigma**-1
    w = cov_inv * residual
    quadratic = sum(residual[i] * w[i] for i in range(k))
    half_log_det = sum(mpmath.log(tril[i, i]) for i in range(k))
    log_prob = -quadratic / 2 - half_log_det - k * mpmath.log(2 * mpmath.pi) / 2
    g = (w * w.T - cov_inv) / 2
    return log_prob, w, g


def _with_digits(digits: int):
    if not isinstance(digits, int) or digits < 17:
        raise ValueError(f"digits must be an integer >= 17 (more than float64 holds), got {digits!r}")
    return mpmath.workdps(digits)


def mvn_log_prob_reference(a: Any, mean: Any, cov: Any, *, digits: int = 50) -> torch.Tensor:
    r"""High-precision log-density of a full-covariance Gaussian, rounded to float64.

    .. math::

        \log \mathcal{N}(a; \mu, \Sigma)
        = -\tfrac12 d^\top \Sigma^{-1} d - \tfrac12 \log\det \Sigma - \tfrac{k}{2} \log 2\pi,
        \qquad d = a - \mu,

    evaluated in ``mpmath`` with ``digits`` significant digits on the given
    floating-point entries taken as exact numbers. With 50 digits the result is
    correctly rounded to float64 for condition numbers up to about
    :math:`10^{30}`, so it is the reference against which float64 algorithms are
    judged. Slow (a Python loop over the batch): for small ``k`` and batches.

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        cov: Exactly symmetric positive-definite covariances of shape (..., k, k).
        digits: Working precision in significant decimal digits (at least 17).

    Returns:
        The log-densities as a float64 tensor with the broadcast batch shape.

    Raises:
        ValueError: If the shapes do not match, an entry is not finite, ``cov`` is not
            exactly symmetric or not positive definite.

    References:
        Higham (2002), section 1.2; Petersen & Pedersen, The Matrix Cookbook, section 8.1.
    """
    batch, _, entries = _mvn_batch_entries(a, mean, cov)
    with _with_digits(digits):
        values = [float(_mvn_reference_one(x, m, c, i)[0]) for i, (x, m, c) in enumerate(entries)]
    return torch.tensor(values, dtype=torch.float64).reshape(batch)


def mvn_score_reference(a: Any, mean: Any, cov: Any, *, digits: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    r"""High-precision score of a full-covariance Gaussian with respect to its mean and covariance.

    .. math::

        \frac{\partial \log \mathcal{N}}{\partial \mu} = \Sigma^{-1} d,
        \qquad
        G = \frac{\partial \log \mathcal{N}}{\partial \Sigma}
          = \tfrac12 \bigl( \Sigma^{-1} d d^\top \Sigma^{-1} - \Sigma^{-1} \bigr),

    in the convention of :func:`pgnotes.gaussian.mvn_score` (all :math:`k^2`
    entries of :math:`\Sigma` independent, evaluated at a symmetric
    :math:`\Sigma`), computed in ``mpmath`` with ``digits`` significant digits
    and rounded to float64; see :func:`mvn_log_prob_reference`.

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        cov: Exactly symmetric positive-definite covariances of shape (..., k, k).
        digits: Working precision in significant decimal digits (at least 17).

    Returns:
        ``(d_mean, d_cov)``, float64 tensors of shapes (..., k) and (..., k, k).

    Raises:
        ValueError: As :func:`mvn_log_prob_reference`.

    References:
        Petersen & Pedersen, The Matrix Cookbook, eqs. (57), (61).
    """
    batch, k, entries = _mvn_batch_entries(a, mean, cov)
    d_means, d_covs = [], []
    with _with_digits(digits):
        for i, (x, m, c) in enumerate(entries):
            _, w, g = _mvn_reference_one(x, m, c, i)
            d_means.append([float(w[r]) for r in range(k)])
            d_covs.append([[float(g[r, c]) for c in range(k)] for r in range(k)])
    d_mean = torch.tensor(d_means, dtype=torch.float64).reshape(batch + (k,))
    d_cov = torch.tensor(d_covs, dtype=torch.float64).reshape(batch + (k, k))
    return d_mean, d_cov


def _naive_inputs(a: Any, mean: Any, cov: Any) -> tuple[torch.Tensor, torch.Tensor]:
    # The same argument rules as pgnotes.gaussian (finite, event sizes, batch shapes); only the
    # arithmetic afterwards is the textbook one.
    a, mean, cov = _mvn_inputs(a, mean, cov, "cov")
    return a - mean, cov


def mvn_log_prob_explicit_inverse(a: Any, mean: Any, cov: Any) -> torch.Tensor:
    r"""Log-density of a full-covariance Gaussian the textbook way: explicit inverse and determinant.

    .. math::

        -\tfrac12 d^\top (\Sigma^{-1}) d - \tfrac12 \log(\det \Sigma) - \tfrac{k}{2} \log 2\pi,

    with ``torch.linalg.inv`` and ``torch.linalg.det`` (both through an LU
    factorisation with partial pivoting). It is here to be compared with the
    Cholesky route of :func:`pgnotes.gaussian.mvn_log_prob`. Its arguments
    follow the package's input rules (dtypes, finite entries, shapes), but the
    covariance is deliberately not checked, like in the code it stands for: it
    returns a number for a matrix that is not positive definite as long as its
    determinant is positive, and :math:`\det\Sigma` under- or overflows for moderate ``k``
    (e.g. :math:`\Sigma = 0.01 I` in float32 for :math:`k \ge 20`), where
    :math:`\log\det\Sigma` itself is an ordinary number.

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        cov: Covariances of shape (..., k, k).

    Returns:
        The log-densities, with the broadcast batch shape.

    References:
        Higham (2002), section 14.1 (why an explicit inverse is rarely needed).
    """
    residual, cov = _naive_inputs(a, mean, cov)
    k = cov.shape[-1]
    cov_inv = torch.linalg.inv(cov)
    quadratic = (residual.unsqueeze(-2) @ cov_inv @ residual.unsqueeze(-1)).squeeze(-1).squeeze(-1)
    return -0.5 * quadratic - 0.5 * torch.log(torch.linalg.det(cov)) - 0.5 * k * _LOG_2PI


def mvn_score_explicit_inverse(a: Any, mean: Any, cov: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Score of a full-covariance Gaussian through an explicit inverse.

    .. math::

        \frac{\partial \log \mathcal{N}}{\partial \mu} = \Sigma^{-1} d,
        \qquad
        G = \tfrac12 \bigl( \Sigma^{-1} d d^\top \Sigma^{-1} - \Sigma^{-1} \bigr),

    with :math:`\Sigma^{-1}` from ``torch.linalg.inv``, for comparison with
    :func:`pgnotes.gaussian.mvn_score` (same convention). Like
    :func:`mvn_log_prob_explicit_inverse`, it does not check that the covariance
    is positive definite.

    Args:
        a: Actions of shape (..., k).
        mean: Means of shape (..., k).
        cov: Covariances of shape (..., k, k).

    Returns:
        ``(d_mean, d_cov)`` of shapes (..., k) and (..., k, k).

    References:
        Petersen & Pedersen, The Matrix Cookbook, eqs. (57), (61).
    """
    residual, cov = _naive_inputs(a, mean, cov)
    cov_inv = torch.linalg.inv(cov)
    d_mean = (cov_inv @ residual.unsqueeze(-1)).squeeze(-1)
    d_cov = 0.5 * (d_mean.unsqueeze(-1) * d_mean.unsqueeze(-2) - cov_inv)
    return d_mean, d_cov


def tanh_log_abs_det_jacobian_reference(u: Any, *, digits: int = 50) -> torch.Tensor:
    r"""High-precision :math:`\log(1 - \tanh^2 u)`, elementwise, rounded to float64.

    Evaluated in ``mpmath`` as :math:`-2 \log\cosh u`, the same function
    (:math:`1 - \tanh^2 u = 1/\cosh^2 u`) without the cancellation of
    :math:`1 - \tanh^2 u`, so it is correctly rounded for every finite ``u``
    (``mpmath`` numbers do not overflow). The entries of ``u`` are taken as
    exact numbers: a float32 ``u`` gives the exact correction *at that float32
    value*, which is what a float32 computation should be compared with.

    Args:
        u: Pre-squash values, any shape.
        digits: Working precision in significant decimal digits (at least 17).

    Returns:
        A float64 tensor of the shape of ``u``.

    References:
        Haarnoja et al. (2018), Soft Actor-Critic, appendix C, eq. (21).
    """
    u = as_float_tensor("u", u)
    check_finite("u", u)
    with _with_digits(digits):
        values = [
            float(-2 * mpmath.log(mpmath.cosh(mpmath.mpf(x))))
            for x in u.detach().to(torch.float64).reshape(-1).tolist()
        ]
    return torch.tensor(values, dtype=torch.float64).reshape(u.shape)


def tanh_log_abs_det_jacobian_naive(u: Any) -> torch.Tensor:
    r"""The tanh correction as written, ``log(1 - tanh(u)**2)``: the form that fails for large :math:`|u|`.

    Once :math:`\tanh u` rounds to :math:`\pm 1` (:math:`|u| \gtrsim 9` in
    float32, :math:`|u| \gtrsim 19` in float64) this is :math:`\log 0 = -\infty`,
    and well before that it has lost most of its digits to the cancellation in
    :math:`1 - \tanh^2 u`. Use :func:`pgnotes.gaussian.tanh_log_abs_det_jacobian`.

    Args:
        u: Pre-squash values, any shape.

    Returns:
        ``log(1 - tanh(u)**2)`` in the dtype of ``u``.

    References:
        Haarnoja et al. (2018), Soft Actor-Critic, appendix C, eq. (21).
    """
    (u,) = as_float_tensors(u=u)
    return torch.log(1.0 - torch.tanh(u).square())


def tanh_log_abs_det_jacobian_eps(u: Any, eps: float = 1e-6) -> torch.Tensor:
    r"""The :math:`\varepsilon`-regularised tanh correction :math:`\log(1 - \tanh^2 u + \varepsilon)`.

    This is the form of the original Soft Actor-Critic implementation and of
    Stable-Baselines3's squashed Gaussian (there written with the action
    :math:`a = \tanh u` as ``log(1 - a**2 + eps)``), both with
    :math:`\varepsilon = 10^{-6}`. It is finite everywhere, but it is not
    :math:`\log(1 - \tanh^2 u)`: its relative error inside the logarithm is
    :math:`\varepsilon / (1 - \tanh^2 u) \approx \varepsilon e^{2|u|} / 4`, and
    for :math:`|u| \gtrsim \tfrac12 \log(4/\varepsilon)` (7.6 for
    :math:`\varepsilon = 10^{-6}`) it levels off at :math:`\log \varepsilon`
    while the true value keeps falling like :math:`2\log 2 - 2|u|`.

    Args:
        u: Pre-squash values, any shape.
        eps: The regulariser :math:`\varepsilon \ge 0`.

    Returns:
        ``log(1 - tanh(u)**2 + eps)`` in the dtype of ``u``.

    References:
        Haarnoja et al. (2018), Soft Actor-Critic, appendix C; Raffin et al. (2021),
        Stable-Baselines3.
    """
    (u,) = as_float_tensors(u=u)
    eps = check_real("eps", eps, low=0.0)
    return torch.log(1.0 - torch.tanh(u).square() + eps)


def squashed_normal_entropy_reference(mean: float, std: float, *, digits: int = 30) -> float:
    r"""Differential entropy of :math:`a = \tanh u`, :math:`u \sim \mathcal{N}(\mu, \sigma^2)` (one dimension).

    By the change of variables, :math:`\log \pi(a) = \log \mathcal{N}(u) - \log(1 - \tanh^2 u)`, so

    .. math::

        H[a] = -\mathbb{E}[\log \pi(a)]
             = \tfrac12 \log(2\pi e \sigma^2) + \mathbb{E}_{u}\bigl[\log(1 - \tanh^2 u)\bigr],

    where the expectation is computed by ``mpmath`` quadrature of
    :math:`-2\log\cosh u` against the Gaussian density. For a diagonal
    Gaussian in :math:`k` dimensions the entropies of the components add.

    Args:
        mean: The pre-squash mean :math:`\mu` (a finite number).
        std: The pre-squash standard deviation :math:`\sigma > 0`.
        digits: Working precision in significant decimal digits (at least 17).

    Returns:
        :math:`H[a]` in nats, as a Python float.

    References:
        Haarnoja et al. (2018), Soft Actor-Critic, appendix C.
    """
    mean_t = torch.tensor(check_real("mean", mean), dtype=torch.float64)
    std_t = torch.tensor(check_real("std", std, low=0.0, low_open=True), dtype=torch.float64)
    with _with_digits(digits):
        mu, sigma = mpmath.mpf(float(mean_t)), mpmath.mpf(float(std_t))

        def integrand(u: mpmath.mpf) -> mpmath.mpf:
            density = mpmath.exp(-((u - mu) / sigma) ** 2 / 2) / (sigma * mpmath.sqrt(2 * mpmath.pi))
            return density * (-2 * mpmath.log(mpmath.cosh(u)))

        # Split at the mean and at 0 (where log cosh u bends): the quadrature sees smooth pieces.
        points = sorted({mu - 8 * sigma, min(mu, mpmath.mpf(0)), max(mu, mpmath.mpf(0)), mu + 8 * sigma})
        expected_correction = mpmath.quad(integrand, [-mpmath.inf, *points, mpmath.inf])
        gaussian_entropy = mpmath.log(2 * mpmath.pi * mpmath.e * sigma**2) / 2
        return float(gaussian_entropy + expected_correction)
