r"""The score of a Gaussian policy with respect to its network parameters, by the chain rule.

A policy network maps a state :math:`s` to the mean :math:`\mu_\theta(s)` and
to a covariance :math:`\Sigma_\theta(s)`, given directly, by a Cholesky factor
:math:`L_\theta(s)` or by a log standard deviation :math:`\log\sigma_\theta(s)`.
The log-density depends on :math:`\theta` only through these heads, so the
multivariable chain rule gives

.. math::

    \nabla_\theta \log \pi_\theta(a \mid s)
    = J_\mu^\top \Sigma^{-1} d + \sum_{i,j} G_{ij}\, \frac{\partial \Sigma_{ij}}{\partial \theta},
    \qquad G = \tfrac12 \bigl( \Sigma^{-1} d d^\top \Sigma^{-1} - \Sigma^{-1} \bigr),

with :math:`d = a - \mu_\theta(s)` and :math:`J_\mu = \partial \mu / \partial \theta`.
The functions here compute exactly this: the upstream gradients
(:math:`\Sigma^{-1} d` and :math:`G`, or their Cholesky and log-std versions)
come from the closed forms of :mod:`pgnotes.gaussian`, and the sums over the
heads' Jacobians are vector-Jacobian products taken by autograd through the
heads only, never through the log-density. Comparing the result with autograd
straight through ``log_prob`` checks the closed forms and the chain rule at
once.

The gradients are those of the weighted sum
:math:`\sum_n w_n \log \pi_\theta(a_n \mid s_n)` over a batch, the quantity a
policy-gradient step differentiates (with :math:`w_n` an advantage or a
return); without weights, :math:`w_n = 1`.

References:
    Williams (1992), section 6. Petersen & Pedersen, The Matrix Cookbook,
    eqs. (57) and (61). Sutton & Barto (2018), section 13.7.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pgnotes import gaussian
from pgnotes._validation import as_float_tensor, broadcast_shapes, check_finite
from pgnotes.policies import GaussianPolicy

__all__ = [
    "mvn_chain_rule",
    "tril_chain_rule",
    "diag_chain_rule",
    "policy_chain_rule",
    "policy_autograd_score",
]

_THROUGH = ("log_std", "scale_tril", "cov")


def _weighted(upstream: torch.Tensor, weights: torch.Tensor | None, event_ndim: int) -> torch.Tensor:
    if weights is None:
        return upstream
    return upstream * weights.reshape(weights.shape + (1,) * event_ndim)


def _check_weights(weights: Any, batch_shape: torch.Size, like: torch.Tensor) -> torch.Tensor | None:
    """Weights as a detached tensor broadcastable to the batch shape of the log-densities."""
    if weights is None:
        return None
    weights = as_float_tensor("weights", weights, like=like).detach().to(like.dtype)
    check_finite("weights", weights)
    try:
        broadcasts = torch.broadcast_shapes(weights.shape, batch_shape) == batch_shape
    except RuntimeError:
        broadcasts = False
    if not broadcasts:
        raise ValueError(
            f"weights of shape {tuple(weights.shape)} must broadcast to the batch shape "
            f"{tuple(batch_shape)} of the log-densities"
        )
    return weights


def _vector_jacobian_products(
    heads: Sequence[tuple[str, torch.Tensor, torch.Tensor]],
    inputs: Sequence[torch.Tensor],
    retain_graph: bool,
) -> tuple[torch.Tensor, ...]:
    r"""``sum over heads of upstream . d head / d input`` for each input, by one reverse pass.

    Heads that do not depend on anything learnable (a fixed standard deviation)
    contribute nothing and are skipped. A per-sample upstream gradient of a
    head shared by the batch (a state-independent :math:`\log\sigma`) is first
    summed down to the head's shape, as the chain rule through the broadcast
    requires.
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("inputs must name at least one tensor to differentiate with respect to")
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, torch.Tensor) or not tensor.requires_grad:
            raise ValueError(f"inputs[{index}] must be a tensor with requires_grad=True")
    outputs, upstreams = [], []
    for name, head, upstream in heads:
        if not head.requires_grad:
            continue
        upstream = upstream.to(head.dtype)
        if upstream.shape != head.shape:
            upstream = upstream.sum_to_size(head.shape)
        outputs.append(head)
        upstreams.append(upstream)
    if not outputs:
        return tuple(torch.zeros_like(tensor) for tensor in inputs)
    gradients = torch.autograd.grad(
        outputs, inputs, grad_outputs=upstreams, retain_graph=retain_graph, allow_unused=True
    )
    return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(inputs, gradients))


