"""Exercises on the gradient estimators of :mod:`pgnotes.estimators` (score function against pathwise)."""

from __future__ import annotations

from typing import Any

import torch

from pgnotes import estimators, objectives
from pgnotes.exercises._registry import Case, register
from pgnotes.exercises._inputs import ELEMENTWISE, positive, randn


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
            {"mean": randn(generator, 4, 1), "std": positive(generator, 3), "k": randn(generator, 4, 3)},
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
        baseline = 3 * positive(generator, *shape)
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
    variances = objectives.exact_variance_quadratic(mean, std, k, baseline=baseline)
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
                "mean": 0.5 * randn(generator, 2, 1),
                "std": 1.0 + positive(generator, 3),
                "k": torch.tensor(0.0, dtype=torch.float64),
                "n": _STEP_GRADIENT_SAMPLES,
            },
        ),
    ]


def _step_gradient_reference(mean: Any, std: Any, k: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact gradient of P(a > k), which a Monte Carlo average of n estimates approaches."""
    return objectives.exact_gradient_step(mean, std, k)


register(
    "exact_gradient_step",
    "gradient of P(a > k), a ~ N(mean, std^2), w.r.t. (mean, std): (d_mean, d_std)",
    objectives.exact_gradient_step,
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
    ELEMENTWISE,
    forbidden=(objectives.exact_variance_quadratic,),
    outputs=("score_mean", "score_std", "pathwise_mean", "pathwise_std"),
    elementwise=True,
)
register(
    "score_function_step_gradient",
    "Monte Carlo average of n score-function estimates of grad P(a > k); passes within 6 standard errors",
    _step_gradient_reference,
    _step_gradient_cases,
    _MONTE_CARLO,
    # Graded work averages its own estimates: neither the exact answer nor the package's estimator.
    forbidden=(objectives.exact_gradient_step, estimators.score_function_estimates),
    outputs=("d_mean", "d_std"),
    elementwise=True,
)
