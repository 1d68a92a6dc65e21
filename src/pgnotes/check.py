r"""Verification helpers: closed forms against autograd, Monte Carlo score identities, test matrices.

Three kinds of evidence that a score is right, used throughout the book:

- :func:`compare_with_autograd` differentiates a log-density with autograd
  and compares the result with a closed-form gradient, returning a
  :class:`GradCheck` that prints as one line; :func:`gradcheck_log_density`
  runs ``torch.autograd.gradcheck`` (finite differences) on a log-density.
- :func:`score_mean_check` and :func:`fisher_check` estimate
  :math:`\mathbb{E}[\nabla \log \pi] = 0` and
  :math:`\mathbb{E}[\nabla \log \pi\, \nabla \log \pi^\top] = F` by Monte
  Carlo, with a standard error and a z-score per component, so a test can
  assert agreement within a stated number of standard errors.
- :func:`random_spd` builds covariance matrices with a prescribed condition
  number, and :func:`seeded` the seeded generators every chapter draws from.

References:
    Williams (1992); Mohamed et al. (2020), Monte Carlo Gradient Estimation in
    Machine Learning, section 4 (score function properties).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch

from pgnotes._validation import (
    as_float_tensor,
    check_allocation,
    check_callable,
    check_count,
    check_finite,
    check_generator,
    check_real,
    check_seed,
)
from pgnotes.monte_carlo import summarize, z_score

__all__ = [
    "GradCheck",
    "compare_with_autograd",
    "assert_ok",
    "gradcheck_log_density",
    "MonteCarloCheck",
    "score_mean_check",
    "fisher_check",
    "random_spd",
    "seeded",
]

Inputs = Union[Mapping[str, Any], Callable[[torch.Generator], Mapping[str, Any]]]


@dataclass(frozen=True)
class GradCheck:
    """Result of comparing a closed-form gradient with autograd for one argument.

    Attributes:
        wrt: Name of the argument the gradient is taken with respect to.
        max_abs_err: Largest absolute difference over all entries.
        max_rel_err: ``max_abs_err`` divided by the largest absolute autograd entry
            (a normwise relative error; 0 when both are zero).
        atol: Absolute tolerance of the entrywise test.
        rtol: Relative tolerance of the entrywise test.
        ok: Whether every entry satisfies ``|closed - autograd| <= atol + rtol * |autograd|``
            (``torch.allclose`` semantics; NaN is never ok).
        shape: Shape of the compared gradient (the shape of the argument).
    """

    wrt: str
    max_abs_err: float
    max_rel_err: float
    atol: float
    rtol: float
    ok: bool
    shape: tuple[int, ...]

    def __repr__(self) -> str:
        return (
            f"GradCheck(wrt={self.wrt!r}, max_abs_err={self.max_abs_err:.2g}, "
            f"max_rel_err={self.max_rel_err:.2g}, ok={self.ok} @ atol={self.atol:g}, rtol={self.rtol:g})"
        )

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the errors and tolerances unless ``ok``."""
        if not self.ok:
            raise AssertionError(
                f"closed-form gradient w.r.t. {self.wrt!r} (shape {self.shape}) differs from autograd: "
                f"max |closed - autograd| = {self.max_abs_err:.3g}, normwise relative error "
                f"{self.max_rel_err:.3g}, tolerance atol={self.atol:g}, rtol={self.rtol:g}"
            )


def assert_ok(checks: GradCheck | Iterable[GradCheck]) -> None:
    """Call :meth:`GradCheck.assert_ok` on one check or each of several."""
    for check in [checks] if isinstance(checks, GradCheck) else checks:
        check.assert_ok()


def _materialise(inputs: Inputs, seed: int, dtype: torch.dtype) -> dict[str, Any]:
    """Resolve random inputs and cast floating tensors to ``dtype``."""
    if callable(inputs):
        generator = torch.Generator().manual_seed(seed)
        inputs = inputs(generator)
    return {
        name: value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value
        for name, value in inputs.items()
    }


