r"""Homework checkers: run a student's function next to the reference answer.

Usage in a notebook::

    from pgnotes import exercises
    exercises.available()                      # names and one-line descriptions
    exercises.check("normal_score", my_normal_score)

:func:`check` calls the student's function and the reference (from
:mod:`pgnotes.gaussian`, or whatever a module registered) on seeded random
inputs, including broadcasting cases, and either prints one line of success
or raises ``AssertionError`` saying which output is wrong, for which input,
expected against got, and the tolerance. Student functions are called with
positional arguments in the documented order, so their parameter names do not
matter.

Other modules add their own exercises with :func:`register`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pgnotes import gaussian
from pgnotes.check import random_spd

__all__ = ["Exercise", "Case", "register", "available", "check"]

_MAX_SHOWN = 4  # entries of each input shown in a failure message


@dataclass(frozen=True)
class Case:
    """One set of inputs for an exercise.

    Attributes:
        label: What the case exercises, e.g. ``"std shared by the batch (broadcast)"``.
        inputs: The arguments, in call order, by name.
    """

    label: str
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class Exercise:
    """A registered exercise.

    Attributes:
        name: The name passed to :func:`check`.
        description: One line shown by :func:`available`.
        reference: The reference implementation.
        make_cases: ``make_cases(generator)`` returns the :class:`Case` list to run.
        outputs: Names of the outputs if the function returns a tuple, else ``None``.
        atol: Absolute tolerance of the comparison.
        rtol: Relative tolerance of the comparison.
        elementwise: Whether each output entry depends only on the broadcast input entries at
            the same index (failure messages then show those input values).
    """

    name: str
    description: str
    reference: Callable[..., Any]
    make_cases: Callable[[torch.Generator], Sequence[Case]]
    outputs: tuple[str, ...] | None
    atol: float
    rtol: float
    elementwise: bool = False


_REGISTRY: dict[str, Exercise] = {}


def register(
    name: str,
    description: str,
    reference: Callable[..., Any],
    make_cases: Callable[[torch.Generator], Sequence[Case]],
    tolerance: tuple[float, float],
    *,
    outputs: Sequence[str] | None = None,
    elementwise: bool = False,
    replace: bool = False,
) -> Exercise:
    """Register an exercise for :func:`check`.

    Args:
        name: Unique name of the exercise.
        description: One line for :func:`available`.
        reference: The reference answer; called with the same positional arguments as the
            student's function.
        make_cases: ``make_cases(generator)`` returns a list of :class:`Case`; the generator
            is seeded, so the cases are the same on every run.
        tolerance: ``(atol, rtol)``: an output entry passes if
            ``|got - expected| <= atol + rtol * |expected|``.
        outputs: Names of the outputs when the function returns a tuple (shown in messages,
            e.g. ``("d_mean", "d_std")``); ``None`` for a single tensor.
        elementwise: Whether each output entry depends only on the input entries at the same
            (broadcast) index, as for the univariate scores; failure messages then show them.
        replace: Allow replacing an existing exercise of the same name (re-running a chapter).

    Returns:
        The registered :class:`Exercise`.
    """
    if name in _REGISTRY and not replace:
        raise ValueError(f"an exercise named {name!r} is already registered (pass replace=True to replace it)")
    atol, rtol = tolerance
    exercise = Exercise(
        name, description, reference, make_cases, tuple(outputs) if outputs else None, atol, rtol, elementwise
    )
    _REGISTRY[name] = exercise
    return exercise


def available() -> dict[str, str]:
    """The registered exercises: name to one-line description, in registration order."""
    return {name: exercise.description for name, exercise in _REGISTRY.items()}


def _describe_inputs(inputs: Mapping[str, Any], index: tuple[int, ...] | None, shape: torch.Size | None) -> str:
    """Shapes of the inputs and a few values, aligned with the failing output entry where possible."""
    parts = []
    for name, value in inputs.items():
        tensor = torch.as_tensor(value)
        text = f"{name} shape {tuple(tensor.shape)}"
        if index is not None and shape is not None:
            try:
                text += f" value at that entry {float(torch.broadcast_to(tensor, shape)[index]):.6g}"
                parts.append(text)
                continue
            except RuntimeError:
                pass
        flat = tensor.reshape(-1)[:_MAX_SHOWN].tolist()
        more = ", ..." if tensor.numel() > _MAX_SHOWN else ""
        text += " values [" + ", ".join(f"{v:.4g}" for v in flat) + more + "]"
        parts.append(text)
    return "; ".join(parts)


def _as_output_tuple(exercise: Exercise, result: Any, who: str) -> tuple[Any, ...]:
    if exercise.outputs is None:
        if isinstance(result, (tuple, list)):
            raise AssertionError(
                f"{exercise.name}: {who} returned a {type(result).__name__} of {len(result)} values; "
                "expected a single tensor"
            )
        return (result,)
    count = len(exercise.outputs)
    if not isinstance(result, (tuple, list)) or len(result) != count:
        got = f"a {type(result).__name__} of {len(result)} values" if isinstance(result, (tuple, list)) else (
            f"a single {type(result).__name__}"
        )
        raise AssertionError(
            f"{exercise.name}: {who} must return a tuple of {count} tensors "
            f"({', '.join(exercise.outputs)}), got {got}"
        )
    return tuple(result)


def _check_case(exercise: Exercise, case: Case, student_fn: Callable[..., Any]) -> None:
    arguments = [value.clone() if isinstance(value, torch.Tensor) else value for value in case.inputs.values()]
    expected_all = _as_output_tuple(exercise, exercise.reference(*case.inputs.values()), "the reference")
    shapes = ", ".join(f"{n} {tuple(torch.as_tensor(v).shape)}" for n, v in case.inputs.items())
    try:
        got_all = student_fn(*arguments)
    except Exception as exc:  # the student's bug, reported with the inputs that triggered it
        raise AssertionError(
            f"{exercise.name}: your function raised {type(exc).__name__}: {exc}\n"
            f"  case: {case.label}\n  inputs: {shapes}"
        ) from exc
    got_all = _as_output_tuple(exercise, got_all, "your function")
    names = exercise.outputs or ("output",)
    for name, expected, got in zip(names, expected_all, got_all):
        where = f"  case: {case.label}\n  inputs: {shapes}"
        if not isinstance(got, torch.Tensor):
            try:
                got = torch.as_tensor(got)
            except (TypeError, ValueError, RuntimeError):
                raise AssertionError(
                    f"{exercise.name}: {name} must be a tensor, got {type(got).__name__}\n{where}"
                ) from None
        if got.shape != expected.shape:
            raise AssertionError(
                f"{exercise.name}: {name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}\n{where}"
            )
        dtype_note = (
            f" (your {name} is {got.dtype}; compute in the inputs' dtype {expected.dtype})"
            if got.dtype != expected.dtype
            else ""
        )
        got64 = got.detach().to(torch.float64)
        expected64 = expected.detach().to(torch.float64)
        error = (got64 - expected64).abs()
        bad = ~(error <= exercise.atol + exercise.rtol * expected64.abs())  # NaN counts as bad
        if bool(bad.any()):
            score = torch.where(torch.isnan(error), torch.full_like(error, math.inf), error)
            flat = int((score * bad).reshape(-1).argmax()) if score.numel() else 0
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape))
            raise AssertionError(
                f"{exercise.name}: {name} is wrong at index {list(index)}: expected "
                f"{float(expected64[index]):.10g}, got {float(got64[index]):.10g} "
                f"({int(bad.sum())} of {bad.numel()} entries differ; tolerance atol={exercise.atol:g}, "
                f"rtol={exercise.rtol:g}){dtype_note}\n{where}\n  "
                f"{_describe_inputs(case.inputs, index if exercise.elementwise else None, expected.shape)}"
            )


def check(name: str, student_fn: Callable[..., Any], *, seed: int = 0) -> None:
    """Run ``student_fn`` against the reference of exercise ``name``.

    Prints one line on success; raises ``AssertionError`` on the first wrong output,
    exception, wrong shape or wrong number of outputs, with the case, the inputs,
    expected against got and the tolerance.

    Args:
        name: An exercise name, see :func:`available`.
        student_fn: The function to check, called with the same positional arguments as
            the reference.
        seed: Seed of the random inputs.
    """
    if name not in _REGISTRY:
        raise KeyError(f"no exercise named {name!r}; available: {', '.join(_REGISTRY)}")
    exercise = _REGISTRY[name]
    cases = list(exercise.make_cases(torch.Generator().manual_seed(seed)))
    for case in cases:
        _check_case(exercise, case, student_fn)
    print(
        f"{name}: all {len(cases)} cases passed "
        f"(including broadcasting; tolerance atol={exercise.atol:g}, rtol={exercise.rtol:g})"
    )


# ---------------------------------------------------------------------------------------------
# The exercises of the core chapters. Inputs are float64 so that tolerances can be tight: a
# correct float64 implementation agrees with the reference to about 1e-15 relative.


def _randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.float64, generator=generator)


def _positive(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.exp(0.5 * _randn(generator, *shape))


def _elementwise_cases(generator: torch.Generator, scale_name: str) -> list[Case]:
    def scale(*shape: int) -> torch.Tensor:
        return _positive(generator, *shape) if scale_name == "std" else 0.5 * _randn(generator, *shape)

    return [
        Case("same shape (7,)", {"a": _randn(generator, 7), "mean": _randn(generator, 7), scale_name: scale(7)}),
        Case(
            f"{scale_name} is a 0-d tensor shared by all entries (broadcast)",
            {"a": _randn(generator, 5), "mean": _randn(generator, 5), scale_name: scale()},
        ),
        Case(
            "batch of 4 x 3 with mean (4, 1) and " + scale_name + " (3,) (broadcast)",
            {"a": _randn(generator, 4, 3), "mean": _randn(generator, 4, 1), scale_name: scale(3)},
        ),
        Case(
            "large residuals, |a - mean| up to 10 " + scale_name,
            {"a": 10 * _randn(generator, 6), "mean": torch.zeros(6, dtype=torch.float64), scale_name: scale(6)},
        ),
    ]


def _diag_cases(generator: torch.Generator, first: str = "a") -> list[Case]:
    return [
        Case(
            "batch 32 x dim 10, log_std of shape (10,) shared by the batch (broadcast)",
            {
                first: _randn(generator, 32, 10),
                "mean": _randn(generator, 32, 10),
                "log_std": 0.5 * _randn(generator, 10),
            },
        ),
        Case(
            "single action of dim 3",
            {first: _randn(generator, 3), "mean": _randn(generator, 3), "log_std": 0.5 * _randn(generator, 3)},
        ),
        Case(
            "batch 5 x 2 x 4, mean (4,), log_std (5, 1, 4) (broadcast)",
            {
                first: _randn(generator, 5, 2, 4),
                "mean": _randn(generator, 4),
                "log_std": 0.5 * _randn(generator, 5, 1, 4),
            },
        ),
        Case(
            "dim 1",
            {first: _randn(generator, 8, 1), "mean": _randn(generator, 8, 1), "log_std": 0.5 * _randn(generator, 1)},
        ),
    ]


def _mvn_cases(generator: torch.Generator, matrix: str) -> list[Case]:
    def spd(k: int, *batch: int) -> torch.Tensor:
        cov = random_spd(k, 10.0, batch_shape=batch, generator=generator)
        return torch.linalg.cholesky(cov) if matrix == "scale_tril" else cov

    return [
        Case("k = 2, one action", {"a": _randn(generator, 2), "mean": _randn(generator, 2), matrix: spd(2)}),
        Case("k = 3, batch of 6", {"a": _randn(generator, 6, 3), "mean": _randn(generator, 6, 3), matrix: spd(3, 6)}),
        Case(
            f"k = 4, batch of 5 sharing one {matrix} (broadcast)",
            {"a": _randn(generator, 5, 4), "mean": _randn(generator, 5, 4), matrix: spd(4)},
        ),
        Case("k = 1", {"a": _randn(generator, 3, 1), "mean": _randn(generator, 3, 1), matrix: spd(1, 3)}),
        Case(
            f"k = 2, mean (2,) shared, {matrix} batch (4, 1)",
            {"a": _randn(generator, 4, 3, 2), "mean": _randn(generator, 2), matrix: spd(2, 4, 1)},
        ),
    ]


def _tanh_cases(generator: torch.Generator) -> list[Case]:
    return [
        Case("moderate u, shape (10,)", {"u": _randn(generator, 10)}),
        Case("batch (4, 3)", {"u": 2 * _randn(generator, 4, 3)}),
        Case(
            "large |u| up to 20 (tanh(u) rounds to +-1 in float64)",
            {"u": torch.tensor([-20.0, -15.0, -12.0, 8.0, 12.0, 15.0, 20.0], dtype=torch.float64)},
        ),
        Case("u = 0 and tiny u", {"u": torch.tensor([0.0, 1e-8, -1e-4], dtype=torch.float64)}),
    ]


def _squashed_cases(generator: torch.Generator) -> list[Case]:
    cases = _diag_cases(generator, first="u")
    cases.append(
        Case(
            "large |u| up to 20",
            {
                "u": torch.tensor([[-20.0, 0.5, 15.0], [3.0, -12.0, 20.0]], dtype=torch.float64),
                "mean": torch.zeros(3, dtype=torch.float64),
                "log_std": torch.full((3,), 2.0, dtype=torch.float64),
            },
        )
    )
    return cases


# Tolerances: a correct float64 implementation of these closed forms differs from the reference
# by a few ulp (1e-15 relative); 1e-9 leaves room for other algorithms (e.g. an explicit inverse of
# a covariance with condition number 10) while any wrong formula is off by O(1).
_ELEMENTWISE = (1e-10, 1e-9)
_MATRIX = (1e-9, 1e-8)
# The tanh correction must be accurate for large |u| too; 1e-10 rejects the naive log(1 - tanh(u)**2),
# which is -inf at |u| = 20 and off by about 3e-7 at |u| = 12 and 2e-4 at |u| = 15.
_TANH = (1e-10, 1e-10)

register(
    "normal_log_prob",
    "univariate Gaussian log-density log N(a; mean, std^2), elementwise",
    gaussian.normal_log_prob,
    lambda g: _elementwise_cases(g, "std"),
    _ELEMENTWISE,
    elementwise=True,
)
register(
    "normal_score",
    "univariate score (d_mean, d_std) = (d / std^2, (d^2 - std^2) / std^3), d = a - mean",
    gaussian.normal_score,
    lambda g: _elementwise_cases(g, "std"),
    _ELEMENTWISE,
    outputs=("d_mean", "d_std"),
    elementwise=True,
)
register(
    "normal_score_log_std",
    "univariate score w.r.t. mean and log_std: (d / std^2, d^2 / std^2 - 1)",
    gaussian.normal_score_log_std,
    lambda g: _elementwise_cases(g, "log_std"),
    _ELEMENTWISE,
    outputs=("d_mean", "d_log_std"),
    elementwise=True,
)
register(
    "diag_log_prob",
    "diagonal Gaussian log-density summed over the last axis (batch 32 x dim 10, log_std (10,))",
    gaussian.diag_log_prob,
    _diag_cases,
    _ELEMENTWISE,
)
register(
    "diag_score",
    "diagonal Gaussian score per component: (d_mean, d_log_std), broadcast shape",
    gaussian.diag_score,
    _diag_cases,
    _ELEMENTWISE,
    outputs=("d_mean", "d_log_std"),
    elementwise=True,
)
register(
    "mvn_log_prob",
    "full-covariance Gaussian log-density log N(a; mean, cov)",
    gaussian.mvn_log_prob,
    lambda g: _mvn_cases(g, "cov"),
    _MATRIX,
)
register(
    "mvn_score",
    "full-covariance score: (cov^-1 d, (cov^-1 d d^T cov^-1 - cov^-1) / 2)",
    gaussian.mvn_score,
    lambda g: _mvn_cases(g, "cov"),
    _MATRIX,
    outputs=("d_mean", "d_cov"),
)
register(
    "mvn_score_tril",
    "score w.r.t. mean and Cholesky factor L (lower triangular): (cov^-1 d, tril(2 G L))",
    gaussian.mvn_score_tril,
    lambda g: _mvn_cases(g, "scale_tril"),
    _MATRIX,
    outputs=("d_mean", "d_scale_tril"),
)
register(
    "tanh_log_abs_det_jacobian",
    "tanh correction log(1 - tanh(u)^2), stable for |u| up to 20 and beyond",
    gaussian.tanh_log_abs_det_jacobian,
    _tanh_cases,
    _TANH,
    elementwise=True,
)
register(
    "squashed_log_prob",
    "log-density of a = tanh(u), u ~ N(mean, diag std^2), from the pre-squash u",
    gaussian.squashed_log_prob,
    _squashed_cases,
    _TANH,
)


# ---------------------------------------------------------------------------------------------
# Estimators

from pgnotes import estimators as _estimators  # noqa: E402  (the estimator exercises come last)


def _estimator_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (mean, std, k) of the closed-form estimator exercises."""
    return [
        Case(
            "mean [0.3, -1, 2], std [0.5, 1, 2], k = 0.5 (a 0-d tensor, broadcast)",
            {
                "mean": torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64),
                "std": torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64),
                "k": torch.tensor(0.5, dtype=torch.float64),
            },
        ),
        Case(
            "batch 4 x 3: mean (4, 1), std (3,), k (4, 3) (broadcast)",
            {"mean": _randn(generator, 4, 1), "std": _positive(generator, 3), "k": _randn(generator, 4, 3)},
        ),
        Case(
            "k up to 4 std from the mean, on both sides",
            {
                "mean": torch.zeros(5, dtype=torch.float64),
                "std": torch.ones(5, dtype=torch.float64),
                "k": torch.tensor([-4.0, -1.5, 0.0, 1.5, 4.0], dtype=torch.float64),
            },
        ),
    ]


