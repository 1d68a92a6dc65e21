r"""Pathwise policy gradients: through a model of the dynamics, through a critic, and deterministic.

A Gaussian policy acts by :math:`a = \mu_\theta(s) + L_\theta(s)\,\varepsilon` with
:math:`\varepsilon \sim \mathcal{N}(0, I)` (for the linear policies of
:mod:`pgnotes.lqr`, :math:`a = -K s + L \varepsilon`). With the noise held
fixed, the action is a differentiable function of :math:`\theta`, and a gradient
can flow *along the path* from the objective back to :math:`\theta`:

- **through a model** (:func:`model_gradient_estimates`): when the dynamics
  :math:`s_{t+1} = A s_t + B a_t + w_t` and the reward are known and
  differentiable, the whole discounted return of an episode is a function of
  :math:`\theta` and of the noises :math:`(s_0, \varepsilon_t, w_t)`, and
  backpropagation through time gives one estimate of :math:`\nabla_\theta J_T` per
  episode (Heess et al. 2015, SVG(:math:`\infty`)), unbiased when differentiation
  and expectation may be swapped (see :func:`model_gradient_estimates`);
- **through a critic** (:func:`critic_gradient_estimates`): with an action
  value :math:`Q(s, a)`, the per-state estimate
  :math:`\nabla_\theta Q(s, a_\theta(s, \varepsilon))
  = (\partial a / \partial \theta)^\top \nabla_a Q(s, a)`, optionally with
  SAC's entropy term :math:`-\alpha \log \pi_\theta(a_\theta \mid s)`
  differentiated along the path too (the :math:`\alpha`-weighted actor loss of
  Haarnoja et al. 2018b). With the exact :math:`Q^\pi` and the states of the
  policy's own episodes weighted by :math:`\gamma^t`, its mean is the policy
  gradient; states averaged without the :math:`\gamma^t` (a replay buffer) give
  another vector, even with the exact :math:`Q^\pi`;
- **deterministic** (:func:`deterministic_policy_gradient_estimates`): the same at
  :math:`\varepsilon = 0`, :math:`\nabla_\theta \mu_\theta(s)^\top \nabla_a
  Q(s, a)|_{a = \mu_\theta(s)}` (Silver et al. 2014).

Every function returns one estimate per episode or per state, keyed by the
policy's parameter names like :func:`pgnotes.reinforce.per_episode_gradients`, so
that :func:`pgnotes.monte_carlo.summarize` gives means with standard errors and
the two families can be compared on the same episodes. Policies are those of
:mod:`pgnotes.policies`; per-sample gradients are computed with
``torch.func.vmap`` of ``torch.func.grad``.

The random numbers of :func:`reparameterised_rollout` are drawn from the
generator in the order :func:`pgnotes.rollouts.rollout` draws them (initial
states, then per step the action noise and the process noise), so the same seed
gives the same episodes to a pathwise and a score-function estimate.

The module is longer than most because it holds the three pathwise families the
chapter compares (through a model, through a critic, deterministic) with the
validation of their policy, task, noise and memory arguments; each estimator is
a short function.

References:
    Silver, D., Lever, G., Heess, N., Degris, T., Wierstra, D. and Riedmiller, M.
    (2014). Deterministic policy gradient algorithms. ICML.

    Heess, N., Wayne, G., Silver, D., Lillicrap, T., Erez, T. and Tassa, Y. (2015).
    Learning continuous control policies by stochastic value gradients. NIPS.

    Haarnoja, T., Zhou, A., Abbeel, P. and Levine, S. (2018). Soft actor-critic.
    ICML.

    Haarnoja, T., Zhou, A., Hartikainen, K., Tucker, G., Ha, S., Tan, J., Kumar, V.,
    Zhu, H., Gupta, A., Abbeel, P. and Levine, S. (2018b). Soft actor-critic
    algorithms and applications. arXiv:1812.05905.

    Nota, C. and Thomas, P. S. (2020). Is the policy gradient a gradient? AAMAS.

    Mohamed, S., Rosca, M., Figurnov, M. and Mnih, A. (2020). Monte Carlo gradient
    estimation in machine learning. JMLR 21(132).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from pgnotes._validation import (
    _available_memory,
    as_float_tensor,
    check_callable,
    check_count,
    check_finite,
    check_generator,
    check_real,
)
from pgnotes.lqr import LQRTask, _check_task, _psd_sqrt
from pgnotes.rollouts import Rollout, _discounts, _policy_dtype_device, _quadratic_form, check_policy_matches

__all__ = [
    "EpisodeNoise",
    "draw_episode_noise",
    "graph_bytes",
    "reparameterised_rollout",
    "model_gradient_estimates",
    "critic_gradient_estimates",
    "deterministic_policy_gradient_estimates",
]

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Tensors kept per episode and per step by the backward pass through a rollout,
# in units of (n + k) float64 numbers, plus k * k for the product L eps: the
# state, the mean, the noise product, the action, the reward terms and their
# gradients. Measured peaks of the 2-D task stay below this bound.
_GRAPH_FLOATS_PER_DIM = 24


# --------------------------------------------------------------------------- #
# Argument checks
# --------------------------------------------------------------------------- #


def _check_policy(policy: Any) -> nn.Module:
    if not isinstance(policy, nn.Module) or not all(hasattr(policy, m) for m in ("mean", "scale_tril", "log_prob")):
        raise TypeError(
            "policy must be a pgnotes.policies policy (an nn.Module with mean, scale_tril and log_prob), "
            f"got {type(policy).__name__}"
        )
    if not any(p.requires_grad for p in policy.parameters()):
        raise ValueError("policy has no trainable parameters: there is nothing to differentiate")
    return policy


def graph_bytes(task: LQRTask, episodes: int, horizon: int) -> int:
    r"""An upper estimate of the memory that backpropagating through ``episodes`` rollouts of ``horizon`` steps needs.

    The backward pass keeps every intermediate of every step: about
    ``episodes * horizon * (24 (n + k) + k^2)`` float64 numbers for state
    dimension :math:`n` and action dimension :math:`k`.
    """
    task = _check_task(task)
    episodes, horizon = check_count("episodes", episodes), check_count("horizon", horizon)
    n, k = task.state_dim, task.action_dim
    return 8 * episodes * horizon * (_GRAPH_FLOATS_PER_DIM * (n + k) + k * k)


def _check_memory(task: LQRTask, episodes: int, horizon: int, memory_limit: int | None) -> None:
    limit = _available_memory() if memory_limit is None else check_count("memory_limit", memory_limit)
    needed = graph_bytes(task, episodes, horizon)
    if needed > limit:
        raise ValueError(
            f"episodes={episodes} and horizon={horizon} need about {needed / 2**30:.3g} GiB to backpropagate "
            f"through the rollouts, more than memory_limit = {limit / 2**30:.3g} GiB: use fewer episodes "
            "(and average several batches) or a shorter horizon"
        )


# --------------------------------------------------------------------------- #
# Through a model: a differentiable rollout
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class EpisodeNoise:
    r"""The random numbers of a batch of episodes, drawn before any gradient is taken.

    Attributes:
        initial_states: :math:`s_0`, shape ``(episodes, n)``.
        action_noise: :math:`\varepsilon_t \sim \mathcal{N}(0, I)`, shape ``(episodes, T, k)``.
        process_noise: :math:`w_t \sim \mathcal{N}(0, W)`, shape ``(episodes, T, n)``.
    """

    initial_states: torch.Tensor
    action_noise: torch.Tensor
    process_noise: torch.Tensor


def draw_episode_noise(
    task: LQRTask,
    *,
    episodes: int,
    horizon: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> EpisodeNoise:
    r"""Draw the initial states, action noise and process noise of ``episodes`` episodes of ``horizon`` steps.

    In the order of :func:`pgnotes.rollouts.rollout`: the initial states, then for
    each step the action noise and the process noise.
    """
    task = _check_task(task)
    episodes, horizon = check_count("episodes", episodes), check_count("horizon", horizon)
    check_generator("generator", generator)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    n, k = task.state_dim, task.action_dim
    x0_root = _psd_sqrt(task.X0).to(dtype)
    w_root = _psd_sqrt(task.W).to(dtype)
    initial = task.x0_mean.to(dtype) + torch.randn(episodes, n, generator=generator, dtype=dtype) @ x0_root.mT
    eps = torch.empty(episodes, horizon, k, dtype=dtype)
    w = torch.empty(episodes, horizon, n, dtype=dtype)
    for t in range(horizon):
        eps[:, t] = torch.randn(episodes, k, generator=generator, dtype=dtype)
        w[:, t] = torch.randn(episodes, n, generator=generator, dtype=dtype) @ w_root.mT
    return EpisodeNoise(initial, eps, w)


class _ReparameterisedAction(nn.Module):
    r"""``policy``'s action :math:`\mu_\theta(s) + L_\theta(s)\varepsilon` as a module's forward, for ``functional_call``.

    With ``with_log_prob=True`` the forward also returns
    :math:`\log \pi_\theta(a \mid s)` at that action, so that its derivative is
    the total one, along the path.
    """

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor, eps: torch.Tensor, with_log_prob: bool = False) -> Any:
        action = self.policy.mean(obs) + (self.policy.scale_tril(obs) @ eps.unsqueeze(-1)).squeeze(-1)
        if with_log_prob:
            return action, self.policy.log_prob(obs, action)
        return action


def _simulate(
    task_matrices: tuple[torch.Tensor, ...],
    act: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: EpisodeNoise,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """States, actions, rewards and final state of the rollouts (any leading batch shape)."""
    A, B, Q, R = task_matrices
    state = noise.initial_states
    states, actions, rewards = [], [], []
    for t in range(noise.action_noise.shape[-2]):
        action = act(state, noise.action_noise[..., t, :])
        states.append(state)
        actions.append(action)
        rewards.append(-(_quadratic_form(state, Q) + _quadratic_form(action, R)))
        state = state @ A.mT + action @ B.mT + noise.process_noise[..., t, :]
    return torch.stack(states, -2), torch.stack(actions, -2), torch.stack(rewards, -1), state


def _check_noise(task: LQRTask, noise: Any, dtype: torch.dtype) -> EpisodeNoise:
    """Given noise: an :class:`EpisodeNoise` whose shapes fit the task, in the policy's dtype."""
    if not isinstance(noise, EpisodeNoise):
        raise TypeError(f"noise must be an EpisodeNoise (from draw_episode_noise) or None, got {type(noise).__name__}")
    n, k = task.state_dim, task.action_dim
    fields = ("initial_states", "action_noise", "process_noise")
    for name, ndim in zip(fields, (2, 3, 3)):
        value = getattr(noise, name)
        if not isinstance(value, torch.Tensor) or value.dim() != ndim:
            raise ValueError(f"noise.{name} must be a tensor with {ndim} axes, got {value!r:.60}")
    episodes, horizon = noise.action_noise.shape[0], noise.action_noise.shape[1]
    expected = dict(zip(fields, ((episodes, n), (episodes, horizon, k), (episodes, horizon, n))))
    for name, shape in expected.items():
        value = getattr(noise, name)
        if tuple(value.shape) != shape:
            raise ValueError(f"noise.{name} must have shape {shape} for this task, got {tuple(value.shape)}")
        check_finite(f"noise.{name}", value)
    return EpisodeNoise(*(getattr(noise, name).to(dtype) for name in expected))


