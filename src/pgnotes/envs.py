"""The linear-quadratic task as a ``gymnasium`` environment, for agents written against that API.

Importing this module needs ``gymnasium``, an optional dependency
(``pip install 'gymnasium>=1.0'``, included in ``pgnotes[test]``); the rest of
the package never imports it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import gymnasium
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pgnotes.envs needs gymnasium, which is an optional dependency of pgnotes: "
        "pip install 'gymnasium>=1.0' (or pip install 'pgnotes[test]')"
    ) from exc

from pgnotes._validation import check_count, check_real
from pgnotes.lqr import LQRTask, _check_task, _psd_sqrt

__all__ = ["LQREnv", "make_env"]


def _real_vector(name: str, value: Any) -> np.ndarray:
    """A finite real float64 vector from an array-like, or ``ValueError`` naming ``name``."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(f"{name} must be an array of numbers, got {type(value).__name__}")
    if np.iscomplexobj(value):
        raise ValueError(f"{name} must be real, got a complex array")
    try:
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {type(value).__name__}") from exc
    if not np.all(np.isfinite(vector)):
        raise ValueError(f"{name} must be finite, got {vector}")
    return vector


class LQREnv(gymnasium.Env):
    r"""A single linear-quadratic task as a ``gymnasium.Env``.

    Observations are the state :math:`s_t` (float32); the reward is
    :math:`-(s^\top Q s + a^\top R a)`; episodes never terminate and are
    truncated after ``horizon`` steps. The simulation runs in float64 with
    the environment's own ``np_random``, seeded by ``reset(seed=...)``.

    The linear-quadratic task is defined for every action, so actions are
    applied as given, without clipping. ``action_space`` is the box
    :math:`[-b, b]^k` with :math:`b` = ``action_bound``, a nominal range for
    samplers and checkers (the default :math:`b = 1` is the normalised box
    that ``gymnasium.utils.env_checker.check_env`` recommends); wrap the
    environment in ``gymnasium.wrappers.ClipAction`` to enforce it. The
    observation space is the whole float32 range.

    Args:
        task: the task.
        horizon: episode length; ``task.effective_horizon()`` if None.
        action_bound: half-width :math:`b` of the nominal action box.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: LQRTask, horizon: int | None = None, action_bound: float = 1.0) -> None:
        super().__init__()
        _check_task(task)
        self.task = task
        self.horizon = task.effective_horizon() if horizon is None else check_count("horizon", horizon)
        action_bound = check_real("action_bound", action_bound, low=0.0, low_open=True)
        n, k = task.state_dim, task.action_dim
        big = np.finfo(np.float32).max
        self.observation_space = gymnasium.spaces.Box(low=-big, high=big, shape=(n,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Box(
            low=-float(action_bound), high=float(action_bound), shape=(k,), dtype=np.float32
        )
        self._A, self._B, self._Q, self._R = (m.numpy() for m in (task.A, task.B, task.Q, task.R))
        self._w_root = _psd_sqrt(task.W).numpy()
        self._x0_root = _psd_sqrt(task.X0).numpy()
        self._x0_mean = task.x0_mean.numpy()
        self._state = np.zeros(n)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        r"""Draw :math:`s_0 \sim \mathcal{N}(m_0, X_0)`; ``options`` may give ``{"state": s0}``."""
        super().reset(seed=seed)
        if options is not None and "state" in options:
            state = _real_vector('options["state"]', options["state"])
            if state.shape != (self.task.state_dim,):
                raise ValueError(
                    f'options["state"] must have shape ({self.task.state_dim},), got {state.shape}'
                )
            self._state = state.copy()
        else:
            eps = self.np_random.standard_normal(self.task.state_dim)
            self._state = self._x0_mean + self._x0_root @ eps
        self._t = 0
        return self._state.astype(np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (unclipped); return ``(obs, reward, terminated, truncated, info)``."""
        u = _real_vector("action", action)
        if u.shape != (self.task.action_dim,):
            raise ValueError(f"action must have shape ({self.task.action_dim},), got {np.shape(action)}")
        s = self._state
        cost = float(s @ self._Q @ s + u @ self._R @ u)
        noise = self._w_root @ self.np_random.standard_normal(self.task.state_dim)
        self._state = self._A @ s + self._B @ u + noise
        self._t += 1
        truncated = self._t >= self.horizon
        return self._state.astype(np.float32), -cost, False, truncated, {"cost": cost}


def make_env(task: LQRTask, horizon: int | None = None, action_bound: float = 1.0) -> LQREnv:
    """A ``gymnasium.Env`` for ``task``; see :class:`LQREnv`."""
    return LQREnv(task, horizon=horizon, action_bound=action_bound)
