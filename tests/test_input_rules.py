"""Every public name of every module, called with each category's standard bad inputs.

The walker discovers the modules of the package and the names in their
``__all__``; every callable must have an entry in ``SPECS`` saying how to call
it with valid arguments and which arguments are tensors, counts, real
hyper-parameters, flags, callables, generators or objects. A public function
added later without an entry fails ``test_every_public_callable_has_an_entry``.

For each entry it checks the input rules of book/input_rules.md:

- tensors (categories 1, 3): NaN, inf, a complex tensor, float16, a string and
  None give a ``ValueError``/``TypeError`` naming the argument; NumPy float64
  gives exactly the float64 answer; an integer tensor gives a floating answer
  equal to that of the same values in float64 (or a clear error when the
  integer values are invalid, e.g. a zero standard deviation);
- counts, reals, flags, callables, generators and objects (category 5): the
  standard bad values of each kind are refused, naming the argument;
- mismatched shapes (category 4): a ``ValueError`` naming both arguments.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import pgnotes
from pgnotes import (
    check,
    gaussian,
    lqr,
    objectives,
    policies,
    rollouts,
)

F64 = torch.float64
CLEAR_ERRORS = (ValueError, TypeError)


@dataclass
class Spec:
    """How to call one public callable, and what kind of input each argument is."""

    valid: Callable[[], dict[str, Any]]
    call: Callable[..., Any] | None = None  # the public object itself unless given
    tensors: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()
    reals: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    callables: tuple[str, ...] = ()
    generators: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    # Covariance-like matrices: symmetric positive (semi)definite (category 6).
    covariances: tuple[str, ...] = ()
    # Sizes whose huge values must be refused before allocating, saying how much memory (category 7).
    sizes: tuple[str, ...] = ()
    # Arguments whose NaN or inf has a defined answer (e.g. a relative error of NaN).
    nonfinite_allowed: tuple[str, ...] = ()
    # (changes to the valid arguments, the names the message must contain)
    mismatch: Callable[[], tuple[dict[str, Any], tuple[str, ...]]] | None = None
    # The exceptions that count as a clear answer to bad input.
    errors: tuple[type[BaseException], ...] = (ValueError, TypeError)
    # How a message may name an argument when not by its parameter name.
    names_as: dict[str, str] = field(default_factory=dict)


@dataclass
class Returned:
    """A result type or exception: students receive it, they do not build it from their own input."""

    made_by: str


def _t(*values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def _task_2d() -> lqr.LQRTask:
    return lqr.task_2d()


def _gain_2d() -> torch.Tensor:
    return 0.3 * torch.eye(2, dtype=F64)


def _cov(k: int = 2) -> torch.Tensor:
    return torch.eye(k, dtype=F64) + 0.25 * torch.ones(k, k, dtype=F64)


def _chain_inputs(kind: str) -> dict[str, Any]:
    theta = torch.tensor([0.3, -0.2], dtype=F64, requires_grad=True)
    scale = torch.tensor([0.5, 1.5], dtype=F64, requires_grad=True)
    a = _t(0.1, 0.4)
    if kind == "diag":
        return {"a": a, "mean": theta * 2.0, "log_std": scale.log(), "inputs": [theta, scale]}
    matrix = torch.diag(scale)
    if kind == "tril":
        return {"a": a, "mean": theta * 2.0, "scale_tril": matrix, "inputs": [theta, scale]}
    return {"a": a, "mean": theta * 2.0, "cov": matrix @ matrix, "inputs": [theta, scale]}


def _batch(task: lqr.LQRTask) -> rollouts.Rollout:
    return rollouts.rollout(task, policies.LearnedStdPolicy(2, 2, dtype=F64), episodes=3, horizon=4, generator=check.seeded(0))


_TASK_MATRICES = {"A": "A", "B": "B", "Q": "Q", "R": "R", "W": "W", "X0": "X0"}

SPECS: dict[str, Spec | Returned] = {
    # ----------------------------------------------------------------- gaussian
    "gaussian.normal_log_prob": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "std": _t(1.0, 2.0)},
        tensors=("a", "mean", "std"),
        mismatch=lambda: ({"a": _t(1.0, 2.0, 3.0)}, ("a", "mean")),
    ),
    "gaussian.normal_score": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "std": _t(1.0, 2.0)},
        tensors=("a", "mean", "std"),
        mismatch=lambda: ({"std": _t(1.0, 2.0, 3.0)}, ("a", "std")),
    ),
    "gaussian.normal_score_log_std": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "log_std": _t(0.0, -1.0)},
        tensors=("a", "mean", "log_std"),
        mismatch=lambda: ({"log_std": _t(1.0, 2.0, 3.0)}, ("a", "log_std")),
    ),
    "gaussian.diag_log_prob": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "log_std": _t(0.0, -1.0)},
        tensors=("a", "mean", "log_std"),
        mismatch=lambda: ({"mean": _t(1.0, 2.0, 3.0)}, ("a", "mean")),
    ),
    "gaussian.diag_score": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "log_std": _t(0.0, -1.0)},
        tensors=("a", "mean", "log_std"),
        mismatch=lambda: ({"mean": _t(1.0, 2.0, 3.0)}, ("a", "mean")),
    ),
    "gaussian.mvn_log_prob": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "cov": _cov()},
        tensors=("a", "mean", "cov"),
        covariances=("cov",),
        mismatch=lambda: ({"a": torch.zeros(3, 2, dtype=F64), "mean": torch.zeros(4, 2, dtype=F64)}, ("a", "mean")),
    ),
    "gaussian.mvn_score": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "cov": _cov()},
        tensors=("a", "mean", "cov"),
        covariances=("cov",),
        mismatch=lambda: ({"a": torch.zeros(3, 2, dtype=F64), "mean": torch.zeros(4, 2, dtype=F64)}, ("a", "mean")),
    ),
    "gaussian.mvn_score_tril": Spec(
        lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "scale_tril": torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=F64)},
        tensors=("a", "mean", "scale_tril"),
        mismatch=lambda: ({"a": _t(1.0, 2.0, 3.0)}, ("a", "scale_tril")),
    ),
    "gaussian.tanh_log_abs_det_jacobian": Spec(lambda: {"u": _t(0.1, -3.0)}, tensors=("u",)),
    "gaussian.squashed_log_prob": Spec(
        lambda: {"u": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "log_std": _t(0.0, -1.0)},
        tensors=("u", "mean", "log_std"),
        mismatch=lambda: ({"mean": _t(1.0, 2.0, 3.0)}, ("u", "mean")),
    ),
    # -------------------------------------------------------------- objectives
    **{
        f"objectives.{name}": Spec(
            lambda: {"mean": _t(0.0, 1.0), "std": _t(1.0, 2.0), "k": _t(0.5, 0.5)},
            tensors=("mean", "std", "k"),
            mismatch=lambda: ({"k": _t(1.0, 2.0, 3.0)}, ("mean", "k")),
        )
        for name in (
            "exact_value_quadratic",
            "exact_gradient_quadratic",
            "exact_variance_quadratic",
            "optimal_baseline_quadratic",
            "bandit_objective",
            "bandit_objective_gradient",
            "bandit_estimator_variance",
            "exact_value_step",
            "exact_gradient_step",
        )
    },
    "objectives.quadratic_reward": Spec(lambda: {"k": _t(0.5)}, tensors=("k",)),
    "objectives.bandit_reward": Spec(lambda: {"k": _t(0.5)}, tensors=("k",)),
    "objectives.step_reward": Spec(lambda: {"k": _t(0.5)}, tensors=("k",)),
    "objectives.quadratic_variance_derivation": Returned("takes no argument (a SymPy derivation)"),
    "objectives.EstimatorVariances": Returned("objectives.exact_variance_quadratic"),
    "objectives.QuadraticVarianceDerivation": Returned("objectives.quadratic_variance_derivation"),
    # -------------------------------------------------------------- estimators
    "estimators.score_function_estimates": Spec(
        lambda: {
            "f": objectives.quadratic_reward(0.5),
            "mean": _t(0.0, 1.0),
            "std": _t(1.0, 2.0),
            "n": 4,
            "baseline": _t(0.1, 0.2),
            "generator": check.seeded(0),
        },
        tensors=("mean", "std", "baseline"),
        counts=("n",),
        sizes=("n",),
        callables=("f",),
        generators=("generator",),
        mismatch=lambda: ({"std": _t(1.0, 2.0, 3.0)}, ("mean", "std")),
    ),
    "estimators.pathwise_estimates": Spec(
        lambda: {
            "f": objectives.quadratic_reward(0.5),
            "mean": _t(0.0, 1.0),
            "std": _t(1.0, 2.0),
            "n": 4,
            "generator": check.seeded(0),
        },
        tensors=("mean", "std"),
        counts=("n",),
        sizes=("n",),
        callables=("f",),
        generators=("generator",),
        mismatch=lambda: ({"std": _t(1.0, 2.0, 3.0)}, ("mean", "std")),
    ),
    # ------------------------------------------------------------- monte_carlo
    "monte_carlo.summarize": Spec(lambda: {"estimates": _t(1.0, 2.0, 4.0)}, tensors=("estimates",)),
    "monte_carlo.z_score": Spec(
        lambda: {"estimates": torch.tensor([[1.0, 2.0], [2.0, 3.5], [4.0, 1.0]], dtype=F64), "exact": _t(2.0, 2.0)},
        tensors=("estimates", "exact"),
        mismatch=lambda: ({"exact": _t(1.0, 2.0, 3.0)}, ("exact", "estimates")),
    ),
    "monte_carlo.EstimateSummary": Returned("monte_carlo.summarize"),
    # --------------------------------------------------------------------- lqr
    "lqr.LQRTask": Spec(
        lambda: {
            "A": torch.tensor([[1.0, 0.2], [-0.1, 0.9]], dtype=F64),
            "B": torch.eye(2, dtype=F64),
            "Q": torch.eye(2, dtype=F64),
            "R": torch.eye(2, dtype=F64),
            "W": 0.05 * torch.eye(2, dtype=F64),
            "X0": torch.eye(2, dtype=F64),
            "gamma": 0.9,
            "x0_mean": _t(0.5, -0.5),
        },
        tensors=("A", "B", "Q", "R", "W", "X0", "x0_mean"),
        covariances=("Q", "R", "W", "X0"),
        reals=("gamma",),
        mismatch=lambda: ({"Q": torch.eye(3, dtype=F64)}, ("Q", "(2, 2)")),
    ),
    "lqr.task_1d": Spec(
        lambda: {"a": 1.0, "b": 1.0, "q": 1.0, "r": 1.0, "w": 0.1, "x0_var": 1.0, "gamma": 0.9},
        reals=("a", "b", "q", "r", "w", "x0_var", "gamma"),
    ),
    "lqr.task_2d": Spec(lambda: {"gamma": 0.9, "noise": 0.05}, reals=("gamma", "noise")),
    "lqr.closed_loop": Spec(lambda: {"task": _task_2d(), "gain": _gain_2d()}, tensors=("gain",), objects=("task",)),
    "lqr.discounted_spectral_radius": Spec(
        lambda: {"task": _task_2d(), "gain": _gain_2d()}, tensors=("gain",), objects=("task",)
    ),
    "lqr.solve_discounted_lyapunov": Spec(
        lambda: {"F": 0.5 * torch.eye(2, dtype=F64), "M": torch.eye(2, dtype=F64), "gamma": 0.9},
        tensors=("F", "M"),
        reals=("gamma",),
        mismatch=lambda: ({"M": torch.eye(3, dtype=F64)}, ("F", "M")),
    ),
    **{
        f"lqr.{name}": Spec(
            lambda: {"task": _task_2d(), "gain": _gain_2d(), "noise_cov": 0.1 * torch.eye(2, dtype=F64)},
            tensors=("gain", "noise_cov"),
            covariances=("noise_cov",),
            objects=("task",),
            mismatch=lambda: (
                {"gain": _gain_2d().expand(3, 2, 2), "noise_cov": 0.1 * torch.eye(2, dtype=F64).expand(4, 2, 2)},
                ("gain", "noise_cov"),
            ),
        )
        for name in ("quadratic_value", "expected_return", "exploration_cost")
    },
    "lqr.solve_riccati": Spec(
        lambda: {"task": _task_2d(), "tol": 1e-12, "max_iterations": 10_000},
        reals=("tol",),
        counts=("max_iterations",),
        objects=("task",),
    ),
    "lqr.optimal_gain": Spec(lambda: {"task": _task_2d()}, objects=("task",)),
    "lqr.optimal_return": Spec(lambda: {"task": _task_2d()}, objects=("task",)),
    # ----------------------------------------------------------- action_values
    "action_values.action_value_matrices": Spec(
        lambda: {"task": _task_2d(), "gain": _gain_2d(), "noise_cov": 0.1 * torch.eye(2, dtype=F64)},
        tensors=("gain", "noise_cov"),
        covariances=("noise_cov",),
        objects=("task",),
    ),
    "action_values.discounted_state_moments": Spec(
        lambda: {"task": _task_2d(), "gain": _gain_2d(), "noise_cov": 0.1 * torch.eye(2, dtype=F64)},
        tensors=("gain", "noise_cov"),
        covariances=("noise_cov",),
        objects=("task",),
    ),
    **{
        f"action_values.{name}": Spec(
            lambda: {
                "task": _task_2d(),
                "gain": _gain_2d(),
                "noise_cov": 0.1 * torch.eye(2, dtype=F64),
                "states": torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64),
                "actions": torch.tensor([[0.0, 1.0], [0.25, -0.5]], dtype=F64),
            },
            tensors=("gain", "noise_cov", "states", "actions"),
            covariances=("noise_cov",),
            objects=("task",),
            mismatch=lambda: ({"states": torch.zeros(3, 2, dtype=F64)}, ("states", "actions")),
        )
        for name in ("action_value", "advantage")
    },
    # ---------------------------------------------------------------- rollouts
    "rollouts.check_policy_matches": Spec(
        lambda: {"task": _task_2d(), "policy": policies.LearnedStdPolicy(2, 2)}, objects=("task", "policy")
    ),
    "rollouts.rollout": Spec(
        lambda: {
            "task": _task_2d(),
            "policy": _gain_2d(),
            "noise_cov": 0.1 * torch.eye(2, dtype=F64),
            "episodes": 3,
            "horizon": 4,
            "generator": check.seeded(0),
        },
        tensors=("policy", "noise_cov"),
        covariances=("noise_cov",),
        counts=("episodes", "horizon"),
        sizes=("episodes",),
        generators=("generator",),
        objects=("task",),
    ),
    "rollouts.Rollout": Returned("rollouts.rollout"),
    # -------------------------------------------------------------------- envs
    "envs.LQREnv": Spec(
        lambda: {"task": _task_2d(), "horizon": 5, "action_bound": 1.0},
        counts=("horizon",),
        reals=("action_bound",),
        objects=("task",),
    ),
    "envs.make_env": Spec(
        lambda: {"task": _task_2d(), "horizon": 5, "action_bound": 1.0},
        counts=("horizon",),
        reals=("action_bound",),
        objects=("task",),
    ),
    # ---------------------------------------------------------------- policies
    **{
        f"policies.{name}": Spec(
            lambda: {"obs_dim": 2, "act_dim": 2, "hidden": (3,), "seed": 0, "init_std": 0.5},
            counts=("obs_dim", "act_dim"),
            reals=("init_std",),
        )
        for name in ("LearnedStdPolicy", "StateDependentStdPolicy", "CholeskyPolicy")
    },
    "policies.FixedStdPolicy": Spec(
        lambda: {"obs_dim": 2, "act_dim": 2, "hidden": (3,), "seed": 0, "std": _t(0.5, 0.25)},
        counts=("obs_dim", "act_dim"),
        tensors=("std",),
    ),
    "policies.GaussianPolicy": Returned("an abstract base class: build a subclass (policies.HEADS)"),
    "policies.DiagonalGaussianPolicy": Returned("an abstract base class: build a subclass (policies.HEADS)"),
    "policies.make_policy": Spec(
        lambda: {"head": "learned", "obs_dim": 2, "act_dim": 2, "init_std": 0.5},
        counts=("obs_dim", "act_dim"),
        reals=("init_std",),
    ),
    # -------------------------------------------------------------- chain_rule
    "chain_rule.mvn_chain_rule": Spec(lambda: _chain_inputs("mvn"), tensors=("a",)),
    "chain_rule.tril_chain_rule": Spec(lambda: _chain_inputs("tril"), tensors=("a",)),
    "chain_rule.diag_chain_rule": Spec(lambda: _chain_inputs("diag"), tensors=("a",)),
    "chain_rule.policy_chain_rule": Spec(
        lambda: {
            "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
            "obs": torch.tensor([[1.0, 0.5]], dtype=F64),
            "act": torch.tensor([[0.2, -0.1]], dtype=F64),
        },
        tensors=("obs", "act"),
        mismatch=lambda: ({"obs": torch.zeros(3, 2, dtype=F64), "act": torch.zeros(4, 2, dtype=F64)}, ("obs", "act")),
    ),
    "chain_rule.policy_autograd_score": Spec(
        lambda: {
            "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
            "obs": torch.tensor([[1.0, 0.5]], dtype=F64),
            "act": torch.tensor([[0.2, -0.1]], dtype=F64),
        },
        tensors=("obs", "act"),
        mismatch=lambda: ({"obs": torch.zeros(3, 2, dtype=F64), "act": torch.zeros(4, 2, dtype=F64)}, ("obs", "act")),
    ),
    # ------------------------------------------------------------------- check
    "check.GradCheck": Returned("check.compare_with_autograd"),
    "check.MonteCarloCheck": Returned("check.score_mean_check"),
    "check.assert_ok": Returned("takes the GradCheck results of check.compare_with_autograd"),
    "check.compare_with_autograd": Spec(
        lambda: {
            "closed_form": gaussian.normal_score,
            "log_density": gaussian.normal_log_prob,
            "inputs": {"a": _t(0.5, -1.0), "mean": _t(0.0, 0.2), "std": _t(1.0, 2.0)},
            "wrt": ("mean", "std"),
        },
        callables=("closed_form", "log_density"),
    ),
    "check.gradcheck_log_density": Spec(
        lambda: {
            "log_density": gaussian.normal_log_prob,
            "inputs": {"a": _t(0.5, -1.0), "mean": _t(0.0, 0.2), "std": _t(1.0, 2.0)},
            "wrt": "mean",
        },
        callables=("log_density",),
    ),
    "check.score_mean_check": Spec(
        lambda: {
            "sample": lambda n, g: torch.randn(n, generator=g, dtype=F64),
            "score": lambda a: gaussian.normal_score(a, 0.0, torch.tensor(1.0, dtype=F64))[0],
            "num_samples": 100,
        },
        callables=("sample", "score"),
        counts=("num_samples",),
    ),
    "check.fisher_check": Spec(
        lambda: {
            "sample": lambda n, g: torch.randn(n, generator=g, dtype=F64),
            "score": lambda a: gaussian.normal_score(a, 0.0, torch.tensor(1.0, dtype=F64))[0],
            "expected": torch.ones(1, 1, dtype=F64),
            "num_samples": 100,
        },
        callables=("sample", "score"),
        counts=("num_samples",),
        tensors=("expected",),
    ),
    "check.random_spd": Spec(
        lambda: {"k": 3, "condition_number": 10.0, "generator": check.seeded(0)},
        counts=("k",),
        reals=("condition_number",),
        generators=("generator",),
    ),
    "check.seeded": Spec(lambda: {"seed": 3}, counts=()),
    # ---------------------------------------------------------------- numerics
    "numerics.relative_error": Spec(
        lambda: {"computed": _t(1.0, 2.0), "reference": _t(1.0, 2.5)},
        tensors=("computed", "reference"),
        nonfinite_allowed=("computed",),
    ),
    **{
        f"numerics.{name}": Spec(
            lambda: {"a": _t(0.1, 2.0), "mean": _t(0.0, 1.0), "cov": _cov()},
            tensors=("a", "mean", "cov"),
            # The explicit-inverse versions stand for textbook code and, as documented, do not
            # check the covariance; the references treat it as exact and do.
            covariances=("cov",) if "reference" in name else (),
            mismatch=lambda: ({"a": _t(0.1, 2.0, 3.0)}, ("a", "cov")),
        )
        for name in (
            "mvn_log_prob_reference",
            "mvn_score_reference",
            "mvn_log_prob_explicit_inverse",
            "mvn_score_explicit_inverse",
        )
    },
    "numerics.tanh_log_abs_det_jacobian_reference": Spec(lambda: {"u": _t(0.1, -3.0)}, tensors=("u",)),
    "numerics.tanh_log_abs_det_jacobian_naive": Spec(lambda: {"u": _t(0.1, -3.0)}, tensors=("u",)),
    "numerics.tanh_log_abs_det_jacobian_eps": Spec(
        lambda: {"u": _t(0.1, -3.0), "eps": 1e-6}, tensors=("u",), reals=("eps",)
    ),
    "numerics.squashed_normal_entropy_reference": Spec(
        lambda: {"mean": 0.5, "std": 1.0, "digits": 20}, reals=("mean", "std"), counts=("digits",)
    ),
    # ---------------------------------------------------------------- symbolic
    "symbolic.Derivation": Returned("symbolic.univariate_gaussian and the other derivations"),
    "symbolic.univariate_log_density": Returned("takes SymPy expressions, not numbers (a derivation step)"),
    "symbolic.mvn_log_density": Returned("takes SymPy matrices, not numbers (a derivation step)"),
    "symbolic.univariate_gaussian": Spec(lambda: {"parametrisation": "std"}),
    "symbolic.diagonal_gaussian": Spec(lambda: {"k": 1, "parametrisation": "log_std"}, counts=("k",)),
    "symbolic.full_covariance_gaussian": Spec(lambda: {"k": 1, "symmetric": True}, counts=("k",), flags=("symmetric",)),
    "symbolic.cholesky_gaussian": Spec(lambda: {"k": 1}, counts=("k",)),
    "symbolic.covariance_gradient_conventions": Spec(lambda: {"k": 1}, counts=("k",)),
    "symbolic.matrixsymbol_logdet_derivative": Spec(lambda: {"k": 1}, counts=("k",)),
    "symbolic.to_torch": Returned("takes SymPy expressions and symbols, not numbers"),
    # --------------------------------------------------------------- reinforce
    "reinforce.reward_to_go": Spec(
        lambda: {"rewards": torch.tensor([[1.0, -2.0, 0.5]], dtype=F64), "gamma": 0.9},
        tensors=("rewards",),
        reals=("gamma",),
    ),
    "reinforce.leave_one_out_mean": Spec(lambda: {"values": _t(1.0, 2.0, 4.0)}, tensors=("values",)),
    "reinforce.value_features": Spec(
        lambda: {"states": torch.ones(2, 3, 2, dtype=F64), "horizon": 3}, tensors=("states",), counts=("horizon",)
    ),
    "reinforce.fit_value_weights": Spec(
        lambda: {"features": torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]], dtype=F64), "targets": _t(1.0, 2.0, 2.5)},
        tensors=("features", "targets"),
        mismatch=lambda: ({"targets": _t(1.0, 2.0)}, ("features", "targets")),
    ),
    "reinforce.per_episode_gradients": Spec(
        lambda: {
            "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
            "states": torch.ones(2, 3, 2, dtype=F64),
            "actions": torch.zeros(2, 3, 2, dtype=F64),
            "weights": torch.ones(2, 3, dtype=F64),
        },
        tensors=("states", "actions", "weights"),
        mismatch=lambda: ({"weights": torch.ones(3, 3, dtype=F64)}, ("states", "weights")),
    ),
    "reinforce.estimate_gradient": Spec(
        lambda: {
            "task": _task_2d(),
            "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
            "episodes": 4,
            "horizon": 3,
            "generator": check.seeded(0),
        },
        counts=("episodes", "horizon"),
        sizes=("episodes",),
        generators=("generator",),
        objects=("task", "policy"),
    ),
    "reinforce.exact_returns": Spec(
        lambda: {"task": _task_2d(), "policy": policies.LearnedStdPolicy(2, 2, dtype=F64)}, objects=("task", "policy")
    ),
    "reinforce.exact_gradient": Spec(
        lambda: {"task": _task_2d(), "policy": policies.LearnedStdPolicy(2, 2, dtype=F64)}, objects=("task", "policy")
    ),
    "reinforce.surrogate_loss": Spec(
        lambda: {"log_prob": torch.zeros(2, 3, dtype=F64), "weights": torch.ones(2, 3, dtype=F64)},
        mismatch=lambda: ({"weights": torch.ones(3, 3, dtype=F64)}, ("log_prob", "weights")),
    ),
    "reinforce.TrainConfig": Spec(
        lambda: {"iterations": 2, "episodes_per_batch": 2, "horizon": 3, "lr": 0.05, "seed": 0, "anneal_lr": False},
        counts=("iterations", "horizon"),
        reals=("lr",),
        flags=("anneal_lr", "record_gradient_variance"),
    ),
    "reinforce.train": Spec(
        lambda: {
            "task": lqr.task_1d(),
            "policy": policies.LearnedStdPolicy(1, 1, dtype=F64),
            "iterations": 1,
            "episodes_per_batch": 2,
            "horizon": 2,
            "callback": lambda i, history: None,
        },
        counts=("iterations", "horizon"),
        callables=("callback",),
        objects=("task", "policy"),
    ),
    "reinforce.GradientEstimate": Returned("reinforce.estimate_gradient"),
    "reinforce.History": Returned("reinforce.train"),
    "reinforce.TrainingDivergedError": Returned("reinforce.train (an exception)"),
    # ---------------------------------------------------------------- pathwise
    "pathwise.EpisodeNoise": Returned("pathwise.draw_episode_noise"),
    "pathwise.draw_episode_noise": Spec(
        lambda: {"task": _task_2d(), "episodes": 3, "horizon": 4, "generator": check.seeded(0)},
        counts=("episodes", "horizon"),
        generators=("generator",),
        objects=("task",),
    ),
    "pathwise.graph_bytes": Spec(
        lambda: {"task": _task_2d(), "episodes": 3, "horizon": 4}, counts=("episodes", "horizon"), objects=("task",)
    ),
    **{
        f"pathwise.{name}": Spec(
            lambda: {
                "task": _task_2d(),
                "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
                "episodes": 3,
                "horizon": 4,
                "generator": check.seeded(0),
            },
            counts=("episodes", "horizon"),
            generators=("generator",),
            objects=("task", "policy"),
        )
        for name in ("reparameterised_rollout", "model_gradient_estimates")
    },
    "pathwise.critic_gradient_estimates": Spec(
        lambda: {
            "critic": lambda s, a: -(a**2).sum(-1),
            "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
            "states": torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64),
            "entropy_coef": 0.1,
            "generator": check.seeded(0),
        },
        tensors=("states",),
        reals=("entropy_coef",),
        callables=("critic",),
        generators=("generator",),
        objects=("policy",),
    ),
    "pathwise.deterministic_policy_gradient_estimates": Spec(
        lambda: {
            "critic": lambda s, a: -(a**2).sum(-1),
            "policy": policies.LearnedStdPolicy(2, 2, dtype=F64),
            "states": torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=F64),
        },
        tensors=("states",),
        callables=("critic",),
        objects=("policy",),
    ),
    # ------------------------------------------------------------------ fisher
    "fisher.normal_fisher": Spec(lambda: {"std": _t(0.5, 2.0)}, tensors=("std",)),
    "fisher.normal_fisher_log_std": Spec(lambda: {"log_std": _t(0.5, -2.0)}, tensors=("log_std",)),
    "fisher.diag_fisher": Spec(lambda: {"log_std": _t(0.5, -2.0)}, tensors=("log_std",)),
    "fisher.mvn_fisher_mean": Spec(
        lambda: {"cov": _cov(), "jacobian": torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]], dtype=F64)},
        tensors=("cov", "jacobian"),
        covariances=("cov",),
    ),
    "fisher.mvn_fisher_cov": Spec(
        lambda: {"cov": _cov(), "direction": torch.tensor([[1.0, 0.5], [0.5, 0.0]], dtype=F64)},
        tensors=("cov", "direction"),
        covariances=("cov",),
    ),
    "fisher.mvn_fisher_cov_matrix": Spec(lambda: {"cov": _cov()}, tensors=("cov",), covariances=("cov",)),
    "fisher.mvn_fisher_tril": Spec(
        lambda: {"scale_tril": torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=F64)}, tensors=("scale_tril",)
    ),
    **{
        f"fisher.{name}": Spec(
            lambda: {"mean_p": _t(0.0, 1.0), "std_p": _t(1.0, 2.0), "mean_q": _t(0.5, 0.5), "std_q": _t(1.5, 0.5)},
            tensors=("mean_p", "std_p", "mean_q", "std_q"),
            mismatch=lambda: ({"mean_q": _t(1.0, 2.0, 3.0)}, ("mean_p", "mean_q")),
        )
        for name in ("normal_kl", "normal_kl_grad")
    },
    **{
        f"fisher.{name}": Spec(
            lambda: {"mean_p": _t(0.0, 1.0), "log_std_p": _t(0.0, 0.5), "mean_q": _t(0.5, 0.5), "log_std_q": _t(-0.5, 0.0)},
            tensors=("mean_p", "log_std_p", "mean_q", "log_std_q"),
            mismatch=lambda: ({"mean_q": _t(1.0, 2.0, 3.0)}, ("mean_p", "mean_q")),
        )
        for name in ("diag_kl", "diag_kl_grad")
    },
    **{
        f"fisher.{name}": Spec(
            lambda: {"mean_p": _t(0.0, 1.0), "cov_p": _cov(), "mean_q": _t(0.5, 0.5), "cov_q": 2.0 * _cov()},
            tensors=("mean_p", "cov_p", "mean_q", "cov_q"),
            covariances=("cov_p", "cov_q"),
            mismatch=lambda: ({"mean_q": _t(1.0, 2.0, 3.0)}, ("mean_q",)),
        )
        for name in ("mvn_kl", "mvn_kl_grad")
    },
    "fisher.empirical_fisher": Spec(
        lambda: {"scores": torch.tensor([[1.0, 0.5], [-0.5, 2.0], [0.25, -1.0]], dtype=F64)}, tensors=("scores",)
    ),
    "fisher.natural_gradient": Spec(
        lambda: {"fisher": _cov(), "gradient": _t(1.0, -0.5), "damping": 0.1},
        tensors=("fisher", "gradient"),
        reals=("damping",),
        covariances=("fisher",),
    ),
    "fisher.compatible_weights": Spec(
        lambda: {"scores": torch.tensor([[1.0, 0.5], [-0.5, 2.0], [0.25, -1.0]], dtype=F64), "advantages": _t(1.0, -1.0, 0.5)},
        tensors=("scores", "advantages"),
        mismatch=lambda: ({"advantages": _t(1.0, 2.0)}, ("scores", "advantages")),
    ),
    "fisher.trust_region_step": Spec(
        lambda: {"fisher": _cov(), "gradient": _t(1.0, -0.5), "max_kl": 0.01},
        tensors=("fisher", "gradient"),
        reals=("max_kl",),
        covariances=("fisher",),
    ),
    **{
        f"fisher.{name}": Spec(
            lambda: {"task": _task_2d(), "gain": _gain_2d(), "noise_cov": 0.1 * torch.eye(2, dtype=F64)},
            tensors=("gain", "noise_cov"),
            covariances=("noise_cov",),
            objects=("task",),
        )
        for name in ("lqr_policy_gradient", "lqr_fisher", "lqr_natural_gradient")
    },
    "fisher.lqr_compatible_target": Spec(
        lambda: {"task": _task_2d(), "gain": _gain_2d(), "noise_cov": 0.1 * torch.eye(2, dtype=F64), "horizon": 5},
        tensors=("gain", "noise_cov"),
        covariances=("noise_cov",),
        counts=("horizon",),
        objects=("task",),
    ),
    "fisher.lqr_compatible_fit": Spec(
        lambda: {
            "task": _task_2d(),
            "gain": _gain_2d(),
            "noise_cov": 0.1 * torch.eye(2, dtype=F64),
            "batch": rollouts.rollout(
                _task_2d(), _gain_2d(), noise_cov=0.1 * torch.eye(2, dtype=F64), episodes=8, horizon=5, generator=check.seeded(0)
            ),
        },
        tensors=("gain", "noise_cov"),
        covariances=("noise_cov",),
        objects=("task",),
    ),
    # --------------------------------------------------------------- exercises
    "exercises.CaseResult": Returned("exercises.grade"),
    "exercises.CheckResult": Returned("exercises.grade"),
    "exercises.CheckFailed": Returned("exercises.check (an exception)"),
    "exercises.ExerciseDescription": Returned("exercises.describe"),
    "exercises.describe": Spec(lambda: {"name": "normal_log_prob"}),
    "exercises.get": Spec(lambda: {"name": "normal_log_prob"}),
    "exercises.grade": Spec(
        lambda: {"name": "normal_log_prob", "student_fn": gaussian.normal_log_prob},
        callables=("student_fn",),
        names_as={"student_fn": "the function to check"},
    ),
    "exercises.Case": Returned("made by exercise authors, not from student input"),
    "exercises.Exercise": Returned("exercises.register"),
    "exercises.register": Returned("called by exercise authors when a module is imported"),
    "exercises.available": Spec(lambda: {}),
    "exercises.check": Spec(
        lambda: {"name": "normal_log_prob", "student_fn": gaussian.normal_log_prob},
        callables=("student_fn",),
        # A checker's feedback on a submission is an AssertionError that says what went wrong.
        errors=(ValueError, TypeError, AssertionError),
        names_as={"student_fn": "the function to check"},
    ),
}


# Where a module does not follow a rule yet, the walker says so here: each entry is an
# expected failure (strict, so a fix turns it into a reminder to delete the entry).
KNOWN_GAPS = {
}


@pytest.fixture(autouse=True)
def _known_gaps(request: pytest.FixtureRequest) -> None:
    for prefix, reason in KNOWN_GAPS.items():
        if request.node.name.startswith(prefix):
            request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))


# --------------------------------------------------------------------------- discovery


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(pgnotes.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"pgnotes.{info.name}")
        if getattr(module, "__all__", None):
            names.append(info.name)
    return sorted(names)


def _public_callables() -> list[str]:
    found = []
    for module_name in _public_modules():
        module = importlib.import_module(f"pgnotes.{module_name}")
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not (isinstance(obj, type) and issubclass(obj, Warning)):
                # A name re-exported from its home module is checked once, under that home.
                home = getattr(obj, "__module__", "") or ""
                home = home.rsplit(".", 1)[-1] if home.startswith("pgnotes.") else module_name
                found.append(f"{home}.{name}")
    return sorted(set(found))


PUBLIC = _public_callables()
CALLED = [name for name in PUBLIC if isinstance(SPECS.get(name), Spec)]


def test_the_walker_finds_every_module() -> None:
    # A new module is found without being listed here; these are the ones that exist today.
    assert {"gaussian", "lqr", "reinforce", "rollouts", "estimators"} <= set(_public_modules())


def test_every_public_callable_has_an_entry() -> None:
    missing = [name for name in PUBLIC if name not in SPECS]
    assert not missing, (
        f"public callables without an entry in tests/test_input_rules.py SPECS: {missing}; "
        "add how to call them and which of their arguments are tensors, counts, reals, ..."
    )
    stale = sorted(set(SPECS) - set(PUBLIC))
    assert not stale, f"SPECS entries for names that are no longer public: {stale}"


def _target(name: str) -> Callable[..., Any]:
    spec = SPECS[name]
    assert isinstance(spec, Spec)
    if spec.call is not None:
        return spec.call
    module_name, attribute = name.split(".")
    return getattr(importlib.import_module(f"pgnotes.{module_name}"), attribute)


def _call(name: str, **changes: Any) -> Any:
    spec = SPECS[name]
    arguments = spec.valid()
    arguments.update(changes)
    return _target(name)(**arguments)


def _assert_clear_error(name: str, argument_names: tuple[str, ...], **changes: Any) -> None:
    with pytest.raises(SPECS[name].errors) as info:
        _call(name, **changes)
    message = str(info.value)
    for argument in argument_names:
        argument = SPECS[name].names_as.get(argument, argument)
        assert argument in message, f"{name}({changes!r}): the message {message!r} does not name {argument!r}"


def _leaves(value: Any) -> list[Any]:
    """Tensors and numbers inside a result (tuples, lists, dicts, dataclasses, modules)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, torch.nn.Module):
        return list(value.state_dict().values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [leaf for f in dataclasses.fields(value) for leaf in _leaves(getattr(value, f.name))]
    return []


def _assert_same(first: Any, second: Any) -> None:
    left, right = _leaves(first), _leaves(second)
    assert len(left) == len(right)
    for x, y in zip(left, right):
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype, (x.dtype, y.dtype)
            torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)
        else:
            assert x == y or (math.isnan(x) and math.isnan(y))


