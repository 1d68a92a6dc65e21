"""Benchmark: natural actor-critic against Stable-Baselines3's A2C and PPO and REINFORCE on the 2-D LQR task.

Run with ``python benchmarks/bench_natural_gradient.py`` (options: ``--seeds``, ``--steps``,
``--threads``). Stable-Baselines3 is an optional dependency (``pip install -e ".[benchmark]"``);
without it, its rows are skipped.

Every method learns a linear policy on ``lqr.task_2d()`` (gamma = 0.9, episodes of
``task.effective_horizon()`` = 66 steps) and is scored by the relative gap
``(J* - J) / |J*|`` of its deterministic policy after each update, recorded against
environment steps and wall-clock seconds of training (evaluation time excluded):

- natural actor-critic: the loop of the chapter "The Fisher information of a Gaussian policy"
  (8 episodes per update, S = 0.25 I, compatible critic ``fisher.lqr_compatible_fit``,
  step 0.3 / (1 + i / 5)); J of its mean policy a = -K s is exact (``lqr.expected_return``).
- REINFORCE: ``reinforce.train`` at its defaults (learned log sigma, 64 episodes per update,
  learned baseline, Adam 0.05); J of its mean policy is exact.
- SB3 A2C and PPO: 8 vectorised ``pgnotes.envs.LQREnv`` with an action bound of 3, a linear actor
  (``net_arch=dict(pi=[], vf=[64, 64])``), gamma = 0.9, the best learning rate of the grid
  1e-3, 3e-3, 1e-2 (chosen on seed 0 by the final gap); PPO with 128 steps per environment and update
  and minibatches of 256, A2C with its defaults otherwise. Their deterministic actions are clipped to the bound and their mean has a
  bias term, so J* - J is estimated by simulating 512 episodes on common, seeded noise (the same
  initial states and process noise for every evaluation, and for the optimal policy a = -K* s whose
  return on that noise stands in for J*), every 8 episodes of training.

The table gives, per method and seed, the steps and seconds to 5% and 2% of J*, the step from which
the gap stays below 2% until the end, and the final gap.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
import torch

from pgnotes import envs, fisher, lqr, reinforce, rollouts
from pgnotes.check import seeded
from pgnotes.policies import make_policy

TOLERANCES = (0.05, 0.02)
EVAL_EPISODES = 512


def summary(curve: list[tuple[int, float, float]]) -> dict:
    """Steps and seconds to each tolerance, the step from which the gap stays below 2%, the final gap."""
    out: dict = {}
    for tol in TOLERANCES:
        out[tol] = next(((steps, seconds) for steps, seconds, gap in curve if gap <= tol), None)
    stays = None
    for steps, _, gap in reversed(curve):
        if gap > 0.02:
            break
        stays = steps
    out["stays"] = stays
    out["final"] = curve[-1][2]
    return out


def natural_actor_critic(task: lqr.LQRTask, seed: int, max_steps: int) -> list[tuple[int, float, float]]:
    J_star = lqr.optimal_return(task).item()
    horizon, episodes = task.effective_horizon(), 8
    noise_cov = 0.25 * torch.eye(task.action_dim, dtype=torch.float64)
    generator = seeded(seed)
    K = torch.zeros(task.action_dim, task.state_dim, dtype=torch.float64)
    curve, steps, seconds, i = [], 0, 0.0, 0
    while steps < max_steps:
        start = time.perf_counter()
        batch = rollouts.rollout(task, K, episodes=episodes, horizon=horizon, noise_cov=noise_cov, generator=generator)
        K = K + 0.3 / (1 + i / 5) * fisher.lqr_compatible_fit(task, K, noise_cov, batch)
        seconds += time.perf_counter() - start
        steps += episodes * horizon
        i += 1
        curve.append((steps, seconds, (J_star - lqr.expected_return(task, K).item()) / abs(J_star)))
    return curve


def reinforce_curve(task: lqr.LQRTask, seed: int, max_steps: int) -> list[tuple[int, float, float]]:
    horizon, episodes = task.effective_horizon(), 64
    policy = make_policy("learned", task.state_dim, task.action_dim, init_std=0.5, seed=seed)
    times: list[float] = []
    start = time.perf_counter()
    history = reinforce.train(
        task, policy, iterations=max(1, max_steps // (episodes * horizon)), episodes_per_batch=episodes, seed=seed,
        callback=lambda i, h: times.append(time.perf_counter() - start),
    )
    return [(e * horizon, t, gap) for e, t, gap in zip(history.episodes, times, history.relative_gap())]


def _psd_root(matrix: torch.Tensor) -> torch.Tensor:
    """C with C C^T = matrix, for a positive semidefinite matrix (a singular one too)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return eigenvectors * eigenvalues.clamp_min(0.0).sqrt()


