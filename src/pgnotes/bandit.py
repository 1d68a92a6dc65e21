"""Deprecated: the bandit's closed forms are in :mod:`pgnotes.objectives` (``bandit_*``).

Kept for one release so that existing code keeps working; every name warns.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__: list[str] = []

_RENAMED = {
    "objective": "bandit_objective",
    "objective_gradient": "bandit_objective_gradient",
    "estimator_variance": "bandit_estimator_variance",
}


def _reward(a: Any, k: Any) -> torch.Tensor:
    from pgnotes import objectives
    from pgnotes._validation import as_float_tensor

    like = next((v for v in (a, k) if isinstance(v, torch.Tensor)), None)
    return objectives.bandit_reward(k)(as_float_tensor("a", a, like=like))


def _score_function_estimates(mean: Any, std: Any, k: Any, n: int, *, baseline: Any = None, generator: Any = None):
    from pgnotes import estimators, objectives

    return estimators.score_function_estimates(
        objectives.bandit_reward(k), mean, std, n, baseline=baseline, generator=generator
    )


def __getattr__(name: str) -> Any:
    from pgnotes import objectives

    if name == "reward":
        replacement, value = "pgnotes.objectives.bandit_reward(k)(a)", _reward
    elif name == "score_function_estimates":
        replacement = "pgnotes.estimators.score_function_estimates(pgnotes.objectives.bandit_reward(k), ...)"
        value = _score_function_estimates
    elif name in _RENAMED:
        replacement, value = f"pgnotes.objectives.{_RENAMED[name]}", getattr(objectives, _RENAMED[name])
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"pgnotes.bandit.{name} is deprecated; use {replacement}", DeprecationWarning, stacklevel=2)
    return value