def _compare(wrt: str, closed: torch.Tensor, reference: torch.Tensor, atol: float, rtol: float) -> GradCheck:
    error = (closed - reference).abs()
    max_abs = float(error.max()) if error.numel() else 0.0
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    ok = bool(torch.all(error <= atol + rtol * reference.abs()))
    return GradCheck(wrt, max_abs, max_rel, atol, rtol, ok, tuple(reference.shape))


def compare_with_autograd(
    closed_form: Callable[..., Any],
    log_density: Callable[..., torch.Tensor],
    inputs: Inputs,
    wrt: str | Sequence[str],
    *,
    atol: float = 1e-10,
    rtol: float = 1e-8,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> GradCheck | tuple[GradCheck, ...]:
    r"""Compare a closed-form gradient with autograd through a log-density.

    Both functions are called with the inputs as keyword arguments. Autograd
    differentiates ``log_density(**inputs).sum()``: for per-sample
    log-densities this is the per-sample score wherever an argument is not
    shared across the batch. A closed form that returns per-sample scores for
    a shared (broadcast) argument is summed down to that argument's shape
    first, which is what autograd computes.

    Args:
        closed_form: Returns the gradient (a tensor) if ``wrt`` is a string, or one
            tensor per name in ``wrt``, e.g. :func:`pgnotes.gaussian.normal_score` with
            ``wrt=("mean", "std")``.
        log_density: Returns log-densities, e.g. ``lambda a, mean, std: Normal(mean,
            std).log_prob(a)``.
        inputs: The arguments by name, or a function of a ``torch.Generator`` returning
            them (seeded with ``seed``).
        wrt: The argument name(s) to differentiate with respect to.
        atol: Absolute tolerance of the entrywise comparison.
        rtol: Relative tolerance of the entrywise comparison. The defaults leave
            room for moderately ill-conditioned inputs in float64; a well-conditioned
            closed form agrees to about 1e-15.
        seed: Seed for random ``inputs``.
        dtype: Floating tensors are cast to this dtype first (float64 by default).

    Returns:
        A :class:`GradCheck` if ``wrt`` is a string, else a tuple of them in the order of ``wrt``.

    Example:
        >>> from torch.distributions import Normal
        >>> from pgnotes.gaussian import normal_score
        >>> inputs = {"a": torch.tensor([0.3, -1.2]), "mean": torch.zeros(2), "std": torch.ones(2)}
        >>> checks = compare_with_autograd(
        ...     normal_score, lambda a, mean, std: Normal(mean, std).log_prob(a), inputs, ("mean", "std"))
        >>> [c.ok for c in checks]
        [True, True]
    """
    check_callable("closed_form", closed_form)
    check_callable("log_density", log_density)
    names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    values = _materialise(inputs, check_seed("seed", seed), dtype)
    missing = [name for name in names if name not in values]
    if missing:
        raise ValueError(f"wrt names {missing} are not among the inputs {list(values)}")
    with torch.no_grad():
        closed = closed_form(**values)
    if isinstance(wrt, str):
        if isinstance(closed, (tuple, list)):
            if len(closed) != 1:
                raise ValueError(
                    f"closed_form returned {len(closed)} outputs but wrt={wrt!r} names one; "
                    "pass a sequence of names or select the output"
                )
            closed = closed[0]
        closed = (closed,)
    elif not isinstance(closed, (tuple, list)) or len(closed) != len(names):
        got = len(closed) if isinstance(closed, (tuple, list)) else 1
        raise ValueError(f"closed_form returned {got} output(s) for wrt={names}")

    leaves = {name: torch.as_tensor(values[name], dtype=dtype).detach().clone().requires_grad_(True) for name in names}
    log_prob = log_density(**{**values, **leaves})
    gradients = torch.autograd.grad(log_prob.sum(), [leaves[name] for name in names], allow_unused=True)

    checks = []
    for name, closed_grad, reference in zip(names, closed, gradients):
        leaf = leaves[name]
        if reference is None:
            reference = torch.zeros_like(leaf)
        closed_grad = torch.as_tensor(closed_grad).to(dtype)
        if closed_grad.shape != leaf.shape:
            try:
                closed_grad = closed_grad.sum_to_size(leaf.shape)
            except RuntimeError as exc:
                raise ValueError(
                    f"closed-form gradient w.r.t. {name!r} has shape {tuple(closed_grad.shape)}, "
                    f"which does not reduce to the argument's shape {tuple(leaf.shape)}"
                ) from exc
        checks.append(_compare(name, closed_grad, reference.detach(), atol, rtol))
    return checks[0] if isinstance(wrt, str) else tuple(checks)


def gradcheck_log_density(
    log_density: Callable[..., torch.Tensor],
    inputs: Inputs,
    wrt: str | Sequence[str],
    *,
    symmetric: Sequence[str] = (),
    seed: int = 0,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    r"""Check autograd through a log-density against finite differences (``torch.autograd.gradcheck``).

    Runs in float64 on the arguments named in ``wrt``, the others held fixed.
    An argument listed in ``symmetric`` is passed as :math:`\tfrac12(X +
    X^\top)` of the perturbed matrix :math:`X`: finite differences perturb
    one entry at a time, which would leave the set of symmetric matrices
    (and a Cholesky factorisation reads only one triangle). The gradient then
    checked is that of :math:`X \mapsto f(\tfrac12(X + X^\top))`, which is the
    symmetric :math:`G` autograd returns for a covariance.

    Args:
        log_density: Returns log-densities from keyword arguments.
        inputs: The arguments by name, or a function of a ``torch.Generator`` returning them.
        wrt: Argument name(s) to perturb.
        symmetric: Names in ``wrt`` that are symmetric matrices.
        seed: Seed for random ``inputs``.
        eps: Finite-difference step.
        atol: Absolute tolerance of ``gradcheck``.
        rtol: Relative tolerance of ``gradcheck``.

    Returns:
        ``True`` if the check passes; otherwise ``torch.autograd.gradcheck`` raises
        ``GradcheckError`` describing the mismatch.
    """
    check_callable("log_density", log_density)
    names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
    values = _materialise(inputs, check_seed("seed", seed), torch.float64)
    unknown = [name for name in (*names, *symmetric) if name not in values]
    if unknown:
        raise ValueError(f"names {unknown} are not among the inputs {list(values)}")

    def function(*tensors: torch.Tensor) -> torch.Tensor:
        arguments = dict(values)
        for name, tensor in zip(names, tensors):
            arguments[name] = 0.5 * (tensor + tensor.mT) if name in symmetric else tensor
        return log_density(**arguments)

    leaves = tuple(
        torch.as_tensor(values[name], dtype=torch.float64).detach().clone().requires_grad_(True) for name in names
    )
    return bool(torch.autograd.gradcheck(function, leaves, eps=eps, atol=atol, rtol=rtol))


@dataclass(frozen=True)
class MonteCarloCheck:
    r"""A Monte Carlo estimate of an expectation next to its exact value.

    Attributes:
        name: What is estimated, e.g. ``"E[score]"``.
        estimate: The sample mean, per component.
        expected: The exact value, same shape.
        standard_error: Sample standard deviation over :math:`\sqrt{n}`, per component.
        z_score: ``(estimate - expected) / standard_error`` per component (0 where both
            the difference and the standard error are 0, ±inf where only the standard error is), from
            :func:`pgnotes.monte_carlo.z_score`.
        num_samples: The number of samples :math:`n`.
    """

    name: str
    estimate: torch.Tensor
    expected: torch.Tensor
    standard_error: torch.Tensor
    z_score: torch.Tensor
    num_samples: int

    @property
    def max_abs_z(self) -> float:
        """The largest absolute z-score over the components."""
        return float(self.z_score.abs().max())

    def __repr__(self) -> str:
        return (
            f"MonteCarloCheck(name={self.name!r}, num_samples={self.num_samples}, "
            f"components={self.z_score.numel()}, max_abs_z={self.max_abs_z:.2f})"
        )

    def assert_within(self, num_standard_errors: float) -> None:
        """Raise ``AssertionError`` unless every component is within ``num_standard_errors`` of its exact value.

        With :math:`m` components and independent-looking estimates, the chance that
        a correct formula fails is about :math:`m \\cdot P(|Z| > c)`; for ``c = 5``
        that is :math:`5.7 \\cdot 10^{-7} m`.
        """
        if not self.max_abs_z <= num_standard_errors:
            worst = int(self.z_score.abs().reshape(-1).argmax())
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), self.z_score.shape))
            raise AssertionError(
                f"{self.name}: component {list(index)} is {float(self.z_score[index]):.2f} standard errors "
                f"from its exact value (estimate {float(self.estimate[index]):.6g}, exact "
                f"{float(self.expected[index]):.6g}, standard error {float(self.standard_error[index]):.3g}, "
                f"n = {self.num_samples}); allowed: {num_standard_errors:g}"
            )