def _prepare(
    task: Any, policy: Any, episodes: Any, horizon: Any, generator: Any, memory_limit: Any, noise: Any = None
):
    task = _check_task(task)
    policy = _check_policy(policy)
    check_policy_matches(task, policy)
    dtype, device = _policy_dtype_device(policy)
    if device.type != "cpu":
        raise ValueError(f"policy must be on the CPU, got device {device}")
    if noise is not None:
        if episodes is not None or horizon is not None or generator is not None:
            raise ValueError("give either noise, or episodes, horizon and generator to draw it, not both")
        noise = _check_noise(task, noise, dtype)
        episodes, horizon = noise.action_noise.shape[0], noise.action_noise.shape[1]
        _check_memory(task, episodes, horizon, memory_limit)
    else:
        episodes, horizon = check_count("episodes", episodes), check_count("horizon", horizon)
        check_generator("generator", generator)
        _check_memory(task, episodes, horizon, memory_limit)
        noise = draw_episode_noise(task, episodes=episodes, horizon=horizon, generator=generator, dtype=dtype)
    matrices = tuple(m.to(dtype) for m in (task.A, task.B, task.Q, task.R))
    return task, policy, noise, matrices


def reparameterised_rollout(
    task: LQRTask,
    policy: nn.Module,
    *,
    episodes: int,
    horizon: int,
    generator: torch.Generator | None = None,
    memory_limit: int | None = None,
) -> tuple[Rollout, EpisodeNoise]:
    r"""Simulate ``episodes`` episodes with reparameterised actions, keeping the autograd graph.

    Actions are :math:`a_t = \mu_\theta(s_t) + L_\theta(s_t)\,\varepsilon_t` and
    states :math:`s_{t+1} = A s_t + B a_t + w_t`, so every state, action and
    reward is a differentiable function of the policy's parameters for the
    drawn noise: ``rollout.discounted_return.sum().backward()`` backpropagates
    through time. With the same seed, the episodes are those of
    :func:`pgnotes.rollouts.rollout`.

    Args:
        task: the task.
        policy: a policy of :mod:`pgnotes.policies` whose dimensions fit the task.
        episodes: number of episodes.
        horizon: number of steps :math:`T`.
        generator: source of randomness.
        memory_limit: refuse (``ValueError``) before simulating when the graph
            would need more bytes than this (:func:`graph_bytes`); the memory
            available now if None (the rule of every pgnotes function).

    Returns:
        ``(rollout, noise)``: a :class:`pgnotes.rollouts.Rollout` whose tensors carry
        the graph, and the :class:`EpisodeNoise` that drove it.

    Raises:
        TypeError: if ``task``, ``policy`` or ``generator`` has the wrong type.
        ValueError: on a dimension mismatch, a non-positive ``episodes`` or
            ``horizon``, or a request that does not fit in ``memory_limit``.
    """
    task, policy, noise, matrices = _prepare(task, policy, episodes, horizon, generator, memory_limit)
    module = _ReparameterisedAction(policy)
    states, actions, rewards, final = _simulate(matrices, module, noise)
    return Rollout(states=states, actions=actions, rewards=rewards, final_states=final, gamma=task.gamma), noise


