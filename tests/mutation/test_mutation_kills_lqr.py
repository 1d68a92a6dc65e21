"""pgnotes.lqr: the Riccati solution, horizons and truncated returns against independent NumPy computations (`make mutation`)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from pgnotes import lqr
from pgnotes.lqr import LQRTask, expected_return, solve_riccati

F64 = torch.float64

# A 2-state, 2-input task whose B is neither the identity nor a multiple of it, with an unstable A.
A_MAT = np.array([[1.05, 0.3], [-0.2, 0.9]])
B_MAT = np.array([[0.5, 0.0], [0.25, 2.0]])
Q_MAT = np.array([[1.0, 0.2], [0.2, 0.5]])
R_MAT = np.array([[0.3, 0.05], [0.05, 0.8]])
W_MAT = 0.01 * np.eye(2)
X0_MAT = np.array([[1.0, 0.1], [0.1, 0.5]])
GAMMA = 0.95


def _task(scale: float = 1.0) -> LQRTask:
    t = lambda m: torch.tensor(m, dtype=F64)  # noqa: E731
    return LQRTask(A=t(A_MAT), B=t(B_MAT), Q=t(scale * Q_MAT), R=t(scale * R_MAT), W=t(W_MAT), X0=t(X0_MAT), gamma=GAMMA)


def _numpy_cost_matrix(K: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """P_K of a = -K s, from P = Q + K^T R K + gamma F^T P F solved as one linear system (Kronecker form)."""
    F = A_MAT - B_MAT @ K
    n = F.shape[0]
    rhs = scale * (Q_MAT + K.T @ R_MAT @ K)
    vec_P = np.linalg.solve(np.eye(n * n) - GAMMA * np.kron(F.T, F.T), rhs.reshape(-1))
    return vec_P.reshape(n, n)


def test_riccati_solution_satisfies_the_textbook_equations_with_a_general_input_matrix() -> None:
    K, P = (x.numpy() for x in solve_riccati(_task()))
    # The discounted algebraic Riccati equation and the greedy gain, written out in NumPy.
    gain_system = R_MAT + GAMMA * B_MAT.T @ P @ B_MAT
    K_expected = GAMMA * np.linalg.solve(gain_system, B_MAT.T @ P @ A_MAT)
    riccati = Q_MAT + GAMMA * A_MAT.T @ P @ A_MAT - GAMMA**2 * A_MAT.T @ P @ B_MAT @ np.linalg.solve(gain_system, B_MAT.T @ P @ A_MAT)
    np.testing.assert_allclose(K, K_expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(P, riccati, rtol=1e-9, atol=1e-12)
    # P is the cost of following K for ever, and no nearby gain does better (trace against X0).
    np.testing.assert_allclose(P, _numpy_cost_matrix(K), rtol=1e-9, atol=1e-12)
    best = np.trace(_numpy_cost_matrix(K) @ X0_MAT)
    g = np.random.default_rng(3)
    for _ in range(5):
        nudged = K + 1e-3 * g.standard_normal(K.shape)
        assert np.trace(_numpy_cost_matrix(nudged) @ X0_MAT) > best


def test_scaling_both_costs_scales_the_value_and_keeps_the_gain() -> None:
    """Q, R -> c Q, c R multiplies every policy's cost by c, so K* is unchanged and P* scales by c, for any c > 0."""
    K1, P1 = solve_riccati(_task())
    for scale in (1e-8, 1e6):
        K, P = solve_riccati(_task(scale))
        torch.testing.assert_close(K, K1, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(P, scale * P1, rtol=1e-8, atol=0.0)


@pytest.mark.parametrize(("gamma", "tol", "expected"), [(0.5, 0.6, 1), (0.5, 0.5, 1), (0.5, 0.25, 2), (0.9, 1e-3, 66)])
def test_effective_horizon_is_the_smallest_horizon_with_gamma_power_below_tol(gamma: float, tol: float, expected: int) -> None:
    task = LQRTask(A=0.5, B=1.0, Q=1.0, R=1.0, W=0.0, X0=1.0, gamma=gamma)
    horizon = task.effective_horizon(tol)
    assert gamma**horizon <= tol
    assert horizon == 1 or gamma ** (horizon - 1) > tol
    # The brute-force smallest H >= 1.
    assert horizon == next(h for h in range(1, 10_000) if gamma**h <= tol) == expected


@pytest.mark.parametrize("tol", [0.0, 1.0, -0.5, 2.0])
def test_effective_horizon_refuses_a_tolerance_outside_the_open_unit_interval(tol: float) -> None:
    task = LQRTask(A=0.5, B=1.0, Q=1.0, R=1.0, W=0.0, X0=1.0, gamma=0.9)
    with pytest.raises(ValueError, match=r"^tol must be a finite number in \(0, 1\)"):
        task.effective_horizon(tol)


def test_one_step_return_is_the_expected_first_cost() -> None:
    """With horizon 1, J = -E[s0^T Q s0 + a0^T R a0] for a0 = -K s0 + eta: -tr((Q + K^T R K) X0) - tr(R S)."""
    task = _task()
    K = np.array([[0.4, 0.1], [-0.2, 0.3]])
    S = np.array([[0.2, 0.05], [0.05, 0.1]])
    expected = -(np.trace((Q_MAT + K.T @ R_MAT @ K) @ X0_MAT) + np.trace(R_MAT @ S))
    got = expected_return(task, torch.tensor(K, dtype=F64), torch.tensor(S, dtype=F64), horizon=1)
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("horizon", [0, -3])
def test_truncated_return_refuses_a_horizon_without_steps(horizon: int) -> None:
    with pytest.raises(ValueError, match=r"^horizon must be a positive integer"):
        expected_return(_task(), torch.zeros(2, 2, dtype=F64), horizon=horizon)


@pytest.mark.parametrize(("name", "home"), [("rollout", "rollouts"), ("make_env", "envs")])
def test_moved_names_warn_and_name_their_new_home(name: str, home: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moved = getattr(lqr, name)
    assert [w.category for w in caught] == [DeprecationWarning]
    assert str(caught[0].message) == f"pgnotes.lqr.{name} has moved to pgnotes.{home}.{name}"
    assert moved is getattr(__import__(f"pgnotes.{home}", fromlist=[name]), name)



def _scalar_return(a, b, q, r, w, x0_var, gamma, gain, noise_var=0.0):
    """J of a = -K s + eta on the scalar task, by hand: P = (q + r K^2) / (1 - gamma F^2), F = a - b K.

    Each step costs E[q s^2 + r a^2] = (q + r K^2) E[s^2] + r S, and the state noise is w + b^2 S:
    J = -P x0_var - gamma P (w + b^2 S) / (1 - gamma) - r S / (1 - gamma).
    """
    F = a - b * gain
    P = (q + r * gain**2) / (1 - gamma * F**2)
    return -P * x0_var - gamma * P * (w + b**2 * noise_var) / (1 - gamma) - r * noise_var / (1 - gamma)


def test_scalar_task_accepts_python_numbers_and_keeps_float64() -> None:
    params = dict(a=1.1, b=0.7, q=0.9, r=0.3, w=0.1, x0_var=1.3, gamma=0.9)
    task = lqr.task_1d(**params)
    for gain, noise in ((0.8, 0.05), ([[0.8]], [[0.05]]), (0.8, None)):
        got = expected_return(task, gain, noise)
        assert got.dtype == F64
        assert float(got) == pytest.approx(_scalar_return(**params, gain=0.8, noise_var=0.05 if noise else 0.0), rel=1e-13)
    # The exploration cost is the difference of the two returns (here small enough to compute as one).
    lost = _scalar_return(**params, gain=0.8) - _scalar_return(**params, gain=0.8, noise_var=0.1)
    got = lqr.exploration_cost(task, 0.8, 0.1)
    assert got.dtype == F64
    assert float(got) == pytest.approx(lost, rel=1e-12)


@pytest.mark.parametrize(("argument", "position"), [("gain", 1), ("noise_cov", 2)])
def test_returns_name_an_argument_that_is_not_a_number(argument: str, position: int) -> None:
    args = [lqr.task_1d(), 0.5, 0.1]
    args[position] = "half"
    with pytest.raises(ValueError, match=rf"^{argument} must be a tensor, an array or a number, got str"):
        expected_return(*args)


def test_all_unstable_gains_have_minus_infinite_return_of_the_batch_shape() -> None:
    task = lqr.task_1d(a=1.0, b=1.0, gamma=0.9)
    # sqrt(gamma) |1 - K| >= 1 for these gains: the discounted closed loop diverges.
    unstable = torch.tensor([-1.0, 2.5, 3.0], dtype=F64).reshape(3, 1, 1, 1)
    noise = torch.tensor([0.0, 0.2], dtype=F64).reshape(2, 1, 1)
    got = expected_return(task, unstable, noise, allow_unstable=True)
    assert got.shape == (3, 2)
    assert got.dtype == F64
    assert bool(torch.all(got == -math.inf))


def test_mixed_batch_of_gains_marks_only_the_unstable_ones() -> None:
    params = dict(a=1.0, b=1.0, q=1.0, r=1.0, w=0.1, x0_var=1.0, gamma=0.9)
    task = lqr.task_1d(**params)
    gains = torch.tensor([3.0, 0.5, -1.0, 0.9], dtype=F64).reshape(4, 1, 1)
    got = expected_return(task, gains, allow_unstable=True)
    assert got[0] == -math.inf and got[2] == -math.inf
    for index, gain in ((1, 0.5), (3, 0.9)):
        assert float(got[index]) == pytest.approx(_scalar_return(**params, gain=gain), rel=1e-12)


def test_discounted_lyapunov_with_a_batch_of_right_hand_sides_for_one_matrix() -> None:
    F = torch.tensor([[0.9, 0.3], [-0.2, 0.7]], dtype=F64)
    M = torch.stack([torch.eye(2, dtype=F64), torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)])
    P = lqr.solve_discounted_lyapunov(F, M, 0.8)
    assert P.shape == (2, 2, 2)
    for index in range(2):
        # The truncated series sum_t gamma^t (F^T)^t M F^t, written out in NumPy.
        series = sum(
            0.8**t * np.linalg.matrix_power(F.numpy().T, t) @ M[index].numpy() @ np.linalg.matrix_power(F.numpy(), t)
            for t in range(400)
        )
        np.testing.assert_allclose(P[index].numpy(), series, rtol=1e-12, atol=1e-12)


def test_task_2d_holds_the_documented_matrices_in_float64() -> None:
    task = lqr.task_2d(gamma=0.9, noise=0.05)
    documented_A = np.array([[1.0, 0.2], [-0.1, 0.9]])  # float64 literals, as in the docstring
    assert task.A.dtype == F64
    np.testing.assert_array_equal(task.A.numpy(), documented_A)
    np.testing.assert_array_equal(task.B.numpy(), np.eye(2))
    np.testing.assert_array_equal(task.W.numpy(), 0.05 * np.eye(2))


def test_initial_mean_from_a_python_list_and_a_tensor_discount_enter_in_float64() -> None:
    """E[s0^2] = x0_var + m0^2 on the scalar task: J = -P (x0_var + m0^2) - gamma P w / (1 - gamma) for a = -K s."""
    gamma = torch.tensor(0.9, dtype=F64)
    task = LQRTask(A=1.0, B=1.0, Q=1.0, R=1.0, W=0.1, X0=0.5, gamma=gamma, x0_mean=[0.3])
    assert type(task.gamma) is float and task.gamma == 0.9
    assert task.x0_mean.dtype == F64 and float(task.x0_mean[0]) == 0.3
    gain = 0.6
    P = (1.0 + gain**2) / (1 - 0.9 * (1.0 - gain) ** 2)
    expected = -P * (0.5 + 0.3**2) - 0.9 * P * 0.1 / (1 - 0.9)
    assert float(expected_return(task, gain)) == pytest.approx(expected, rel=1e-13)
