"""Exercises on the Gaussian log-densities and scores of :mod:`pgnotes.gaussian`.

Chapters: the univariate Gaussian, full covariance, inside ``MultivariateNormal``, state-dependent
covariance, squashed Gaussians.
"""

from __future__ import annotations

import torch

from pgnotes import gaussian
from pgnotes.check import random_spd
from pgnotes.exercises._registry import Case, register
from pgnotes.exercises._inputs import ELEMENTWISE, MATRIX, positive, randn


def _elementwise_cases(generator: torch.Generator, scale_name: str) -> list[Case]:
    def scale(*shape: int) -> torch.Tensor:
        return positive(generator, *shape) if scale_name == "std" else 0.5 * randn(generator, *shape)

    return [
        Case("same shape (7,)", {"a": randn(generator, 7), "mean": randn(generator, 7), scale_name: scale(7)}),
        Case(
            f"{scale_name} is a 0-d tensor shared by all entries (broadcast)",
            {"a": randn(generator, 5), "mean": randn(generator, 5), scale_name: scale()},
        ),
        Case(
            "batch of 4 x 3 with mean (4, 1) and " + scale_name + " (3,) (broadcast)",
            {"a": randn(generator, 4, 3), "mean": randn(generator, 4, 1), scale_name: scale(3)},
        ),
        Case(
            "large residuals, |a - mean| up to 10 " + scale_name,
            {"a": 10 * randn(generator, 6), "mean": torch.zeros(6, dtype=torch.float64), scale_name: scale(6)},
        ),
    ]


def _diag_cases(generator: torch.Generator, first: str = "a") -> list[Case]:
    return [
        Case(
            "batch 32 x dim 10, log_std of shape (10,) shared by the batch (broadcast)",
            {
                first: randn(generator, 32, 10),
                "mean": randn(generator, 32, 10),
                "log_std": 0.5 * randn(generator, 10),
            },
        ),
        Case(
            "single action of dim 3",
            {first: randn(generator, 3), "mean": randn(generator, 3), "log_std": 0.5 * randn(generator, 3)},
        ),
        Case(
            "batch 5 x 2 x 4, mean (4,), log_std (5, 1, 4) (broadcast)",
            {
                first: randn(generator, 5, 2, 4),
                "mean": randn(generator, 4),
                "log_std": 0.5 * randn(generator, 5, 1, 4),
            },
        ),
        Case(
            "dim 1",
            {first: randn(generator, 8, 1), "mean": randn(generator, 8, 1), "log_std": 0.5 * randn(generator, 1)},
        ),
    ]


def _mvn_cases(generator: torch.Generator, matrix: str) -> list[Case]:
    def spd(k: int, *batch: int) -> torch.Tensor:
        cov = random_spd(k, 10.0, batch_shape=batch, generator=generator)
        return torch.linalg.cholesky(cov) if matrix == "scale_tril" else cov

    return [
        Case("k = 2, one action", {"a": randn(generator, 2), "mean": randn(generator, 2), matrix: spd(2)}),
        Case("k = 3, batch of 6", {"a": randn(generator, 6, 3), "mean": randn(generator, 6, 3), matrix: spd(3, 6)}),
        Case(
            f"k = 4, batch of 5 sharing one {matrix} (broadcast)",
            {"a": randn(generator, 5, 4), "mean": randn(generator, 5, 4), matrix: spd(4)},
        ),
        Case("k = 1", {"a": randn(generator, 3, 1), "mean": randn(generator, 3, 1), matrix: spd(1, 3)}),
        Case(
            f"k = 2, mean (2,) shared, {matrix} batch (4, 1)",
            {"a": randn(generator, 4, 3, 2), "mean": randn(generator, 2), matrix: spd(2, 4, 1)},
        ),
    ]


def _tanh_cases(generator: torch.Generator) -> list[Case]:
    return [
        Case("moderate u, shape (10,)", {"u": randn(generator, 10)}),
        Case("batch (4, 3)", {"u": 2 * randn(generator, 4, 3)}),
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


# The tanh correction must be accurate for large |u| too; 1e-10 rejects the naive log(1 - tanh(u)**2),
# which is -inf at |u| = 20 and off by about 3e-7 at |u| = 12 and 2e-4 at |u| = 15.
_TANH = (1e-10, 1e-10)

register(
    "normal_log_prob",
    "univariate Gaussian log-density log N(a; mean, std^2), elementwise",
    gaussian.normal_log_prob,
    lambda g: _elementwise_cases(g, "std"),
    ELEMENTWISE,
    elementwise=True,
)
register(
    "normal_score",
    "univariate score (d_mean, d_std) = (d / std^2, (d^2 - std^2) / std^3), d = a - mean",
    gaussian.normal_score,
    lambda g: _elementwise_cases(g, "std"),
    ELEMENTWISE,
    outputs=("d_mean", "d_std"),
    elementwise=True,
)
register(
    "normal_score_log_std",
    "univariate score w.r.t. mean and log_std: (d / std^2, d^2 / std^2 - 1)",
    gaussian.normal_score_log_std,
    lambda g: _elementwise_cases(g, "log_std"),
    ELEMENTWISE,
    outputs=("d_mean", "d_log_std"),
    elementwise=True,
)
register(
    "diag_log_prob",
    "diagonal Gaussian log-density summed over the last axis (batch 32 x dim 10, log_std (10,))",
    gaussian.diag_log_prob,
    _diag_cases,
    ELEMENTWISE,
)
register(
    "diag_score",
    "diagonal Gaussian score per component: (d_mean, d_log_std), broadcast shape",
    gaussian.diag_score,
    _diag_cases,
    ELEMENTWISE,
    outputs=("d_mean", "d_log_std"),
    elementwise=True,
)
register(
    "mvn_log_prob",
    "full-covariance Gaussian log-density log N(a; mean, cov)",
    gaussian.mvn_log_prob,
    lambda g: _mvn_cases(g, "cov"),
    MATRIX,
)
register(
    "mvn_score",
    "full-covariance score: (cov^-1 d, (cov^-1 d d^T cov^-1 - cov^-1) / 2)",
    gaussian.mvn_score,
    lambda g: _mvn_cases(g, "cov"),
    MATRIX,
    outputs=("d_mean", "d_cov"),
)
register(
    "mvn_score_tril",
    "score w.r.t. mean and Cholesky factor L (lower triangular): (cov^-1 d, tril(2 G L))",
    gaussian.mvn_score_tril,
    lambda g: _mvn_cases(g, "scale_tril"),
    MATRIX,
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
