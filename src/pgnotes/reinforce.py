r"""REINFORCE with reward-to-go and a baseline, on a task with a known optimum.

For a batch of :math:`N` episodes of :math:`T` steps drawn with
:math:`\pi_\theta`, the estimate of :math:`\nabla_\theta J` is

.. math::

   \hat g = \frac1N \sum_{i=1}^N g_i, \qquad
   g_i = \sum_{t=0}^{T-1} \gamma^t \bigl(G^i_t - b^i_t\bigr)
   \nabla_\theta \log \pi_\theta(a^i_t \mid s^i_t), \qquad
   G^i_t = \sum_{t' = t}^{T-1} \gamma^{t'-t} r^i_{t'},

the score-function (likelihood-ratio) estimator of Williams (1992) with the
reward-to-go :math:`G_t` in place of the whole return (a reward cannot depend
on later actions) and the factor :math:`\gamma^t` that makes it the gradient of
the *discounted* objective :math:`J = \mathbb{E}[\sum_t \gamma^t r_t]` (Sutton &
Barto 2018, sections 13.3 and 13.4). A baseline :math:`b_t` that does not
depend on the action :math:`a_t` leaves the expectation unchanged and can cut
the variance a lot. Three baselines:

- ``"none"``: :math:`b = 0`;
- ``"mean"``: the mean reward-to-go at the same time step over the *other*
  episodes of the batch, :math:`b^i_t = \frac{1}{N-1}\sum_{j \ne i} G^j_t`.
  Leaving episode :math:`i` out keeps :math:`b^i_t` independent of
  :math:`a^i_t`, so the estimate is exactly unbiased (including it would shrink
  the expected gradient by the factor :math:`(N-1)/N`);
- ``"learned"``: a linear value function :math:`b_t = w^\top \phi(s_t, t)` with
  features :math:`\phi = (1, \tau, \tau^2, s, \text{the products } s_i s_j)`,
  :math:`\tau = t/T`, which can represent the quadratic value of a
  linear-quadratic task. It is fitted by least squares to the rewards-to-go of
  the *previous* batch (so, again, it is independent of the current actions
  and the estimate stays unbiased) and the first batch uses ``"mean"``.

:func:`train` computes :math:`\hat g` as the gradient of a surrogate loss,
exactly as one writes it in any deep-learning framework
(:func:`surrogate_loss`):

.. math::

   L(\theta) = -\frac1N \sum_{i=1}^N \sum_{t=0}^{T-1} w^i_t \log \pi_\theta(a^i_t \mid s^i_t),
   \qquad w^i_t = \gamma^t (G^i_t - b^i_t) \text{ held constant}, \qquad
   \nabla_\theta L = -\hat g .

Separately, and only when asked for, the per-episode terms :math:`g_i` are
computed exactly (``torch.func.vmap`` of ``torch.func.grad`` over episodes,
:func:`per_episode_gradients`), which gives the variance diagnostic

.. math::

   \widehat{\operatorname{Var}}[\hat g]
   = \frac{1}{N}\operatorname{tr}\widehat{\operatorname{Cov}}[g_i]
   = \frac{1}{N(N-1)} \sum_{i=1}^N \lVert g_i - \hat g \rVert^2,

the estimated total variance (summed over parameters) of the batch gradient
estimate: the quantity a baseline is meant to reduce.

The module is longer than most because the whole algorithm lives here with its
input rules: the building blocks (rewards-to-go, baselines, value features), the
one-batch estimate with its variance diagnostic, the exact references for a
policy, the training record and :func:`train`, whose loop reads top to bottom.

References:
    Williams, R. J. (1992). Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Machine Learning 8.

    Sutton, R. S. and Barto, A. G. (2018). Reinforcement Learning: An
    Introduction, 2nd ed., sections 13.3-13.4. MIT Press.

    Fazel, M., Ge, R., Kakade, S. M. and Mesbahi, M. (2018). Global convergence
    of policy gradient methods for the linear quadratic regulator. ICML.

    Huang, S. et al. (2022). CleanRL: high-quality single-file implementations
    of deep reinforcement learning algorithms. JMLR 23 (learning-rate annealing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from pgnotes import lqr, rollouts
from pgnotes._validation import (
    as_float_tensors,
    check_bool,
    check_callable,
    check_count,
    check_discount,
    check_generator,
    check_min_dim,
    check_real,
    check_seed,
)
from pgnotes.policies import GaussianPolicy

__all__ = [
    "BASELINES",
    "reward_to_go",
    "leave_one_out_mean",
    "value_features",
    "fit_value_weights",
    "per_episode_gradients",
    "GradientEstimate",
    "estimate_gradient",
    "exact_returns",
    "exact_gradient",
    "History",
    "TrainingDivergedError",
    "TrainConfig",
    "surrogate_loss",
    "train",
]

BASELINES = ("none", "mean", "learned")
"""The baselines :func:`train` and :func:`estimate_gradient` accept."""

_REWARD_TO_GO_BLOCK = 128  # steps per matrix product in reward_to_go: a 128 x 128 matrix, 128 KiB in float64


# --------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------- #


def reward_to_go(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Discounted rewards-to-go :math:`G_t = \sum_{t' \ge t} \gamma^{t'-t} r_{t'}` within the episode.

    Blocks of up to 128 steps, each one matrix product with the
    upper-triangular matrix of powers :math:`\gamma^{t'-t}`, :math:`t' \ge t`:
    the same sums as the backward recursion :math:`G_t = r_t + \gamma G_{t+1}`
    without a Python loop over every step, in memory linear in :math:`T`. This is the numerically safe vectorised form: the shortcut
    :math:`\gamma^{-t} \sum_{t' \ge t} \gamma^{t'} r_{t'}` (a reversed
    cumulative sum) divides by :math:`\gamma^t`, which underflows for long
    episodes.

    Args:
        rewards: rewards, shape ``(..., T)``.
        gamma: discount factor.

    Returns:
        :math:`G_t`, shape ``(..., T)``, floating point (integer rewards are promoted);
        a zero-length episode (``T = 0``) gives an empty result.
    """
    (rewards,) = as_float_tensors(rewards=rewards)
    check_min_dim("rewards", rewards, 1, "the time axis, of size T")
    gamma = check_discount("gamma", gamma, allow_one=True)
    horizon = rewards.shape[-1]
    if horizon == 0:
        return rewards.clone()  # zero-length episodes: nothing to sum
    gamma_t = torch.as_tensor(gamma, dtype=rewards.dtype, device=rewards.device)
    block = min(horizon, _REWARD_TO_GO_BLOCK)
    steps = torch.arange(block, device=rewards.device)
    lag = steps[None, :] - steps[:, None]  # lag[t, t'] = t' - t
    # discount[t, t'] = gamma^(t' - t) for t' >= t, else 0. Positive powers only, so
    # nothing divides by a vanishing gamma^t (the reversed cumulative sum of
    # gamma^t' r_t' divided by gamma^t would underflow for long episodes).
    discount = torch.where(lag >= 0, gamma_t ** lag.clamp(min=0), 0.0)
    out = torch.empty_like(rewards)
    carry = torch.zeros_like(rewards[..., 0])  # G at the first step after the block
    for begin in reversed(range(0, horizon, block)):
        length = min(block, horizon - begin)
        # Within a block, one matrix product; the later blocks enter through
        # G_t = sum_{t'<end} gamma^(t'-t) r_t' + gamma^(end - t) G_end.
        tail = gamma_t ** torch.arange(length, 0, -1, device=rewards.device)
        values = rewards[..., begin : begin + length] @ discount[:length, :length].mT + carry[..., None] * tail
        out[..., begin : begin + length] = values
        carry = values[..., 0]
    return out