def test_valid_calls_run() -> None:
    for name in CALLED:
        _call(name)


# --------------------------------------------------------------------------- tensors


def _with_entry(value: torch.Tensor, entry: float) -> torch.Tensor:
    broken = value.detach().clone()
    broken.reshape(-1)[-1] = entry
    return broken


_TENSOR_CASES = {
    "nan": lambda v: _with_entry(v, math.nan),
    "inf": lambda v: _with_entry(v, math.inf),
    "complex": lambda v: v.detach().to(torch.complex128),
    "float16": lambda v: v.detach().to(torch.float16),
    "bfloat16": lambda v: v.detach().to(torch.bfloat16),
    "string": lambda v: "0.5",
    "none": lambda v: None,
}

TENSOR_ARGUMENTS = [(name, argument) for name in CALLED for argument in SPECS[name].tensors]


@pytest.mark.parametrize("case", sorted(_TENSOR_CASES))
@pytest.mark.parametrize(("name", "argument"), TENSOR_ARGUMENTS, ids=[f"{n}:{a}" for n, a in TENSOR_ARGUMENTS])
def test_bad_tensors_are_refused_naming_the_argument(name: str, argument: str, case: str) -> None:
    spec = SPECS[name]
    valid = spec.valid()[argument]
    if case == "none" and name.startswith("lqr.") and argument in ("noise_cov", "x0_mean"):
        pytest.skip("None is a documented value: no exploration noise, a zero initial mean")
    if case == "none" and argument in ("noise_cov", "baseline"):
        pytest.skip("None is a documented value")
    if case in ("nan", "inf") and argument in spec.nonfinite_allowed:
        pytest.skip("a non-finite value has a defined answer here")
    _assert_clear_error(name, (argument,), **{argument: _TENSOR_CASES[case](valid)})


