r"""A discounted linear-quadratic control task with a known optimum.

The task is the discounted linear-quadratic regulator (LQR) with Gaussian noise,

.. math::

   s_{t+1} = A s_t + B a_t + w_t, \qquad w_t \sim \mathcal{N}(0, W), \qquad
   s_0 \sim \mathcal{N}(m_0, X_0),

with reward :math:`r_t = -(s_t^\top Q s_t + a_t^\top R a_t)` (a negative cost, so
the return is *maximised*) and return :math:`\sum_{t \ge 0} \gamma^t r_t` for a
discount :math:`0 < \gamma < 1`.

It is the policy-gradient test bed of choice because everything is known in
closed form:

- the optimal policy :math:`a = -K^\star s` and the optimal expected return
  :math:`J^\star` from the discounted Riccati equation (:func:`solve_riccati`,
  :func:`optimal_gain`, :func:`optimal_return`);
- the exact expected return of *any* linear-Gaussian policy
  :math:`a = -K s + \eta`, :math:`\eta \sim \mathcal{N}(0, S)`, from a discounted
  Lyapunov equation (:func:`expected_return`), differentiable in :math:`K` and
  :math:`S`, so an estimated gradient can be compared with the exact one;
- the return that exploration noise costs, :math:`J(K, 0) - J(K, S)`
  (:func:`exploration_cost`).

Sign convention: a linear policy is written :math:`\mu(s) = -K s` with *gain*
:math:`K` of shape ``(k, n)`` (action dimension :math:`k`, state dimension
:math:`n`), the usual convention of control texts.

The infinite discounted horizon gives the clean closed forms; Monte Carlo
rollouts must stop at a finite horizon :math:`H`, which drops the tail
:math:`\sum_{t \ge H} \gamma^t r_t`. :meth:`LQRTask.effective_horizon` picks an
:math:`H` with :math:`\gamma^H` below a tolerance, and
``expected_return(..., horizon=H)`` gives the exact *truncated* value, so a
Monte Carlo check never has to argue about the truncation bias.

Tensors of the task are float64; the closed forms are computed in float64.
Sampling lives elsewhere: batched Monte Carlo rollouts in :mod:`pgnotes.rollouts`,
a ``gymnasium`` environment in :mod:`pgnotes.envs`.

The module is longer than most because the derivation of each closed form is
in its docstring; it holds one concept, the task and its exact solution.

References:
    Bertsekas, D. P. (2017). Dynamic Programming and Optimal Control, vol. I,
    4th ed., section 3.2 (linear systems and quadratic cost). Athena Scientific.

    Fazel, M., Ge, R., Kakade, S. M. and Mesbahi, M. (2018). Global convergence
    of policy gradient methods for the linear quadratic regulator. ICML.

    Petersen, K. B. and Pedersen, M. S. (2012). The Matrix Cookbook, section 10.2
    (Kronecker products and the vec operator).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from pgnotes._validation import (
    as_float_tensor,
    broadcast_shapes,
    check_bool,
    check_count,
    check_covariance,
    check_discount,
    check_finite,
    check_real,
)

__all__ = [
    "LQRTask",
    "task_1d",
    "task_2d",
    "closed_loop",
    "discounted_spectral_radius",
    "solve_discounted_lyapunov",
    "quadratic_value",
    "expected_return",
    "exploration_cost",
    "solve_riccati",
    "optimal_gain",
    "optimal_return",
]


# --------------------------------------------------------------------------- #
# The task
# --------------------------------------------------------------------------- #


_FLOAT64_CPU = torch.empty(0, dtype=torch.float64)


def _symmetric_part_checked(name: str, matrix: torch.Tensor, *, definite: bool) -> torch.Tensor:
    """Check that ``matrix`` is symmetric positive (semi)definite and return its symmetric part.

    The rule of every covariance in pgnotes (:func:`pgnotes._validation.check_covariance`).
    """
    return check_covariance(name, matrix, definite=definite)


def _check_task(task: Any) -> LQRTask:
    """The task, or ``TypeError``: the one check of a task argument, shared by the modules built on the task."""
    if not isinstance(task, LQRTask):
        raise TypeError(f"task must be an LQRTask (e.g. pgnotes.lqr.task_1d()), got {type(task).__name__}")
    return task


def _as_matrix(name: str, value: Any) -> torch.Tensor:
    """A float64 CPU matrix from a tensor, an array, a nested list or a number."""
    # Numbers and lists go straight to float64 (through float32 they would lose
    # eight digits before the closed forms even start).
    tensor = as_float_tensor(name, value, like=_FLOAT64_CPU).detach().to(dtype=torch.float64, device="cpu")
    if tensor.dim() == 0:
        tensor = tensor.reshape(1, 1)
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be a matrix (or a number for a 1-D task), got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} must not be empty: a task has at least one state and one action, got shape {tuple(tensor.shape)}")
    check_finite(name, tensor)
    return tensor


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """A square root ``C`` with ``C C^T = matrix`` for a positive semidefinite matrix.

    An eigendecomposition rather than a Cholesky factorisation, so that a
    singular covariance (for instance a fixed initial state, ``X0 = 0``) is fine.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return eigenvectors * eigenvalues.clamp_min(0.0).sqrt()