def seeded(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded with ``seed``: every random number in the book comes from one."""
    return torch.Generator().manual_seed(check_seed("seed", seed))


def _flat_scores(scores: torch.Tensor | Sequence[torch.Tensor], num_samples: int) -> torch.Tensor:
    """Concatenate per-sample score components into one (num_samples, p) matrix."""
    parts = [scores] if isinstance(scores, torch.Tensor) else list(scores)
    for part in parts:
        if part.dim() == 0 or part.shape[0] != num_samples:
            raise ValueError(
                f"score must return tensors with a leading sample axis of size {num_samples}, "
                f"got shape {tuple(part.shape)}"
            )
    return torch.cat([part.reshape(num_samples, -1) for part in parts], dim=1)


def _monte_carlo(name: str, values: torch.Tensor, expected: torch.Tensor) -> MonteCarloCheck:
    summary = summarize(values)
    z = z_score(summary, expected)
    return MonteCarloCheck(name, summary.mean, expected, summary.standard_error, z, summary.n)


def _draw(
    sample: Callable[[int, torch.Generator], Any], score: Callable[[Any], Any], num_samples: int, seed: int
) -> Any:
    check_callable("sample", sample)
    check_callable("score", score)
    # At least 2 samples, to estimate a standard error.
    num_samples = check_count("num_samples", num_samples, minimum=2)
    return sample(num_samples, torch.Generator().manual_seed(check_seed("seed", seed)))


def score_mean_check(
    sample: Callable[[int, torch.Generator], Any],
    score: Callable[[Any], torch.Tensor | Sequence[torch.Tensor]],
    num_samples: int,
    *,
    seed: int = 0,
) -> MonteCarloCheck:
    r"""Monte Carlo check of :math:`\mathbb{E}_{a \sim \pi}[\nabla_\theta \log \pi(a)] = 0`.

    The identity holds because :math:`\int \nabla \pi = \nabla \int \pi = 0`;
    it is the reason a baseline does not bias the score-function estimator.

    Args:
        sample: ``sample(n, generator)`` draws ``n`` actions from the distribution whose
            parameters ``score`` differentiates (leading axis ``n``).
        score: ``score(actions)`` returns the per-sample score, a tensor or a tuple of
            tensors (e.g. ``(d_mean, d_log_std)``), each with leading axis ``n``.
        num_samples: Number of samples :math:`n`.
        seed: Seed of the generator passed to ``sample``.

    Returns:
        A :class:`MonteCarloCheck` over the flattened score components, in the order
        ``score`` returns them.

    References:
        Mohamed et al. (2020), section 4.1; Williams (1992).
    """
    actions = _draw(sample, score, num_samples, seed)
    values = _flat_scores(score(actions), num_samples)
    return _monte_carlo("E[score]", values, torch.zeros_like(values[0]))


def fisher_check(
    sample: Callable[[int, torch.Generator], Any],
    score: Callable[[Any], torch.Tensor | Sequence[torch.Tensor]],
    expected: torch.Tensor,
    num_samples: int,
    *,
    seed: int = 0,
) -> MonteCarloCheck:
    r"""Monte Carlo check of :math:`\mathbb{E}[\nabla \log \pi\, \nabla \log \pi^\top] = F`, the Fisher information.

    Args:
        sample: ``sample(n, generator)`` draws ``n`` actions.
        score: ``score(actions)`` returns the per-sample score (tensor or tuple of tensors,
            leading axis ``n``); components are flattened and concatenated in order.
        expected: The exact Fisher information, shape (p, p) for ``p`` flattened components.
        num_samples: Number of samples :math:`n`.
        seed: Seed of the generator passed to ``sample``.

    Returns:
        A :class:`MonteCarloCheck` over the :math:`p \times p` entries.

    References:
        Mohamed et al. (2020), section 4.1; Amari (1998), Natural gradient works efficiently
        in learning.
    """
    expected = as_float_tensor("expected", expected)
    check_finite("expected", expected.detach())
    actions = _draw(sample, score, num_samples, seed)
    values = _flat_scores(score(actions), num_samples)
    p = values.shape[1]
    expected = expected.to(dtype=values.dtype, device=values.device)
    if expected.shape != (p, p):
        raise ValueError(f"expected must have shape ({p}, {p}) for {p} score components, got {tuple(expected.shape)}")
    outer = values.unsqueeze(-1) * values.unsqueeze(-2)
    return _monte_carlo("E[score score^T]", outer, expected)


def random_spd(
    k: int,
    condition_number: float,
    *,
    batch_shape: Sequence[int] = (),
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Random symmetric positive-definite matrices with a prescribed condition number.

    :math:`\Sigma = Q \operatorname{diag}(\lambda) Q^\top` with :math:`Q`
    uniformly distributed on the orthogonal group (QR of a Gaussian matrix,
    with the signs of :math:`R`'s diagonal moved into :math:`Q`, without which
    :math:`Q` would not be uniform) and eigenvalues log-spaced from 1 to
    ``condition_number``. Built in float64, symmetrised exactly, then cast to
    ``dtype``, so the result is exactly symmetric in any dtype.

    Args:
        k: Matrix size (for ``k = 1`` the matrix is ``[[1]]``).
        condition_number: The ratio of largest to smallest eigenvalue, at least 1.
        batch_shape: Leading batch shape.
        dtype: Floating dtype of the result.
        generator: Random generator (its device is used); the global one if ``None``.

    Returns:
        A tensor of shape ``(*batch_shape, k, k)``.

    References:
        Mezzadri (2007), How to generate random matrices from the classical compact groups.
    """
    k = check_count("k", k)
    condition_number = check_real("condition_number", condition_number, low=1.0)
    check_generator("generator", generator)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    device = generator.device if generator is not None else torch.device("cpu")
    batch_shape = tuple(check_count(f"batch_shape[{i}]", size, minimum=0) for i, size in enumerate(batch_shape))
    shape = (*batch_shape, k, k)
    # The Gaussian matrix, its QR factors and the product: about four float64 tensors of this shape.
    check_allocation("random_spd", 4 * math.prod(shape), torch.float64, f"batch_shape={batch_shape}, k={k}")
    gaussian = torch.randn(shape, dtype=torch.float64, device=device, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    q = q * torch.where(signs == 0, torch.ones_like(signs), signs).unsqueeze(-2)
    eigenvalues = torch.logspace(0.0, math.log10(condition_number), k, dtype=torch.float64, device=device)
    spd = (q * eigenvalues) @ q.mT
    return (0.5 * (spd + spd.mT)).to(dtype)
