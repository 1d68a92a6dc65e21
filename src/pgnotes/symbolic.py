r"""The Gaussian score derivations, done symbolically in SymPy.

Each builder returns a :class:`Derivation`: the log-density written with
explicit scalar symbols, its derivatives taken component by component with
``sympy.diff``, and the closed forms the book prints, so that
:meth:`Derivation.verify` can prove them equal and :func:`to_torch` can turn
any of them into a batched PyTorch function to compare with
:mod:`pgnotes.gaussian` and with autograd.

Matrices are always explicit ``k x k`` matrices of scalar symbols, never
``MatrixSymbol``: SymPy's matrix-calculus layer returns a silent zero for
:math:`\partial \log\det\Sigma / \partial \Sigma` (see
:func:`matrixsymbol_logdet_derivative`), whereas component-wise derivatives of
explicit entries are ordinary calculus. The covariance comes in two flavours:
a symmetric matrix whose :math:`k(k+1)/2` free entries are the variables, and a
general matrix of :math:`k^2` independent entries; their gradients differ (see
:func:`covariance_gradient_conventions`).

Symbolic work grows quickly with ``k``: the full-covariance builders are meant
for ``k <= 3``.

The module is longer than most because it holds one derivation per Gaussian
family the book treats, each short, and the one bridge from SymPy to torch.

References:
    Petersen & Pedersen, The Matrix Cookbook, sections 2 and 8. Williams (1992).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import sympy as sp
import torch

__all__ = [
    "Derivation",
    "univariate_log_density",
    "mvn_log_density",
    "univariate_gaussian",
    "diagonal_gaussian",
    "full_covariance_gaussian",
    "cholesky_gaussian",
    "covariance_gradient_conventions",
    "matrixsymbol_logdet_derivative",
    "to_torch",
]

SymbolicValue = Union[sp.Expr, sp.MatrixBase]


def _is_matrix(value: Any) -> bool:
    return isinstance(value, sp.MatrixBase)


def _simplify(value: SymbolicValue) -> SymbolicValue:
    """Simplify an expression or each entry of a matrix.

    Rational functions (everything in the full-covariance and Cholesky
    derivations) are put in lowest terms with ``cancel``, which is exact and
    fast, and their denominator factored (it is a power of a determinant);
    ``simplify`` is kept for expressions with ``exp`` or ``log``. Numerators
    stay expanded: factoring them would take tens of seconds at ``k = 3``.
    """
    if _is_matrix(value):
        return value.applyfunc(_simplify)
    if value.has(sp.exp, sp.log):
        return sp.simplify(value)
    numerator, denominator = sp.fraction(sp.cancel(value))
    return numerator / sp.factor(denominator)


def _is_zero(value: SymbolicValue) -> bool:
    """Exact zero test: ``cancel`` brings a rational function to a canonical form."""
    entries = list(value) if _is_matrix(value) else [value]
    for entry in entries:
        reduced = sp.cancel(entry)
        if reduced != 0 and sp.simplify(reduced) != 0:
            return False
    return True


@dataclass(frozen=True)
class Derivation:
    r"""A Gaussian log-density, its symbols, its derivatives and the closed forms they should equal.

    Attributes:
        name: Short description, e.g. ``"full covariance, k = 2 (symmetric)"``.
        log_density: The log-density as a SymPy expression.
        symbols: The variables by role: ``"a"``, ``"mean"`` and the scale parameter
            (``"std"``, ``"log_std"``, ``"cov"`` or ``"scale_tril"``); a symbol, or a matrix
            of symbols (vectors are ``k x 1`` columns).
        derivatives: For each parameter name, the derivative of ``log_density`` taken
            component by component with ``sympy.diff`` (unsimplified).
        closed_forms: For each parameter name, the formula the book prints, in the same symbols.
    """

    name: str
    log_density: sp.Expr
    symbols: Mapping[str, Any]
    derivatives: Mapping[str, SymbolicValue]
    closed_forms: Mapping[str, SymbolicValue] = field(default_factory=dict)

    @property
    def arguments(self) -> list[Any]:
        """The symbols in call order (``a``, ``mean``, then the scale parameter), for :func:`to_torch`."""
        return list(self.symbols.values())

    @property
    def event_dims(self) -> dict[str, int]:
        """The number of tensor event dimensions of each argument.

        0 for a scalar, 1 for a vector, 2 for ``cov`` and ``scale_tril``.
        """
        return {
            name: 2 if name in ("cov", "scale_tril") else (1 if _is_matrix(value) else 0)
            for name, value in self.symbols.items()
        }

    def residual_substitution(self) -> dict[sp.Symbol, sp.Expr]:
        r"""The substitution :math:`a = d + \mu` that writes an expression with the residual :math:`d`.

        The residual symbols are ``d`` (univariate) or ``d_1, ..., d_k``.
        """
        actions = self.symbols["a"]
        means = self.symbols["mean"]
        if _is_matrix(actions):
            return {
                action: sp.Symbol(f"d_{i + 1}", real=True) + mean
                for i, (action, mean) in enumerate(zip(actions, means))
            }
        return {actions: sp.Symbol("d", real=True) + means}

    def simplified(self, residual: bool = True) -> dict[str, SymbolicValue]:
        r"""The derivatives, simplified (entry by entry for matrices).

        Args:
            residual: Write them with the residual :math:`d = a - \mu` (the book's
                notation; the scores depend on :math:`a` and :math:`\mu` only through it).

        Returns:
            A dict with the keys of ``derivatives``.
        """
        substitution = self.residual_substitution() if residual else {}
        return {name: _simplify(value.subs(substitution)) for name, value in self.derivatives.items()}

    def verify(self) -> dict[str, bool]:
        """Whether each derivative equals its closed form exactly (symbolic difference is zero)."""
        return {
            name: _is_zero(sp.Matrix(self.derivatives[name]) - sp.Matrix(form))
            if _is_matrix(form)
            else _is_zero(self.derivatives[name] - form)
            for name, form in self.closed_forms.items()
        }

    def to_torch(self, which: str | None = None) -> Callable[..., torch.Tensor]:
        """A batched PyTorch function of (``a``, ``mean``, scale parameter) for one expression.

        Args:
            which: A key of ``derivatives`` (the component-wise derivative), or ``None``
                for the log-density.

        Returns:
            See :func:`to_torch`.
        """
        expr = self.log_density if which is None else self.derivatives[which]
        dims = self.event_dims
        return to_torch(
            expr,
            self.arguments,
            event_dims=list(dims.values()),
            output_event_dims=0 if which is None else dims[which],
        )


def univariate_log_density(a: sp.Expr, mean: sp.Expr, std: sp.Expr) -> sp.Expr:
    r"""The univariate Gaussian log-density :math:`-\frac{(a-\mu)^2}{2\sigma^2} - \log\sigma - \frac12\log 2\pi`.

    Args:
        a: Action (any SymPy expression).
        mean: Mean :math:`\mu`.
        std: Standard deviation :math:`\sigma` (e.g. a positive symbol, or ``exp(log_std)``).

    Returns:
        The log-density as a SymPy expression.

    References:
        Williams (1992).
    """
    return -((a - mean) ** 2) / (2 * std**2) - sp.log(std) - sp.log(2 * sp.pi) / 2


def mvn_log_density(a: sp.MatrixBase, mean: sp.MatrixBase, cov: sp.MatrixBase) -> sp.Expr:
    r"""The full-covariance Gaussian log-density for explicit matrices.

    .. math::

        -\tfrac12 d^\top \Sigma^{-1} d - \tfrac12 \log\det\Sigma - \tfrac{k}{2}\log 2\pi,
        \qquad d = a - \mu.

    :math:`\Sigma^{-1}` is written as :math:`\operatorname{adj}(\Sigma) / \det\Sigma`, which keeps
    every derivative a rational function of the entries.

    Args:
        a: Action, a ``k x 1`` matrix.
        mean: Mean, a ``k x 1`` matrix.
        cov: Covariance, a ``k x k`` matrix of expressions.

    Returns:
        The log-density as a SymPy expression.

    References:
        Petersen & Pedersen, The Matrix Cookbook, section 8.1.
    """
    k = cov.shape[0]
    residual = sp.Matrix(a) - sp.Matrix(mean)
    det = cov.det(method="berkowitz")
    quadratic = (residual.T * cov.adjugate() * residual)[0, 0] / det
    return -quadratic / 2 - sp.log(det) / 2 - sp.Rational(k, 2) * sp.log(2 * sp.pi)


def _vector(prefix: str, k: int, **assumptions: bool) -> sp.Matrix:
    return sp.Matrix([sp.Symbol(f"{prefix}_{i + 1}", **assumptions) for i in range(k)])


def univariate_gaussian(parametrisation: str = "std") -> Derivation:
    r"""Derivation of the univariate Gaussian score.

    With ``parametrisation="std"`` the variables are :math:`a, \mu, \sigma`
    (:math:`\sigma` a positive symbol) and the closed forms are
    :math:`d/\sigma^2` and :math:`(d^2 - \sigma^2)/\sigma^3`; with
    ``"log_std"`` they are :math:`a, \mu, \ell = \log\sigma` and the closed
    forms :math:`d e^{-2\ell}` and :math:`d^2 e^{-2\ell} - 1`.

    Args:
        parametrisation: ``"std"`` or ``"log_std"``.

    Returns:
        A :class:`Derivation` with derivatives ``"mean"`` and ``"std"`` (or ``"log_std"``).

    References:
        Williams (1992).
    """
    a, mean = sp.symbols("a mu", real=True)
    residual = a - mean
    if parametrisation == "std":
        std = sp.Symbol("sigma", positive=True)
        log_density = univariate_log_density(a, mean, std)
        closed = {"mean": residual / std**2, "std": (residual**2 - std**2) / std**3}
        scale_name, scale = "std", std
    elif parametrisation == "log_std":
        log_std = sp.Symbol("ell", real=True)
        log_density = sp.expand_log(univariate_log_density(a, mean, sp.exp(log_std)), force=True)
        closed = {"mean": residual * sp.exp(-2 * log_std), "log_std": residual**2 * sp.exp(-2 * log_std) - 1}
        scale_name, scale = "log_std", log_std
    else:
        raise ValueError(f"parametrisation must be 'std' or 'log_std', got {parametrisation!r}")
    return Derivation(
        name=f"univariate ({parametrisation})",
        log_density=log_density,
        symbols={"a": a, "mean": mean, scale_name: scale},
        derivatives={"mean": sp.diff(log_density, mean), scale_name: sp.diff(log_density, scale)},
        closed_forms=closed,
    )


def diagonal_gaussian(k: int, parametrisation: str = "log_std") -> Derivation:
    r"""Derivation of the diagonal Gaussian score in ``k`` dimensions.

    The log-density is the sum of ``k`` univariate terms; the derivatives are
    ``k x 1`` columns with entries :math:`d_i/\sigma_i^2` and
    :math:`d_i^2/\sigma_i^2 - 1` (``"log_std"``) or
    :math:`(d_i^2 - \sigma_i^2)/\sigma_i^3` (``"std"``).

    Args:
        k: Action dimension (at least 1).
        parametrisation: ``"log_std"`` or ``"std"``.

    Returns:
        A :class:`Derivation` with derivatives ``"mean"`` and ``"log_std"`` (or ``"std"``).

    References:
        Sutton & Barto (2018), section 13.7.
    """
    _check_k(k)
    a = _vector("a", k, real=True)
    mean = _vector("mu", k, real=True)
    residual = a - mean
    if parametrisation == "log_std":
        scale = _vector("ell", k, real=True)
        stds = [sp.exp(ell) for ell in scale]
        closed_scale = sp.Matrix([residual[i] ** 2 * sp.exp(-2 * scale[i]) - 1 for i in range(k)])
        closed_mean = sp.Matrix([residual[i] * sp.exp(-2 * scale[i]) for i in range(k)])
    elif parametrisation == "std":
        scale = _vector("sigma", k, positive=True)
        stds = list(scale)
        closed_scale = sp.Matrix([(residual[i] ** 2 - scale[i] ** 2) / scale[i] ** 3 for i in range(k)])
        closed_mean = sp.Matrix([residual[i] / scale[i] ** 2 for i in range(k)])
    else:
        raise ValueError(f"parametrisation must be 'log_std' or 'std', got {parametrisation!r}")
    log_density = sp.expand_log(
        sum(univariate_log_density(a[i], mean[i], stds[i]) for i in range(k)), force=True
    )
    return Derivation(
        name=f"diagonal, k = {k} ({parametrisation})",
        log_density=log_density,
        symbols={"a": a, "mean": mean, parametrisation: scale},
        derivatives={
            "mean": sp.Matrix([sp.diff(log_density, m) for m in mean]),
            parametrisation: sp.Matrix([sp.diff(log_density, s) for s in scale]),
        },
        closed_forms={"mean": closed_mean, parametrisation: closed_scale},
    )


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _symmetric_matrix(prefix: str, k: int) -> sp.Matrix:
    """Symmetric ``k x k`` matrix whose entries (i, j) and (j, i) are the same symbol."""

    def entry(i: int, j: int) -> sp.Symbol:
        low, high = min(i, j), max(i, j)
        # A covariance has a positive diagonal; off-diagonal entries are any real number.
        return sp.Symbol(f"{prefix}_{low + 1}{high + 1}", positive=True) if i == j else sp.Symbol(
            f"{prefix}_{low + 1}{high + 1}", real=True
        )

    return sp.Matrix(k, k, entry)


def _general_matrix(prefix: str, k: int) -> sp.Matrix:
    """``k x k`` matrix of ``k^2`` independent real symbols."""
    return sp.Matrix(k, k, lambda i, j: sp.Symbol(f"{prefix}_{i + 1}{j + 1}", real=True))


def _gradient_g(cov_inv: sp.Matrix, residual: sp.Matrix) -> sp.Matrix:
    r""":math:`G = \tfrac12(\Sigma^{-1} d d^\top \Sigma^{-1} - \Sigma^{-1})` for a given inverse."""
    w = cov_inv * residual
    return (w * w.T - cov_inv) / 2


def full_covariance_gaussian(k: int, symmetric: bool = True) -> Derivation:
    r"""Derivation of the full-covariance Gaussian score in ``k`` dimensions.

    With ``symmetric=True``, :math:`\Sigma` is a symmetric matrix of
    :math:`k(k+1)/2` free symbols :math:`\Sigma_{ij} = \Sigma_{ji}` and the
    derivative ``"cov"`` has entry :math:`(i, j)` equal to the derivative with
    respect to the free symbol in that position; its closed form is
    :math:`2G - \operatorname{diag}(G)` with
    :math:`G = \tfrac12(\Sigma^{-1} d d^\top \Sigma^{-1} - \Sigma^{-1})`.
    With ``symmetric=False``, :math:`\Sigma` has :math:`k^2` independent
    entries and the closed form is
    :math:`\tfrac12(\Sigma^{-\top} d d^\top \Sigma^{-\top} - \Sigma^{-\top})`,
    which is :math:`G` at a symmetric :math:`\Sigma` (the convention of
    :func:`pgnotes.gaussian.mvn_score` and of autograd). The derivative
    ``"mean"`` is :math:`\Sigma^{-1} d`, or
    :math:`\tfrac12(\Sigma^{-1} + \Sigma^{-\top}) d` for a general matrix (the
    quadratic form sees only the symmetric part of the inverse).

    Args:
        k: Action dimension, 1 to 3 in practice (the expressions grow quickly).
        symmetric: Symmetric matrix of free entries, or a general matrix.

    Returns:
        A :class:`Derivation` with derivatives ``"mean"`` (``k x 1``) and ``"cov"`` (``k x k``).

    References:
        Petersen & Pedersen, The Matrix Cookbook, eqs. (57), (61) and section 2.8 (structured
        matrices).
    """
    _check_k(k)
    a = _vector("a", k, real=True)
    mean = _vector("mu", k, real=True)
    cov = _symmetric_matrix("Sigma", k) if symmetric else _general_matrix("Sigma", k)
    log_density = mvn_log_density(a, mean, cov)
    residual = a - mean
    cov_inv = cov.inv(method="ADJ")
    if symmetric:
        g = _gradient_g(cov_inv, residual)
        closed_cov = 2 * g - sp.diag(*g.diagonal())
        closed_mean = cov_inv * residual
    else:
        inv_t = cov_inv.T
        closed_cov = (inv_t * residual * residual.T * inv_t - inv_t) / 2
        # The quadratic form only sees the symmetric part of a general inverse.
        closed_mean = (cov_inv + inv_t) * residual / 2
    return Derivation(
        name=f"full covariance, k = {k} ({'symmetric' if symmetric else 'general'})",
        log_density=log_density,
        symbols={"a": a, "mean": mean, "cov": cov},
        derivatives={
            "mean": sp.Matrix([sp.diff(log_density, m) for m in mean]),
            "cov": cov.applyfunc(lambda entry: sp.diff(log_density, entry)),
        },
        closed_forms={"mean": closed_mean, "cov": closed_cov},
    )


def cholesky_gaussian(k: int) -> Derivation:
    r"""Derivation of the Gaussian score with respect to the Cholesky factor :math:`L`, :math:`\Sigma = LL^\top`.

    :math:`L` is lower triangular with symbols :math:`L_{ij}`, :math:`i \ge j`
    (a positive diagonal), zeros above. The log-density is
    :math:`-\tfrac12 \lVert L^{-1} d \rVert^2 - \sum_i \log L_{ii} - \tfrac{k}{2}\log 2\pi`
    and the derivative ``"scale_tril"`` (zero above the diagonal) has closed
    form :math:`\operatorname{tril}(2 G L)` with :math:`G` evaluated at
    :math:`\Sigma = LL^\top`.

    Args:
        k: Action dimension, 1 to 3 in practice.

    Returns:
        A :class:`Derivation` with derivatives ``"mean"`` and ``"scale_tril"``.

    References:
        Petersen & Pedersen, The Matrix Cookbook, section 2.
    """
    _check_k(k)
    a = _vector("a", k, real=True)
    mean = _vector("mu", k, real=True)

    def entry(i: int, j: int) -> sp.Expr:
        if i < j:
            return sp.Integer(0)
        return sp.Symbol(f"L_{i + 1}{j + 1}", positive=True) if i == j else sp.Symbol(f"L_{i + 1}{j + 1}", real=True)

    scale_tril = sp.Matrix(k, k, entry)
    residual = a - mean
    z = scale_tril.lower_triangular_solve(residual)
    log_density = (
        -(z.T * z)[0, 0] / 2
        - sum(sp.log(scale_tril[i, i]) for i in range(k))
        - sp.Rational(k, 2) * sp.log(2 * sp.pi)
    )
    inv_tril = scale_tril.inv(method="LU")
    cov_inv = inv_tril.T * inv_tril
    two_g_l = 2 * _gradient_g(cov_inv, residual) * scale_tril
    closed_tril = sp.Matrix(k, k, lambda i, j: two_g_l[i, j] if i >= j else 0)
    derivative_tril = sp.Matrix(
        k, k, lambda i, j: sp.diff(log_density, scale_tril[i, j]) if i >= j else sp.Integer(0)
    )
    return Derivation(
        name=f"Cholesky factor, k = {k}",
        log_density=log_density,
        symbols={"a": a, "mean": mean, "scale_tril": scale_tril},
        derivatives={"mean": sp.Matrix([sp.diff(log_density, m) for m in mean]), "scale_tril": derivative_tril},
        closed_forms={"mean": cov_inv * residual, "scale_tril": closed_tril},
    )


def covariance_gradient_conventions(k: int = 2) -> dict[str, sp.Matrix]:
    r"""The two gradients with respect to a covariance, side by side, at a symmetric :math:`\Sigma`.

    ``"independent"`` is the gradient with respect to :math:`k^2` independent
    entries, evaluated at a symmetric matrix: :math:`G`. ``"free"`` is the
    gradient with respect to the :math:`k(k+1)/2` free entries of a symmetric
    matrix, arranged as a symmetric matrix: :math:`2G - \operatorname{diag}(G)`.
    ``"free - (2G - diag G)"`` is their simplified difference, a zero matrix.

    Args:
        k: Action dimension, 1 to 3 in practice.

    Returns:
        A dict of three ``k x k`` matrices in the symbols of the symmetric covariance.

    References:
        Petersen & Pedersen, The Matrix Cookbook, section 2.8.
    """
    general = full_covariance_gaussian(k, symmetric=False)
    free = full_covariance_gaussian(k, symmetric=True)
    at_symmetric = dict(zip(general.symbols["cov"], free.symbols["cov"]))
    independent = general.derivatives["cov"].subs(at_symmetric)
    free_gradient = free.derivatives["cov"]
    difference = free_gradient - (2 * independent - sp.diag(*independent.diagonal()))
    return {
        "independent": _simplify(independent),
        "free": _simplify(free_gradient),
        "free - (2G - diag G)": _simplify(difference),
    }


def matrixsymbol_logdet_derivative(k: int = 3) -> Any:
    r"""What SymPy's matrix calculus returns for :math:`\partial \log\det\Sigma / \partial\Sigma`.

    The correct answer is :math:`\Sigma^{-\top}` (The Matrix Cookbook, eq.
    (57)). With ``Sigma = MatrixSymbol("Sigma", k, k)``, SymPy 1.14 evaluates
    ``diff(log(Determinant(Sigma)), Sigma)`` to ``ZeroMatrix(k, k)``, silently;
    this is why the derivations in this module use explicit matrices of
    scalar symbols. The function returns SymPy's answer unchanged, so a
    chapter can show it and the tests notice when SymPy changes it.

    Args:
        k: Size of the matrix symbol.

    Returns:
        Whatever ``sympy.diff(sympy.log(sympy.Determinant(Sigma)), Sigma)`` returns.

    References:
        Petersen & Pedersen, The Matrix Cookbook, eq. (57).
    """
    sigma = sp.MatrixSymbol("Sigma", k, k)
    return sp.diff(sp.log(sp.Determinant(sigma)), sigma)


def _default_event_dims(value: Any) -> int:
    """0 for a scalar, 1 for a column (``k x 1``), 2 for any other matrix."""
    if not _is_matrix(value):
        return 0
    return 1 if value.shape[1] == 1 else 2


def _argument_entries(argument: Any, event_dims: int) -> list[tuple[sp.Symbol, tuple[int, ...]]]:
    """The free symbols of one argument, each with the index it takes in the matching tensor."""
    if isinstance(argument, sp.Symbol):
        return [(argument, ())]
    if _is_matrix(argument):
        rows, cols = argument.shape
        entries: list[tuple[sp.Symbol, tuple[int, ...]]] = []
        seen: set[sp.Symbol] = set()
        for i in range(rows):
            for j in range(cols):
                value = argument[i, j]
                if isinstance(value, sp.Symbol) and value not in seen:
                    seen.add(value)
                    entries.append((value, (i,) if event_dims == 1 else (i, j)))
        return entries
    raise TypeError(
        f"arguments of to_torch must be SymPy symbols or matrices of symbols, got {type(argument).__name__}"
    )


def to_torch(
    expr: SymbolicValue,
    symbols: Sequence[Any],
    *,
    event_dims: Sequence[int] | None = None,
    output_event_dims: int | None = None,
) -> Callable[..., torch.Tensor]:
    r"""Turn a SymPy expression or matrix into a batched PyTorch function (``sympy.lambdify``, torch module).

    Each entry of ``symbols`` is one argument of the returned function: a
    symbol takes a tensor of any batch shape; a ``k x 1`` matrix of symbols
    (a vector) takes a tensor of shape (..., k); a ``k x k`` matrix takes
    (..., k, k), and a symbol appearing twice in it (a symmetric matrix) is
    read from its first position in row-major order, entries that are not
    symbols (the zeros of a triangular matrix) are ignored. The result has the
    broadcast batch shape of the arguments; a vector expression gives (..., k),
    a ``k x k`` one (..., k, k).

    A ``1 x 1`` matrix is a vector unless ``event_dims`` / ``output_event_dims``
    say otherwise (:meth:`Derivation.to_torch` passes them).

    Args:
        expr: A SymPy expression or matrix.
        symbols: The arguments, in order.
        event_dims: For each argument, 0 (scalar), 1 (vector) or 2 (matrix); inferred if ``None``.
        output_event_dims: The same for the result; inferred if ``None``.

    Returns:
        A function of tensors, differentiable with autograd.

    Example:
        >>> d = univariate_gaussian("std")
        >>> score = to_torch(d.derivatives["std"], d.arguments)
        >>> score(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(2.0))
        tensor(-0.3750)
    """
    arguments = list(symbols)
    dims = [_default_event_dims(arg) for arg in arguments] if event_dims is None else list(event_dims)
    if len(dims) != len(arguments):
        raise ValueError(f"event_dims has {len(dims)} entries for {len(arguments)} arguments")
    out_dims = _default_event_dims(expr) if output_event_dims is None else output_event_dims
    plan = [_argument_entries(argument, dim) for argument, dim in zip(arguments, dims)]
    flat_symbols = [symbol for entries in plan for symbol, _ in entries]
    if len(set(flat_symbols)) != len(flat_symbols):
        raise ValueError("to_torch: a symbol appears in more than one argument")
    matrix_shape = expr.shape if _is_matrix(expr) else None
    entries = list(expr) if matrix_shape is not None else [expr]
    unknown = set().union(*(sp.sympify(e).free_symbols for e in entries)) - set(flat_symbols)
    if unknown:
        raise ValueError(
            f"to_torch: the expression depends on symbols not given as arguments: {sorted(map(str, unknown))}"
        )
    # Constants such as log(2*pi) would reach torch.log as Python numbers: evaluate them to floats
    # first (30 digits, more than float64 holds).
    compiled = [
        sp.lambdify(flat_symbols, sp.sympify(entry).evalf(30), modules="torch") for entry in entries
    ]

    def function(*tensors: torch.Tensor) -> torch.Tensor:
        if len(tensors) != len(arguments):
            raise ValueError(f"expected {len(arguments)} arguments, got {len(tensors)}")
        values: list[torch.Tensor] = []
        batch_shapes = []
        for tensor, dim, entries_of_argument in zip(tensors, dims, plan):
            tensor = torch.as_tensor(tensor)
            batch_shapes.append(tensor.shape[: tensor.dim() - dim])
            for _, index in entries_of_argument:
                values.append(tensor[(..., *index)] if index else tensor)
        batch = torch.broadcast_shapes(*batch_shapes)
        like = next(t for t in tensors if isinstance(t, torch.Tensor))
        outputs = []
        for f in compiled:
            value = f(*values)
            if not isinstance(value, torch.Tensor):  # a constant entry, e.g. the zeros of a triangle
                value = torch.tensor(float(value), dtype=like.dtype, device=like.device)
            outputs.append(torch.broadcast_to(value, batch))
        if matrix_shape is None:
            return outputs[0]
        stacked = torch.stack(outputs, dim=-1)
        return stacked if out_dims == 1 else stacked.reshape(*batch, *matrix_shape)

    return function


@dataclass(frozen=True)
class HeadChainRule:
    r"""The score of a policy with linear mean and covariance heads, derived twice in SymPy.

    The heads map features :math:`\phi` to a mean :math:`\mu` and a covariance
    :math:`\Sigma`; the log-density :math:`\log\Normal(a; \mu, \Sigma)` is then a function of
    the heads' parameters. ``derivative`` differentiates it directly with ``sympy.diff``;
    ``chain_rule`` assembles the book's chain rule through both heads,
    :math:`J_\mu^\top\Sigma^{-1}d + \sum_{ij} G_{ij}\nabla\Sigma_{ij}`, from the closed forms
    :math:`\Sigma^{-1}d` and :math:`G = \tfrac12(\Sigma^{-1}dd^\top\Sigma^{-1} - \Sigma^{-1})` and
    the heads' own derivatives (never the log-density's).

    Attributes:
        name: Short description of the heads.
        features: The features :math:`\phi`, a ``p x 1`` matrix of symbols.
        action: The action :math:`a`, a ``k x 1`` matrix of symbols.
        parameters: The heads' parameters, in the order of the gradient's entries.
        mean: :math:`\mu` as a ``k x 1`` matrix of expressions in ``features`` and ``parameters``.
        cov: :math:`\Sigma` as a ``k x k`` matrix of expressions.
        log_density: :math:`\log\Normal(a; \mu, \Sigma)` in the same symbols.
        derivative: The gradient of ``log_density`` by ``sympy.diff``, one entry per parameter.
        chain_rule: The chain rule through both heads, one entry per parameter.
    """

    name: str
    features: sp.Matrix
    action: sp.Matrix
    parameters: tuple[sp.Symbol, ...]
    mean: sp.Matrix
    cov: sp.Matrix
    log_density: sp.Expr
    derivative: sp.Matrix
    chain_rule: sp.Matrix

    def verify(self) -> bool:
        """Whether ``derivative`` and ``chain_rule`` are equal as expressions (exact zero test)."""
        return _is_zero(sp.Matrix([sp.expand(entry) for entry in self.derivative - self.chain_rule]))

    def to_function(self, which: str = "derivative") -> Callable[..., torch.Tensor]:
        """A PyTorch function of (features, action, parameters) for ``"derivative"``, ``"chain_rule"`` or ``"log_density"``.

        The three arguments are 1-D tensors of lengths ``p``, ``k`` and the number of parameters,
        in the orders of ``features``, ``action`` and ``parameters``; the result has one entry per
        parameter (a scalar for ``"log_density"``).
        """
        if which not in ("derivative", "chain_rule", "log_density"):
            raise ValueError(f"which must be 'derivative', 'chain_rule' or 'log_density', got {which!r}")
        expr = getattr(self, which)
        symbols = [*self.features, *self.action, *self.parameters]
        compiled = sp.lambdify(symbols, sp.sympify(expr).evalf(30), modules="torch")

        def function(features: torch.Tensor, action: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
            values = [*features.unbind(), *action.unbind(), *parameters.unbind()]
            if len(values) != len(symbols):
                raise ValueError(f"expected {len(symbols)} values in all, got {len(values)}")
            result = compiled(*values)
            if which == "log_density":
                return torch.as_tensor(result, dtype=features.dtype)
            return torch.stack([torch.as_tensor(entry, dtype=features.dtype) for entry in result]).reshape(-1)

        return function


def _head_chain_rule(
    name: str, features: sp.Matrix, action: sp.Matrix, parameters: Sequence[sp.Symbol], mean: sp.Matrix, cov: sp.Matrix
) -> HeadChainRule:
    log_density = mvn_log_density(action, mean, cov)
    residual = action - mean
    cov_inv = cov.inv(method="ADJ")
    mean_score = cov_inv * residual
    g = _gradient_g(cov_inv, residual)
    k = cov.shape[0]
    chain_rule = sp.Matrix(
        [
            sum(mean_score[i] * sp.diff(mean[i], parameter) for i in range(k))
            + sum(g[i, j] * sp.diff(cov[i, j], parameter) for i in range(k) for j in range(k))
            for parameter in parameters
        ]
    )
    derivative = sp.Matrix([sp.diff(log_density, parameter) for parameter in parameters])
    return HeadChainRule(name, features, action, tuple(parameters), mean, cov, log_density, derivative, chain_rule)


def linear_heads_chain_rule(p: int = 2) -> HeadChainRule:
    r"""A scalar action with :math:`\mu = w^\top\phi` and :math:`\log\sigma = v^\top\phi`, ``p`` features.

    The parameters are :math:`w_1, \dots, w_p, v_1, \dots, v_p`; the chain rule gives
    :math:`\frac{d}{\sigma^2}\phi` for :math:`w` and :math:`(\frac{d^2}{\sigma^2} - 1)\phi` for :math:`v`.

    References:
        Williams (1992); Sutton & Barto (2018), section 13.7.
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"p must be a positive int, got {p!r}")
    features = _vector("phi", p, real=True)
    w, v = _vector("w", p, real=True), _vector("v", p, real=True)
    action = sp.Matrix([sp.Symbol("a", real=True)])
    mean = sp.Matrix([(w.T * features)[0, 0]])
    cov = sp.Matrix([[sp.exp(2 * (v.T * features)[0, 0])]])
    return _head_chain_rule(f"scalar action, linear mean and log-std heads, p = {p}", features, action, [*w, *v], mean, cov)