def _check_obs_act_batches(obs: Any, act: torch.Tensor, policy: GaussianPolicy) -> None:
    """Observations and actions must have batch shapes that broadcast (named as obs and act)."""
    obs = as_float_tensor("obs", obs, like=policy.mean_head.weight)
    broadcast_shapes(**{"batch shape of obs": obs.shape[:-1], "batch shape of act": act.shape[:-1]})


def _batch_shape(a: torch.Tensor, mean: torch.Tensor, matrix_batch: torch.Size) -> torch.Size:
    return broadcast_shapes(
        **{"batch shape of a": a.shape[:-1], "batch shape of mean": mean.shape[:-1], "batch shape of the scale": matrix_batch}
    )


def mvn_chain_rule(
    a: Any,
    mean: torch.Tensor,
    cov: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    *,
    weights: Any = None,
    retain_graph: bool = False,
) -> tuple[torch.Tensor, ...]:
    r"""Gradient of :math:`\sum_n w_n \log \mathcal{N}(a_n; \mu_n, \Sigma_n)` through a mean head and a covariance head.

    .. math::

        \nabla_\theta \sum_n w_n \log \pi_n
        = \sum_n w_n \Bigl( J_{\mu_n}^\top \Sigma_n^{-1} d_n
          + \sum_{i,j} (G_n)_{ij} \frac{\partial (\Sigma_n)_{ij}}{\partial \theta} \Bigr),

    with :math:`(\Sigma^{-1} d, G)` from :func:`pgnotes.gaussian.mvn_score`: the
    gradient with respect to all :math:`k^2` entries of :math:`\Sigma`, so the sum
    runs over every :math:`(i, j)` and an off-diagonal pair is counted twice, as it
    must be for a symmetric :math:`\Sigma_\theta(s)`.

    Args:
        a: Actions of shape (..., k) (constants: no gradient flows into them).
        mean: The mean head's output :math:`\mu_\theta(s)`, shape (..., k), attached to the graph.
        cov: The covariance head's output :math:`\Sigma_\theta(s)`, symmetric positive definite,
            shape (..., k, k), attached to the graph.
        inputs: The tensors to differentiate with respect to (e.g. ``list(policy.parameters())``).
        weights: Optional per-sample weights :math:`w_n`, broadcastable to the batch shape.
        retain_graph: Keep the graph of ``mean`` and ``cov`` for another backward pass.

    Returns:
        One gradient per input, with the input's shape (zeros for an input the heads do not use).

    References:
        Book: equation :eq:`state-dependent-chain-rule` of :doc:`/book/state_dependent_covariance`.
        Petersen & Pedersen, The Matrix Cookbook, eqs. (57), (61); Williams (1992), section 6.
    """
    d_mean, d_cov = gaussian.mvn_score(a, mean.detach(), cov.detach())
    weights = _check_weights(weights, _batch_shape(d_mean, mean, cov.shape[:-2]), d_mean)
    heads = [("mean", mean, _weighted(d_mean, weights, 1)), ("cov", cov, _weighted(d_cov, weights, 2))]
    return _vector_jacobian_products(heads, inputs, retain_graph)