def _variance_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (mean, std, k, baseline) of the exact-variance exercise."""
    cases = []
    for case in _estimator_cases(generator):
        shape = torch.broadcast_shapes(*(value.shape for value in case.inputs.values()))
        baseline = 3 * _positive(generator, *shape)
        cases.append(Case(case.label + ", baseline of the broadcast shape", {**case.inputs, "baseline": baseline}))
    cases.append(
        Case(
            "no baseline (baseline = 0), mean = std = 1, k from -3 to 3 (Mohamed et al., Figure 2)",
            {
                "mean": torch.ones(7, dtype=torch.float64),
                "std": torch.ones(7, dtype=torch.float64),
                "k": torch.arange(-3.0, 4.0, dtype=torch.float64),
                "baseline": torch.zeros((), dtype=torch.float64),
            },
        )
    )
    return cases


def _exact_variances_as_tuple(mean: Any, std: Any, k: Any, baseline: Any) -> tuple[torch.Tensor, ...]:
    """The four exact variances in the order (score_mean, score_std, pathwise_mean, pathwise_std)."""
    variances = _estimators.exact_variance_quadratic(mean, std, k, baseline=baseline)
    return variances.score_mean, variances.score_std, variances.pathwise_mean, variances.pathwise_std


# The Monte Carlo exercise: n samples with std >= 1. Per sample, 1[a > k] * eps / std has variance
# <= E[eps^2] / std^2 <= 1 and 1[a > k] * (eps^2 - 1) / std has variance <= E[(eps^2 - 1)^2] = 2, so the
# standard error of an average of n is <= sqrt(2 / n) = 3.2e-3; atol 0.02 is more than 6 standard
# errors: a correct estimator fails by chance with probability below 1e-8 per entry, while a wrong
# score, e.g. (a - mean) / std, is off by 0.1 or more in the cases with std = 2.
_STEP_GRADIENT_SAMPLES = 200_000
_MONTE_CARLO = (0.02, 0.0)


def _step_gradient_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (mean, std, k, n) of the Monte Carlo step-gradient exercise (std >= 1)."""
    return [
        Case(
            "mean [0.3, -1, 2], std [1, 2, 1.5], k = 0.5",
            {
                "mean": torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64),
                "std": torch.tensor([1.0, 2.0, 1.5], dtype=torch.float64),
                "k": torch.tensor(0.5, dtype=torch.float64),
                "n": _STEP_GRADIENT_SAMPLES,
            },
        ),
        Case(
            "mean (2, 1), std (3,), k 0-d (broadcast to a 2 x 3 batch)",
            {
                "mean": 0.5 * _randn(generator, 2, 1),
                "std": 1.0 + _positive(generator, 3),
                "k": torch.tensor(0.0, dtype=torch.float64),
                "n": _STEP_GRADIENT_SAMPLES,
            },
        ),
    ]


