"""Exercises on KL divergences and Fisher information (:mod:`pgnotes.fisher`)."""

from __future__ import annotations

import torch

from pgnotes import fisher
from pgnotes.exercises._inputs import ELEMENTWISE, randn
from pgnotes.exercises._registry import Case, register


def _diag_kl_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (mean_p, log_std_p, mean_q, log_std_q) of shape (..., k), broadcasting over the batch."""
    return [
        Case(
            "one pair of 3-D Gaussians",
            {name: randn(generator, 3) for name in ("mean_p", "log_std_p", "mean_q", "log_std_q")},
        ),
        Case(
            "a batch of 5 pairs of 2-D Gaussians",
            {name: randn(generator, 5, 2) for name in ("mean_p", "log_std_p", "mean_q", "log_std_q")},
        ),
        Case(
            "q shared by a batch of 4 p's (shapes (4, 3) against (3,))",
            {"mean_p": randn(generator, 4, 3), "log_std_p": randn(generator, 4, 3),
             "mean_q": randn(generator, 3), "log_std_q": randn(generator, 3)},
        ),
        Case(
            "equal scales, different means (the KL is the squared distance over 2 sigma^2)",
            {"mean_p": randn(generator, 6, 2), "log_std_p": torch.zeros(6, 2, dtype=torch.float64),
             "mean_q": randn(generator, 6, 2), "log_std_q": torch.zeros(6, 2, dtype=torch.float64)},
        ),
    ]


register(
    "diag_kl",
    "KL(p || q) of two diagonal Gaussians given by means and log standard deviations, summed over the last axis",
    fisher.diag_kl,
    _diag_kl_cases,
    ELEMENTWISE,
)