def _split_params(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    params = {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in module.named_parameters() if not p.requires_grad}
    return params, frozen, dict(module.named_buffers())


def _strip_prefix(grads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = len("policy.")
    return {name[prefix:]: g for name, g in grads.items()}


def model_gradient_estimates(
    task: LQRTask,
    policy: nn.Module,
    *,
    episodes: int | None = None,
    horizon: int | None = None,
    generator: torch.Generator | None = None,
    memory_limit: int | None = None,
    noise: EpisodeNoise | None = None,
) -> dict[str, torch.Tensor]:
    r"""Per-episode pathwise estimates of :math:`\nabla_\theta J_T`, by backpropagation through the known dynamics.

    For episode :math:`i` with noise :math:`\xi_i = (s_0, \varepsilon_{0:T}, w_{0:T})`,

    .. math::

       g_i = \nabla_\theta \sum_{t=0}^{T-1} \gamma^t r\bigl(s_t(\theta, \xi_i), a_t(\theta, \xi_i)\bigr),

    the derivative of the episode's return with the noise held fixed. The
    distribution of :math:`\xi` does not depend on :math:`\theta`, which is needed
    but not enough for :math:`\mathbb{E}[g_i] = \nabla_\theta J_T`; a sufficient
    condition is that, for almost every :math:`\xi`, the return is differentiable
    in :math:`\theta` on a fixed ball around it with a gradient bounded there by
    some :math:`b(\xi)` of finite mean (dominated convergence). For a linear
    policy (mean :math:`-Ks`, covariance independent of the state) on a task of
    :mod:`pgnotes.lqr`, the return is a polynomial in the Gaussian :math:`\xi` whose
    coefficients are smooth in :math:`\theta`, so the condition holds and
    :math:`g_i` is unbiased for the gradient of the return truncated at :math:`T`,
    :func:`pgnotes.reinforce.exact_gradient` with ``horizon=T``.

    Args:
        task: the task (its dynamics and reward are the model differentiated).
        policy: a policy of :mod:`pgnotes.policies`.
        episodes: number of episodes :math:`N`.
        horizon: number of steps :math:`T`.
        generator: source of randomness; the same seed gives the episodes of
            :func:`pgnotes.rollouts.rollout` and :func:`pgnotes.reinforce.estimate_gradient`
            (with ``baseline="none"`` or ``"mean"``).
        memory_limit: as in :func:`reparameterised_rollout`.
        noise: the random numbers to use, from :func:`draw_episode_noise`, instead of
            drawing them (then give neither ``episodes``, ``horizon`` nor ``generator``).

    Returns:
        For each trainable parameter name, the estimates, shape ``(N, *param.shape)``,
        without autograd history.

    Raises:
        TypeError, ValueError: as :func:`reparameterised_rollout`; ValueError if an
            estimate is not finite (an unstable closed loop over a long horizon).
    """
    task, policy, noise, matrices = _prepare(task, policy, episodes, horizon, generator, memory_limit, noise)
    module = _ReparameterisedAction(policy)
    params, frozen, buffers = _split_params(module)
    discounts = _discounts(noise.action_noise.shape[1], task.gamma, noise.action_noise.dtype)

    def episode_return(params: dict[str, torch.Tensor], s0: torch.Tensor, eps: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        def act(obs: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            return functional_call(module, (params, frozen, buffers), (obs, e))

        _, _, rewards, _ = _simulate(matrices, act, EpisodeNoise(s0, eps, w))
        return rewards @ discounts

    grads = vmap(grad(episode_return), in_dims=(None, 0, 0, 0))(
        params, noise.initial_states, noise.action_noise, noise.process_noise
    )
    grads = _strip_prefix(grads)
    for name, g in grads.items():
        check_finite(f"the pathwise estimate of {name} (the rollout diverged: shorten the horizon)", g)
    return grads


# --------------------------------------------------------------------------- #
# Through a critic
# --------------------------------------------------------------------------- #


def _check_states(policy: nn.Module, states: Any) -> torch.Tensor:
    dtype, device = _policy_dtype_device(policy)
    states = as_float_tensor("states", states, like=torch.empty(0, dtype=dtype, device=device))
    if states.dim() < 2 or states.shape[-1] != policy.obs_dim:
        raise ValueError(
            f"states must have shape (batch..., {policy.obs_dim}) with at least one batch axis, "
            f"got {tuple(states.shape)}"
        )
    if states.dtype != dtype:
        raise ValueError(f"states have dtype {states.dtype} but the policy's parameters are {dtype}")
    states = states.detach()
    check_finite("states", states)
    return states


def _critic_action_gradient(critic: Any, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    r""":math:`\nabla_a Q(s, a)` for every row, from one backward pass through the batch."""
    check_callable("critic", critic)
    actions = actions.detach().requires_grad_(True)
    with torch.enable_grad():
        values = critic(states, actions)
        if not isinstance(values, torch.Tensor) or not values.is_floating_point():
            raise ValueError(f"critic must return a floating-point tensor, got {type(values).__name__}")
        if values.shape != actions.shape[:-1]:
            raise ValueError(
                f"critic must return one value per state-action pair, shape {tuple(actions.shape[:-1])}, "
                f"got {tuple(values.shape)}"
            )
        check_finite("critic(states, actions)", values.detach())
        if not values.requires_grad:
            raise ValueError(
                "critic(states, actions) has no autograd graph: a pathwise gradient needs a critic "
                "that is differentiable in the action"
            )
        # The rows are independent (one value per pair), so the gradient of the
        # sum gives every row's own derivative at once.
        (derivative,) = torch.autograd.grad(values.sum(), actions, allow_unused=True)
    if derivative is None:
        raise ValueError("critic(states, actions) does not depend on the actions in the autograd graph")
    check_finite("the critic's action gradient", derivative)
    return derivative


def _per_state_gradients(
    critic: Any,
    policy: nn.Module,
    states: torch.Tensor,
    noise: torch.Tensor,
    entropy_coef: float,
) -> dict[str, torch.Tensor]:
    module = _ReparameterisedAction(policy)
    with torch.no_grad():
        actions = module(states, noise)
    action_gradient = _critic_action_gradient(critic, states, actions)
    params, frozen, buffers = _split_params(module)

    def per_state(params: dict[str, torch.Tensor], s: torch.Tensor, e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # (da/dtheta)^T grad_a Q is the gradient of g . a(theta) with g held fixed.
        if not entropy_coef:
            return (g * functional_call(module, (params, frozen, buffers), (s, e))).sum()
        # SAC's -alpha log pi(a_theta | s), differentiated along the path too.
        action, log_prob = functional_call(module, (params, frozen, buffers), (s, e, True))
        return (g * action).sum() - entropy_coef * log_prob

    batch_shape = states.shape[:-1]
    flat = (states.reshape(-1, states.shape[-1]), noise.reshape(-1, noise.shape[-1]),
            action_gradient.reshape(-1, action_gradient.shape[-1]))
    grads = vmap(grad(per_state), in_dims=(None, 0, 0, 0))(params, *flat)
    return {name: g.reshape(*batch_shape, *g.shape[1:]) for name, g in _strip_prefix(grads).items()}


def _check_entropy_coef(entropy_coef: Any) -> float:
    return check_real("entropy_coef", entropy_coef, low=0.0)


def critic_gradient_estimates(
    critic: Critic,
    policy: nn.Module,
    states: torch.Tensor,
    *,
    entropy_coef: float = 0.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    r"""Per-state pathwise estimates of :math:`\nabla_\theta \mathbb{E}_{a \sim \pi_\theta}[Q(s, a) - \alpha \log \pi_\theta(a \mid s)]`.

    For each state :math:`s` a fresh :math:`\varepsilon \sim \mathcal{N}(0, I)` gives
    :math:`a = \mu_\theta(s) + L_\theta(s)\varepsilon` and the estimate

    .. math::

       g(s, \varepsilon) = \Bigl(\frac{\partial a}{\partial \theta}\Bigr)^{\!\top} \nabla_a Q(s, a)
       - \alpha \frac{\mathrm{d}}{\mathrm{d}\theta} \log \pi_\theta\bigl(a_\theta(s, \varepsilon) \mid s\bigr),

    the negative of the gradient of SAC's actor loss
    :math:`\alpha \log \pi_\theta(a \mid s) - Q(s, a)` (in the :math:`\alpha`-weighted
    form of Haarnoja et al. 2018b),
    where the critic is a fixed function (its parameters are not
    differentiated) and the log-density is differentiated totally, through
    the action as well. With :math:`\alpha = 0` (the default) and
    :math:`Q = Q^\pi`, states drawn from the policy's own episodes and weighted
    by :math:`\gamma^t`, the mean of :math:`\sum_t \gamma^t g(s_t, \varepsilon_t)` is
    the policy gradient :math:`\nabla_\theta J`; without the :math:`\gamma^t` it is
    in general another vector (Nota and Thomas 2020 show it for the
    score-function form).

    The critic is called once, on the whole batch, outside any ``torch.func``
    transform, so it may validate its arguments and be any differentiable
    function (for instance :func:`pgnotes.action_values.action_value` with the
    task and policy fixed).

    Args:
        critic: ``critic(states, actions)`` returns :math:`Q`, one value per row,
            shape ``states.shape[:-1]``, differentiable in ``actions``.
        policy: a policy of :mod:`pgnotes.policies`.
        states: shape ``(batch..., n)``, at least one batch axis, in the policy's dtype.
        entropy_coef: :math:`\alpha \ge 0`.
        generator: source of :math:`\varepsilon`.

    Returns:
        For each trainable parameter name, the estimates, shape ``(batch..., *param.shape)``.

    Raises:
        TypeError: if ``critic`` is not callable, ``policy`` is not a policy, or
            ``generator`` or ``entropy_coef`` has the wrong type.
        ValueError: on a shape or dtype mismatch, a non-finite state, a negative
            ``entropy_coef``, or a critic that returns the wrong shape, non-finite
            values, or values not differentiable in the action.
    """
    check_callable("critic", critic)
    policy = _check_policy(policy)
    states = _check_states(policy, states)
    alpha = _check_entropy_coef(entropy_coef)
    check_generator("generator", generator)
    noise = torch.randn((*states.shape[:-1], policy.act_dim), generator=generator, dtype=states.dtype)
    return _per_state_gradients(critic, policy, states, noise, alpha)


def deterministic_policy_gradient_estimates(
    critic: Critic, policy: nn.Module, states: torch.Tensor
) -> dict[str, torch.Tensor]:
    r"""Per-state deterministic policy gradients :math:`\nabla_\theta \mu_\theta(s)^\top \nabla_a Q(s, a)|_{a = \mu_\theta(s)}`.

    The policy acts by its mean, :math:`a = \mu_\theta(s)` (the noise is set to
    zero), and the critic's action gradient there is pulled back to the mean's
    parameters (Silver et al. 2014, theorem 1). With
    :math:`Q = Q^{\mu}`, the action value of the deterministic policy, and
    states weighted by :math:`\gamma^t` along its episodes, the mean of
    :math:`\sum_t \gamma^t g(s_t)` is :math:`\nabla_\theta J(\mu_\theta)`. The
    covariance parameters get zero.

    Args:
        critic: as in :func:`critic_gradient_estimates`.
        policy: a policy of :mod:`pgnotes.policies`.
        states: shape ``(batch..., n)``.

    Returns:
        For each trainable parameter name, the estimates, shape ``(batch..., *param.shape)``.

    Raises:
        TypeError, ValueError: as :func:`critic_gradient_estimates`.
    """
    check_callable("critic", critic)
    policy = _check_policy(policy)
    states = _check_states(policy, states)
    noise = torch.zeros((*states.shape[:-1], policy.act_dim), dtype=states.dtype)
    return _per_state_gradients(critic, policy, states, noise, 0.0)
