r"""Gaussian policies as ``torch.nn.Module`` objects, one class per covariance head.

Every policy is :math:`\pi_\theta(a \mid s) = \mathcal{N}(a; \mu_\theta(s), \Sigma_\theta(s))`
with a mean that is either linear, :math:`\mu(s) = -K s` (no offset: the
optimum of a linear-quadratic task has none), or a small tanh MLP, and one of
four covariance heads:

- :class:`FixedStdPolicy`: a fixed :math:`\Sigma = \operatorname{diag}(\sigma^2)`, not learned;
- :class:`LearnedStdPolicy`: a learned state-independent :math:`\log\sigma`
  vector, as in PPO (Schulman et al. 2017);
- :class:`StateDependentStdPolicy`: :math:`\log\sigma(s)` from a head on the
  shared features, clamped to ``log_std_bounds`` as in SAC (Haarnoja et al. 2018);
- :class:`CholeskyPolicy`: a full covariance :math:`\Sigma = L L^\top` from the
  :math:`k(k+1)/2` entries of a lower-triangular :math:`L`, with a positive
  diagonal :math:`\operatorname{softplus}(\cdot) + \text{min\_diag}`; either a
  learned constant or a function of the state.

Each policy offers

- ``mean(obs)``: :math:`\mu_\theta(s)`, shape ``(..., k)``;
- ``scale_tril(obs)``: :math:`L`, shape ``(..., k, k)`` (diagonal for the diagonal heads);
- ``std(obs)``: the per-component standard deviation :math:`\sqrt{\Sigma_{ii}}`;
- ``distribution(obs)``: the ``torch.distributions`` object;
- ``log_prob(obs, act)``: :math:`\log \pi_\theta(a \mid s)`, shape ``(...)``, in
  closed form (so it also works under ``torch.func`` transforms);
- ``sample(obs, generator=None)``: a seeded draw :math:`a = \mu + L\varepsilon`
  with :math:`\varepsilon` from ``torch.randn(..., generator=generator)``
  (``torch.distributions`` cannot take a generator), without gradient;
  ``rsample`` is the same draw with the reparameterisation gradient;
- ``gain()``: :math:`K` of a linear mean :math:`\mu(s) = -K s`, and
  ``noise_covariance()``: :math:`\Sigma` when it does not depend on the state;
  with :func:`pgnotes.lqr.expected_return` they give a policy's exact return.

Parameters are initialised deterministically from ``seed``: the mean head at
zero (the zero policy), the covariance head at :math:`\Sigma = \sigma_0^2 I`
with :math:`\sigma_0` = ``init_std`` for every state, and hidden layers
uniformly in :math:`\pm 1/\sqrt{\text{fan-in}}` (the PyTorch default range).

The module is longer than most because it holds the five covariance heads the
book compares, on one shared base class; each class is a few short methods.
Their log-densities come from :mod:`pgnotes.gaussian`'s kernels.

References:
    Williams, R. J. (1992). Simple statistical gradient-following algorithms for
    connectionist reinforcement learning. Machine Learning 8.

    Schulman, J., Wolski, F., Dhariwal, P., Radford, A. and Klimov, O. (2017).
    Proximal policy optimization algorithms. arXiv:1707.06347.

    Haarnoja, T., Zhou, A., Abbeel, P. and Levine, S. (2018). Soft actor-critic.
    ICML.

    PyTorch contributors. torch.distributions (Independent, Normal, MultivariateNormal).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal

from pgnotes import gaussian
from pgnotes._validation import as_float_tensor, check_finite, check_min_dim, check_positive

__all__ = [
    "GaussianPolicy",
    "DiagonalGaussianPolicy",
    "FixedStdPolicy",
    "LearnedStdPolicy",
    "StateDependentStdPolicy",
    "CholeskyPolicy",
    "HEADS",
    "make_policy",
]

def _uniform_init_(layer: nn.Linear, generator: torch.Generator) -> None:
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


def _softplus_inverse(y: float) -> float:
    # log(expm1(y)) overflows nowhere for y > 0 and keeps precision for small y.
    return y + math.log(-math.expm1(-y))


class GaussianPolicy(nn.Module):
    r"""Base class: shared features, a mean head, and a covariance head left to subclasses.

    With ``hidden=()`` the features are the observation itself and the mean is
    :math:`\mu(s) = -K s`. With ``hidden=(h1, h2, ...)`` the features are a tanh
    MLP of the observation and the mean is an affine function of them.

    Args:
        obs_dim: state dimension :math:`n`.
        act_dim: action dimension :math:`k`.
        hidden: hidden layer widths; empty for a linear policy.
        seed: seed of the parameter initialisation.
        dtype: parameter dtype (the default dtype if None).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        hidden: Sequence[int] = (),
        seed: int = 0,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("obs_dim", obs_dim), ("act_dim", act_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer widths must be positive, got {hidden}")
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self._skip_obs_checks = False
        self.hidden = hidden
        # Built directly in the requested dtype: converting float32 parameters
        # afterwards would leave float32 rounding in init_std.
        self._factory = {"dtype": dtype if dtype is not None else torch.get_default_dtype()}
        generator = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            linear = nn.Linear(width, h, **self._factory)
            _uniform_init_(linear, generator)
            layers += [linear, nn.Tanh()]
            width = h
        self.trunk: nn.Module = nn.Sequential(*layers) if layers else nn.Identity()
        self.feature_dim = width
        # No offset for the linear policy, so that mu(s) = -K s exactly.
        self.mean_head = nn.Linear(width, act_dim, bias=bool(hidden), **self._factory)
        nn.init.zeros_(self.mean_head.weight)
        if self.mean_head.bias is not None:
            nn.init.zeros_(self.mean_head.bias)

    # ----------------------------------------------------------------- checks

    @property
    def _param_dtype(self) -> torch.dtype:
        return self.mean_head.weight.dtype

    @contextlib.contextmanager
    def _observations_validated(self) -> Iterator[None]:
        """Within the block, trust observations: a caller that validated once (a rollout) skips the per-step checks."""
        previous, self._skip_obs_checks = self._skip_obs_checks, True
        try:
            yield
        finally:
            self._skip_obs_checks = previous

    def _check_obs(self, obs: Any) -> torch.Tensor:
        if self._skip_obs_checks:
            return obs
        obs = as_float_tensor("obs", obs, like=self.mean_head.weight)
        check_min_dim("obs", obs, 1, "a trailing state axis")
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"obs has {obs.shape[-1]} state components (shape {tuple(obs.shape)}) but the policy "
                f"has obs_dim = {self.obs_dim} (act_dim = {self.act_dim})"
            )
        if obs.dtype != self._param_dtype:
            raise ValueError(
                f"obs has dtype {obs.dtype} but the policy's parameters are {self._param_dtype}; "
                "convert one of them (policy.double() or obs.to(...))"
            )
        return obs

    def _check_act(self, act: Any) -> torch.Tensor:
        act = as_float_tensor("act", act, like=self.mean_head.weight)
        check_min_dim("act", act, 1, "a trailing action axis")
        if act.shape[-1] != self.act_dim:
            raise ValueError(
                f"act has {act.shape[-1]} action components (shape {tuple(act.shape)}) but the policy "
                f"has act_dim = {self.act_dim} (obs_dim = {self.obs_dim})"
            )
        return act.to(self._param_dtype)

    # ---------------------------------------------------------- the Gaussian

    def features(self, obs: Any) -> torch.Tensor:
        r"""The shared features: the observation itself, or the MLP's last hidden layer."""
        return self.trunk(self._check_obs(obs))

    def mean(self, obs: Any) -> torch.Tensor:
        r"""The mean :math:`\mu_\theta(s)`, shape ``(..., k)``."""
        return self.mean_head(self.features(obs))

    def forward(self, obs: Any) -> torch.Tensor:
        """The deterministic action: the mean."""
        return self.mean(obs)

    def _mean_and_tril(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def scale_tril(self, obs: Any) -> torch.Tensor:
        r"""The Cholesky factor :math:`L` of :math:`\Sigma_\theta(s) = L L^\top`, shape ``(..., k, k)``."""
        mean, tril = self._mean_and_tril(obs)
        return tril.expand(*mean.shape[:-1], self.act_dim, self.act_dim)

    def covariance(self, obs: Any) -> torch.Tensor:
        r""":math:`\Sigma_\theta(s)`, shape ``(..., k, k)``."""
        tril = self.scale_tril(obs)
        return tril @ tril.mT

    def std(self, obs: Any) -> torch.Tensor:
        r"""Per-component standard deviations :math:`\sqrt{\Sigma_{ii}}`, shape ``(..., k)``."""
        return self.scale_tril(obs).square().sum(-1).sqrt()

    def distribution(self, obs: Any) -> Distribution:
        """The policy at ``obs`` as a ``torch.distributions`` object with event shape ``(k,)``."""
        raise NotImplementedError

    def log_prob(self, obs: Any, act: Any) -> torch.Tensor:
        r"""The log-density :math:`\log \pi_\theta(a \mid s)`, with the broadcast batch shape of ``obs`` and ``act``."""
        raise NotImplementedError

    def _noise_times(self, obs: Any, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, L @ eps)`` for standard-normal ``eps`` of shape ``(..., k)``."""
        raise NotImplementedError

    def rsample(self, obs: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A reparameterised draw :math:`a = \mu_\theta(s) + L_\theta(s)\,\varepsilon` (differentiable in θ).

        Args:
            obs: states, shape ``(..., n)``.
            generator: source of :math:`\varepsilon \sim \mathcal{N}(0, I)`.

        Returns:
            Actions, shape ``(..., k)``.
        """
        obs = self._check_obs(obs)
        shape = (*obs.shape[:-1], self.act_dim)
        eps = torch.randn(shape, generator=generator, dtype=obs.dtype, device=obs.device)
        mean, noise = self._noise_times(obs, eps)
        return mean + noise

    def sample(self, obs: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""A draw :math:`a = \mu_\theta(s) + L_\theta(s)\,\varepsilon`, without gradient.

        Args:
            obs: states, shape ``(..., n)``.
            generator: source of :math:`\varepsilon \sim \mathcal{N}(0, I)`; the same
                seed gives the same actions.

        Returns:
            Actions, shape ``(..., k)``.
        """
        with torch.no_grad():
            return self.rsample(obs, generator=generator)

    # ------------------------------------------------- links to exact returns

    @property
    def is_linear(self) -> bool:
        r"""Whether the mean is linear, :math:`\mu(s) = -K s`."""
        return not self.hidden

    def gain(self) -> torch.Tensor:
        r"""The gain :math:`K` of the linear mean :math:`\mu(s) = -K s`, shape ``(k, n)`` (keeps autograd).

        Raises:
            ValueError: if the mean is an MLP.
        """
        if not self.is_linear:
            raise ValueError(
                f"only a linear-mean policy has a gain; this one has hidden layers {self.hidden}"
            )
        return -self.mean_head.weight

    def noise_covariance(self) -> torch.Tensor | None:
        r""":math:`\Sigma` of shape ``(k, k)`` when it does not depend on the state, else None."""
        return None


class DiagonalGaussianPolicy(GaussianPolicy):
    r"""A diagonal covariance :math:`\operatorname{diag}(\sigma^2)` given by :math:`\log\sigma`."""

    def log_std(self, obs: Any) -> torch.Tensor:
        r""":math:`\log\sigma`, broadcastable to ``(..., k)``."""
        raise NotImplementedError

    def _mean_and_log_std(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _mean_and_tril(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self._mean_and_log_std(obs)
        return mean, torch.diag_embed(log_std.exp().expand_as(mean))

    def std(self, obs: Any) -> torch.Tensor:
        r"""Standard deviations :math:`\sigma`, shape ``(..., k)``."""
        mean, log_std = self._mean_and_log_std(obs)
        return log_std.exp().expand_as(mean)

    def distribution(self, obs: Any) -> Distribution:
        """``Independent(Normal(mean, std), 1)``."""
        mean, log_std = self._mean_and_log_std(obs)
        return Independent(Normal(mean, log_std.exp().expand_as(mean)), 1)

    def log_prob(self, obs: Any, act: Any) -> torch.Tensor:
        r"""The diagonal Gaussian log-density.

        .. math::

           \log \pi(a \mid s) = \sum_{i=1}^k \Bigl[-\tfrac12 \bigl(d_i / \sigma_i\bigr)^2
           - \log\sigma_i - \tfrac12 \log 2\pi\Bigr], \qquad d = a - \mu(s).

        Computed from :math:`\log\sigma` (never dividing by a tiny :math:`\sigma`
        or taking the log of one), which is safe for :math:`\log\sigma` far below
        the float range of :math:`\sigma` itself.

        Args:
            obs: states, shape ``(..., n)``.
            act: actions, shape ``(..., k)``.

        Returns:
            Log-densities with the broadcast batch shape of ``obs`` and ``act``.
        """
        act = self._check_act(act)
        mean, log_std = self._mean_and_log_std(obs)
        return gaussian._diag_log_prob(act, mean, log_std)

    def _noise_times(self, obs: Any, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self._mean_and_log_std(obs)
        return mean, log_std.exp() * eps


class FixedStdPolicy(DiagonalGaussianPolicy):
    r"""A Gaussian policy with a fixed diagonal covariance :math:`\operatorname{diag}(\sigma^2)`.

    Only the mean is learned; :math:`\sigma` is a buffer (it moves with
    ``.to()`` and is saved in ``state_dict``, but is not a parameter).

    Args:
        obs_dim: state dimension :math:`n`.
        act_dim: action dimension :math:`k`.
        std: :math:`\sigma`, a positive number or a vector of ``k`` numbers.
        hidden: hidden layer widths of the mean; empty for :math:`\mu(s) = -K s`.
        seed: seed of the parameter initialisation.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        std: Any = 0.5,
        hidden: Sequence[int] = (),
        seed: int = 0,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden=hidden, seed=seed, dtype=dtype)
        std_t = as_float_tensor("std", std, like=self.mean_head.weight).detach().clone()
        check_positive("std", std_t)
        check_finite("std", std_t)
        self.register_buffer("fixed_log_std", std_t.log().expand(act_dim).clone())

    def log_std(self, obs: Any = None) -> torch.Tensor:
        r""":math:`\log\sigma`, shape ``(k,)`` (the same for every state)."""
        return self.fixed_log_std

    def _mean_and_log_std(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(obs), self.fixed_log_std

    def noise_covariance(self) -> torch.Tensor:
        r""":math:`\operatorname{diag}(\sigma^2)`, shape ``(k, k)``."""
        return torch.diag(torch.exp(2.0 * self.fixed_log_std))


class LearnedStdPolicy(DiagonalGaussianPolicy):
    r"""A Gaussian policy with a learned, state-independent :math:`\log\sigma` (PPO style).

    :math:`\log\sigma \in \mathbb{R}^k` is a free parameter vector, so
    :math:`\sigma > 0` without any constraint; it starts at
    :math:`\log\sigma_0` = ``log(init_std)``.

    Args:
        obs_dim: state dimension :math:`n`.
        act_dim: action dimension :math:`k`.
        init_std: initial :math:`\sigma_0 > 0`.
        hidden: hidden layer widths of the mean; empty for :math:`\mu(s) = -K s`.
        seed: seed of the parameter initialisation.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        init_std: float = 0.5,
        hidden: Sequence[int] = (),
        seed: int = 0,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden=hidden, seed=seed, dtype=dtype)
        if not (math.isfinite(init_std) and init_std > 0):
            raise ValueError(f"init_std must be a finite number > 0, got {init_std}")
        self.log_std_param = nn.Parameter(torch.full((act_dim,), math.log(init_std), **self._factory))

    def log_std(self, obs: Any = None) -> torch.Tensor:
        r""":math:`\log\sigma`, shape ``(k,)`` (the same for every state)."""
        return self.log_std_param

    def _mean_and_log_std(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean(obs), self.log_std_param

    def noise_covariance(self) -> torch.Tensor:
        r""":math:`\operatorname{diag}(\sigma^2)`, shape ``(k, k)``, differentiable in :math:`\log\sigma`."""
        return torch.diag(torch.exp(2.0 * self.log_std_param))


class StateDependentStdPolicy(DiagonalGaussianPolicy):
    r"""A Gaussian policy whose :math:`\log\sigma(s)` is a head on the shared features (SAC style).

    :math:`\log\sigma(s) = \operatorname{clamp}(W_\sigma \phi(s) + b_\sigma,
    \ell_{\min}, \ell_{\max})` with :math:`\phi(s)` the shared features (the
    state itself for ``hidden=()``). Clamping to ``log_std_bounds`` (default
    :math:`[-20, 2]`, the bounds of the SAC reference code) keeps
    :math:`\sigma` away from 0 and from overflow; outside the bounds the
    gradient of the clamped entry is zero. The head starts at
    :math:`W_\sigma = 0`, :math:`b_\sigma = \log\sigma_0`.

    Args:
        obs_dim: state dimension :math:`n`.
        act_dim: action dimension :math:`k`.
        init_std: initial :math:`\sigma_0 > 0` (for every state).
        hidden: hidden layer widths of the shared MLP; empty for linear heads.
        log_std_bounds: ``(min, max)`` for the clamp, or None for no clamp.
        seed: seed of the parameter initialisation.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        init_std: float = 0.5,
        hidden: Sequence[int] = (),
        log_std_bounds: tuple[float, float] | None = (-20.0, 2.0),
        seed: int = 0,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden=hidden, seed=seed, dtype=dtype)
        if not (math.isfinite(init_std) and init_std > 0):
            raise ValueError(f"init_std must be a finite number > 0, got {init_std}")
        if log_std_bounds is not None:
            low, high = (float(b) for b in log_std_bounds)
            if not low < high:
                raise ValueError(f"log_std_bounds must be (min, max) with min < max, got {log_std_bounds}")
            if not low <= math.log(init_std) <= high:
                raise ValueError(
                    f"log(init_std) = {math.log(init_std):.3g} lies outside log_std_bounds {log_std_bounds}"
                )
            log_std_bounds = (low, high)
        self.log_std_bounds = log_std_bounds
        self.log_std_head = nn.Linear(self.feature_dim, act_dim, **self._factory)
        nn.init.zeros_(self.log_std_head.weight)
        nn.init.constant_(self.log_std_head.bias, math.log(init_std))

    def _log_std_from_features(self, features: torch.Tensor) -> torch.Tensor:
        log_std = self.log_std_head(features)
        if self.log_std_bounds is not None:
            log_std = log_std.clamp(*self.log_std_bounds)
        return log_std

    def log_std(self, obs: Any) -> torch.Tensor:
        r""":math:`\log\sigma(s)`, shape ``(..., k)``."""
        return self._log_std_from_features(self.features(obs))

    def _mean_and_log_std(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(obs)
        return self.mean_head(features), self._log_std_from_features(features)


class CholeskyPolicy(GaussianPolicy):
    r"""A Gaussian policy with a full covariance :math:`\Sigma = L L^\top` from a Cholesky head.

    The head outputs the :math:`k(k+1)/2` free entries of the lower-triangular
    :math:`L`, row by row; the diagonal ones pass through
    :math:`\operatorname{softplus}(x) + \text{min\_diag}`, so :math:`L` is a
    valid Cholesky factor (positive diagonal) for every parameter value and
    :math:`\Sigma` is positive definite. softplus rather than exp: it grows
    linearly, so a large raw output cannot overflow :math:`L`, and the floor
    keeps :math:`\log L_{ii}` finite when the raw output is very negative.

    With ``state_dependent=True`` the entries are an affine function of the
    shared features; with ``False`` they are a free parameter vector, so
    :meth:`noise_covariance` gives :math:`\Sigma` for the exact return of a
    linear policy. The head starts at :math:`L = \sigma_0 I`.

    Args:
        obs_dim: state dimension :math:`n`.
        act_dim: action dimension :math:`k`.
        init_std: initial :math:`\sigma_0`, must exceed ``min_diag``.
        hidden: hidden layer widths of the shared MLP; empty for linear heads.
        state_dependent: whether :math:`L` depends on the state.
        min_diag: floor of the diagonal of :math:`L`.
        seed: seed of the parameter initialisation.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        *,
        init_std: float = 0.5,
        hidden: Sequence[int] = (),
        state_dependent: bool = True,
        min_diag: float = 1e-4,
        seed: int = 0,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(obs_dim, act_dim, hidden=hidden, seed=seed, dtype=dtype)
        if not (math.isfinite(min_diag) and min_diag >= 0):
            raise ValueError(f"min_diag must be a finite number >= 0, got {min_diag}")
        if not (math.isfinite(init_std) and init_std > min_diag):
            raise ValueError(f"init_std must be finite and > min_diag = {min_diag}, got {init_std}")
        self.min_diag = float(min_diag)
        self.state_dependent = bool(state_dependent)
        k = act_dim
        rows, cols = torch.tril_indices(k, k)
        n_entries = rows.numel()
        # Placing the entries with a 0/1 matrix product instead of an in-place
        # index assignment keeps L out-of-place, so it works under torch.func
        # transforms (vmap, jacrev) as well as plain autograd.
        placement = torch.zeros(n_entries, k * k, **self._factory)
        placement[torch.arange(n_entries), rows * k + cols] = 1.0
        self.register_buffer("tril_placement", placement, persistent=False)
        self.register_buffer("tril_is_diag", rows == cols, persistent=False)
        raw_init = (rows == cols).to(**self._factory) * _softplus_inverse(init_std - min_diag)
        if self.state_dependent:
            self.tril_head = nn.Linear(self.feature_dim, n_entries, **self._factory)
            nn.init.zeros_(self.tril_head.weight)
            with torch.no_grad():
                self.tril_head.bias.copy_(raw_init)
        else:
            self.tril_param = nn.Parameter(raw_init.clone())

    def _tril_from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        diag = nn.functional.softplus(raw) + self.min_diag
        entries = torch.where(self.tril_is_diag, diag, raw)
        flat = entries @ self.tril_placement
        return flat.reshape(*raw.shape[:-1], self.act_dim, self.act_dim)

    def _mean_and_tril(self, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(obs)
        mean = self.mean_head(features)
        raw = self.tril_head(features) if self.state_dependent else self.tril_param
        return mean, self._tril_from_raw(raw)

    def distribution(self, obs: Any) -> Distribution:
        """``MultivariateNormal(mean, scale_tril=L)``."""
        mean, tril = self._mean_and_tril(obs)
        return MultivariateNormal(mean, scale_tril=tril.expand(*mean.shape, self.act_dim))

    def log_prob(self, obs: Any, act: Any) -> torch.Tensor:
        r"""The multivariate Gaussian log-density through the Cholesky factor.

        .. math::

           \log \pi(a \mid s) = -\tfrac12 \lVert L^{-1} d \rVert^2
           - \sum_{i=1}^k \log L_{ii} - \tfrac{k}{2} \log 2\pi, \qquad d = a - \mu(s),

        using :math:`\log\det\Sigma = 2 \sum_i \log L_{ii}` and a triangular
        solve for :math:`L^{-1} d`; :math:`\Sigma` is never formed or inverted,
        which is the numerically safe route (its condition number is the square
        of :math:`L`'s).

        Args:
            obs: states, shape ``(..., n)``.
            act: actions, shape ``(..., k)``.

        Returns:
            Log-densities with the broadcast batch shape of ``obs`` and ``act``.
        """
        act = self._check_act(act)
        mean, tril = self._mean_and_tril(obs)
        return gaussian._tril_log_prob(act - mean, tril)

    def _noise_times(self, obs: Any, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, tril = self._mean_and_tril(obs)
        return mean, (tril @ eps.unsqueeze(-1)).squeeze(-1)

    def noise_covariance(self) -> torch.Tensor | None:
        r""":math:`L L^\top`, shape ``(k, k)``, for a state-independent head; None otherwise."""
        if self.state_dependent:
            return None
        tril = self._tril_from_raw(self.tril_param)
        return tril @ tril.mT


HEADS: dict[str, type[GaussianPolicy]] = {
    "fixed": FixedStdPolicy,
    "learned": LearnedStdPolicy,
    "state": StateDependentStdPolicy,
    "cholesky": CholeskyPolicy,
}
"""The policy class of each covariance head, by short name."""


def make_policy(head: str, obs_dim: int, act_dim: int, **kwargs: Any) -> GaussianPolicy:
    """Build the policy with covariance head ``head`` (a key of :data:`HEADS`).

    Keyword arguments go to the class, for instance ``init_std=0.5``,
    ``hidden=(16,)`` or ``state_dependent=False`` for ``"cholesky"``. For the
    ``"fixed"`` head, ``init_std`` is accepted as the fixed ``std``, so that one
    loop can build every head with the same arguments.

    Raises:
        ValueError: for an unknown head.
    """
    try:
        cls = HEADS[head]
    except KeyError:
        raise ValueError(f"unknown head {head!r}; choose one of {sorted(HEADS)}") from None
    if cls is FixedStdPolicy and "init_std" in kwargs:
        if "std" in kwargs:
            raise ValueError("give the fixed head either std or init_std, not both")
        kwargs["std"] = kwargs.pop("init_std")
    return cls(obs_dim, act_dim, **kwargs)