@dataclass(frozen=True, eq=False)
class LQRTask:
    r"""A discounted linear-quadratic task :math:`(A, B, Q, R, W, X_0, \gamma)`.

    Dynamics :math:`s' = A s + B a + w`, :math:`w \sim \mathcal{N}(0, W)`;
    reward :math:`r = -(s^\top Q s + a^\top R a)`; initial state
    :math:`s_0 \sim \mathcal{N}(m_0, X_0)`; discount :math:`\gamma`.

    Numbers are accepted for a 1-D task (``LQRTask(A=1.0, B=1.0, ...)``); every
    matrix is stored as a float64 tensor.

    Args:
        A: state matrix, shape ``(n, n)``.
        B: input matrix, shape ``(n, k)``.
        Q: state cost, ``(n, n)``, symmetric positive semidefinite.
        R: action cost, ``(k, k)``, symmetric positive definite.
        W: covariance of the process noise, ``(n, n)``, positive semidefinite.
        X0: covariance of the initial state, ``(n, n)``, positive semidefinite
            (zero for a fixed initial state).
        gamma: discount factor, :math:`0 < \gamma < 1`.
        x0_mean: mean :math:`m_0` of the initial state, shape ``(n,)``; zero if omitted.

    Raises:
        ValueError: if a shape does not fit, a cost or covariance matrix is not
            symmetric positive (semi)definite, or ``gamma`` is outside ``(0, 1)``.
    """

    A: torch.Tensor
    B: torch.Tensor
    Q: torch.Tensor
    R: torch.Tensor
    W: torch.Tensor
    X0: torch.Tensor
    gamma: float
    x0_mean: torch.Tensor | None = field(default=None)

    def __post_init__(self) -> None:
        A = _as_matrix("A", self.A)
        B = _as_matrix("B", self.B)
        n, k = B.shape
        if A.shape != (n, n):
            raise ValueError(f"A must be square with as many rows as B ({n}), got shape {tuple(A.shape)}")
        for name, size in (("Q", n), ("R", k), ("W", n), ("X0", n)):
            matrix = _as_matrix(name, getattr(self, name))
            if matrix.shape != (size, size):
                raise ValueError(
                    f"{name} must have shape ({size}, {size}) for a task with state dimension {n} "
                    f"and action dimension {k}, got {tuple(matrix.shape)}"
                )
            object.__setattr__(self, name, _symmetric_part_checked(name, matrix, definite=name == "R"))
        gamma = check_real("gamma", self.gamma)
        if gamma == 1.0:
            raise ValueError(
                "gamma must satisfy 0 < gamma < 1 for a discounted task, got 1: without discounting the "
                "return of every policy is -inf (the noise W and any exploration add a cost at every step "
                "forever), so there is no value, gradient or optimum to compute; use gamma < 1"
            )
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must satisfy 0 < gamma < 1 for a discounted task, got {gamma}")
        if self.x0_mean is None:
            x0_mean = torch.zeros(n, dtype=torch.float64)
        else:
            x0_mean = as_float_tensor("x0_mean", self.x0_mean, like=_FLOAT64_CPU).detach().to(torch.float64).reshape(-1)
            if x0_mean.shape != (n,):
                raise ValueError(f"x0_mean must have shape ({n},), got {tuple(x0_mean.shape)}")
            check_finite("x0_mean", x0_mean)
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "B", B)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "x0_mean", x0_mean)

    @property
    def state_dim(self) -> int:
        """State dimension :math:`n`."""
        return int(self.A.shape[0])

    @property
    def action_dim(self) -> int:
        """Action dimension :math:`k`."""
        return int(self.B.shape[1])

    def effective_horizon(self, tol: float = 1e-3) -> int:
        r"""Smallest horizon :math:`H` with :math:`\gamma^H \le` ``tol``.

        For a stable closed loop started near its stationary regime, the dropped
        tail :math:`\sum_{t \ge H} \gamma^t r_t` is then about a fraction ``tol``
        of the return.
        """
        tol = check_real("tol", tol, low=0.0, high=1.0, low_open=True, high_open=True)
        return max(1, math.ceil(math.log(tol) / math.log(self.gamma)))


