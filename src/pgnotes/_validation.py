"""Argument checks shared by the pgnotes modules: one rule per kind of input.

Each check raises ``ValueError`` (a bad value, shape or dtype) or ``TypeError``
(an argument of the wrong kind: a callback that is not callable, a task that is
not an ``LQRTask``) with a message that names the offending argument and the
problem, in the spirit of ``torch.distributions``' ``validate_args``. They are
deliberately cheap (one reduction each) so that the public functions can always
validate. The rules they enforce are stated once, for readers, on the book's
page "Input rules" (book/input_rules.md).

The module is longer than most because it is the one home of every such rule
(dtypes, shapes, counts, reals, covariances, Cholesky factors, memory); each
check is a few lines.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "PrecisionWarning",
    "as_float_tensor",
    "as_float_tensors",
    "check_finite",
    "check_positive",
    "broadcast_shapes",
    "check_min_dim",
    "check_square",
    "check_symmetric",
    "symmetry_rtol",
    "check_covariance",
    "check_symmetric_matrix",
    "cholesky_factor",
    "check_scale_tril",
    "check_lower_triangular",
    "check_cholesky_info",
    "warn_if_ill_conditioned",
    "check_count",
    "check_real",
    "check_discount",
    "check_bool",
    "check_callable",
    "check_generator",
    "check_seed",
    "check_positive_ints",
    "check_allocation",
    "mean_and_std",
]

#: Dtypes too coarse for the course's closed forms (3 and 2 significant digits).
_REFUSED_FLOATS = (torch.float16, torch.bfloat16)


# Defined in the package's __init__ (importing pgnotes stays light); raised from here.
from pgnotes import PrecisionWarning  # noqa: E402


def _under_transform(value: torch.Tensor) -> bool:
    """Whether ``value`` is traced by a ``torch.func`` transform (vmap, grad), where values cannot be read.

    Value checks (finite, positive) are skipped there; shape checks still run.
    The transformed function is the caller's own code around an already
    validated call, such as the per-episode gradients of a validated batch.
    """
    return torch._C._functorch.is_functorch_wrapped_tensor(value)


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` (as a tuple, for messages)."""
    flat = int(torch.nonzero(mask.reshape(-1))[0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape)) if mask.dim() else ()


def _refuse_dtype(name: str, dtype: torch.dtype) -> None:
    if dtype.is_complex:
        raise ValueError(f"{name} must be real, got complex dtype {dtype}: pass the real part explicitly")
    if dtype in _REFUSED_FLOATS:
        raise ValueError(
            f"{name} has dtype {dtype}, which holds too few digits for these formulas: "
            f"convert it with .float() or .double()"
        )


def _typed_tensor(name: str, value: Any) -> torch.Tensor | None:
    """``value`` as a tensor if it carries its own dtype (a tensor or a NumPy array/scalar), else None.

    Floating tensors and arrays keep their dtype; integer and bool ones are
    returned as they are, for the caller to promote.
    """
    if isinstance(value, torch.Tensor):
        _refuse_dtype(name, value.dtype)
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        kind = value.dtype.kind
        if kind == "c":
            raise ValueError(f"{name} must be real, got a complex NumPy array (dtype {value.dtype})")
        if kind not in "fiub":
            raise ValueError(f"{name} must hold numbers, got a NumPy array of dtype {value.dtype}")
        if value.dtype == np.float16:
            _refuse_dtype(name, torch.float16)
        return torch.as_tensor(np.asarray(value))
    return None


def _untyped_tensor(name: str, value: Any, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    """A Python number or (nested) sequence of numbers as a tensor of ``dtype``."""
    if value is None or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a tensor, an array or a number, got {type(value).__name__}")
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be real, got the complex number {value!r}")
    try:
        return torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{name} must be a tensor, an array or a number, got {type(value).__name__} ({exc})"
        ) from exc


