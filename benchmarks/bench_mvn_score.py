"""Benchmark: closed-form full-covariance score against autograd through MultivariateNormal.

Run with ``python benchmarks/bench_mvn_score.py``. For a batch of 4096 actions with
their own covariance (condition number 100), k in {2, 8, 32}, float64, it times

- ``pgnotes.gaussian.mvn_score(a, mean, cov)`` (arguments validated: finiteness, symmetry,
  positive definiteness through the Cholesky factor it uses anyway), which forms
  :math:`\Sigma^{-1} d` as a product with the :math:`\Sigma^{-1}` that is part of its answer,
- the best alternative closed form, the same score with :math:`\Sigma^{-1} d` from two more
  triangular solves with the Cholesky factor (validated the same way), and
- autograd: ``MultivariateNormal(mean, covariance_matrix=cov).log_prob(a)`` followed by
  ``torch.autograd.grad`` w.r.t. mean and cov, with torch's default argument validation, and
  again with ``validate_args=False``,

and prints the median time of several interleaved runs, the speed ratios (of the medians, and
of the fastest runs) and the largest difference between the two answers. The thread count is torch's default. Timings on a machine
shared with other work are noisy (and multi-threaded kernels suffer most); the ratios, measured
on interleaved runs, are more stable than the absolute times.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.distributions import MultivariateNormal

from pgnotes.check import random_spd
from pgnotes.gaussian import _check_symmetric, _cholesky, _mvn_inputs, _tril_solve, mvn_score

BATCH = 4096
DIMENSIONS = (2, 8, 32)
CONDITION_NUMBER = 100.0
REPEATS = {2: 31, 8: 21, 32: 7}
MIN_REPEATS = 3
# Per-dimension time budget: on a loaded machine fewer repeats are taken (never fewer than
# MIN_REPEATS), so the whole script stays under a minute.
BUDGET_SECONDS = 10.0
TARGET_K, TARGET_RATIO, TARGET_DIFFERENCE = 8, 2.5, 1e-12


def autograd_score(a: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, validate: bool | None):
    mean = mean.detach().requires_grad_(True)
    cov = cov.detach().requires_grad_(True)
    log_prob = MultivariateNormal(mean, covariance_matrix=cov, validate_args=validate).log_prob(a)
    return torch.autograd.grad(log_prob.sum(), (mean, cov))


def two_solves_score(a: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor):
    """The alternative: Sigma^-1 d by two triangular solves instead of a product with Sigma^-1."""
    a, mean, cov = _mvn_inputs(a, mean, cov, "cov")
    _check_symmetric(cov)
    scale_tril = _cholesky(cov)
    z = _tril_solve(scale_tril, a - mean)
    d_mean = _tril_solve(scale_tril, z, transpose=True)
    cov_inv = torch.cholesky_inverse(scale_tril)
    d_cov = torch.addcmul(cov_inv, d_mean.unsqueeze(-1), d_mean.unsqueeze(-2), value=-1.0).mul_(-0.5)
    return d_mean, d_cov


def timings(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall times of each function; runs are interleaved so that all see the same machine load."""
    for function in functions.values():
        function()  # warm-up: allocator, lazy initialisation
    times: dict[str, list[float]] = {name: [] for name in functions}
    began = time.perf_counter()
    for run in range(repeats):
        if run >= MIN_REPEATS and time.perf_counter() - began > BUDGET_SECONDS:
            break
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    generator = torch.Generator().manual_seed(0)
    print(
        f"mvn_score vs autograd through MultivariateNormal.log_prob: batch {BATCH}, float64, "
        f"cond(cov) = {CONDITION_NUMBER:g}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    header = (
        f"{'k':>3} | {'closed form':>12} | {'autograd':>12} | {'ratio':>6} | "
        f"{'autograd, no validation':>24} | {'ratio':>6} | {'ratio, best runs':>16} | "
        f"{'max |difference|':>16} | {'two solves':>12} | {'vs closed':>9} | {'runs':>4}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for k in DIMENSIONS:
        cov = random_spd(k, CONDITION_NUMBER, batch_shape=(BATCH,), generator=generator)
        mean = torch.randn(BATCH, k, dtype=torch.float64, generator=generator)
        noise = torch.randn(BATCH, k, 1, dtype=torch.float64, generator=generator)
        a = mean + (torch.linalg.cholesky(cov) @ noise).squeeze(-1)

        closed = mvn_score(a, mean, cov)
        reference = autograd_score(a, mean, cov, validate=None)
        difference = max(float((x - y).abs().max()) for x, y in zip(closed, reference))
        alternative = two_solves_score(a, mean, cov)
        difference = max(difference, *(float((x - y).abs().max()) for x, y in zip(alternative, reference)))

        runs = timings(
            {
                "closed": lambda: mvn_score(a, mean, cov),
                "autograd": lambda: autograd_score(a, mean, cov, validate=None),
                "autograd_nv": lambda: autograd_score(a, mean, cov, validate=False),
                "two_solves": lambda: two_solves_score(a, mean, cov),
            },
            REPEATS[k],
        )
        times = {name: statistics.median(values) for name, values in runs.items()}
        best = {name: min(values) for name, values in runs.items()}
        ratio = times["autograd"] / times["closed"]
        ratio_nv = times["autograd_nv"] / times["closed"]
        ratio_best = best["autograd"] / best["closed"]
        print(
            f"{k:>3} | {times['closed'] * 1e3:>9.2f} ms | {times['autograd'] * 1e3:>9.2f} ms | {ratio:>5.1f}x | "
            f"{times['autograd_nv'] * 1e3:>21.2f} ms | {ratio_nv:>5.1f}x | {ratio_best:>15.1f}x | "
            f"{difference:>16.2e} | {times['two_solves'] * 1e3:>9.2f} ms | "
            f"{times['two_solves'] / times['closed']:>8.2f}x | {len(runs['closed']):>4}"
        )
        if difference > TARGET_DIFFERENCE:
            ok = False
            print(f"    answers differ by {difference:.2e} > {TARGET_DIFFERENCE:g}")
        if k == TARGET_K:
            met = ratio >= TARGET_RATIO
            verdict = "met" if met else "NOT met"
            print(f"    target at k = {k}: closed form >= {TARGET_RATIO}x faster than autograd: {verdict}")
    # Timings depend on the machine and its load; only a wrong answer fails the script.
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
