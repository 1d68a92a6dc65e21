"""Seeded random inputs and the tolerances that the exercise modules share.

Inputs are float64 so that tolerances can be tight: a correct float64 implementation agrees with
the reference to about 1e-15 relative.
"""

from __future__ import annotations

import torch

# A correct float64 implementation of a closed form differs from the reference by a few ulp (1e-15
# relative); 1e-9 leaves room for other algorithms (e.g. an explicit inverse of a covariance with
# condition number 10) while any wrong formula is off by O(1).
ELEMENTWISE = (1e-10, 1e-9)
MATRIX = (1e-9, 1e-8)


def randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Standard normal float64 entries of the given shape."""
    return torch.randn(shape, dtype=torch.float64, generator=generator)


def positive(generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Log-normal float64 entries (median 1), for standard deviations."""
    return torch.exp(0.5 * randn(generator, *shape))