def tril_chain_rule(
    a: Any,
    mean: torch.Tensor,
    scale_tril: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    *,
    weights: Any = None,
    retain_graph: bool = False,
) -> tuple[torch.Tensor, ...]:
    r"""Gradient of :math:`\sum_n w_n \log \mathcal{N}(a_n; \mu_n, L_n L_n^\top)` through a mean head and a Cholesky head.

    .. math::

        \nabla_\theta \sum_n w_n \log \pi_n
        = \sum_n w_n \Bigl( J_{\mu_n}^\top \Sigma_n^{-1} d_n
          + \sum_{i \ge j} \bigl(\operatorname{tril}(2 G_n L_n)\bigr)_{ij}
            \frac{\partial (L_n)_{ij}}{\partial \theta} \Bigr),

    with the upstream gradients from :func:`pgnotes.gaussian.mvn_score_tril`.

    Args:
        a: Actions of shape (..., k).
        mean: The mean head's output, shape (..., k), attached to the graph.
        scale_tril: The Cholesky head's output :math:`L_\theta(s)`, lower triangular with a
            positive diagonal, shape (..., k, k), attached to the graph.
        inputs: The tensors to differentiate with respect to.
        weights: Optional per-sample weights, broadcastable to the batch shape.
        retain_graph: Keep the graph for another backward pass.

    Returns:
        One gradient per input, with the input's shape.

    References:
        Book: equation :eq:`state-dependent-chain-rule` of :doc:`/book/state_dependent_covariance`.
        Petersen & Pedersen, The Matrix Cookbook, section 2; Williams (1992), section 6.
    """
    d_mean, d_tril = gaussian.mvn_score_tril(a, mean.detach(), scale_tril.detach())
    weights = _check_weights(weights, _batch_shape(d_mean, mean, scale_tril.shape[:-2]), d_mean)
    heads = [("mean", mean, _weighted(d_mean, weights, 1)), ("scale_tril", scale_tril, _weighted(d_tril, weights, 2))]
    return _vector_jacobian_products(heads, inputs, retain_graph)


def diag_chain_rule(
    a: Any,
    mean: torch.Tensor,
    log_std: torch.Tensor,
    inputs: Sequence[torch.Tensor],
    *,
    weights: Any = None,
    retain_graph: bool = False,
) -> tuple[torch.Tensor, ...]:
    r"""Gradient of :math:`\sum_n w_n \log \mathcal{N}(a_n; \mu_n, \operatorname{diag}\sigma_n^2)` through a mean head and a log-std head.

    .. math::

        \nabla_\theta \sum_n w_n \log \pi_n
        = \sum_n w_n \sum_{i=1}^{k} \Bigl( \frac{d_{n,i}}{\sigma_{n,i}^2} \frac{\partial \mu_{n,i}}{\partial \theta}
          + \Bigl( \frac{d_{n,i}^2}{\sigma_{n,i}^2} - 1 \Bigr) \frac{\partial \log \sigma_{n,i}}{\partial \theta} \Bigr),

    with the upstream gradients from :func:`pgnotes.gaussian.diag_score`. A
    ``log_std`` of shape (k,) shared by the batch (a state-independent
    parameter) receives the sum of the per-sample terms; a fixed ``log_std``
    (not requiring grad) contributes nothing.

    Args:
        a: Actions of shape (..., k).
        mean: The mean head's output, shape (..., k), attached to the graph.
        log_std: :math:`\log\sigma`, broadcastable with ``mean``: a head's output of shape
            (..., k), a parameter of shape (k,), or a constant.
        inputs: The tensors to differentiate with respect to.
        weights: Optional per-sample weights, broadcastable to the batch shape.
        retain_graph: Keep the graph for another backward pass.

    Returns:
        One gradient per input, with the input's shape.

    References:
        Book: equation :eq:`state-dependent-chain-rule` of :doc:`/book/state_dependent_covariance`.
        Williams (1992), section 6; Sutton & Barto (2018), section 13.7.
    """
    d_mean, d_log_std = gaussian.diag_score(a, mean.detach(), log_std.detach())
    weights = _check_weights(weights, d_mean.shape[:-1], d_mean)
    heads = [("mean", mean, _weighted(d_mean, weights, 1)), ("log_std", log_std, _weighted(d_log_std, weights, 1))]
    return _vector_jacobian_products(heads, inputs, retain_graph)


def _learnable(policy: GaussianPolicy) -> dict[str, torch.Tensor]:
    parameters = {name: p for name, p in policy.named_parameters() if p.requires_grad}
    if not parameters:
        raise ValueError("the policy has no parameter with requires_grad=True")
    return parameters