def as_float_tensor(name: str, value: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """Convert ``value`` to a real floating-point tensor (the dtype rule of every pgnotes function).

    - a floating tensor is returned as it is (float32 and float64; gradients kept);
    - a NumPy floating array keeps its dtype (float64 stays float64);
    - integer and bool tensors and arrays, and Python numbers and sequences,
      take the floating dtype of ``like`` (the other arguments) when it is given,
      else torch's default dtype;
    - complex values, float16 and bfloat16, strings and ``None`` raise ``ValueError``.
    """
    target = like.dtype if like is not None and like.is_floating_point() else torch.get_default_dtype()
    device = like.device if like is not None else None
    tensor = _typed_tensor(name, value)
    if tensor is None:
        return _untyped_tensor(name, value, target, device)
    if not tensor.is_floating_point():
        return tensor.to(target)
    return tensor


def as_float_tensors(**named: Any) -> list[torch.Tensor]:
    """Convert the named inputs to tensors of one common floating dtype and check they are finite.

    Tensors and NumPy arrays with a floating dtype decide it (their
    ``torch.promote_types``); Python numbers, sequences and integer or bool
    inputs take it; without any floating tensor or array it is torch's default
    dtype. See :func:`as_float_tensor` for what is refused.
    """
    typed = {name: _typed_tensor(name, value) for name, value in named.items()}
    floating = [t for t in typed.values() if t is not None and t.is_floating_point()]
    if floating:
        dtype = floating[0].dtype
        for t in floating[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        device = floating[0].device
    else:
        dtype, device = torch.get_default_dtype(), next(
            (t.device for t in typed.values() if t is not None), None
        )
    tensors = []
    for name, value in named.items():
        t = typed[name]
        t = _untyped_tensor(name, value, dtype, device) if t is None else t.to(dtype)
        # One cheap reduction first: NaN and inf propagate into a sum, so a finite sum means
        # finite entries. Only otherwise (or if large finite entries overflowed the sum) run the
        # entrywise check, which finds and names the first bad entry.
        if not _under_transform(t) and not bool(torch.isfinite(t.detach().sum())):
            check_finite(name, t)
        tensors.append(t)
    return tensors


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``value`` holds NaN or inf, naming the first bad entry."""
    if _under_transform(value):
        return
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        index = _first_index(bad)
        entry = value[index] if index else value
        raise ValueError(
            f"{name} must be finite, but {name}{list(index) if index else ''} = {float(entry)}"
        )


def check_positive(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is strictly positive."""
    if _under_transform(value):
        return
    bad = ~(value > 0)
    if bool(bad.any()):
        index = _first_index(bad)
        entry = value[index] if index else value
        raise ValueError(
            f"{name} must be > 0 everywhere, but {name}{list(index) if index else ''} = {float(entry)}"
        )


def broadcast_shapes(**named: torch.Tensor | torch.Size) -> torch.Size:
    """Broadcast the shapes of the named tensors, or raise a ``ValueError`` listing them."""
    shapes = {k: (v.shape if isinstance(v, torch.Tensor) else torch.Size(v)) for k, v in named.items()}
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError as exc:
        listed = ", ".join(f"{k} {tuple(s)}" for k, s in shapes.items())
        raise ValueError(f"shapes do not broadcast: {listed}") from exc


def check_min_dim(name: str, value: torch.Tensor, ndim: int, what: str) -> None:
    """Raise ``ValueError`` unless ``value`` has at least ``ndim`` dimensions."""
    if value.dim() < ndim:
        raise ValueError(
            f"{name} must have at least {ndim} dimension(s) ({what}), got shape {tuple(value.shape)}"
        )


def check_square(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``value`` is a (batch of) square matrices ``(..., k, k)``."""
    if value.dim() < 2 or value.shape[-1] != value.shape[-2]:
        raise ValueError(f"{name} must be a square matrix of shape (..., k, k), got shape {tuple(value.shape)}")


def check_symmetric(name: str, value: torch.Tensor, rtol: float) -> None:
    """Raise ``ValueError`` unless each matrix in ``value`` is symmetric up to ``rtol``.

    The tolerance is relative to the scale of each matrix (its largest
    absolute entry), so it means the same for a covariance in metres and one
    in millimetres. The message reports the largest asymmetry and where it is.
    """
    asymmetry = torch.sub(value, value.mT).abs_()
    scale = value.abs().amax(dim=(-2, -1), keepdim=True)
    if bool((asymmetry > rtol * scale).any()):
        # Report the worst matrix relative to its own scale (an all-zero matrix is symmetric).
        relative = asymmetry / torch.where(scale > 0, scale, torch.ones_like(scale))
        index = _first_index(relative == relative.amax())
        matrix_scale = float(value[index[:-2]].abs().amax())
        raise ValueError(
            f"{name} must be symmetric, but its max asymmetry |{name} - {name}^T| = {float(asymmetry[index]):.3g} "
            f"at {name}{list(index)} (tolerance {rtol:.3g} relative to max |{name}| = {matrix_scale:.3g})"
        )


# A matrix is accepted as symmetric when max |M - M^T| <= _SYMMETRY_SLACK * k * eps * max |M|.
# k * eps bounds the rounding error of the length-k inner products that build a covariance
# (A A^T, Q diag(lambda) Q^T): in practice such matrices are asymmetric by about one eps.
_SYMMETRY_SLACK = 64


def symmetry_rtol(matrix: torch.Tensor) -> float:
    """The symmetry tolerance of every covariance and cost matrix, relative to its largest entry.

    ``64 k eps`` for a ``k x k`` matrix of a dtype with machine epsilon ``eps``.
    """
    return _SYMMETRY_SLACK * max(matrix.shape[-1], 1) * torch.finfo(matrix.dtype).eps


def check_covariance(name: str, matrix: torch.Tensor, *, definite: bool) -> torch.Tensor:
    """Check a (batch of) symmetric positive (semi)definite matrices; return the symmetric part.

    Symmetry uses :func:`symmetry_rtol`; definiteness the Cholesky factorisation
    (as the Gaussian densities do); semidefiniteness the smallest eigenvalue,
    which may be negative by at most the same tolerance times the largest
    absolute entry (rounding of a singular covariance such as ``X0 = 0``).
    """
    check_finite(name, matrix.detach())
    check_symmetric_matrix(name, matrix)
    symmetric = 0.5 * (matrix + matrix.mT)
    if matrix.numel() == 0:
        return symmetric
    if definite:
        _, info = torch.linalg.cholesky_ex(symmetric.detach())
        check_cholesky_info(name, symmetric.detach(), info)
        return symmetric
    eigenvalues = torch.linalg.eigvalsh(symmetric.detach())
    scale = symmetric.detach().abs().amax(dim=(-2, -1))
    smallest = eigenvalues[..., 0]
    bad = smallest < -symmetry_rtol(matrix) * scale
    if bool(bad.any()):
        index = _first_index(bad)
        where = f"{name}{list(index)}" if index else name
        raise ValueError(
            f"{name} must be positive semidefinite, but the smallest eigenvalue of {where} is "
            f"{float(smallest[index]):.3g}"
        )
    return symmetric


def warn_if_ill_conditioned(name: str, scale_tril: torch.Tensor) -> None:
    """Warn (:class:`PrecisionWarning`) when a float32 Cholesky factor leaves fewer than 2 correct digits.

    The condition number of ``Sigma = L L^T`` is bounded below by
    ``max_i Sigma_ii * |Sigma^-1 v|`` for any unit vector ``v`` (both factors
    are lower bounds of the extreme eigenvalues); two steps of inverse
    iteration from ``v = 1 / sqrt(k)`` (four triangular solves, in float64)
    bring ``v`` close to the worst direction. The estimate never exceeds the
    true condition number, so the warning is never a false alarm. The solves
    lose about ``log10(cond)`` of float32's 7 digits, so past
    ``cond * eps > 0.01`` a log-density or score is off by more than a percent.
    Only float32 pays for the estimate.
    """
    if scale_tril.dtype != torch.float32 or scale_tril.numel() == 0 or _under_transform(scale_tril):
        return
    factor = scale_tril.detach().to(torch.float64)
    k = factor.shape[-1]
    largest = factor.square().sum(-1).amax(-1)  # max_i Sigma_ii <= lambda_max
    v = torch.full(factor.shape[:-1], 1.0 / math.sqrt(k), dtype=torch.float64, device=factor.device)
    for _ in range(2):
        w = torch.linalg.solve_triangular(factor, v.unsqueeze(-1), upper=False)
        w = torch.linalg.solve_triangular(factor.mT, w, upper=True).squeeze(-1)
        inverse_norm = w.norm(dim=-1)  # |Sigma^-1 v| <= 1 / lambda_min
        v = w / inverse_norm.unsqueeze(-1)
    condition = float((largest * inverse_norm).max())
    if condition * torch.finfo(torch.float32).eps > 0.01:
        warnings.warn(
            f"{name} is float32 with condition number at least {condition:.3g}: the result has "
            f"fewer than 2 correct digits; compute in float64",
            PrecisionWarning,
            stacklevel=3,
        )



def check_symmetric_matrix(name: str, matrix: torch.Tensor) -> None:
    """Square and symmetric by the package's rule: exact equality passes at once, else within :func:`symmetry_rtol`."""
    check_square(name, matrix)
    if not torch.equal(matrix, matrix.mT):
        check_symmetric(name, matrix.detach(), symmetry_rtol(matrix))


def cholesky_factor(name: str, matrix: torch.Tensor) -> torch.Tensor:
    """The Cholesky factor of a symmetric ``matrix``; ``ValueError`` naming ``name`` unless positive definite.

    The factorisation's ``info`` is the definiteness check; a float32 matrix too ill-conditioned for
    its precision gets a :class:`PrecisionWarning`.
    """
    factor, info = torch.linalg.cholesky_ex(matrix)
    check_cholesky_info(name, matrix, info)
    warn_if_ill_conditioned(name, factor)
    return factor


def check_scale_tril(name: str, scale_tril: torch.Tensor) -> None:
    """A Cholesky factor: square, lower triangular, with a positive diagonal."""
    check_square(name, scale_tril)
    check_lower_triangular(name, scale_tril)
    check_positive(f"{name} diagonal", torch.diagonal(scale_tril, dim1=-2, dim2=-1))


def check_lower_triangular(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every entry above the diagonal of ``value`` is exactly zero."""
    upper = torch.triu(value, diagonal=1)
    bad = upper != 0
    if bool(bad.any()):
        index = _first_index(bad)
        raise ValueError(
            f"{name} must be lower triangular, but {name}{list(index)} = {float(value[index]):.6g} "
            f"is above the diagonal (max |upper triangle| = {float(upper.abs().amax()):.3g})"
        )


def check_cholesky_info(name: str, matrix: torch.Tensor, info: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``torch.linalg.cholesky_ex`` reported a failure for ``matrix``.

    ``info`` is the second output of ``cholesky_ex``: zero where the factor
    exists. Checking it is free next to the factorisation itself; only on the
    error path is an eigenvalue decomposition computed (in float64) to report
    the smallest eigenvalue of the first failing matrix.
    """
    bad = info != 0
    if bool(bad.any()):
        index = _first_index(bad)
        eigenvalues = torch.linalg.eigvalsh(matrix[index].to(torch.float64))
        smallest, largest = float(eigenvalues[0]), float(eigenvalues[-1])
        where = f"{name}{list(index)}" if index else name
        message = (
            f"{name} must be positive definite, but the Cholesky factorisation of {where} failed "
            f"(leading minor of order {int(info[index])} is not positive); "
            f"its smallest eigenvalue is {smallest:.3g}"
        )
        if smallest > 0:
            message += (
                f" (positive, but its condition number {largest / smallest:.3g} is too large "
                f"for {matrix.dtype}: use float64 or add a multiple of the identity)"
            )
        raise ValueError(message)


def check_count(name: str, n: Any, minimum: int = 1) -> int:
    """Return ``n`` as an ``int`` of at least ``minimum``, or raise naming ``name``; bools and 2.5 are refused."""
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(n, bool):
        raise ValueError(f"{name} must be {wanted}, got {n!r}")
    try:
        count = operator.index(n)
    except TypeError as exc:
        raise ValueError(f"{name} must be {wanted}, got {n!r}") from exc
    if count < minimum:
        raise ValueError(f"{name} must be {wanted}, got {count}")
    return count


def _is_number(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not (value.dtype.is_complex or value.dtype == torch.bool)
    return isinstance(value, numbers.Real)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite Python float in the stated range, or raise naming ``name``.

    Accepts Python and NumPy numbers and one-element tensors; refuses ``True``,
    strings, complex numbers, NaN and inf. ``low_open``/``high_open`` make the
    bounds strict.
    """
    if not _is_number(value):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if low is not None and high is not None:
        wanted = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        wanted = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        wanted = f"a finite number {'<' if high_open else '<='} {high:g}"
    else:
        wanted = "a finite number"
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {wanted}, got {number}")
    if low is not None and (number < low or (low_open and number == low)):
        raise ValueError(f"{name} must be {wanted}, got {number:g}")
    if high is not None and (number > high or (high_open and number == high)):
        raise ValueError(f"{name} must be {wanted}, got {number:g}")
    return number


def check_discount(name: str, gamma: Any, *, allow_one: bool) -> float:
    """A discount factor in ``[0, 1]`` (``allow_one``) or ``[0, 1)``, as a float."""
    return check_real(name, gamma, low=0.0, high=1.0, high_open=not allow_one)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (Python or NumPy); refuse 0, 1, strings and None."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_callable(name: str, value: Any, *, optional: bool = False) -> None:
    """Raise ``TypeError`` unless ``value`` is callable (or None when ``optional``)."""
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r} ({type(value).__name__})")


def check_generator(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is None or a ``torch.Generator`` (a seed is not one)."""
    if value is not None and not isinstance(value, torch.Generator):
        hint = " (make one with pgnotes.check.seeded(seed))" if isinstance(value, numbers.Integral) else ""
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__}{hint}")


def check_seed(name: str, value: Any) -> int:
    """A seed: a non-negative integer (not a bool, not 2.5), below 2**63."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    try:
        seed = operator.index(value)
    except TypeError as exc:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}") from exc
    if not 0 <= seed < 2**63:
        raise ValueError(f"{name} must be a non-negative integer below 2**63, got {seed}")
    return seed


def check_positive_ints(name: str, values: Any) -> tuple[int, ...]:
    """A sequence of positive integers (e.g. hidden layer widths), as a tuple; a bare int or a string is refused."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(
            f"{name} must be a sequence of positive integers such as (32, 32), got {values!r}"
        )
    return tuple(check_count(f"{name}[{i}]", v) for i, v in enumerate(values))


def _available_memory() -> int:
    """Bytes of physical memory currently available (total memory if the system does not say)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**63


def check_allocation(what: str, elements: int, dtype: torch.dtype, arguments: str) -> None:
    """Refuse, before allocating, a request of ``elements`` entries of ``dtype`` that cannot fit in memory.

    The message says how much it would need and which arguments set the size.
    """
    needed = elements * torch.empty((), dtype=dtype).element_size()
    available = _available_memory()
    if needed > available:
        raise ValueError(
            f"{what} would need {needed / 2**30:.3g} GiB ({arguments}), more than the "
            f"{available / 2**30:.3g} GiB of memory available: ask for fewer"
        )


def mean_and_std(mean: Any, std: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """Validate a univariate Gaussian's ``mean`` and ``std > 0``; return them detached, with their broadcast shape."""
    # The dtype rule of as_float_tensors: ``mean=0.0`` next to a float64 ``std`` is float64.
    mean, std = as_float_tensors(mean=mean, std=std)
    if mean.device != std.device:
        raise ValueError(f"mean and std must be on the same device, got {mean.device} and {std.device}")
    # The estimates are numbers, not parts of a graph: gradients never flow
    # back into mean or std.
    mean = mean.detach()
    std = std.detach()
    check_positive("std", std)
    return mean, std, broadcast_shapes(mean=mean, std=std)