def leave_one_out_mean(values: torch.Tensor) -> torch.Tensor:
    r"""For each episode :math:`i`, the mean of ``values`` over the other episodes (axis 0).

    .. math::

       b^i_t = \frac{1}{N-1} \sum_{j \ne i} G^j_t
       = \frac{N \bar G_t - G^i_t}{N - 1} .

    Args:
        values: shape ``(N, ...)`` with :math:`N \ge 2`.

    Returns:
        Same shape as ``values``.
    """
    (values,) = as_float_tensors(values=values)
    check_min_dim("values", values, 1, "the episode axis")
    N = values.shape[0]
    if N < 2:
        raise ValueError(f"a leave-one-out mean needs at least 2 episodes, got {N}")
    return (values.sum(0, keepdim=True) - values) / (N - 1)


def value_features(states: torch.Tensor, horizon: int) -> torch.Tensor:
    r"""Features :math:`\phi(s_t, t) = (1, \tau, \tau^2, s, (s_i s_j)_{i \le j})`, :math:`\tau = t / T`.

    Args:
        states: shape ``(N, T, n)``.
        horizon: :math:`T`, which scales the time feature to :math:`[0, 1)`.

    Returns:
        Features, shape ``(N, T, 3 + n + n(n+1)/2)``.
    """
    (states,) = as_float_tensors(states=states)
    if states.dim() != 3:
        raise ValueError(f"states must have shape (episodes, T, n), got {tuple(states.shape)}")
    horizon = check_count("horizon", horizon)
    N, T, n = states.shape
    tau = (torch.arange(T, dtype=states.dtype, device=states.device) / horizon).expand(N, T)
    rows, cols = torch.triu_indices(n, n, device=states.device)
    products = states[..., rows] * states[..., cols]
    return torch.cat([torch.ones_like(tau)[..., None], tau[..., None], tau.square()[..., None], states, products], -1)