def task_1d(
    a: float = 1.0,
    b: float = 1.0,
    q: float = 1.0,
    r: float = 1.0,
    w: float = 0.1,
    x0_var: float = 1.0,
    gamma: float = 0.9,
) -> LQRTask:
    r"""A scalar task :math:`s' = a s + b u + w` with cost :math:`q s^2 + r u^2`.

    The defaults describe a random walk (:math:`a = 1`, marginally stable, so
    the zero policy has a finite but poor return) that a proportional
    controller tames: :math:`K^\star \approx 0.588`, :math:`J^\star \approx -3.02`,
    against :math:`J = -19` for :math:`K = 0`.
    """
    a, b, q, w, x0_var = (check_real(name, value) for name, value in (("a", a), ("b", b), ("q", q), ("w", w), ("x0_var", x0_var)))
    for name, value in (("q", q), ("w", w), ("x0_var", x0_var)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (a cost weight or a variance), got {value:g}")
    r = check_real("r", r, low=0.0, low_open=True)
    return LQRTask(A=a, B=b, Q=q, R=r, W=w, X0=x0_var, gamma=gamma)


def task_2d(gamma: float = 0.9, noise: float = 0.05) -> LQRTask:
    r"""A coupled two-state, two-action task with a lightly damped oscillation.

    .. math::

       A = \begin{pmatrix} 1 & 0.2 \\ -0.1 & 0.9 \end{pmatrix}, \quad
       B = Q = R = X_0 = I_2, \quad W = \texttt{noise} \cdot I_2 .

    The eigenvalues of :math:`A` are :math:`0.95 \pm 0.13 i` (modulus 0.96), so
    the zero policy has a finite return (:math:`J \approx -19.9`) while the
    optimal gain, which is not diagonal because of the coupling, reaches
    :math:`J^\star \approx -4.47`. The return is well conditioned in :math:`K`
    (its Hessian has condition number about 1.1), which makes it a good first
    test of a policy-gradient method: every failure is the estimator's, not the
    landscape's.
    """
    noise = check_real("noise", noise, low=0.0)
    eye = torch.eye(2, dtype=torch.float64)
    A = torch.tensor([[1.0, 0.2], [-0.1, 0.9]], dtype=torch.float64)
    return LQRTask(A=A, B=eye, Q=eye, R=eye, W=noise * eye, X0=eye, gamma=gamma)


# --------------------------------------------------------------------------- #
# Exact returns of linear-Gaussian policies
# --------------------------------------------------------------------------- #


def _gain_tensor(task: LQRTask, gain: Any, name: str = "gain") -> torch.Tensor:
    """The gain as a finite float64 tensor of shape ``(..., k, n)``, keeping autograd."""
    _check_task(task)
    K = as_float_tensor(name, gain, like=task.A)
    K = K.to(torch.float64)
    if K.dim() == 0 and task.state_dim == task.action_dim == 1:
        K = K.reshape(1, 1)
    if K.dim() < 2 or K.shape[-2:] != (task.action_dim, task.state_dim):
        raise ValueError(
            f"{name} must have shape (..., {task.action_dim}, {task.state_dim}) = "
            f"(..., action_dim, state_dim) for this task, got {tuple(K.shape)}"
        )
    check_finite(name, K.detach())
    return K


def _noise_tensor(task: LQRTask, noise_cov: Any, like: torch.Tensor) -> torch.Tensor:
    """The exploration covariance :math:`S` as float64 ``(..., k, k)``; zero if None."""
    k = task.action_dim
    if noise_cov is None:
        return torch.zeros(k, k, dtype=torch.float64, device=like.device)
    S = as_float_tensor("noise_cov", noise_cov, like=like).to(torch.float64)
    if S.dim() == 0 and k == 1:
        S = S.reshape(1, 1)
    if S.dim() < 2 or S.shape[-2:] != (k, k):
        raise ValueError(
            f"noise_cov must have shape (..., {k}, {k}) = (..., action_dim, action_dim), "
            f"got {tuple(S.shape)}"
        )
    # A covariance: symmetric positive semidefinite (a negative variance would "beat" the
    # deterministic policy). The checks read a detached copy; S keeps its autograd graph.
    check_covariance("noise_cov", S.detach(), definite=False)
    broadcast_shapes(**{"batch shape of gain": like.shape[:-2], "batch shape of noise_cov": S.shape[:-2]})
    return S


def closed_loop(task: LQRTask, gain: Any) -> torch.Tensor:
    r"""The closed-loop state matrix :math:`F = A - B K` of the policy :math:`a = -K s`.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(..., k, n)``.

    Returns:
        :math:`F`, shape ``(..., n, n)``, float64.
    """
    K = _gain_tensor(task, gain)
    A, B = task.A.to(K.device), task.B.to(K.device)
    return A - B @ K


def discounted_spectral_radius(task: LQRTask, gain: Any) -> torch.Tensor:
    r"""The spectral radius :math:`\sqrt{\gamma}\, \rho(A - B K)` (no gradient).

    The discounted return of :math:`a = -K s + \eta` is finite exactly when this
    is below 1: the second moments of the state then grow slower than
    :math:`\gamma^{-t}`.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(..., k, n)``.

    Returns:
        The radius, shape ``(...)``, float64.
    """
    F = closed_loop(task, gain).detach()
    return math.sqrt(task.gamma) * torch.linalg.eigvals(F).abs().amax(dim=-1)


def solve_discounted_lyapunov(F: torch.Tensor, M: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""Solve the discounted Lyapunov equation :math:`P = M + \gamma F^\top P F`.

    With the row-major :math:`\operatorname{vec}`,
    :math:`\operatorname{vec}(F^\top P F) = (F^\top \otimes F^\top)\operatorname{vec}(P)`
    (Matrix Cookbook, eq. 520), so

    .. math::

       \bigl(I_{n^2} - \gamma\, F^\top \otimes F^\top\bigr) \operatorname{vec}(P)
       = \operatorname{vec}(M),

    a dense :math:`n^2 \times n^2` linear system: fine for the small state
    dimensions of a teaching task, exact to rounding, batched, and
    differentiable through ``torch.linalg.solve``. The solution is the series
    :math:`P = \sum_{t \ge 0} \gamma^t (F^\top)^t M F^t`, which converges when
    :math:`\sqrt{\gamma}\, \rho(F) < 1`; the caller checks that.

    Args:
        F: closed-loop matrix, shape ``(..., n, n)``.
        M: right-hand side, shape ``(..., n, n)``.
        gamma: discount factor.

    Returns:
        :math:`P`, shape ``(..., n, n)``, symmetrised when ``M`` is symmetric.
    """
    F = as_float_tensor("F", F)
    M = as_float_tensor("M", M, like=F)
    dtype = torch.promote_types(F.dtype, M.dtype)
    F, M = F.to(dtype), M.to(dtype)
    for name, matrix in (("F", F), ("M", M)):
        if matrix.dim() < 2 or matrix.shape[-1] != matrix.shape[-2]:
            raise ValueError(f"{name} must be a square matrix of shape (..., n, n), got shape {tuple(matrix.shape)}")
        check_finite(name, matrix.detach())
    if F.shape[-1] != M.shape[-1]:
        raise ValueError(f"F and M must have the same size n, got F {tuple(F.shape)} and M {tuple(M.shape)}")
    gamma = check_discount("gamma", gamma, allow_one=True)
    n = F.shape[-1]
    batch = broadcast_shapes(**{"batch shape of F": F.shape[:-2], "batch shape of M": M.shape[:-2]})
    F = F.expand(*batch, n, n)
    M = M.expand(*batch, n, n)
    # kron(F^T, F^T)[i*n + j, p*n + q] = F[p, i] F[q, j], batched through einsum.
    kron = torch.einsum("...pi,...qj->...ijpq", F, F).reshape(*batch, n * n, n * n)
    eye = torch.eye(n * n, dtype=F.dtype, device=F.device)
    vec_p, info = torch.linalg.solve_ex(eye - gamma * kron, M.reshape(*batch, n * n, 1))
    if bool((info != 0).any()):
        raise ValueError(
            "the discounted Lyapunov equation P = M + gamma F^T P F has no unique solution for this F "
            "(gamma * lambda_i * lambda_j = 1 for two eigenvalues of F); it has the convergent series "
            "solution only when sqrt(gamma) * spectral_radius(F) < 1"
        )
    P = vec_p.reshape(*batch, n, n)
    # Rounding leaves P asymmetric at the 1e-16 level; symmetrising keeps
    # downstream eigen-checks and quadratic forms clean.
    return 0.5 * (P + P.mT)


def quadratic_value(
    task: LQRTask, gain: Any, noise_cov: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The value function :math:`V(s) = -(s^\top P s + c)` of :math:`a = -K s + \eta`.

    For :math:`\eta \sim \mathcal{N}(0, S)` independent of everything else, the
    expected discounted cost-to-go :math:`C(s) = -V(s)` satisfies the Bellman
    equation :math:`C(s) = \mathbb{E}[s^\top Q s + a^\top R a + \gamma C(s')]`.
    With :math:`F = A - BK` and :math:`s' = F s + B\eta + w`,

    .. math::

       \mathbb{E}[a^\top R a] = s^\top K^\top R K s + \operatorname{tr}(R S), \qquad
       \mathbb{E}[s'^\top P s'] = s^\top F^\top P F s
       + \operatorname{tr}\bigl(P (B S B^\top + W)\bigr),

    because the cross terms have zero mean. Matching the quadratic and the
    constant parts of the ansatz :math:`C(s) = s^\top P s + c` gives

    .. math::

       P = Q + K^\top R K + \gamma F^\top P F, \qquad
       c = \frac{\operatorname{tr}(R S)
       + \gamma \operatorname{tr}\bigl(P (B S B^\top + W)\bigr)}{1 - \gamma} .

    :math:`P` is the discounted Lyapunov solution
    (:func:`solve_discounted_lyapunov`), finite when
    :math:`\sqrt{\gamma}\,\rho(F) < 1`.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(..., k, n)``.
        noise_cov: :math:`S`, shape ``(..., k, k)``; zero (deterministic policy) if None.

    Returns:
        ``(P, c)`` with shapes ``(..., n, n)`` and ``(...)``, float64,
        differentiable in ``gain`` and ``noise_cov``.

    Raises:
        ValueError: if :math:`\sqrt{\gamma}\, \rho(A - BK) \ge 1`: the return is
            then infinite.

    References:
        Book: equation :eq:`reinforce-lqr-exact-J` of :doc:`/book/reinforce_lqr`.
    """
    K = _gain_tensor(task, gain)
    S = _noise_tensor(task, noise_cov, K)
    _raise_if_unstable(task, K)
    return _quadratic_value_unchecked(task, K, S)


def _quadratic_value_unchecked(
    task: LQRTask, K: torch.Tensor, S: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    device = K.device
    A, B, Q, R, W = (m.to(device) for m in (task.A, task.B, task.Q, task.R, task.W))
    F = A - B @ K
    P = solve_discounted_lyapunov(F, Q + K.mT @ R @ K, task.gamma)
    noise_in_state = B @ S @ B.mT + W
    trace_rs = torch.einsum("...ij,...ji->...", R, S)
    trace_p_noise = torch.einsum("...ij,...ji->...", P, noise_in_state)
    c = (trace_rs + task.gamma * trace_p_noise) / (1.0 - task.gamma)
    return P, c


def _raise_if_unstable(task: LQRTask, K: torch.Tensor) -> None:
    radius = discounted_spectral_radius(task, K)
    if bool((radius >= 1.0).any()):
        worst = float(radius.max())
        raise ValueError(
            "the closed loop A - B K is unstable for the discount: "
            f"sqrt(gamma) * spectral_radius(A - B K) = {worst:.4g} >= 1, so the expected "
            "discounted return is infinite (-inf); no finite return exists for this gain"
        )


def expected_return(
    task: LQRTask,
    gain: Any,
    noise_cov: Any = None,
    *,
    horizon: int | None = None,
    allow_unstable: bool = False,
) -> torch.Tensor:
    r"""Exact expected discounted return of the policy :math:`a = -K s + \eta`, :math:`\eta \sim \mathcal{N}(0, S)`.

    Infinite horizon (``horizon=None``): with :math:`(P, c)` from
    :func:`quadratic_value`,

    .. math::

       J(K, S) = \mathbb{E}_{s_0}[V(s_0)]
       = -\operatorname{tr}\bigl(P (X_0 + m_0 m_0^\top)\bigr) - c .

    Finite horizon :math:`H`: the truncated return
    :math:`\mathbb{E}[\sum_{t=0}^{H-1} \gamma^t r_t]`, from the second moments
    :math:`M_t = \mathbb{E}[s_t s_t^\top]`, which obey
    :math:`M_0 = X_0 + m_0 m_0^\top` and
    :math:`M_{t+1} = F M_t F^\top + B S B^\top + W`:

    .. math::

       J_H(K, S) = -\sum_{t=0}^{H-1} \gamma^t
       \bigl[\operatorname{tr}\bigl((Q + K^\top R K) M_t\bigr)
       + \operatorname{tr}(R S)\bigr] .

    This is what the Monte Carlo average of ``rollout(..., horizon=H)``
    estimates, without any truncation bias. It exists for every gain.

    The noise-free policy (:math:`S = 0`) has the highest return among
    policies with the same :math:`K`: exploration noise only adds cost.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(..., k, n)``; a batch of gains gives a batch of returns.
        noise_cov: :math:`S`, shape ``(..., k, k)``; zero if None.
        horizon: None for the infinite discounted horizon, else the number of steps.
        allow_unstable: infinite horizon only: return :math:`-\infty` for gains with
            :math:`\sqrt{\gamma}\, \rho(A - BK) \ge 1` instead of raising (handy to
            plot :math:`J` over a grid of gains).

    Returns:
        :math:`J`, shape ``(...)``, float64, differentiable in ``gain`` and ``noise_cov``.

    Raises:
        ValueError: if the closed loop is unstable for the discount (infinite horizon,
            unless ``allow_unstable``), or a shape does not fit.

    References:
        Book: equation :eq:`reinforce-lqr-exact-J` of :doc:`/book/reinforce_lqr`.
    """
    K = _gain_tensor(task, gain)
    S = _noise_tensor(task, noise_cov, K)
    allow_unstable = check_bool("allow_unstable", allow_unstable)
    if horizon is not None:
        horizon = check_count("horizon", horizon)
    device = K.device
    m0 = task.x0_mean.to(device)
    second_moment_0 = task.X0.to(device) + torch.outer(m0, m0)
    if horizon is not None:
        return _truncated_return(task, K, S, second_moment_0, horizon)
    if not allow_unstable:
        _raise_if_unstable(task, K)
        P, c = _quadratic_value_unchecked(task, K, S)
        return -torch.einsum("...ij,ji->...", P, second_moment_0) - c
    stable = discounted_spectral_radius(task, K) < 1.0
    if not bool(stable.any()):
        shape = torch.broadcast_shapes(K.shape[:-2], S.shape[:-2])
        return torch.full(shape, -math.inf, dtype=K.dtype, device=device)
    # Unstable gains are swapped for a stable gain of the same batch before the
    # linear solve, which would otherwise be (near) singular and could put NaN
    # into the gradients of the stable entries; their returns are then -inf.
    stable_gain = K.detach().reshape(-1, *K.shape[-2:])[int(torch.nonzero(stable.reshape(-1))[0])]
    safe_K = torch.where(stable[..., None, None], K, stable_gain)
    P, c = _quadratic_value_unchecked(task, safe_K, S)
    J = -torch.einsum("...ij,ji->...", P, second_moment_0) - c
    return torch.where(stable, J, torch.full_like(J, -math.inf))


def exploration_cost(task: LQRTask, gain: Any, noise_cov: Any) -> torch.Tensor:
    r"""The return lost to exploration noise, :math:`J(K, 0) - J(K, S) \ge 0`.

    Only the constant :math:`c` of :func:`quadratic_value` depends on
    :math:`S`, and it is linear in :math:`S`; the difference of the two
    constants is

    .. math::

       J(K, 0) - J(K, S) = \frac{\operatorname{tr}(R S)
       + \gamma \operatorname{tr}(B^\top P B S)}{1 - \gamma},
       \qquad P = Q + K^\top R K + \gamma F^\top P F, \quad F = A - B K .

    It is nonnegative (a trace of a product of positive semidefinite
    matrices), zero only for :math:`S = 0`, and for a fixed :math:`S` it is
    the permanent gap to :math:`J^\star` of a policy whose gain has converged
    to :math:`K^\star`. Computed directly from this formula rather than as a
    difference of two returns, which would cancel digits when the cost is
    small.

    Args:
        task: the task.
        gain: :math:`K`, shape ``(..., k, n)``.
        noise_cov: :math:`S`, shape ``(..., k, k)``.

    Returns:
        The cost, shape ``(...)``, float64, differentiable in ``gain`` and ``noise_cov``.

    Raises:
        ValueError: if :math:`\sqrt{\gamma}\, \rho(A - BK) \ge 1` (both returns
            are then infinite).

    References:
        Book: equation :eq:`reinforce-lqr-exploration-cost-formula` of :doc:`/book/reinforce_lqr`.
    """
    K = _gain_tensor(task, gain)
    S = _noise_tensor(task, noise_cov, K)
    _raise_if_unstable(task, K)
    P, _ = _quadratic_value_unchecked(task, K, torch.zeros_like(S))
    B, R = task.B.to(K.device), task.R.to(K.device)
    trace_rs = torch.einsum("...ij,...ji->...", R, S)
    trace_bpbs = torch.einsum("...ij,...ji->...", B.mT @ P @ B, S)
    return (trace_rs + task.gamma * trace_bpbs) / (1.0 - task.gamma)


def _truncated_return(
    task: LQRTask, K: torch.Tensor, S: torch.Tensor, second_moment_0: torch.Tensor, horizon: int
) -> torch.Tensor:
    if horizon < 1:
        raise ValueError(f"horizon must be a positive number of steps, got {horizon}")
    device = K.device
    A, B, Q, R, W = (m.to(device) for m in (task.A, task.B, task.Q, task.R, task.W))
    F = A - B @ K
    step_cost_matrix = Q + K.mT @ R @ K
    trace_rs = torch.einsum("...ij,...ji->...", R, S)
    injected = B @ S @ B.mT + W
    M = second_moment_0
    total = torch.zeros(torch.broadcast_shapes(K.shape[:-2], S.shape[:-2]), dtype=K.dtype, device=device)
    discount = 1.0
    for _ in range(horizon):
        total = total + discount * (torch.einsum("...ij,...ji->...", step_cost_matrix, M) + trace_rs)
        M = F @ M @ F.mT + injected
        discount *= task.gamma
    return -total


# --------------------------------------------------------------------------- #
# The optimum
# --------------------------------------------------------------------------- #


def solve_riccati(
    task: LQRTask, *, tol: float = 1e-12, max_iterations: int = 10_000
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Optimal gain :math:`K^\star` and cost matrix :math:`P^\star` from the discounted Riccati equation.

    Value iteration on the quadratic cost-to-go :math:`s^\top P s`, started at
    :math:`P_0 = Q` (Bertsekas 2017, section 3.2, with the discount absorbed in
    :math:`\sqrt{\gamma} A`, :math:`\sqrt{\gamma} B`):

    .. math::

       K_i = \gamma (R + \gamma B^\top P_i B)^{-1} B^\top P_i A, \qquad
       P_{i+1} = Q + \gamma A^\top P_i A - \gamma A^\top P_i B K_i ,

    iterated in float64 until
    :math:`\max|P_{i+1} - P_i| \le \mathrm{tol} \cdot \max|P_{i+1}|`. The
    noise covariances do not enter: additive noise changes the optimal cost
    only by a constant, not the optimal gain (certainty equivalence).

    Args:
        task: the task.
        tol: relative tolerance on the change of :math:`P`.
        max_iterations: iteration cap.

    Returns:
        ``(K_star, P_star)``, shapes ``(k, n)`` and ``(n, n)``.

    Raises:
        ValueError: if the iteration diverges (no gain stabilises
            :math:`(\sqrt{\gamma} A, \sqrt{\gamma} B)`, so no finite optimum
            exists), does not converge within ``max_iterations``, or ends at a
            gain whose discounted closed loop is unstable.
    """
    _check_task(task)
    tol = check_real("tol", tol, low=0.0, low_open=True)
    max_iterations = check_count("max_iterations", max_iterations)
    A, B, Q, R, gamma = task.A, task.B, task.Q, task.R, task.gamma
    P = Q.clone()
    # Once P exceeds this, the growth is geometric and cannot come back: an
    # unstabilisable mode is being accumulated. 1e12 relative to the data is far
    # beyond any converged solution of a reasonably scaled task.
    blow_up = 1e12 * max(1.0, float(Q.abs().max()), float(R.abs().max()))
    change = math.inf
    for _ in range(max_iterations):
        K = gamma * torch.linalg.solve(R + gamma * B.mT @ P @ B, B.mT @ P @ A)
        P_next = Q + gamma * A.mT @ P @ A - gamma * A.mT @ P @ B @ K
        P_next = 0.5 * (P_next + P_next.mT)
        size = float(P_next.abs().max())
        if not math.isfinite(size) or size > blow_up:
            raise ValueError(
                "no finite optimum exists: the Riccati iteration diverged (max |P| = "
                f"{size:.3g}), so no linear policy stabilises the discounted system "
                "(sqrt(gamma) A, sqrt(gamma) B); check that B reaches the unstable modes of A"
            )
        change = float((P_next - P).abs().max())
        P = P_next
        if change <= tol * max(size, 1e-300):
            break
    else:
        raise ValueError(
            f"the Riccati iteration did not converge in {max_iterations} iterations "
            f"(last change {change:.3g}); increase max_iterations or loosen tol"
        )
    K = gamma * torch.linalg.solve(R + gamma * B.mT @ P @ B, B.mT @ P @ A)
    radius = float(discounted_spectral_radius(task, K))
    if radius >= 1.0:
        raise ValueError(
            "no finite optimum exists: the Riccati solution leaves the closed loop unstable "
            f"(sqrt(gamma) * spectral_radius(A - B K) = {radius:.4g}), because Q does not "
            "penalise an unstable mode of A"
        )
    return K, P


def optimal_gain(task: LQRTask) -> torch.Tensor:
    r"""The optimal gain :math:`K^\star` (policy :math:`a = -K^\star s`), shape ``(k, n)``.

    Among the policies :math:`a = -K s + \eta`, the optimum is deterministic:
    exploration noise only adds the cost term of :func:`quadratic_value`.
    See :func:`solve_riccati`.
    """
    return solve_riccati(task)[0]


def optimal_return(task: LQRTask) -> torch.Tensor:
    r"""The optimal expected return :math:`J^\star = J(K^\star, 0)`, a float64 scalar.

    Equal to :math:`-\operatorname{tr}(P^\star (X_0 + m_0 m_0^\top))
    - \gamma \operatorname{tr}(P^\star W) / (1 - \gamma)` with :math:`P^\star`
    from :func:`solve_riccati`.
    """
    return expected_return(task, optimal_gain(task))


# Names that moved to :mod:`pgnotes.rollouts` and :mod:`pgnotes.envs`: still
# importable from here for one release, with a DeprecationWarning.
_MOVED = {
    "check_policy_matches": "rollouts",
    "Rollout": "rollouts",
    "rollout": "rollouts",
    "make_env": "envs",
    "LQREnv": "envs",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        module = _MOVED[name]
        warnings.warn(f"pgnotes.lqr.{name} has moved to pgnotes.{module}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(f"pgnotes.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