def policy_chain_rule(
    policy: GaussianPolicy,
    obs: Any,
    act: Any,
    *,
    weights: Any = None,
    through: str | None = None,
) -> dict[str, torch.Tensor]:
    r"""Gradient of :math:`\sum_n w_n \log \pi_\theta(a_n \mid s_n)` for a :mod:`pgnotes.policies` policy, by the chain rule.

    The policy's heads are evaluated at ``obs`` and the chain rule is applied
    through the head named by ``through``:

    - ``"log_std"``: :math:`(\mu, \log\sigma)`, :func:`diag_chain_rule` (diagonal heads only);
    - ``"scale_tril"``: :math:`(\mu, L)`, :func:`tril_chain_rule`;
    - ``"cov"``: :math:`(\mu, \Sigma = L L^\top)`, :func:`mvn_chain_rule`.

    All three give the same gradient; the default is ``"log_std"`` for the
    diagonal heads and ``"scale_tril"`` for :class:`pgnotes.policies.CholeskyPolicy`.

    Args:
        policy: A policy from :mod:`pgnotes.policies`.
        obs: States, shape (..., n).
        act: Actions, shape (..., k).
        weights: Optional per-sample weights, broadcastable to the batch shape.
        through: ``"log_std"``, ``"scale_tril"``, ``"cov"`` or None for the default.

    Returns:
        The gradient of each learnable parameter, by name (as in ``policy.named_parameters()``).

    References:
        Book: equation :eq:`state-dependent-chain-rule` of :doc:`/book/state_dependent_covariance`.
        Williams (1992), section 6; Petersen & Pedersen, The Matrix Cookbook, eqs. (57), (61).
    """
    diagonal = hasattr(policy, "log_std")
    if through is None:
        through = "log_std" if diagonal else "scale_tril"
    if through not in _THROUGH:
        raise ValueError(f"through must be one of {_THROUGH} or None, got {through!r}")
    if through == "log_std" and not diagonal:
        raise ValueError(f"through='log_std' needs a diagonal policy; {type(policy).__name__} has a full covariance")
    parameters = _learnable(policy)
    act = as_float_tensor("act", act, like=policy.mean_head.weight)
    check_finite("act", act.detach())
    _check_obs_act_batches(obs, act, policy)
    mean = policy.mean(obs)
    inputs = list(parameters.values())
    if through == "log_std":
        gradients = diag_chain_rule(act, mean, policy.log_std(obs), inputs, weights=weights)
    elif through == "scale_tril":
        gradients = tril_chain_rule(act, mean, policy.scale_tril(obs), inputs, weights=weights)
    else:
        gradients = mvn_chain_rule(act, mean, policy.covariance(obs), inputs, weights=weights)
    return dict(zip(parameters, gradients))


def policy_autograd_score(
    policy: GaussianPolicy, obs: Any, act: Any, *, weights: Any = None
) -> dict[str, torch.Tensor]:
    r"""Gradient of :math:`\sum_n w_n \log \pi_\theta(a_n \mid s_n)` by autograd through ``torch.distributions``.

    The reference for :func:`policy_chain_rule`: autograd differentiates
    ``policy.distribution(obs).log_prob(act)`` (``Independent(Normal)`` or
    ``MultivariateNormal``), with no closed form involved.

    Args:
        policy: A policy from :mod:`pgnotes.policies`.
        obs: States, shape (..., n).
        act: Actions, shape (..., k).
        weights: Optional per-sample weights, broadcastable to the batch shape.

    Returns:
        The gradient of each learnable parameter, by name.

    References:
        PyTorch contributors, torch.distributions.
    """
    parameters = _learnable(policy)
    act = as_float_tensor("act", act, like=policy.mean_head.weight)
    check_finite("act", act.detach())
    _check_obs_act_batches(obs, act, policy)
    log_prob = policy.distribution(obs).log_prob(act)
    weights = _check_weights(weights, log_prob.shape, log_prob)
    objective = (log_prob if weights is None else weights * log_prob).sum()
    gradients = torch.autograd.grad(objective, list(parameters.values()), allow_unused=True)
    return {name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(parameters.items(), gradients)}