@pytest.mark.parametrize(("name", "argument"), TENSOR_ARGUMENTS, ids=[f"{n}:{a}" for n, a in TENSOR_ARGUMENTS])
def test_numpy_float64_gives_the_float64_answer(name: str, argument: str) -> None:
    valid = SPECS[name].valid()[argument]
    _assert_same(_call(name, **{argument: valid.detach().numpy()}), _call(name))


@pytest.mark.parametrize(("name", "argument"), TENSOR_ARGUMENTS, ids=[f"{n}:{a}" for n, a in TENSOR_ARGUMENTS])
def test_integer_tensors_are_promoted_or_refused_clearly(name: str, argument: str) -> None:
    spec = SPECS[name]
    valid = spec.valid()[argument]
    integers = valid.detach().round().to(torch.int64)
    # The rule: integers take the floating dtype of the other tensor arguments, else the default dtype.
    others = [a for a in spec.tensors if a != argument and isinstance(spec.valid()[a], torch.Tensor)]
    dtype = F64 if others else torch.get_default_dtype()
    if isinstance(spec.valid().get("policy"), torch.nn.Module):  # states take the policy's dtype
        dtype = next(spec.valid()["policy"].parameters()).dtype
    try:
        promoted = _call(name, **{argument: integers})
    except CLEAR_ERRORS as exc:
        # Rounding can make the value invalid (a zero std, a singular covariance): then say so.
        assert argument in str(exc) or "shape" in str(exc), str(exc)
        return
    for leaf in _leaves(promoted):
        if isinstance(leaf, torch.Tensor):
            assert leaf.is_floating_point() or leaf.dtype == torch.bool, f"{name}: integer output {leaf.dtype}"
    _assert_same(promoted, _call(name, **{argument: integers.to(dtype)}))