def fit_value_weights(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Least-squares weights :math:`w = \arg\min \lVert \Phi w - G \rVert^2` of a linear value function.

    Solved in float64 by ``torch.linalg.lstsq`` with the SVD-based ``gelsd``
    driver, which is the numerically safe choice here: the quadratic features
    are badly scaled and can be nearly collinear (for instance when the state
    has almost converged to 0), and ``gelsd`` cuts small singular values instead
    of amplifying them.

    Args:
        features: :math:`\Phi`, shape ``(..., F)``.
        targets: :math:`G`, shape ``(...)``.

    Returns:
        :math:`w`, shape ``(F,)``, float64.
    """
    features, targets = as_float_tensors(features=features, targets=targets)
    check_min_dim("features", features, 1, "the feature axis, of size F")
    if features.shape[:-1] != targets.shape:
        raise ValueError(
            f"features of shape {tuple(features.shape)} need targets of shape {tuple(features.shape[:-1])} "
            f"(one per row of features), got targets of shape {tuple(targets.shape)}"
        )
    if targets.numel() == 0:
        raise ValueError("features and targets are empty: at least one row is needed to fit a value function")
    Phi = features.reshape(-1, features.shape[-1]).to(torch.float64)
    G = targets.reshape(-1, 1).to(torch.float64)
    driver = "gelsd" if Phi.device.type == "cpu" else None
    return torch.linalg.lstsq(Phi, G, driver=driver).solution.reshape(-1)


class _LogProb(nn.Module):
    """``policy.log_prob`` as a module's forward, for ``torch.func.functional_call``."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.policy.log_prob(obs, act)


def per_episode_gradients(
    policy: nn.Module, states: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor
) -> dict[str, torch.Tensor]:
    r"""Per-episode gradients :math:`g_i = \nabla_\theta \sum_t w^i_t \log \pi_\theta(a^i_t \mid s^i_t)`.

    ``vmap`` over episodes of ``grad`` of one episode's weighted log-likelihood
    (the ``torch.func`` per-sample-gradient recipe): about twice the cost of the
    single backward pass that gives only their sum.

    Args:
        policy: a policy with ``log_prob(obs, act)``.
        states: shape ``(N, T, n)``.
        actions: shape ``(N, T, k)``.
        weights: :math:`w^i_t`, shape ``(N, T)``, treated as constants.

    Returns:
        For each trainable parameter name, a tensor of shape ``(N, *param.shape)``.
    """
    states, actions, weights = as_float_tensors(states=states, actions=actions, weights=weights)
    if states.dim() != 3 or actions.dim() != 3 or weights.dim() != 2 or not (
        states.shape[:2] == actions.shape[:2] == weights.shape
    ):
        raise ValueError(
            "states (N, T, n), actions (N, T, k) and weights (N, T) must share episodes N and steps T, got "
            f"states {tuple(states.shape)}, actions {tuple(actions.shape)} and weights {tuple(weights.shape)}"
        )
    module = _LogProb(policy)
    params = {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}
    frozen = {name: p.detach() for name, p in module.named_parameters() if not p.requires_grad}
    buffers = dict(module.named_buffers())

    def episode_objective(
        params: dict[str, torch.Tensor], obs: torch.Tensor, act: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        return (w * functional_call(module, (params, frozen, buffers), (obs, act))).sum()

    grads = vmap(grad(episode_objective), in_dims=(None, 0, 0, 0))(params, states, actions, weights.detach())
    prefix = len("policy.")
    return {name[prefix:]: g for name, g in grads.items()}


def _flatten(per_episode: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(g.shape[0], -1) for g in per_episode.values()], dim=1)


def _baseline_values(
    baseline: str, rtg: torch.Tensor, states: torch.Tensor, value_weights: torch.Tensor | None
) -> torch.Tensor:
    """The baseline :math:`b^i_t` of each step: zero, the leave-one-out mean, or the fitted value."""
    if baseline == "none":
        return torch.zeros_like(rtg)
    if baseline == "mean" or value_weights is None:
        return leave_one_out_mean(rtg)
    return (value_features(states, rtg.shape[-1]).to(torch.float64) @ value_weights).to(rtg.dtype)


@dataclass(frozen=True)
class GradientEstimate:
    r"""A REINFORCE estimate of :math:`\nabla_\theta J` from one batch.

    Attributes:
        gradient: :math:`\hat g` per parameter name (ascent direction).
        per_episode: :math:`g_i` per parameter name, shape ``(N, *param.shape)``.
        variance: :math:`\frac{1}{N(N-1)}\sum_i \lVert g_i - \hat g\rVert^2`, the
            estimated total variance of :math:`\hat g`.
        sample_return: mean discounted return of the batch.
        sample_return_se: its standard error.
        rollout: the batch of trajectories.
    """

    gradient: dict[str, torch.Tensor]
    per_episode: dict[str, torch.Tensor]
    variance: float
    sample_return: float
    sample_return_se: float
    rollout: rollouts.Rollout


def _estimate_from_rollout(
    policy: nn.Module,
    batch: rollouts.Rollout,
    baseline: str,
    value_weights: torch.Tensor | None,
) -> GradientEstimate:
    N = batch.rewards.shape[0]
    rtg = reward_to_go(batch.rewards, batch.gamma)
    weights = batch.discounts * (rtg - _baseline_values(baseline, rtg, batch.states, value_weights))
    per_episode = per_episode_gradients(policy, batch.states, batch.actions, weights)
    flat = _flatten(per_episode)
    variance = float((flat - flat.mean(0)).square().sum() / (N * (N - 1)))
    returns = rtg[:, 0]
    return GradientEstimate(
        gradient={name: g.mean(0) for name, g in per_episode.items()},
        per_episode=per_episode,
        variance=variance,
        sample_return=float(returns.mean()),
        sample_return_se=float(returns.std() / math.sqrt(N)),
        rollout=batch,
    )


@contextlib.contextmanager
def _intra_op_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)``, restoring the setting after."""
    if num_threads is None:
        yield
        return
    num_threads = check_count("num_threads", num_threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")


def estimate_gradient(
    task: lqr.LQRTask,
    policy: GaussianPolicy,
    *,
    episodes: int = 64,
    horizon: int | None = None,
    baseline: str = "mean",
    generator: torch.Generator | None = None,
    num_threads: int | None = 1,
) -> GradientEstimate:
    r"""One REINFORCE estimate of :math:`\nabla_\theta J_T` from a fresh batch, without updating the policy.

    The target is the gradient of the return *truncated at the horizon*
    :math:`T`, whose exact value for a linear policy is the autograd gradient of
    ``lqr.expected_return(task, policy.gain(), policy.noise_covariance(), horizon=T)``.
    With ``baseline="learned"``, the value function is fitted on an independent
    pilot batch of the same size, drawn first from ``generator``.

    Args:
        task: the task.
        policy: the policy (its dimensions must match the task's).
        episodes: batch size :math:`N \ge 2`.
        horizon: :math:`T`; ``task.effective_horizon()`` if None.
        baseline: one of :data:`BASELINES`.
        generator: source of randomness.
        num_threads: intra-op threads while estimating, as in :func:`train`.

    Returns:
        A :class:`GradientEstimate`.
    """
    _check_baseline(baseline)
    rollouts.check_policy_matches(task, policy)
    horizon = task.effective_horizon() if horizon is None else check_count("horizon", horizon)
    # At least 2: for the baseline and the variance.
    episodes = check_count("episodes", episodes, minimum=2)
    check_generator("generator", generator)
    with _intra_op_threads(num_threads):
        value_weights = None
        if baseline == "learned":
            pilot = rollouts.rollout(task, policy, episodes=episodes, horizon=horizon, generator=generator)
            pilot_rtg = reward_to_go(pilot.rewards, pilot.gamma)
            value_weights = fit_value_weights(value_features(pilot.states, horizon), pilot_rtg)
        batch = rollouts.rollout(task, policy, episodes=episodes, horizon=horizon, generator=generator)
        return _estimate_from_rollout(policy, batch, baseline, value_weights)


def exact_returns(task: lqr.LQRTask, policy: GaussianPolicy) -> tuple[float, float]:
    r"""Exact :math:`J` of the mean policy and of the stochastic policy, where they exist.

    Returns:
        The pair ``(J_mean, J_stochastic)`` of :math:`J(K, 0)`, the return of the
        deterministic policy :math:`a = \mu(s) = -K s`, and :math:`J(K, \Sigma)`. NaN where the
        policy does not provide it (an MLP mean; a state-dependent covariance for
        the second), :math:`-\infty` if the closed loop is unstable.
    """
    rollouts.check_policy_matches(task, policy)
    if not getattr(policy, "is_linear", False):
        return math.nan, math.nan
    with torch.no_grad():
        gain = policy.gain().detach()
        cov = policy.noise_covariance()
        try:
            j_mean = float(lqr.expected_return(task, gain))
        except ValueError:
            return -math.inf, -math.inf
        j_stochastic = math.nan if cov is None else float(lqr.expected_return(task, gain, cov.detach()))
    return j_mean, j_stochastic


def exact_gradient(
    task: lqr.LQRTask, policy: GaussianPolicy, *, horizon: int | None = None
) -> dict[str, torch.Tensor]:
    r"""The exact :math:`\nabla_\theta J` of a linear policy with a state-independent covariance.

    Autograd through :func:`pgnotes.lqr.expected_return` at
    :math:`K` = ``policy.gain()`` and :math:`\Sigma` = ``policy.noise_covariance()``:
    the infinite-horizon return for ``horizon=None``, else the return truncated
    at ``horizon`` steps, which is what :func:`estimate_gradient` estimates
    without bias. Keys and shapes are those of ``GradientEstimate.gradient``.

    Raises:
        ValueError: if the mean is not linear, the covariance depends on the
            state, or (infinite horizon) the closed loop is unstable.
    """
    rollouts.check_policy_matches(task, policy)
    cov = policy.noise_covariance()
    if cov is None:
        raise ValueError("the exact return needs a covariance that does not depend on the state")
    J = lqr.expected_return(task, policy.gain(), cov, horizon=horizon)
    named = [(name, p) for name, p in policy.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(J, [p for _, p in named], allow_unused=True)
    return {
        name: (torch.zeros_like(p) if g is None else g.to(p.dtype)) for (name, p), g in zip(named, grads)
    }


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #


@dataclass
class History:
    r"""Per-iteration record of :func:`train`; entry ``i`` describes iteration ``i``.

    Quantities of the *batch* (``sample_return``, ``sample_return_se``,
    ``grad_variance``, ``grad_norm``) come from the episodes drawn in iteration
    ``i``, before its update; quantities of the *policy* (``exact_return_mean``,
    ``exact_return``, ``mean_std``) describe the policy after the update, which
    has then used ``episodes[i]`` episodes in total. ``initial_*`` describe the
    policy before training.

    Attributes:
        episodes: cumulative number of episodes.
        exact_return_mean: exact :math:`J` of the deterministic mean policy (NaN
            for an MLP mean, :math:`-\infty` if unstable).
        exact_return: exact :math:`J` of the stochastic policy (NaN when the
            covariance depends on the state or the mean is an MLP).
        sample_return: mean discounted (truncated) return of the batch.
        sample_return_se: its standard error.
        grad_variance: estimated total variance of the gradient estimate, see the module docs.
        grad_norm: Euclidean norm of the gradient estimate.
        mean_std: mean of the policy's standard deviations :math:`\sqrt{\Sigma_{ii}}`
            over action components (and over the batch's states if they vary).
        optimal_return: :math:`J^\star` of the task (None if it has no finite optimum).
        initial_exact_return_mean: :math:`J` of the mean policy before training.
        initial_exact_return: :math:`J` of the stochastic policy before training.
        initial_mean_std: mean standard deviation before training.
    """

    episodes: list[int] = field(default_factory=list)
    exact_return_mean: list[float] = field(default_factory=list)
    exact_return: list[float] = field(default_factory=list)
    sample_return: list[float] = field(default_factory=list)
    sample_return_se: list[float] = field(default_factory=list)
    grad_variance: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    mean_std: list[float] = field(default_factory=list)
    optimal_return: float | None = None
    initial_exact_return_mean: float = math.nan
    initial_exact_return: float = math.nan
    initial_mean_std: float = math.nan

    def __len__(self) -> int:
        return len(self.episodes)

    def relative_gap(self, stochastic: bool = False) -> list[float]:
        r"""Per iteration, :math:`(J^\star - J) / |J^\star|` (of the mean policy, or the stochastic one).

        When :math:`J^\star = 0` (a task without cost at the optimum) the relative
        gap is undefined and the absolute gap :math:`J^\star - J` is returned instead.
        """
        if self.optimal_return is None:
            raise ValueError("the task has no finite optimum, so there is no gap to it")
        stochastic = check_bool("stochastic", stochastic)
        values = self.exact_return if stochastic else self.exact_return_mean
        scale = abs(self.optimal_return) if self.optimal_return != 0 else 1.0
        return [(self.optimal_return - j) / scale for j in values]

    def first_within(self, tolerance: float, stochastic: bool = False) -> int | None:
        r"""First iteration whose relative gap is at most ``tolerance``, or None if none is."""
        tolerance = check_real("tolerance", tolerance)
        for i, gap in enumerate(self.relative_gap(stochastic)):
            if gap <= tolerance:
                return i
        return None

    def episodes_to_reach(self, tolerance: float, stochastic: bool = False) -> int | None:
        r"""Episodes used when the relative gap first falls to ``tolerance`` (None if never)."""
        i = self.first_within(tolerance, stochastic)
        return None if i is None else self.episodes[i]


class TrainingDivergedError(RuntimeError):
    """Training stopped because a return or a gradient estimate was not finite.

    The policy keeps the parameters it had before the failing iteration.

    Attributes:
        iteration: the iteration that failed.
        history: the :class:`History` of the iterations before it.
    """

    def __init__(self, message: str, iteration: int, history: History) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.history = history


def _mean_std(policy: GaussianPolicy, states: torch.Tensor) -> float:
    with torch.no_grad():
        return float(policy.std(states).mean())


@dataclass(frozen=True)
class TrainConfig:
    r"""Settings of :func:`train`, validated once when built.

    Attributes:
        iterations: number of updates.
        episodes_per_batch: :math:`N \ge 2` episodes per update.
        horizon: episode length :math:`T`; ``task.effective_horizon()`` if None.
        lr: learning rate, finite and > 0.
        anneal_lr: if True, iteration :math:`i` (from 0) uses the learning rate
            ``lr`` :math:`\cdot (1 - i / \text{iterations})`, a linear decay towards 0
            as in common PPO implementations (Huang et al. 2022). With a constant
            step the parameters keep moving by about ``lr`` per iteration at the
            optimum, driven by the noise of the estimate; a decaying step lets them settle.
        baseline: one of :data:`BASELINES`.
        optimizer: ``"adam"`` or ``"sgd"``.
        seed: seed of the one generator all randomness comes from.
        num_threads: PyTorch intra-op threads during training (restored afterwards);
            None leaves the setting alone. One thread is the default because every
            tensor here is tiny: splitting a product of a few thousand rows by two
            columns across threads costs more in synchronisation than it saves.
        record_gradient_variance: also compute per-episode gradients each iteration
            for ``History.grad_variance`` (about doubles the cost of an update).
    """

    iterations: int = 200
    episodes_per_batch: int = 64
    horizon: int | None = None
    lr: float = 0.05
    anneal_lr: bool = False
    baseline: str = "learned"
    optimizer: str = "adam"
    seed: int = 0
    num_threads: int | None = 1
    record_gradient_variance: bool = False

    def __post_init__(self) -> None:
        check_count("iterations", self.iterations)
        check_count("episodes_per_batch", self.episodes_per_batch, minimum=2)
        if self.horizon is not None:
            check_count("horizon", self.horizon)
        check_real("lr", self.lr, low=0.0, low_open=True)
        _check_baseline(self.baseline)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        check_seed("seed", self.seed)
        if self.num_threads is not None:
            check_count("num_threads", self.num_threads)
        for name in ("anneal_lr", "record_gradient_variance"):
            check_bool(name, getattr(self, name))


def surrogate_loss(log_prob: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""The REINFORCE surrogate loss :math:`-\frac1N \sum_i \sum_t w^i_t \log \pi_\theta(a^i_t \mid s^i_t)`.

    Its gradient is minus the estimate :math:`\hat g` of the module docs when
    the weights :math:`w^i_t = \gamma^t (G^i_t - b^i_t)` are held constant (they
    are detached here): minimising it ascends :math:`J`. Its *value* means
    nothing: it is not the return, nor an estimate of it.

    Args:
        log_prob: :math:`\log \pi_\theta(a^i_t \mid s^i_t)`, shape ``(N, T)``, with autograd history.
        weights: :math:`w^i_t`, shape ``(N, T)``.

    Returns:
        A scalar tensor.

    References:
        Book: equation :eq:`reinforce-lqr-surrogate-loss` of :doc:`/book/reinforce_lqr`.
    """
    if not isinstance(log_prob, torch.Tensor) or not isinstance(weights, torch.Tensor):
        raise TypeError(
            f"log_prob and weights must be tensors, got {type(log_prob).__name__} and {type(weights).__name__}"
        )
    if log_prob.shape != weights.shape or log_prob.dim() != 2:
        raise ValueError(
            f"log_prob and weights must both have shape (episodes, steps), got {tuple(log_prob.shape)} "
            f"and {tuple(weights.shape)}"
        )
    return -(weights.detach() * log_prob).sum(-1).mean()


def _divergence_message(what: str, iteration: int, lr: float) -> str:
    return (
        f"{what} at iteration {iteration}; the policy was not updated. The step size is probably "
        f"too large for this task: lower the learning rate (lr={lr:g}), or bound the standard "
        "deviation (e.g. clamp log sigma with log_std_bounds, or raise the Cholesky min_diag)"
    )


def _progress_every(progress: bool | int, iterations: int) -> int:
    if isinstance(progress, bool):
        return max(1, iterations // 10) if progress else 0
    if isinstance(progress, int) and progress >= 0:
        return progress
    raise ValueError(f"progress must be False, True or a non-negative number of iterations, got {progress!r}")


def _make_optimizer(config: TrainConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr)


def _new_history(task: lqr.LQRTask, policy: GaussianPolicy) -> History:
    history = History()
    try:
        history.optimal_return = float(lqr.optimal_return(task))
    except ValueError:
        history.optimal_return = None
    history.initial_exact_return_mean, history.initial_exact_return = exact_returns(task, policy)
    history.initial_mean_std = _mean_std(policy, task.x0_mean.to(policy.mean_head.weight.dtype))
    return history


def train(
    task: lqr.LQRTask,
    policy: GaussianPolicy,
    config: TrainConfig | None = None,
    *,
    progress: bool | int = False,
    callback: Callable[[int, History], Any] | None = None,
    **settings: Any,
) -> History:
    r"""Train ``policy`` in place with REINFORCE and return its :class:`History`.

    Each iteration is the textbook loop: roll out a batch with the current
    policy, compute rewards-to-go, subtract the baseline, and take one
    optimiser step on :func:`surrogate_loss`. All randomness comes from one
    ``torch.Generator`` seeded with ``config.seed``, so the same seed and
    initial policy give the same history, bit for bit.

    Args:
        task: the task.
        policy: the policy to train; its dimensions must match the task's.
        config: a :class:`TrainConfig`; the defaults if None.
        progress: False; True to print a line to stdout every tenth of the run;
            or a number of iterations between lines (0 for none).
        callback: called as ``callback(i, history)`` after iteration ``i``.
        **settings: fields of :class:`TrainConfig` overriding ``config``, e.g.
            ``train(task, policy, iterations=80, lr=0.05)``.

    Returns:
        The :class:`History`.

    Raises:
        ValueError: on a dimension mismatch or an invalid setting.
        TrainingDivergedError: (a ``RuntimeError``) if a return or a gradient
            estimate is not finite; the message gives the iteration and a remedy,
            the exception carries the history so far, and the policy keeps its
            last finite parameters.
    """
    config = dataclasses.replace(config or TrainConfig(), **settings)
    rollouts.check_policy_matches(task, policy)
    every = _progress_every(progress, config.iterations)
    check_callable("callback", callback, optional=True)
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the policy has no trainable parameters")
    horizon = task.effective_horizon() if config.horizon is None else config.horizon
    optimizer = _make_optimizer(config, params)
    generator = torch.Generator().manual_seed(config.seed)
    history = _new_history(task, policy)
    value_weights: torch.Tensor | None = None

    with _intra_op_threads(config.num_threads):
        for i in range(config.iterations):
            # 1. Roll out a batch of episodes with the current policy.
            batch = rollouts.rollout(
                task, policy, episodes=config.episodes_per_batch, horizon=horizon, generator=generator
            )
            if not bool(torch.isfinite(batch.rewards).all()):
                raise TrainingDivergedError(
                    _divergence_message("the sampled returns are not finite", i, config.lr), i, history
                )
            # 2. Rewards-to-go, 3. minus the baseline, times gamma^t.
            rtg = reward_to_go(batch.rewards, batch.gamma)
            advantages = rtg - _baseline_values(config.baseline, rtg, batch.states, value_weights)
            weights = batch.discounts * advantages
            # 4. The surrogate loss: its gradient is minus the REINFORCE estimate.
            log_prob = policy.log_prob(batch.states, batch.actions)
            loss = surrogate_loss(log_prob, weights)
            # 5. One optimiser step (after checking the gradient is finite).
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in params if p.grad is not None]
            if not all(bool(torch.isfinite(g).all()) for g in grads):
                raise TrainingDivergedError(
                    _divergence_message("the gradient estimate is not finite", i, config.lr), i, history
                )
            if config.record_gradient_variance:
                history.grad_variance.append(_per_episode_variance(policy, batch, weights))
            if config.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * (1.0 - i / config.iterations)
            optimizer.step()
            if config.baseline == "learned":
                # Fitted after the step, for the next batch: independent of its actions.
                value_weights = fit_value_weights(value_features(batch.states, horizon), rtg)

            returns = rtg[:, 0]
            history.episodes.append((i + 1) * config.episodes_per_batch)
            j_mean, j_stochastic = exact_returns(task, policy)
            history.exact_return_mean.append(j_mean)
            history.exact_return.append(j_stochastic)
            history.sample_return.append(float(returns.mean()))
            history.sample_return_se.append(float(returns.std() / math.sqrt(len(returns))))
            history.grad_norm.append(float(torch.cat([g.reshape(-1) for g in grads]).norm()))
            history.mean_std.append(_mean_std(policy, batch.states))
            if every and ((i + 1) % every == 0 or i + 1 == config.iterations):
                _print_progress(history, i, config.iterations)
            if callback is not None:
                callback(i, history)
    return history


def _per_episode_variance(policy: GaussianPolicy, batch: rollouts.Rollout, weights: torch.Tensor) -> float:
    r"""The variance diagnostic :math:`\frac{1}{N(N-1)}\sum_i \lVert g_i - \hat g\rVert^2` of one batch."""
    flat = _flatten(per_episode_gradients(policy, batch.states, batch.actions, weights))
    N = flat.shape[0]
    return float((flat - flat.mean(0)).square().sum() / (N * (N - 1)))


def _print_progress(history: History, i: int, iterations: int) -> None:
    width = len(str(iterations))
    parts = [f"iter {i + 1:>{width}}/{iterations}", f"episodes {history.episodes[-1]:>7}"]
    j = history.exact_return_mean[-1]
    if not math.isnan(j):
        parts.append(f"J(mean) {j:10.4f}")
        if history.optimal_return is not None and history.optimal_return != 0:
            parts.append(f"gap {history.relative_gap()[-1]:8.2%}")
        elif history.optimal_return == 0:
            # No relative gap to an optimum of 0: the absolute one.
            parts.append(f"J* - J {history.relative_gap()[-1]:10.4g}")
    parts.append(f"batch return {history.sample_return[-1]:10.4f}")
    parts.append(f"sigma {history.mean_std[-1]:.4f}")
    # stdout, never stderr: notebooks treat anything on stderr as a failure.
    print("  ".join(parts), file=sys.stdout, flush=True)
