"""Benchmark: the pathwise policy gradient through the model against REINFORCE, at equal episodes.

Run with ``python benchmarks/bench_pathwise.py`` (options: ``--episodes``, ``--horizon``,
``--seed``, ``--threads``). On the 2-D task of ``pgnotes.lqr``, for a Cholesky policy with a
constant factor (sigma = 0.5) at three gains (zero, an intermediate gain and the optimal gain
K*), it draws one batch of episodes and computes on it both per-episode gradient estimates:

- pathwise: ``pgnotes.pathwise.model_gradient_estimates`` (backpropagation through the known
  dynamics);
- REINFORCE: ``pgnotes.reinforce.estimate_gradient`` with reward-to-go, without a baseline and
  with the leave-one-out mean baseline; the same seed gives the same episodes.

It prints, per gain, the per-episode variance tr Cov[g_i] (summed over the parameters) of each
estimator, the ratio REINFORCE / pathwise (how many times more episodes REINFORCE needs for the
same accuracy), the largest |z| of each estimate against the exact gradient
(``pgnotes.reinforce.exact_gradient`` at the horizon) and the time each took (after one
warm-up call, which loads ``torch.func``). The exit status is 1
if any |z| exceeds 5 (an estimate inconsistent with the exact gradient).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from pgnotes import lqr, monte_carlo, pathwise, reinforce
from pgnotes.policies import make_policy


def flat(per_episode: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(g.shape[0], -1) for g in per_episode.values()], dim=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=None, help="default: task.effective_horizon()")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    task = lqr.task_2d()
    horizon = task.effective_horizon() if args.horizon is None else args.horizon
    gains = {
        "K = 0": torch.zeros(2, 2, dtype=torch.float64),
        "K = [[0.3, 0.1], [0, 0.4]]": torch.tensor([[0.3, 0.1], [0.0, 0.4]], dtype=torch.float64),
        "K = K*": lqr.optimal_gain(task),
    }
    print(f"2-D task, Cholesky policy with L = 0.5 I, {args.episodes} episodes of {horizon} steps, "
          f"seed {args.seed}, {args.threads} thread(s)")
    print(f"{'gain':28s} {'estimator':26s} {'tr Cov[g_i]':>12s} {'ratio to pathwise':>18s} {'max |z|':>8s} {'time (s)':>9s}")
    # torch.func loads its machinery on first use (seconds); keep that out of the timings.
    pathwise.model_gradient_estimates(task, make_policy("cholesky", 2, 2, state_dependent=False, dtype=torch.float64),
                                      episodes=2, horizon=2, generator=torch.Generator().manual_seed(0))
    worst_z = 0.0
    for label, gain in gains.items():
        policy = make_policy("cholesky", 2, 2, init_std=0.5, state_dependent=False, dtype=torch.float64)
        with torch.no_grad():
            policy.mean_head.weight.copy_(-gain)
        exact = flat({n: g.unsqueeze(0) for n, g in reinforce.exact_gradient(task, policy, horizon=horizon).items()})[0]
        start = time.perf_counter()
        path = flat(pathwise.model_gradient_estimates(
            task, policy, episodes=args.episodes, horizon=horizon, generator=torch.Generator().manual_seed(args.seed)))
        rows = [("pathwise (through the model)", path, time.perf_counter() - start)]
        for baseline in ("none", "mean"):
            start = time.perf_counter()
            estimate = reinforce.estimate_gradient(task, policy, episodes=args.episodes, horizon=horizon,
                                                   baseline=baseline, generator=torch.Generator().manual_seed(args.seed))
            rows.append((f"REINFORCE, baseline {baseline}", flat(estimate.per_episode), time.perf_counter() - start))
        path_variance = float(path.var(0).sum())
        for name, estimates, seconds in rows:
            variance = float(estimates.var(0).sum())
            z = float(monte_carlo.z_score(estimates, exact).abs().max())
            worst_z = max(worst_z, z)
            print(f"{label:28s} {name:26s} {variance:12.4g} {variance / path_variance:18.1f} {z:8.2f} {seconds:9.2f}")
    if worst_z > 5:
        print(f"FAIL: an estimate is {worst_z:.1f} standard errors from the exact gradient")
        return 1
    print("every estimate within 5 standard errors of the exact gradient")
    return 0


if __name__ == "__main__":
    sys.exit(main())
