"""Tests for pgnotes.lqr: the discounted linear-quadratic task and its closed forms."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgnotes import envs, lqr, rollouts
from pgnotes.policies import LearnedStdPolicy

F64 = torch.float64
EPS64 = torch.finfo(F64).eps


def scalar_riccati_closed_form(a: float, b: float, q: float, r: float, gamma: float) -> tuple[float, float]:
    """Positive root of the scalar discounted Riccati equation and its gain.

    p = q + g a^2 p - g^2 a^2 b^2 p^2 / (r + g b^2 p) is equivalent to
    g b^2 p^2 + (r - g b^2 q - g a^2 r) p - q r = 0.
    """
    qa, qb, qc = gamma * b * b, r - gamma * b * b * q - gamma * a * a * r, -q * r
    p = (-qb + math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    return gamma * a * b * p / (r + gamma * b * b * p), p


# --------------------------------------------------------------------------- the task


def test_task_converts_numbers_and_reports_dimensions() -> None:
    task = lqr.LQRTask(A=1.0, B=2.0, Q=1.0, R=0.5, W=0.1, X0=1.0, gamma=0.9)
    assert task.A.shape == (1, 1) and task.A.dtype == F64
    assert (task.state_dim, task.action_dim) == (1, 1)
    assert torch.equal(task.x0_mean, torch.zeros(1, dtype=F64))
    two = lqr.task_2d()
    assert (two.state_dim, two.action_dim) == (2, 2)


def test_effective_horizon_is_the_smallest_with_small_tail() -> None:
    task = lqr.task_2d(gamma=0.9)
    horizon = task.effective_horizon(1e-3)
    assert 0.9**horizon <= 1e-3 < 0.9 ** (horizon - 1)
    with pytest.raises(ValueError, match="tol"):
        task.effective_horizon(1.5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"A": torch.eye(3)}, "A must be square"),
        ({"Q": torch.tensor([[1.0, 0.5], [0.0, 1.0]])}, "Q must be symmetric"),
        ({"Q": -torch.eye(2)}, "Q must be positive semidefinite"),
        ({"R": torch.zeros(2, 2)}, "R must be positive definite"),
        ({"W": torch.eye(3)}, r"W must have shape \(2, 2\)"),
        ({"X0": torch.tensor([[1.0, 2.0], [2.0, 1.0]])}, "X0 must be positive semidefinite"),
        ({"gamma": 1.0}, "gamma must satisfy"),
        ({"gamma": 0.0}, "gamma must satisfy"),
        ({"x0_mean": torch.zeros(3)}, "x0_mean must have shape"),
        ({"A": torch.tensor([[math.nan, 0.0], [0.0, 1.0]])}, "A must be finite"),
        ({"B": torch.zeros(2, 2, 2)}, "B must be a matrix"),
    ],
)
def test_task_rejects_invalid_data(changes: dict, message: str) -> None:
    eye = torch.eye(2, dtype=F64)
    data = {"A": eye, "B": eye, "Q": eye, "R": eye, "W": eye, "X0": eye, "gamma": 0.9}
    data.update(changes)
    with pytest.raises(ValueError, match=message):
        lqr.LQRTask(**data)


# --------------------------------------------------------------------------- the optimum


def test_riccati_matches_the_scalar_closed_form() -> None:
    a, b, q, r, gamma = 1.1, 0.7, 2.0, 0.3, 0.8
    task = lqr.task_1d(a=a, b=b, q=q, r=r, gamma=gamma)
    K, P = lqr.solve_riccati(task)
    k_exact, p_exact = scalar_riccati_closed_form(a, b, q, r, gamma)
    # The iteration stops at a relative change of 1e-12 and converges
    # geometrically, so the fixed point is reached to about that level.
    assert float(P) == pytest.approx(p_exact, rel=1e-10)
    assert float(K) == pytest.approx(k_exact, rel=1e-10)


def test_riccati_optimum_beats_a_brute_force_search_over_gains() -> None:
    task = lqr.task_1d()
    spacing = 1e-4
    # Every gain of this grid is stable: sqrt(0.9) * |1 - K| < 1 for K in (-0.054, 2.054).
    grid = torch.arange(0.0, 2.0 + spacing / 2, spacing, dtype=F64)
    returns = lqr.expected_return(task, grid.reshape(-1, 1, 1))
    best = int(returns.argmax())
    k_star = float(lqr.optimal_gain(task))
    # The grid maximiser is the grid point nearest K*: within one spacing.
    assert abs(float(grid[best]) - k_star) <= spacing
    # J* is at least every grid value (up to float64 rounding of J, about 1e-15 |J|).
    j_star = float(lqr.optimal_return(task))
    assert j_star >= float(returns.max()) - 1e-13 * abs(j_star)
    # and J is quadratic-like near K*, so the best grid value is within
    # (curvature/2) * spacing^2 of J*: here the curvature is about 11.
    assert j_star - float(returns.max()) <= 6.0 * spacing**2


def test_optimal_gain_is_a_stationary_point_and_a_maximum_in_2d() -> None:
    task = lqr.task_2d()
    K_star = lqr.optimal_gain(task).requires_grad_(True)
    J_star = lqr.expected_return(task, K_star)
    (gradient,) = torch.autograd.grad(J_star, K_star)
    # |dJ/dK| at the optimum is rounding-level: a few hundred eps times |J|.
    assert float(gradient.abs().max()) <= 1e3 * EPS64 * abs(float(J_star.detach()))
    generator = torch.Generator().manual_seed(0)
    perturbations = 0.05 * torch.randn(64, 2, 2, generator=generator, dtype=F64)
    perturbed = lqr.expected_return(task, K_star.detach() + perturbations)
    assert bool((perturbed < J_star.detach()).all())


def test_riccati_solution_satisfies_the_fixed_point_equation() -> None:
    task = lqr.task_2d()
    K, P = lqr.solve_riccati(task)
    A, B, Q, R, g = task.A, task.B, task.Q, task.R, task.gamma
    residual = Q + g * A.T @ P @ A - g**2 * A.T @ P @ B @ torch.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A) - P
    # Converged to a relative change of 1e-12 per iteration.
    assert float(residual.abs().max()) <= 1e-10 * float(P.abs().max())
    # and P* is the value matrix of the deterministic policy -K* s.
    P_policy, c = lqr.quadratic_value(task, K)
    torch.testing.assert_close(P_policy, P, rtol=1e-10, atol=0.0)
    assert float(c) == pytest.approx(g * float(torch.trace(P @ task.W)) / (1 - g), rel=1e-10)


def test_no_finite_optimum_when_no_gain_stabilises() -> None:
    # B = 0 cannot act on the mode a = 2 (sqrt(0.9) * 2 > 1).
    task = lqr.task_1d(a=2.0, b=0.0)
    with pytest.raises(ValueError, match="no finite optimum exists"):
        lqr.solve_riccati(task)
    with pytest.raises(ValueError, match="no finite optimum exists"):
        lqr.optimal_return(task)


def test_no_finite_optimum_when_the_cost_ignores_an_unstable_mode() -> None:
    # With Q = 0 doing nothing is "free", and the optimal gain K = 0 leaves the
    # state growing like 1.2^t: the discounted return is not finite.
    task = lqr.task_1d(a=1.2, q=0.0)
    with pytest.raises(ValueError, match="no finite optimum exists"):
        lqr.optimal_gain(task)


def test_riccati_reports_non_convergence() -> None:
    with pytest.raises(ValueError, match="did not converge in 2 iterations"):
        lqr.solve_riccati(lqr.task_2d(), max_iterations=2)


# --------------------------------------------------------------------------- exact returns


def test_lyapunov_solution_equals_the_series() -> None:
    generator = torch.Generator().manual_seed(1)
    F = 0.4 * torch.randn(3, 3, generator=generator, dtype=F64)
    M = torch.randn(3, 3, generator=generator, dtype=F64)
    M = M @ M.T
    gamma = 0.9
    P = lqr.solve_discounted_lyapunov(F, M, gamma)
    series = torch.zeros_like(M)
    term = M.clone()
    for _ in range(400):  # (sqrt(0.9) * rho(F))^800 is far below eps
        series = series + term
        term = gamma * F.T @ term @ F
    torch.testing.assert_close(P, series, rtol=1e-12, atol=1e-12)


def test_lyapunov_is_batched() -> None:
    generator = torch.Generator().manual_seed(2)
    F = 0.3 * torch.randn(4, 2, 2, generator=generator, dtype=F64)
    M = torch.eye(2, dtype=F64)
    batched = lqr.solve_discounted_lyapunov(F, M, 0.95)
    for i in range(4):
        torch.testing.assert_close(batched[i], lqr.solve_discounted_lyapunov(F[i], M, 0.95), rtol=1e-14, atol=1e-14)


def test_infinite_horizon_return_is_the_limit_of_the_truncated_one() -> None:
    task = lqr.LQRTask(
        A=lqr.task_2d().A, B=torch.tensor([[1.0], [0.5]]), Q=torch.diag(torch.tensor([1.0, 2.0])),
        R=0.3, W=0.05 * torch.eye(2), X0=torch.eye(2), gamma=0.9, x0_mean=torch.tensor([1.0, -2.0]),
    )
    K = torch.tensor([[0.3, 0.4]], dtype=F64)
    S = torch.tensor([[0.2]], dtype=F64)
    infinite = lqr.expected_return(task, K, S)
    truncated = lqr.expected_return(task, K, S, horizon=500)
    # The tail after 500 steps is below 0.9^500 ~ 1e-23 of the return: only rounding remains.
    assert float(truncated) == pytest.approx(float(infinite), rel=1e-12)


def test_exact_return_is_differentiable() -> None:
    task = lqr.task_2d()
    K = (0.3 * torch.eye(2, dtype=F64)).requires_grad_(True)
    L = torch.tensor([[0.5, 0.0], [0.1, 0.3]], dtype=F64, requires_grad=True)

    def infinite(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        return lqr.expected_return(task, K, L @ L.T)

    def truncated(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        return lqr.expected_return(task, K, L @ L.T, horizon=15)

    # gradcheck: central differences in float64 against autograd.
    assert torch.autograd.gradcheck(infinite, (K, L))
    assert torch.autograd.gradcheck(truncated, (K, L))


def test_noise_only_lowers_the_return() -> None:
    task = lqr.task_2d()
    K = lqr.optimal_gain(task)
    S = 0.1 * torch.eye(2, dtype=F64)
    P, _ = lqr.quadratic_value(task, K)
    expected_noise_cost = (float(torch.trace(task.R @ S)) + task.gamma * float(torch.trace(P @ S))) / (1 - task.gamma)
    difference = float(lqr.expected_return(task, K) - lqr.expected_return(task, K, S))
    assert difference == pytest.approx(expected_noise_cost, rel=1e-12)


def test_exploration_cost_is_the_gap_between_the_returns() -> None:
    task = lqr.task_2d()
    generator = torch.Generator().manual_seed(5)
    gains = lqr.optimal_gain(task) + 0.1 * torch.randn(3, 2, 2, generator=generator, dtype=F64)
    root = torch.randn(3, 2, 2, generator=generator, dtype=F64)
    S = root @ root.mT
    cost = lqr.exploration_cost(task, gains, S)
    difference = lqr.expected_return(task, gains) - lqr.expected_return(task, gains, S)
    assert cost.shape == (3,) and bool((cost > 0).all())
    # Two routes to the same linear function of S: rounding of terms of order 10.
    torch.testing.assert_close(cost, difference, rtol=1e-12, atol=1e-12)
    assert float(lqr.exploration_cost(task, gains[0], torch.zeros(2, 2, dtype=F64))) == 0.0
    # Scalar task at K*: sigma^2 (r + gamma b^2 p*) / (1 - gamma), with p* of the closed form.
    scalar = lqr.task_1d()
    k_star, p_star = scalar_riccati_closed_form(1.0, 1.0, 1.0, 1.0, scalar.gamma)
    by_hand = 0.25 * (1.0 + scalar.gamma * p_star) / (1.0 - scalar.gamma)
    got = float(lqr.exploration_cost(scalar, torch.tensor([[k_star]], dtype=F64), 0.25))
    assert got == pytest.approx(by_hand, rel=1e-12)
    with pytest.raises(ValueError, match="unstable for the discount"):
        lqr.exploration_cost(scalar, torch.tensor([[3.0]], dtype=F64), 0.25)


def test_unstable_gain_raises_or_gives_minus_infinity() -> None:
    task = lqr.task_1d()
    with pytest.raises(ValueError, match="unstable for the discount"):
        lqr.expected_return(task, torch.tensor([[3.0]]))
    with pytest.raises(ValueError, match="unstable for the discount"):
        lqr.quadratic_value(task, torch.tensor([[-1.0]]))
    gains = torch.tensor([3.0, 0.5, -1.0], dtype=F64).reshape(3, 1, 1)
    values = lqr.expected_return(task, gains, allow_unstable=True)
    assert values[0] == -math.inf and values[2] == -math.inf
    assert float(values[1]) == pytest.approx(float(lqr.expected_return(task, gains[1])), rel=1e-14)
    # An unstable gain still has a finite truncated return.
    assert math.isfinite(float(lqr.expected_return(task, gains[0], horizon=10)))


def test_exact_return_rejects_bad_shapes() -> None:
    task = lqr.task_2d()
    with pytest.raises(ValueError, match=r"gain must have shape \(\.\.\., 2, 2\)"):
        lqr.expected_return(task, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"noise_cov must have shape"):
        lqr.expected_return(task, torch.zeros(2, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="horizon must be a positive"):
        lqr.expected_return(task, torch.zeros(2, 2), horizon=0)


# --------------------------------------------------------------------------- Monte Carlo


def _assert_within_standard_errors(samples: torch.Tensor, exact: float, z: float = 4.0) -> None:
    # A 4-sigma band: a false alarm has probability 6e-5 per check, and the
    # seeds are fixed, so the test is deterministic anyway.
    mean = float(samples.mean())
    se = float(samples.std() / math.sqrt(samples.numel()))
    assert abs(mean - exact) <= z * se, f"Monte Carlo {mean:.5f} +- {se:.5f} vs exact {exact:.5f}"


def test_exact_return_matches_monte_carlo_with_a_gain() -> None:
    task = lqr.LQRTask(
        A=lqr.task_2d().A, B=torch.eye(2), Q=torch.eye(2), R=torch.eye(2), W=0.05 * torch.eye(2),
        X0=torch.diag(torch.tensor([1.0, 0.5])), gamma=0.9, x0_mean=torch.tensor([0.5, -1.0]),
    )
    K = torch.tensor([[0.4, 0.1], [0.0, 0.6]], dtype=F64)
    S = torch.tensor([[0.09, 0.03], [0.03, 0.04]], dtype=F64)
    horizon = 30
    generator = torch.Generator().manual_seed(3)
    batch = rollouts.rollout(task, K, noise_cov=S, episodes=10_000, horizon=horizon, generator=generator)
    assert batch.states.shape == (10_000, horizon, 2)
    assert batch.actions.shape == (10_000, horizon, 2)
    assert batch.rewards.shape == (10_000, horizon)
    _assert_within_standard_errors(batch.discounted_return, float(lqr.expected_return(task, K, S, horizon=horizon)))


def test_exact_return_matches_monte_carlo_with_a_policy() -> None:
    task = lqr.task_1d()
    policy = LearnedStdPolicy(1, 1, init_std=0.4, dtype=F64)
    with torch.no_grad():
        policy.mean_head.weight.fill_(-0.5)  # K = 0.5
    horizon = 40
    batch = rollouts.rollout(task, policy, episodes=10_000, horizon=horizon, generator=torch.Generator().manual_seed(4))
    assert batch.states.dtype == F64
    with torch.no_grad():
        exact = float(lqr.expected_return(task, policy.gain(), policy.noise_covariance(), horizon=horizon))
    _assert_within_standard_errors(batch.discounted_return, exact)


def test_rollout_is_seeded_and_rewards_are_negative_costs() -> None:
    task = lqr.task_2d()
    K = lqr.optimal_gain(task)
    first = rollouts.rollout(task, K, episodes=5, horizon=7, generator=torch.Generator().manual_seed(5))
    second = rollouts.rollout(task, K, episodes=5, horizon=7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first.states, second.states) and torch.equal(first.rewards, second.rewards)
    s, a = first.states, first.actions
    cost = torch.einsum("eti,ij,etj->et", s, task.Q, s) + torch.einsum("eti,ij,etj->et", a, task.R, a)
    torch.testing.assert_close(first.rewards, -cost, rtol=1e-14, atol=1e-14)
    # a = -K s exactly for a gain without noise
    torch.testing.assert_close(a, -s @ K.T, rtol=0.0, atol=0.0)
    # the next state follows the dynamics up to the noise, whose covariance is W
    noise = s[:, 1:] - s[:, :-1] @ task.A.T - a[:, :-1] @ task.B.T
    assert noise.shape == (5, 6, 2)


def test_rollout_checks_the_policy_dimensions() -> None:
    task = lqr.task_2d()
    with pytest.raises(ValueError, match=r"policy.obs_dim = 1 does not match task.state_dim = 2"):
        rollouts.rollout(task, LearnedStdPolicy(1, 2), episodes=2, horizon=3)
    with pytest.raises(ValueError, match=r"policy.act_dim = 1 does not match task.action_dim = 2"):
        rollouts.rollout(task, LearnedStdPolicy(2, 1), episodes=2, horizon=3)
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        rollouts.rollout(task, LearnedStdPolicy(2, 2), episodes=0, horizon=3)
    with pytest.raises(ValueError, match="noise_cov is only used with a gain"):
        rollouts.rollout(task, LearnedStdPolicy(2, 2), episodes=2, horizon=3, noise_cov=torch.eye(2))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 3),
    k=st.integers(1, 3),
    gamma=st.floats(0.5, 0.95),
    seed=st.integers(0, 2**16),
)
def test_lyapunov_value_satisfies_the_bellman_equation(n: int, k: int, gamma: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    A = 0.5 * torch.randn(n, n, generator=generator, dtype=F64)
    B = torch.randn(n, k, generator=generator, dtype=F64)
    task = lqr.LQRTask(A=A, B=B, Q=torch.eye(n), R=torch.eye(k), W=0.1 * torch.eye(n), X0=torch.eye(n), gamma=gamma)
    K = 0.1 * torch.randn(k, n, generator=generator, dtype=F64)
    if float(lqr.discounted_spectral_radius(task, K)) >= 0.95:
        return  # nearly singular Lyapunov systems are covered by the instability tests
    S = 0.2 * torch.eye(k, dtype=F64)
    P, c = lqr.quadratic_value(task, K, S)
    F = lqr.closed_loop(task, K)
    M = task.Q + K.T @ task.R @ K
    # P = M + gamma F^T P F and c = tr(RS) + gamma (tr(P(BSB^T + W)) + c), to rounding
    # amplified by the condition number of the Lyapunov system, at most 1/(1 - 0.95^2) ~ 10.
    torch.testing.assert_close(P, M + gamma * F.T @ P @ F, rtol=1e-11, atol=1e-11)
    noise = task.B @ S @ task.B.T + task.W
    expected_c = float(torch.trace(task.R @ S)) + gamma * (float(torch.trace(P @ noise)) + float(c))
    assert float(c) == pytest.approx(expected_c, rel=1e-11)


# --------------------------------------------------------------------------- gymnasium


def test_env_passes_the_gymnasium_checker_without_warnings() -> None:
    pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    for task in (lqr.task_1d(), lqr.task_2d()):
        env = envs.make_env(task, horizon=20)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_env(env, skip_render_check=True)


def test_env_follows_the_task_and_truncates() -> None:
    gymnasium = pytest.importorskip("gymnasium")
    task = lqr.task_2d()
    env = envs.LQREnv(task, horizon=3)
    assert isinstance(env, gymnasium.Env)
    assert env.observation_space.dtype == np.float32 and env.action_space.shape == (2,)
    start = np.array([1.0, -2.0])
    obs, info = env.reset(seed=0, options={"state": start})
    np.testing.assert_array_equal(obs, start.astype(np.float32))
    action = np.array([0.5, 3.0])  # outside the nominal box: applied unclipped
    obs, reward, terminated, truncated, info = env.step(action)
    assert reward == pytest.approx(-(start @ start + action @ action), rel=1e-12)
    assert info["cost"] == pytest.approx(-reward, rel=1e-15)
    assert obs.dtype == np.float32 and not terminated and not truncated
    env.step(action)
    *_, truncated, _ = env.step(action)
    assert truncated
    with pytest.raises(ValueError, match=r"action must have shape \(2,\)"):
        env.step(np.zeros(3))


def test_env_is_seeded() -> None:
    pytest.importorskip("gymnasium")
    env = envs.make_env(lqr.task_2d())
    assert env.horizon == lqr.task_2d().effective_horizon()
    first = [env.reset(seed=11)[0], env.step(np.zeros(2))[0]]
    second = [env.reset(seed=11)[0], env.step(np.zeros(2))[0]]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)


def test_gymnasium_is_optional() -> None:
    # In a fresh interpreter: no module but pgnotes.envs imports gymnasium, and
    # without gymnasium pgnotes.envs fails with the install command.
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import pgnotes
        for info in pkgutil.iter_modules(pgnotes.__path__):
            if info.name not in ("envs", "bandit"):
                importlib.import_module("pgnotes." + info.name)
        assert "gymnasium" not in sys.modules, "a pgnotes module other than envs imported gymnasium"
        sys.modules["gymnasium"] = None  # makes `import gymnasium` raise ImportError
        try:
            import pgnotes.envs
        except ImportError as exc:
            assert "pip install" in str(exc), str(exc)
        else:
            raise AssertionError("no ImportError without gymnasium")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_moved_names_still_work_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="pgnotes.rollouts.rollout"):
        assert lqr.rollout is rollouts.rollout
    with pytest.warns(DeprecationWarning, match="pgnotes.envs.make_env"):
        assert lqr.make_env is envs.make_env


def test_module_getattr_rejects_unknown_names() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lqr.Nope  # noqa: B018