# --------------------------------------------------------------------------- shapes


MISMATCHED = [name for name in CALLED if SPECS[name].mismatch is not None]


@pytest.mark.parametrize("name", MISMATCHED)
def test_mismatched_shapes_name_both_arguments(name: str) -> None:
    changes, names = SPECS[name].mismatch()
    _assert_clear_error(name, names, **changes)


# --------------------------------------------------------------------------- hyper-parameters

_BAD_COUNTS = {"fraction": 2.5, "bool": True, "zero": 0, "negative": -1, "string": "3", "none": None, "nan": math.nan}
_BAD_REALS = {"nan": math.nan, "inf": math.inf, "string": "0.5", "none": None, "bool": True, "complex": 0.5 + 0j}
_BAD_FLAGS = {"int": 1, "string": "yes", "none": None}

COUNT_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].counts]
REAL_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].reals]
FLAG_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].flags]
CALLABLE_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].callables]
GENERATOR_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].generators]
OBJECT_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].objects]


@pytest.mark.parametrize("case", sorted(_BAD_COUNTS))
@pytest.mark.parametrize(("name", "argument"), COUNT_ARGUMENTS, ids=[f"{n}:{a}" for n, a in COUNT_ARGUMENTS])
def test_bad_counts_are_refused(name: str, argument: str, case: str) -> None:
    if case == "none" and argument == "horizon" and name != "reinforce.value_features":
        pytest.skip("None is a documented value: the task's effective horizon")
    _assert_clear_error(name, (argument,), **{argument: _BAD_COUNTS[case]})


