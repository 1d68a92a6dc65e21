"""Argument checks shared by the pgnotes modules.

Each check raises ``ValueError`` with a message that names the offending
argument and the problem, in the spirit of ``torch.distributions``'
``validate_args``. They are deliberately cheap (one reduction each) so that the
public functions can always validate.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

__all__ = [
    "as_float_tensor",
    "check_finite",
    "check_positive",
    "broadcast_shapes",
    "check_min_dim",
    "check_square",
    "check_symmetric",
    "check_lower_triangular",
    "check_cholesky_info",
    "check_count",
    "mean_and_std",
]


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` (as a tuple, for messages)."""
    flat = int(torch.nonzero(mask.reshape(-1))[0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape)) if mask.dim() else ()


def as_float_tensor(name: str, value: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """Convert ``value`` to a floating-point tensor, keeping tensors as they are.

    Python numbers and sequences take the dtype and device of ``like`` when it
    is given (so ``std=0.5`` works next to a float64 mean), else the default
    dtype. Integer tensors are refused: a log-density of integer tensors is
    almost always a bug in the caller.
    """
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.is_complex()):
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        return value
    try:
        if like is not None:
            return torch.as_tensor(value, dtype=like.dtype, device=like.device)
        return torch.as_tensor(value, dtype=torch.get_default_dtype())
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a tensor or a number, got {type(value).__name__}") from exc


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``value`` holds NaN or inf, naming the first bad entry."""
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        index = _first_index(bad)
        entry = value[index] if index else value
        raise ValueError(
            f"{name} must be finite, but {name}{list(index) if index else ''} = {float(entry)}"
        )


def check_positive(name: str, value: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every entry of ``value`` is strictly positive."""
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


def mean_and_std(mean: Any, std: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
    """Validate a univariate Gaussian's ``mean`` and ``std > 0``; return them detached, with their broadcast shape."""
    # A Python number next to a tensor takes the tensor's dtype and device, so
    # ``mean=0.0, std=torch.tensor(..., dtype=torch.float64)`` stays float64.
    if not isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        std = as_float_tensor("std", std)
        mean = as_float_tensor("mean", mean, like=std)
    else:
        mean = as_float_tensor("mean", mean)
        std = as_float_tensor("std", std, like=mean)
    for name, value in (("mean", mean), ("std", std)):
        if value.is_complex():
            raise ValueError(f"{name} must be a real floating-point tensor, got dtype {value.dtype}")
    if mean.device != std.device:
        raise ValueError(f"mean and std must be on the same device, got {mean.device} and {std.device}")
    dtype = torch.promote_types(mean.dtype, std.dtype)
    # The estimates are numbers, not parts of a graph: gradients never flow
    # back into mean or std.
    mean = mean.detach().to(dtype)
    std = std.detach().to(dtype)
    check_finite("mean", mean)
    check_finite("std", std)
    check_positive("std", std)
    return mean, std, broadcast_shapes(mean=mean, std=std)
