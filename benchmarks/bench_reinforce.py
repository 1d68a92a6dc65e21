"""Benchmark: REINFORCE on the linear-quadratic task, one row per covariance head.

Run with ``python benchmarks/bench_reinforce.py`` (options: ``--task 1d``, ``--iterations``,
``--seeds``, ``--threads``). For every covariance head of ``pgnotes.policies`` with a linear
mean it trains a fresh policy with ``pgnotes.reinforce.train`` at its default settings
(Adam, lr 0.05, 64 episodes per batch, learned baseline, horizon ``task.effective_horizon()``)
and records, from a callback, the wall-clock time and the number of episodes at which the
exact return J of the deterministic mean policy first comes within 5% and within 2% of J*,
that is (J* - J) / |J*| <= 0.05 or 0.02. It prints a table of medians over the seeds, with the
gap at the end of the run for the mean policy and, where it exists, for the stochastic policy.

Target: the learned-sigma head (``"learned"``, state-independent log sigma) reaches 2% of J*
on the 2-D task in under 20 s of training on 2 CPU cores; the exit status is 1 if it does not.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch

from pgnotes import lqr
from pgnotes.policies import make_policy
from pgnotes.reinforce import History, train

HEADS = (
    ("fixed", "fixed sigma", {}),
    ("learned", "learned log sigma (PPO)", {}),
    ("state", "state-dependent log sigma (SAC)", {}),
    ("cholesky", "Cholesky, constant", {"state_dependent": False}),
    ("cholesky", "Cholesky, state-dependent", {}),
)
TOLERANCES = (0.05, 0.02)
TARGET_HEAD, TARGET_TOLERANCE, TARGET_SECONDS = "learned log sigma (PPO)", 0.02, 20.0


def run(task: lqr.LQRTask, head: str, kwargs: dict, seed: int, iterations: int, threads: int | None) -> dict:
    """Train one policy; return episodes and seconds to each tolerance, final gaps and speed."""
    policy = make_policy(head, task.state_dim, task.action_dim, init_std=0.5, seed=seed, **kwargs)
    reached: dict[float, tuple[int, float]] = {}
    start = time.perf_counter()

    def record(i: int, history: History) -> None:
        gap = history.relative_gap()[-1]
        for tol in TOLERANCES:
            if tol not in reached and gap <= tol:
                reached[tol] = (history.episodes[-1], time.perf_counter() - start)

    history = train(task, policy, iterations=iterations, seed=seed, callback=record, num_threads=threads)
    elapsed = time.perf_counter() - start
    has_stochastic = not math.isnan(history.exact_return[-1])
    final_stochastic = history.relative_gap(stochastic=True)[-1] if has_stochastic else math.nan
    return {
        "reached": reached,
        "final_gap": history.relative_gap()[-1],
        "final_gap_stochastic": final_stochastic,
        "ms_per_iteration": 1e3 * elapsed / iterations,
    }


def median_or_none(values: list[float | None]) -> float | None:
    """Median over seeds; None if any seed never reached the tolerance."""
    return None if any(v is None for v in values) else statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("1d", "2d"), default="2d")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op threads during training (0: leave torch's setting alone)"
    )
    args = parser.parse_args()
    threads = None if args.threads == 0 else args.threads
    # The first torch.optim optimiser of a process imports torch._dynamo (1-2 s); do it
    # before any timing, so the seconds below measure training, not that import.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    task = lqr.task_2d() if args.task == "2d" else lqr.task_1d()
    j_star = float(lqr.optimal_return(task))
    print(
        f"task {args.task}: J* = {j_star:.4f}, horizon {task.effective_horizon()}, {args.iterations} iterations "
        f"x 64 episodes, seeds 0..{args.seeds - 1}; torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"training threads {threads if threads is not None else torch.get_num_threads()}"
    )
    print()
    header = (
        "| head | episodes to 5% | seconds to 5% | episodes to 2% | seconds to 2% "
        "| final gap (mean policy) | final gap (stochastic) | ms / iteration |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    target_seconds = None
    for head, label, kwargs in HEADS:
        results = [run(task, head, kwargs, seed, args.iterations, threads) for seed in range(args.seeds)]
        cells = [label]
        for tol in TOLERANCES:
            episodes = median_or_none([r["reached"].get(tol, (None, None))[0] for r in results])
            seconds = median_or_none([r["reached"].get(tol, (None, None))[1] for r in results])
            cells.append("not reached" if episodes is None else f"{episodes:.0f}")
            cells.append("not reached" if seconds is None else f"{seconds:.2f}")
            if label == TARGET_HEAD and tol == TARGET_TOLERANCE:
                worst = [r["reached"].get(tol, (None, None))[1] for r in results]
                target_seconds = None if any(s is None for s in worst) else max(worst)
        final = statistics.median(r["final_gap"] for r in results)
        final_stochastic = statistics.median(r["final_gap_stochastic"] for r in results)
        cells.append(f"{100 * final:.2f}%")
        cells.append("n/a" if math.isnan(final_stochastic) else f"{100 * final_stochastic:.2f}%")
        cells.append(f"{statistics.median(r['ms_per_iteration'] for r in results):.1f}")
        print("| " + " | ".join(cells) + " |", flush=True)
    print()
    print("Medians over seeds; a gap is (J* - J) / |J*| of the exact return after the last update.")
    if args.task != "2d":
        return 0
    ok = target_seconds is not None and target_seconds < TARGET_SECONDS
    verdict = "met" if ok else "NOT met"
    shown = "never" if target_seconds is None else f"{target_seconds:.2f} s (slowest seed)"
    print(
        f"target {verdict}: {TARGET_HEAD} within {TARGET_TOLERANCE:.0%} of J* in {shown}, "
        f"limit {TARGET_SECONDS:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