class CommonNoiseEvaluator:
    """J of a deterministic, batched action function, from EVAL_EPISODES episodes on fixed seeded noise."""

    def __init__(self, task: lqr.LQRTask, seed: int = 12345) -> None:
        self.task = task
        g = seeded(seed)
        n, horizon = task.state_dim, task.effective_horizon()
        self.x0 = task.x0_mean + torch.randn(EVAL_EPISODES, n, generator=g, dtype=torch.float64) @ _psd_root(task.X0).mT
        self.noise = torch.randn(horizon, EVAL_EPISODES, n, generator=g, dtype=torch.float64) @ _psd_root(task.W).mT
        self.scale = abs(lqr.optimal_return(task).item())
        K_star = lqr.optimal_gain(task)
        # Common random numbers: the optimal policy on the same noise, so J* - J is estimated with the
        # noise's contribution cancelling, and the optimum itself scores exactly 0.
        self.J_star_common = self._return(lambda obs: -(torch.as_tensor(obs, dtype=torch.float64) @ K_star.mT).numpy())

    def gap(self, act) -> float:
        return (self.J_star_common - self._return(act)) / self.scale

    def _return(self, act) -> float:
        t, s, total = self.task, self.x0, torch.zeros(EVAL_EPISODES, dtype=torch.float64)
        for step, w in enumerate(self.noise):
            a = torch.as_tensor(act(s.numpy().astype(np.float32)), dtype=torch.float64)
            total += t.gamma**step * -(((s @ t.Q) * s).sum(-1) + ((a @ t.R) * a).sum(-1))
            s = s @ t.A.mT + a @ t.B.mT + w
        return total.mean().item()


def sb3_curve(algorithm: str, task: lqr.LQRTask, seed: int, max_steps: int, lr: float) -> list[tuple[int, float, float]]:
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    horizon, n_envs = task.effective_horizon(), 8
    vec_env = make_vec_env(lambda: envs.make_env(task, action_bound=3.0), n_envs=n_envs, seed=seed)
    kwargs = dict(policy_kwargs=dict(net_arch=dict(pi=[], vf=[64, 64])), gamma=task.gamma, learning_rate=lr, seed=seed,
                  device="cpu", verbose=0)
    if algorithm == "PPO":
        # SB3's default of 2048 steps per environment and update would leave 2 updates in 40,000 steps;
        # 128 (1,024 steps per update with 8 environments) and minibatches of 256 give PPO many updates.
        kwargs.update(n_steps=128, batch_size=256)
    model = (A2C if algorithm == "A2C" else PPO)("MlpPolicy", vec_env, **kwargs)
    evaluator = CommonNoiseEvaluator(task)
    curve: list[tuple[int, float, float]] = []

    class Record(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.train_seconds, self.last, self.next_eval = 0.0, time.perf_counter(), n_envs * horizon

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.train_seconds += time.perf_counter() - self.last
                gap = evaluator.gap(lambda obs: model.predict(obs, deterministic=True)[0])
                curve.append((self.num_timesteps, self.train_seconds, gap))
                self.next_eval += n_envs * horizon
                self.last = time.perf_counter()
            return True

    model.learn(total_timesteps=max_steps, callback=Record())
    return curve


def row(method: str, seed: int, result: dict) -> str:
    def cell(tol: float) -> str:
        reached = result[tol]
        return "never" if reached is None else f"{reached[0]:>7d} {reached[1]:6.1f}s"

    stays = "never" if result["stays"] is None else str(result["stays"])
    return f"{method:22s} {seed:4d}  {cell(0.05):>15s}  {cell(0.02):>15s}  {stays:>9s}  {100 * result['final']:8.2f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40_000, help="environment steps per run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = lqr.task_2d()
    rows = []
    for seed in range(args.seeds):
        rows.append(("natural actor-critic", seed, summary(natural_actor_critic(task, seed, args.steps))))
    for seed in range(args.seeds):
        rows.append(("REINFORCE", seed, summary(reinforce_curve(task, seed, max(args.steps, 200_000)))))
    if importlib.util.find_spec("stable_baselines3") is None:
        print("stable-baselines3 is not installed: A2C and PPO skipped (pip install -e '.[benchmark]')")
    else:
        grids = {"A2C": (1e-3, 3e-3, 1e-2), "PPO": (1e-3, 3e-3, 1e-2)}
        for algorithm, grid in grids.items():
            # The learning rate: the one with the smallest final gap on seed 0.
            trials = {lr: summary(sb3_curve(algorithm, task, 0, args.steps, lr)) for lr in grid}
            best_lr = min(trials, key=lambda lr: trials[lr]["final"])
            for seed in range(args.seeds):
                result = trials[best_lr] if seed == 0 else summary(sb3_curve(algorithm, task, seed, args.steps, best_lr))
                rows.append((f"SB3 {algorithm} (lr {best_lr:g})", seed, result))
    print(f"2-D LQR, gamma = {task.gamma}, J* = {lqr.optimal_return(task).item():.4f}; gap = (J* - J) / |J*| of the deterministic policy")
    print(f"{'method':22s} {'seed':>4s}  {'steps, s to 5%':>15s}  {'steps, s to 2%':>15s}  {'stays from':>9s}  {'final gap':>9s}")
    for method, seed, result in rows:
        print(row(method, seed, result))


if __name__ == "__main__":
    main()