@pytest.mark.parametrize("case", sorted(_BAD_REALS))
@pytest.mark.parametrize(("name", "argument"), REAL_ARGUMENTS, ids=[f"{n}:{a}" for n, a in REAL_ARGUMENTS])
def test_bad_reals_are_refused(name: str, argument: str, case: str) -> None:
    _assert_clear_error(name, (argument,), **{argument: _BAD_REALS[case]})


@pytest.mark.parametrize("case", sorted(_BAD_FLAGS))
@pytest.mark.parametrize(("name", "argument"), FLAG_ARGUMENTS, ids=[f"{n}:{a}" for n, a in FLAG_ARGUMENTS])
def test_bad_flags_are_refused(name: str, argument: str, case: str) -> None:
    _assert_clear_error(name, (argument,), **{argument: _BAD_FLAGS[case]})


@pytest.mark.parametrize(("name", "argument"), CALLABLE_ARGUMENTS, ids=[f"{n}:{a}" for n, a in CALLABLE_ARGUMENTS])
def test_non_callables_are_refused(name: str, argument: str) -> None:
    _assert_clear_error(name, (argument,), **{argument: 3})


@pytest.mark.parametrize(("name", "argument"), GENERATOR_ARGUMENTS, ids=[f"{n}:{a}" for n, a in GENERATOR_ARGUMENTS])
def test_seeds_are_not_generators(name: str, argument: str) -> None:
    _assert_clear_error(name, (argument,), **{argument: 0})


