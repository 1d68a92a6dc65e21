"""pgnotes.gaussian: the input rules and formulas that the main tests left unpinned (`make mutation`).

Each test compares with an independent reference (torch.distributions, autograd through it) or
checks a stated input rule; none compares with a value the module itself produced.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, TanhTransform, TransformedDistribution

from pgnotes.gaussian import (
    diag_log_prob,
    diag_score,
    mvn_log_prob,
    mvn_score,
    mvn_score_tril,
    normal_log_prob,
    normal_score,
    normal_score_log_std,
    squashed_log_prob,
)

F64 = torch.float64
# Closed forms against torch.distributions in float64: a few ulp of the log-density's magnitude.
RTOL = 1e-12
ATOL = 1e-12

VECTOR = {
    "first": torch.tensor([0.3, -1.2, 2.5], dtype=F64),
    "mean": torch.tensor([0.1, 0.4, -0.7], dtype=F64),
    "log_std": torch.tensor([-0.5, 0.2, 0.9], dtype=F64),
}
SCALAR = {"first": torch.tensor(0.6, dtype=F64), "mean": torch.tensor(-0.2, dtype=F64), "log_std": torch.tensor(0.3, dtype=F64)}


def _arguments_with_event_axis_on(carrier: str) -> dict[str, torch.Tensor]:
    """One argument carries the event axis (k = 3); the other two are 0-d and broadcast to it."""
    return {name: (VECTOR[name] if name == carrier else SCALAR[name]) for name in VECTOR}


def _reference_elementwise_log_prob(first: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    first, mean, log_std = torch.broadcast_tensors(first, mean, log_std)
    return Normal(mean, log_std.exp()).log_prob(first)


@pytest.mark.parametrize("carrier", ["first", "mean", "log_std"])
def test_diag_log_prob_takes_the_event_axis_from_any_argument(carrier: str) -> None:
    args = _arguments_with_event_axis_on(carrier)
    expected = _reference_elementwise_log_prob(args["first"], args["mean"], args["log_std"]).sum(-1)
    got = diag_log_prob(args["first"], args["mean"], args["log_std"])
    assert got.shape == torch.Size([])
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("carrier", ["first", "mean", "log_std"])
def test_diag_score_takes_the_event_axis_from_any_argument(carrier: str) -> None:
    args = _arguments_with_event_axis_on(carrier)
    # Autograd per component: expand every parameter to the event shape so each gets its own derivative.
    first, mean, log_std = (t.clone() for t in torch.broadcast_tensors(args["first"], args["mean"], args["log_std"]))
    mean.requires_grad_(True)
    log_std.requires_grad_(True)
    d_mean, d_log_std = torch.autograd.grad(Normal(mean, log_std.exp()).log_prob(first).sum(), (mean, log_std))
    got_mean, got_log_std = diag_score(args["first"], args["mean"], args["log_std"])
    torch.testing.assert_close(got_mean, d_mean, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(got_log_std, d_log_std, rtol=RTOL, atol=ATOL)


# With u shorter than the broadcast event axis (a 0-d u, or u of shape (1,)), every one of the k
# components of a = tanh(u) still has its own Jacobian factor.
@pytest.mark.parametrize(
    "carrier",
    ["first", "mean", "log_std"],
)
def test_squashed_log_prob_takes_the_event_axis_from_any_argument(carrier: str) -> None:
    args = _arguments_with_event_axis_on(carrier)
    u, mean, log_std = torch.broadcast_tensors(args["first"], args["mean"], args["log_std"])
    # |u| <= 2.5 keeps tanh u well away from +-1, where torch's TanhTransform is accurate.
    squashed = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    expected = squashed.log_prob(torch.tanh(u)).sum(-1)
    got = squashed_log_prob(args["first"], args["mean"], args["log_std"])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_squashed_log_prob_counts_one_jacobian_factor_per_broadcast_component() -> None:
    u = torch.tensor([0.6], dtype=F64)
    mean = VECTOR["mean"]
    log_std = VECTOR["log_std"]
    squashed = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    expected = squashed.log_prob(torch.tanh(u).expand(3)).sum(-1)
    torch.testing.assert_close(squashed_log_prob(u, mean, log_std), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("function", [diag_log_prob, diag_score, squashed_log_prob])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_diagonal_functions_name_the_argument_whose_shape_does_not_broadcast(function, position: int) -> None:
    names = ("u" if function is squashed_log_prob else "a", "mean", "log_std")
    args = [torch.zeros(3, dtype=F64) for _ in names]
    args[position] = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match=rf"{names[position]} \(2,\)"):
        function(*args)


@pytest.mark.parametrize("function", [diag_log_prob, diag_score, squashed_log_prob])
def test_diagonal_functions_refuse_inputs_without_an_event_axis_naming_them(function) -> None:
    first = "u" if function is squashed_log_prob else "a"
    zero = torch.tensor(0.0, dtype=F64)
    with pytest.raises(ValueError, match=rf"^{first}, mean and log_std broadcast to a scalar"):
        function(zero, zero, zero)


@pytest.mark.parametrize(
    ("function", "matrix"),
    [(mvn_log_prob, torch.eye(2, dtype=F64)), (mvn_score, torch.eye(2, dtype=F64)), (mvn_score_tril, torch.eye(2, dtype=F64))],
)
@pytest.mark.parametrize("name", ["a", "mean"])
def test_full_covariance_functions_name_a_vector_argument_without_an_event_axis(function, matrix, name: str) -> None:
    args = {"a": torch.zeros(2, dtype=F64), "mean": torch.zeros(2, dtype=F64)}
    args[name] = torch.tensor(0.0, dtype=F64)
    with pytest.raises(ValueError, match=rf"^{name} must have at least 1 dimension\(s\) \(the event axis, of size k\)"):
        function(args["a"], args["mean"], matrix)


@pytest.mark.parametrize(
    ("function", "names"),
    [
        (normal_log_prob, ("a", "mean", "std")),
        (normal_score, ("a", "mean", "std")),
        (normal_score_log_std, ("a", "mean", "log_std")),
    ],
)
@pytest.mark.parametrize("position", [0, 1, 2])
def test_univariate_functions_name_the_argument_whose_shape_does_not_broadcast(function, names, position: int) -> None:
    args = [torch.ones(3, dtype=F64) for _ in names]
    args[position] = torch.ones(2, dtype=F64)
    with pytest.raises(ValueError, match=rf"{names[position]} \(2,\)"):
        function(*args)


def _spd(k: int, batch: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    root = torch.randn(*batch, k, k, generator=g, dtype=F64)
    return root @ root.mT + k * torch.eye(k, dtype=F64)


def test_mvn_log_prob_with_two_batch_axes_matches_multivariate_normal() -> None:
    # Batch shape (2, 3) with event size 4: no batch size equals k, so k cannot be read from a batch axis.
    g = torch.Generator().manual_seed(5)
    cov = _spd(4, (2, 3), seed=6)
    mean = torch.randn(2, 3, 4, generator=g, dtype=F64)
    a = torch.randn(2, 3, 4, generator=g, dtype=F64)
    expected = MultivariateNormal(mean, covariance_matrix=cov).log_prob(a)
    torch.testing.assert_close(mvn_log_prob(a, mean, cov), expected, rtol=RTOL, atol=ATOL)


def test_mvn_functions_promote_mixed_float_dtypes_to_float64() -> None:
    g = torch.Generator().manual_seed(7)
    cov = _spd(3, (), seed=8)
    mean = torch.randn(3, generator=g, dtype=F64)
    a32 = torch.randn(3, generator=g, dtype=F64).to(torch.float32)
    # float32 actions with float64 parameters: computed in float64 from the float32 values.
    expected = MultivariateNormal(mean, covariance_matrix=cov).log_prob(a32.to(F64))
    got = mvn_log_prob(a32, mean, cov)
    assert got.dtype == F64
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    d_mean, d_cov = mvn_score(a32, mean, cov)
    assert d_mean.dtype == d_cov.dtype == F64
    torch.testing.assert_close(d_mean, torch.linalg.solve(cov, a32.to(F64) - mean), rtol=1e-10, atol=1e-12)


def test_covariance_with_rounding_level_asymmetry_is_accepted_as_its_symmetric_part() -> None:
    """An asymmetry of a few dozen eps relative to max |cov| (what a product A A^T in floating point can leave) is accepted."""
    k = 4
    cov = _spd(k, (), seed=9)
    eps = torch.finfo(F64).eps
    nudged = cov.clone()
    nudged[0, k - 1] += 48 * eps * float(cov.abs().max())
    symmetric = 0.5 * (nudged + nudged.mT)
    a = torch.linspace(-1.0, 1.0, k, dtype=F64)
    mean = torch.zeros(k, dtype=F64)
    expected = MultivariateNormal(mean, covariance_matrix=symmetric).log_prob(a)
    torch.testing.assert_close(mvn_log_prob(a, mean, nudged), expected, rtol=1e-10, atol=1e-10)