def _step_gradient_reference(mean: Any, std: Any, k: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact gradient of P(a > k), which a Monte Carlo average of n estimates approaches."""
    return _estimators.exact_gradient_step(mean, std, k)


register(
    "exact_gradient_step",
    "gradient of P(a > k), a ~ N(mean, std^2), w.r.t. (mean, std): (d_mean, d_std)",
    _estimators.exact_gradient_step,
    _estimator_cases,
    (1e-13, 1e-12),
    outputs=("d_mean", "d_std"),
    elementwise=True,
)
register(
    "exact_variance_quadratic",
    "per-sample variances of both estimators for f(a) = (a - k)^2, with a constant baseline in the score function",
    _exact_variances_as_tuple,
    _variance_cases,
    _ELEMENTWISE,
    outputs=("score_mean", "score_std", "pathwise_mean", "pathwise_std"),
    elementwise=True,
)
register(
    "score_function_step_gradient",
    "Monte Carlo average of n score-function estimates of grad P(a > k); passes within 6 standard errors",
    _step_gradient_reference,
    _step_gradient_cases,
    _MONTE_CARLO,
    outputs=("d_mean", "d_std"),
    elementwise=True,
)


# ---------------------------------------------------------------------------------------------
# REINFORCE

from pgnotes import reinforce as _reinforce  # noqa: E402  (after the core exercises, like the estimators)


def _reward_to_go_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (rewards, gamma) of the reward-to-go exercise; leading axes are episodes."""
    return [
        Case("one episode of 8 steps, gamma 0.9", {"rewards": _randn(generator, 8), "gamma": 0.9}),
        Case("batch of 5 episodes x 12 steps, gamma 0.5", {"rewards": _randn(generator, 5, 12), "gamma": 0.5}),
        Case("batch (3, 4) of episodes of 6 steps, gamma 0.99", {"rewards": _randn(generator, 3, 4, 6), "gamma": 0.99}),
        Case("episodes of a single step", {"rewards": _randn(generator, 4, 1), "gamma": 0.9}),
        Case("gamma = 1 (no discount)", {"rewards": _randn(generator, 2, 7), "gamma": 1.0}),
        Case(
            "2 episodes of 1500 steps, gamma 0.5 (gamma^t underflows to 0 in float64 after t = 1074)",
            {"rewards": -_positive(generator, 2, 1500), "gamma": 0.5},
        ),
    ]


register(
    "reward_to_go",
    "discounted rewards-to-go G_t = sum_{t' >= t} gamma^(t' - t) r_t' along the last axis",
    _reinforce.reward_to_go,
    _reward_to_go_cases,
    _ELEMENTWISE,
)