@pytest.mark.parametrize(("name", "argument"), OBJECT_ARGUMENTS, ids=[f"{n}:{a}" for n, a in OBJECT_ARGUMENTS])
def test_wrong_objects_are_refused(name: str, argument: str) -> None:
    _assert_clear_error(name, (argument,), **{argument: "task_2d"})


# --------------------------------------------------------------------------- matrices and memory

_BAD_COVARIANCES = {
    # Off by far more than rounding: 1e-3 of the largest entry.
    "asymmetric": lambda m: m + 1e-3 * m.abs().max() * torch.triu(torch.ones_like(m), diagonal=1),
    "indefinite": lambda m: m - 2 * torch.linalg.eigvalsh(m)[-1] * torch.eye(m.shape[-1], dtype=m.dtype),
}
COVARIANCE_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].covariances]
SIZE_ARGUMENTS = [(n, a) for n in CALLED for a in SPECS[n].sizes]


@pytest.mark.parametrize("case", sorted(_BAD_COVARIANCES))
@pytest.mark.parametrize(("name", "argument"), COVARIANCE_ARGUMENTS, ids=[f"{n}:{a}" for n, a in COVARIANCE_ARGUMENTS])
def test_matrices_that_are_not_covariances_are_refused(name: str, argument: str, case: str) -> None:
    valid = SPECS[name].valid()[argument]
    _assert_clear_error(name, (argument,), **{argument: _BAD_COVARIANCES[case](valid)})


@pytest.mark.parametrize(("name", "argument"), SIZE_ARGUMENTS, ids=[f"{n}:{a}" for n, a in SIZE_ARGUMENTS])
def test_requests_that_cannot_fit_in_memory_are_refused_saying_how_much(name: str, argument: str) -> None:
    with pytest.raises(ValueError, match=r"would need [0-9.e+]+ GiB"):
        _call(name, **{argument: 10**15})