def cholesky_head_chain_rule(p: int = 2) -> HeadChainRule:
    r"""A 2-dimensional action with a linear mean head and a Cholesky covariance head on ``p`` features.

    :math:`\mu = W\phi` (:math:`W` is ``2 x p``) and :math:`\Sigma = LL^\top` with
    :math:`L_{11} = e^{c_1^\top\phi}`, :math:`L_{21} = c_2^\top\phi`, :math:`L_{22} = e^{c_3^\top\phi}`.
    The parameters are the entries of :math:`W` row by row, then :math:`c_1, c_2, c_3`.

    References:
        Petersen & Pedersen, The Matrix Cookbook, section 2.
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"p must be a positive int, got {p!r}")
    features = _vector("phi", p, real=True)
    weights = sp.Matrix(2, p, lambda i, j: sp.Symbol(f"W_{i + 1}{j + 1}", real=True))
    c = [_vector(f"c{h + 1}", p, real=True) for h in range(3)]
    action = _vector("a", 2, real=True)
    mean = weights * features
    head = [(c_h.T * features)[0, 0] for c_h in c]
    scale_tril = sp.Matrix([[sp.exp(head[0]), 0], [head[1], sp.exp(head[2])]])
    cov = scale_tril * scale_tril.T
    parameters = [*weights, *c[0], *c[1], *c[2]]
    return _head_chain_rule(f"2-dimensional action, linear mean and Cholesky heads, p = {p}", features, action, parameters, mean, cov)
