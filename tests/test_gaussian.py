"""Tests of pgnotes.gaussian against torch.distributions + autograd, mpmath and the error contract."""

from __future__ import annotations

import itertools
import math

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes
from torch.distributions import (
    Independent,
    MultivariateNormal,
    Normal,
    TanhTransform,
    TransformedDistribution,
)

from pgnotes import gaussian
from pgnotes._validation import check_cholesky_info
from pgnotes.check import compare_with_autograd, random_spd

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
EPS32 = torch.finfo(torch.float32).eps

# Elementwise closed forms and torch.distributions evaluate the same expression in a different
# order: they differ by a few ulp of the result, so 1e-13 (about 500 ulp) is a safe bound.
ELEMENTWISE_TOL = dict(atol=1e-13, rtol=1e-13)

HYPOTHESIS = settings(max_examples=25, deadline=None, derandomize=True)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, dtype=F64, generator=g)


def mvn_rtol(k: int, condition_number: float) -> float:
    """Normwise relative tolerance for a full-covariance score at a given condition number.

    Solving with a Cholesky factor is backward stable, so its forward error is of order
    k * cond(cov) * eps (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., ch. 10
    with the perturbation bounds of ch. 7), and the closed form and autograd make such errors
    independently. The observed worst case over
    k <= 16 and cond <= 1e8 is 0.6 k cond eps; 4 k cond eps leaves a margin. A fixed tolerance
    would be either too loose at cond = 1 or fail at cond = 1e8.
    """
    return 4.0 * k * condition_number * EPS64


def assert_normwise_close(got: torch.Tensor, expected: torch.Tensor, rtol: float, what: str) -> None:
    assert got.shape == expected.shape, f"{what}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
    scale = float(expected.abs().max())
    error = float((got - expected).abs().max())
    assert error <= rtol * max(scale, 1.0), f"{what}: max error {error:.3g} > {rtol:.3g} * scale {scale:.3g}"


def mvn_problem(g: torch.Generator, k: int, condition_number: float, batch: tuple[int, ...]):
    """Covariances of a given condition number and actions drawn from the Gaussian itself."""
    cov = random_spd(k, condition_number, batch_shape=batch, generator=g)
    mean = randn(g, *batch, k)
    noise = randn(g, *batch, k, 1)
    a = mean + (torch.linalg.cholesky(cov) @ noise).squeeze(-1)
    return a, mean, cov


# --------------------------------------------------------------------------------------------
# Univariate and diagonal Gaussians


@HYPOTHESIS
@given(shapes=mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4), seed=st.integers(0, 2**16))
def test_normal_log_prob_and_scores_match_torch_distributions(shapes, seed):
    g = gen(seed)
    a_shape, mean_shape, std_shape = shapes.input_shapes
    a, mean = randn(g, *a_shape), randn(g, *mean_shape)
    std = torch.exp(0.5 * randn(g, *std_shape))
    expected = Normal(mean, std).log_prob(a)
    torch.testing.assert_close(gaussian.normal_log_prob(a, mean, std), expected, **ELEMENTWISE_TOL)

    d_mean, d_std = gaussian.normal_score(a, mean, std)
    assert d_mean.shape == d_std.shape == shapes.result_shape
    inputs = {"a": a, "mean": mean, "std": std}
    # Autograd sums the per-sample scores of a broadcast argument; compare_with_autograd sums the
    # closed form to the argument's shape. Same expression in a different order: 1e-12.
    for check in compare_with_autograd(
        gaussian.normal_score,
        lambda a, mean, std: Normal(mean, std).log_prob(a),
        inputs,
        ("mean", "std"),
        atol=1e-12,
        rtol=1e-12,
    ):
        check.assert_ok()

    log_std = torch.log(std)
    for check in compare_with_autograd(
        gaussian.normal_score_log_std,
        lambda a, mean, log_std: Normal(mean, log_std.exp()).log_prob(a),
        {"a": a, "mean": mean, "log_std": log_std},
        ("mean", "log_std"),
        atol=1e-12,
        rtol=1e-12,
    ):
        check.assert_ok()


def test_normal_score_formulas_by_hand():
    # d = 1 - 0 = 1, sigma = 2: d / sigma^2 = 1/4, (d^2 - sigma^2) / sigma^3 = -3/8, d^2/sigma^2 - 1 = -3/4.
    d_mean, d_std = gaussian.normal_score(torch.tensor(1.0, dtype=F64), 0.0, 2.0)
    assert d_mean.item() == 0.25 and d_std.item() == -0.375
    d_mean, d_log_std = gaussian.normal_score_log_std(torch.tensor(1.0, dtype=F64), 0.0, math.log(2.0))
    # exp(-log 2) is 1/2 up to one rounding: compare to 1 ulp-scale tolerance.
    assert d_mean.item() == pytest.approx(0.25, abs=4 * EPS64)
    assert d_log_std.item() == pytest.approx(-0.75, abs=4 * EPS64)


@HYPOTHESIS
@given(
    batch=st.lists(st.integers(1, 5), max_size=2).map(tuple),
    k=st.integers(1, 16),
    shared_log_std=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_diag_log_prob_and_score_match_independent_normal(batch, k, shared_log_std, seed):
    g = gen(seed)
    a, mean = randn(g, *batch, k), randn(g, *batch, k)
    log_std = 0.5 * (randn(g, k) if shared_log_std else randn(g, *batch, k))
    expected = Independent(Normal(mean, log_std.exp()), 1).log_prob(a)
    # Sum of k terms, each a few ulp apart: k * 1e-13 is generous.
    torch.testing.assert_close(gaussian.diag_log_prob(a, mean, log_std), expected, atol=k * 1e-13, rtol=1e-13)

    d_mean, d_log_std = gaussian.diag_score(a, mean, log_std)
    assert d_mean.shape == d_log_std.shape == batch + (k,)
    for check in compare_with_autograd(
        gaussian.diag_score,
        lambda a, mean, log_std: Independent(Normal(mean, log_std.exp()), 1).log_prob(a),
        {"a": a, "mean": mean, "log_std": log_std},
        ("mean", "log_std"),
        atol=1e-12,
        rtol=1e-12,
    ):
        check.assert_ok()
    # The diagonal score is the univariate score per component: same arithmetic, exactly equal.
    univariate = gaussian.normal_score_log_std(a, mean, log_std)
    assert torch.equal(d_mean, univariate[0]) and torch.equal(d_log_std, univariate[1])


def test_diag_classic_batch_shape():
    g = gen(0)
    a, mean, log_std = randn(g, 32, 10), randn(g, 32, 10), randn(g, 10)
    assert gaussian.diag_log_prob(a, mean, log_std).shape == (32,)
    d_mean, d_log_std = gaussian.diag_score(a, mean, log_std)
    assert d_mean.shape == d_log_std.shape == (32, 10)


# --------------------------------------------------------------------------------------------
# Full covariance


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 16])
@pytest.mark.parametrize("condition_number", [1.0, 1e2, 1e4, 1e8])
def test_mvn_log_prob_and_score_match_multivariate_normal(k, condition_number):
    g = gen(1000 * k + int(math.log10(condition_number)))
    a, mean, cov = mvn_problem(g, k, condition_number, (7,))
    rtol = mvn_rtol(k, condition_number)

    expected = MultivariateNormal(mean, covariance_matrix=cov).log_prob(a)
    assert_normwise_close(gaussian.mvn_log_prob(a, mean, cov), expected, rtol, "mvn_log_prob")

    checks = compare_with_autograd(
        gaussian.mvn_score,
        lambda a, mean, cov: MultivariateNormal(mean, covariance_matrix=cov).log_prob(a),
        {"a": a, "mean": mean, "cov": cov},
        ("mean", "cov"),
        atol=0.0,
        rtol=0.0,
    )
    for check in checks:
        assert check.max_rel_err <= rtol, check

    scale_tril = torch.linalg.cholesky(cov)
    checks = compare_with_autograd(
        gaussian.mvn_score_tril,
        lambda a, mean, scale_tril: MultivariateNormal(mean, scale_tril=scale_tril).log_prob(a),
        {"a": a, "mean": mean, "scale_tril": scale_tril},
        ("mean", "scale_tril"),
        atol=0.0,
        rtol=0.0,
    )
    for check in checks:
        assert check.max_rel_err <= rtol, check


@HYPOTHESIS
@given(
    k=st.integers(1, 16),
    log10_condition=st.floats(0.0, 8.0),
    batch=st.lists(st.integers(1, 4), max_size=2).map(tuple),
    seed=st.integers(0, 2**16),
)
def test_mvn_score_matches_autograd_on_random_spd(k, log10_condition, batch, seed):
    condition_number = 10.0**log10_condition
    a, mean, cov = mvn_problem(gen(seed), k, condition_number, batch)
    for check in compare_with_autograd(
        gaussian.mvn_score,
        lambda a, mean, cov: MultivariateNormal(mean, covariance_matrix=cov).log_prob(a),
        {"a": a, "mean": mean, "cov": cov},
        ("mean", "cov"),
        atol=0.0,
        rtol=0.0,
    ):
        assert check.max_rel_err <= mvn_rtol(k, condition_number), check


def test_mvn_score_matches_autograd_through_own_log_prob():
    a, mean, cov = mvn_problem(gen(3), 4, 100.0, (5, 2))
    for check in compare_with_autograd(
        gaussian.mvn_score, gaussian.mvn_log_prob, {"a": a, "mean": mean, "cov": cov}, ("mean", "cov"),
        atol=0.0, rtol=mvn_rtol(4, 100.0),
    ):
        check.assert_ok()


def test_mvn_autograd_returns_symmetric_g_not_free_entry_gradient():
    """What autograd returns w.r.t. cov is G itself (symmetric), not 2G - diag(G)."""
    a, mean, cov = mvn_problem(gen(4), 3, 10.0, ())
    cov_leaf = cov.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(MultivariateNormal(mean, covariance_matrix=cov_leaf).log_prob(a), cov_leaf)
    _, d_cov = gaussian.mvn_score(a, mean, cov)
    tol = mvn_rtol(3, 10.0)
    assert_normwise_close(d_cov, grad, tol, "G")
    free_entry = 2 * d_cov - torch.diag_embed(torch.diagonal(d_cov, dim1=-2, dim2=-1))
    assert float((free_entry - grad).abs().max()) > 1e3 * tol * float(grad.abs().max())
    assert torch.equal(d_cov, d_cov.mT), "d_cov must be exactly symmetric"


def test_mvn_score_tril_is_tril_of_two_g_l():
    a, mean, cov = mvn_problem(gen(5), 5, 1e3, (4,))
    scale_tril = torch.linalg.cholesky(cov)
    d_mean, d_cov = gaussian.mvn_score(a, mean, cov)
    d_mean_tril, d_scale_tril = gaussian.mvn_score_tril(a, mean, scale_tril)
    tol = mvn_rtol(5, 1e3)
    assert_normwise_close(d_mean_tril, d_mean, tol, "d_mean")
    assert_normwise_close(d_scale_tril, torch.tril(2 * d_cov @ scale_tril), tol, "tril(2 G L)")
    assert torch.equal(torch.triu(d_scale_tril, diagonal=1), torch.zeros_like(d_scale_tril))


@pytest.mark.parametrize(
    "a_shape, mean_shape, cov_batch, expected_batch",
    [
        ((6, 3), (6, 3), (), (6,)),  # one covariance shared by a batch
        ((3,), (3,), (4,), (4,)),  # one action, a batch of covariances
        ((2, 1, 3), (3,), (5,), (2, 5)),  # outer-product broadcasting
        ((3,), (3,), (), ()),  # unbatched
    ],
)
def test_mvn_broadcasting_matches_multivariate_normal(a_shape, mean_shape, cov_batch, expected_batch):
    g = gen(6)
    a, mean = randn(g, *a_shape), randn(g, *mean_shape)
    cov = random_spd(3, 10.0, batch_shape=cov_batch, generator=g)
    log_prob = gaussian.mvn_log_prob(a, mean, cov)
    assert log_prob.shape == expected_batch
    expected = MultivariateNormal(mean, covariance_matrix=cov).log_prob(a)
    assert_normwise_close(log_prob, expected, mvn_rtol(3, 10.0), "log_prob")
    d_mean, d_cov = gaussian.mvn_score(a, mean, cov)
    assert d_mean.shape == expected_batch + (3,) and d_cov.shape == expected_batch + (3, 3)
    d_mean_tril, d_tril = gaussian.mvn_score_tril(a, mean, torch.linalg.cholesky(cov))
    assert d_mean_tril.shape == expected_batch + (3,) and d_tril.shape == expected_batch + (3, 3)
    # Per-sample scores against an explicit loop over the broadcast batch.
    a_b = a.expand(expected_batch + (3,))
    mean_b = mean.expand(expected_batch + (3,))
    cov_b = cov.expand(expected_batch + (3, 3))
    for idx in itertools.product(*[range(n) for n in expected_batch]):
        single_mean, single_cov = gaussian.mvn_score(a_b[idx], mean_b[idx], cov_b[idx])
        assert_normwise_close(d_mean[idx], single_mean, mvn_rtol(3, 10.0), "d_mean")
        assert_normwise_close(d_cov[idx], single_cov, mvn_rtol(3, 10.0), "d_cov")


# --------------------------------------------------------------------------------------------
# tanh squashing

TANH_POINTS = [0.0, 1e-8, -1e-4, 0.3, -1.0, 2.5, -5.0, 9.0, -12.0, 15.0, -20.0, 25.0, -30.0, 40.0, -40.0]


def tanh_reference(u: float) -> float:
    """log(1 - tanh(u)^2) = -2 log cosh(u) at 50 significant digits."""
    with mpmath.workdps(50):
        return float(-2 * mpmath.log(mpmath.cosh(mpmath.mpf(u))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_log_abs_det_jacobian_against_mpmath(dtype):
    u = torch.tensor(TANH_POINTS, dtype=dtype)
    got = gaussian.tanh_log_abs_det_jacobian(u)
    assert got.dtype == dtype and bool(torch.isfinite(got).all())
    eps = torch.finfo(dtype).eps
    for u_i, got_i in zip(u.tolist(), got.tolist()):
        reference = tanh_reference(u_i)  # u_i is the dtype value, converted exactly
        # A few roundings of terms of size max(|u|, log 2): 8 ulp of max(|reference|, 1).
        assert abs(got_i - reference) <= 8 * eps * max(abs(reference), 1.0), (u_i, got_i, reference)


def test_tanh_log_abs_det_jacobian_matches_tanh_transform_for_moderate_u():
    u = torch.linspace(-8.0, 8.0, 101, dtype=F64)
    expected = TanhTransform().log_abs_det_jacobian(u, torch.tanh(u))
    # Same formula; torch's softplus is exact below its threshold of 20 (|u| < 10).
    torch.testing.assert_close(gaussian.tanh_log_abs_det_jacobian(u), expected, atol=1e-13, rtol=1e-13)


def test_tanh_log_abs_det_jacobian_gradient_is_minus_two_tanh():
    u = torch.tensor(TANH_POINTS, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(gaussian.tanh_log_abs_det_jacobian(u).sum(), u)
    # d/du log(1 - tanh^2 u) = -2 tanh u, computed through a different formula: 1e-13.
    torch.testing.assert_close(grad, -2 * torch.tanh(u.detach()), atol=1e-13, rtol=1e-13)


@pytest.mark.parametrize("batch", [(), (6,), (2, 3)])
def test_squashed_log_prob_matches_transformed_distribution(batch):
    g = gen(7)
    k = 4
    mean, log_std = randn(g, *batch, k), 0.3 * randn(g, k)
    u = mean + log_std.exp() * randn(g, *batch, k)
    u = u.clamp(-3.0, 3.0)  # moderate u, where atanh(tanh(u)) inside torch is accurate
    base = Independent(Normal(mean, log_std.exp()), 1)
    squashed = TransformedDistribution(base, [TanhTransform()])
    expected = squashed.log_prob(torch.tanh(u))
    # torch recovers u = atanh(tanh(u)); at |u| <= 3 that costs a factor 1/(1 - tanh^2 3) ~ 100 in
    # accuracy, so about 1e-14 absolute; 1e-11 is safe.
    torch.testing.assert_close(gaussian.squashed_log_prob(u, mean, log_std), expected, atol=1e-11, rtol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_squashed_log_prob_finite_where_atanh_is_not(dtype):
    u = torch.tensor([[-40.0, 0.0, 40.0]], dtype=dtype)
    got = gaussian.squashed_log_prob(u, torch.zeros(3, dtype=dtype), torch.zeros(3, dtype=dtype))
    assert bool(torch.isfinite(got).all())
    # tanh(+-40) rounds to +-1: recovering u from a is impossible, which is why u is the input.
    assert bool(torch.isinf(torch.atanh(torch.tanh(u))).any())
    reference = sum(
        -0.5 * v * v - 0.5 * math.log(2 * math.pi) - tanh_reference(v) for v in u[0].tolist()
    )
    assert abs(float(got) - reference) <= 16 * torch.finfo(dtype).eps * abs(reference)


# --------------------------------------------------------------------------------------------
# float32, Python numbers, dtype handling


def test_float32_agrees_with_float64():
    g = gen(8)
    a, mean, cov = mvn_problem(g, 4, 10.0, (5,))
    log_std = 0.3 * randn(g, 4)
    std = log_std.exp()
    calls = [
        (gaussian.normal_log_prob, (a, mean, std)),
        (gaussian.normal_score, (a, mean, std)),
        (gaussian.normal_score_log_std, (a, mean, log_std)),
        (gaussian.diag_log_prob, (a, mean, log_std)),
        (gaussian.diag_score, (a, mean, log_std)),
        (gaussian.mvn_log_prob, (a, mean, cov)),
        (gaussian.mvn_score, (a, mean, cov)),
        (gaussian.mvn_score_tril, (a, mean, torch.linalg.cholesky(cov))),
        (gaussian.tanh_log_abs_det_jacobian, (a,)),
        (gaussian.squashed_log_prob, (a, mean, log_std)),
    ]
    for function, arguments in calls:
        out64 = function(*arguments)
        out32 = function(*[x.float() for x in arguments])
        for x32, x64 in zip(*[(o,) if isinstance(o, torch.Tensor) else o for o in (out32, out64)]):
            assert x32.dtype == torch.float32, function.__name__
            # float32 rounding amplified by cond(cov) = 10 and k = 4: 1e4 float32 ulp is generous.
            assert_normwise_close(x32.double(), x64, 1e4 * EPS32, function.__name__)


def test_python_numbers_take_the_tensor_dtype():
    a = torch.tensor([0.5, -0.5], dtype=F64)
    assert gaussian.normal_log_prob(a, 0.0, 1.0).dtype == F64
    assert gaussian.normal_score(a, 0.0, 2.0)[1].dtype == F64
    assert gaussian.diag_log_prob(a, 0.0, 0.0).dtype == F64
    value = gaussian.normal_log_prob(0.0, 0.0, 1.0)
    assert value.dtype == torch.get_default_dtype()
    assert float(value) == pytest.approx(-0.5 * math.log(2 * math.pi), abs=1e-7)


def test_mixed_float_dtypes_promote():
    cov = random_spd(2, 3.0, generator=gen(9))
    d_mean, d_cov = gaussian.mvn_score(torch.zeros(2, dtype=torch.float32), torch.ones(2, dtype=F64), cov)
    assert d_mean.dtype == F64 and d_cov.dtype == F64


# --------------------------------------------------------------------------------------------
# The error contract


def test_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"shapes do not broadcast: a \(3,\), mean \(4,\), std \(\)"):
        gaussian.normal_log_prob(torch.zeros(3), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        gaussian.diag_score(torch.zeros(32, 10), torch.zeros(32, 10), torch.zeros(32))
    with pytest.raises(ValueError, match="needs an event axis"):
        gaussian.diag_log_prob(0.0, 0.0, 0.0)


def test_mvn_shape_errors():
    cov = torch.eye(3, dtype=F64)
    with pytest.raises(ValueError, match=r"a has event size 2 .* cov is 3x3"):
        gaussian.mvn_score(torch.zeros(2, dtype=F64), torch.zeros(3, dtype=F64), cov)
    with pytest.raises(ValueError, match=r"mean has event size 4 .* cov is 3x3"):
        gaussian.mvn_log_prob(torch.zeros(3, dtype=F64), torch.zeros(4, dtype=F64), cov)
    with pytest.raises(ValueError, match=r"cov must be a square matrix .* got shape \(3, 2\)"):
        gaussian.mvn_score(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"cov must be a square matrix .* got shape \(3,\)"):
        gaussian.mvn_log_prob(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match=r"shapes do not broadcast: batch shape of a \(5,\), batch shape of mean \(5,\), batch shape of cov \(4,\)"):
        gaussian.mvn_score(torch.zeros(5, 3, dtype=F64), torch.zeros(5, 3, dtype=F64), cov.expand(4, 3, 3))
    with pytest.raises(ValueError, match=r"a must have at least 1 dimension"):
        gaussian.mvn_score(torch.tensor(0.0, dtype=F64), torch.zeros(3, dtype=F64), cov)
    with pytest.raises(ValueError, match=r"scale_tril must be a square matrix"):
        gaussian.mvn_score_tril(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), torch.zeros(3, 2, dtype=F64))


@pytest.mark.parametrize("bad_std", [0.0, -1.0])
def test_non_positive_std(bad_std):
    std = torch.tensor([1.0, bad_std, 2.0], dtype=F64)
    with pytest.raises(ValueError, match=rf"std must be > 0 everywhere, but std\[1\] = {bad_std}"):
        gaussian.normal_log_prob(torch.zeros(3, dtype=F64), 0.0, std)
    with pytest.raises(ValueError, match=r"std must be > 0"):
        gaussian.normal_score(torch.zeros(3, dtype=F64), 0.0, std)


def test_cov_not_symmetric_reports_max_asymmetry():
    cov = torch.eye(3, dtype=F64).repeat(2, 1, 1)
    cov[1, 0, 2] = 0.5
    with pytest.raises(ValueError, match=r"cov must be symmetric, but its max asymmetry \|cov - cov\^T\| = 0\.5 at cov\[1, 0, 2\]"):
        gaussian.mvn_score(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), cov)
    with pytest.raises(ValueError, match="cov must be symmetric"):
        gaussian.mvn_log_prob(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), cov)


def test_symmetry_tolerance_is_relative_to_scale_and_dtype():
    g = gen(10)
    for dtype, scale in [(torch.float32, 1e-6), (torch.float32, 1e6), (F64, 1e-6), (F64, 1e6)]:
        cov = scale * random_spd(16, 1e3, generator=g, dtype=dtype)
        # Rounding-level asymmetry (one ulp of the largest entry) is accepted at any scale...
        nudged = cov.clone()
        nudged[0, 1] = torch.nextafter(nudged[0, 1], torch.tensor(math.inf, dtype=dtype))
        gaussian.mvn_log_prob(torch.zeros(16, dtype=dtype), torch.zeros(16, dtype=dtype), nudged)
        # ...a relative asymmetry of 1e-2 is not.
        skewed = cov.clone()
        skewed[0, 1] += 1e-2 * float(cov.abs().max())
        with pytest.raises(ValueError, match="cov must be symmetric"):
            gaussian.mvn_log_prob(torch.zeros(16, dtype=dtype), torch.zeros(16, dtype=dtype), skewed)


def test_cov_not_positive_definite_reports_smallest_eigenvalue():
    cov = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)  # eigenvalues 3 and -1
    with pytest.raises(ValueError, match=r"cov must be positive definite.*smallest eigenvalue is -1\b"):
        gaussian.mvn_score(torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64), cov)
    batch = torch.stack([torch.eye(2, dtype=F64), torch.diag(torch.tensor([2.0, -0.25], dtype=F64))])
    with pytest.raises(ValueError, match=r"factorisation of cov\[1\] failed.*smallest eigenvalue is -0\.25"):
        gaussian.mvn_log_prob(torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64), batch)


def test_positive_but_numerically_singular_message():
    # A positive-definite matrix whose factorisation is reported as failed (as happens in float32
    # for condition numbers beyond 1 / eps): the message explains the condition number.
    cov = torch.diag(torch.tensor([1.0, 1e-9]))
    with pytest.raises(ValueError, match=r"smallest eigenvalue is 1e-09 \(positive, but its condition number 1e\+09 is too large for torch\.float32"):
        check_cholesky_info("cov", cov, torch.tensor(2, dtype=torch.int32))


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_scale_tril_with_non_positive_diagonal(bad):
    scale_tril = torch.eye(3, dtype=F64)
    scale_tril[2, 2] = bad
    with pytest.raises(ValueError, match=rf"scale_tril diagonal must be > 0 everywhere, but scale_tril diagonal\[2\] = {bad}"):
        gaussian.mvn_score_tril(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), scale_tril)


def test_scale_tril_with_upper_triangle():
    scale_tril = torch.eye(3, dtype=F64)
    scale_tril[0, 2] = 0.25
    with pytest.raises(ValueError, match=r"scale_tril must be lower triangular, but scale_tril\[0, 2\] = 0\.25"):
        gaussian.mvn_score_tril(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64), scale_tril)


NON_FINITE_CASES = [
    (gaussian.normal_log_prob, ("a", "mean", "std"), lambda: [torch.zeros(3), torch.zeros(3), torch.ones(3)]),
    (gaussian.normal_score, ("a", "mean", "std"), lambda: [torch.zeros(3), torch.zeros(3), torch.ones(3)]),
    (gaussian.normal_score_log_std, ("a", "mean", "log_std"), lambda: [torch.zeros(3), torch.zeros(3), torch.zeros(3)]),
    (gaussian.diag_log_prob, ("a", "mean", "log_std"), lambda: [torch.zeros(3), torch.zeros(3), torch.zeros(3)]),
    (gaussian.diag_score, ("a", "mean", "log_std"), lambda: [torch.zeros(3), torch.zeros(3), torch.zeros(3)]),
    (gaussian.mvn_log_prob, ("a", "mean", "cov"), lambda: [torch.zeros(3), torch.zeros(3), torch.eye(3)]),
    (gaussian.mvn_score, ("a", "mean", "cov"), lambda: [torch.zeros(3), torch.zeros(3), torch.eye(3)]),
    (gaussian.mvn_score_tril, ("a", "mean", "scale_tril"), lambda: [torch.zeros(3), torch.zeros(3), torch.eye(3)]),
    (gaussian.tanh_log_abs_det_jacobian, ("u",), lambda: [torch.zeros(3)]),
    (gaussian.squashed_log_prob, ("u", "mean", "log_std"), lambda: [torch.zeros(3), torch.zeros(3), torch.zeros(3)]),
]


@pytest.mark.parametrize("function, names, make", NON_FINITE_CASES, ids=[c[0].__name__ for c in NON_FINITE_CASES])
@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_are_named(function, names, make, bad_value):
    for position, name in enumerate(names):
        arguments = make()
        arguments[position] = arguments[position].clone()
        arguments[position].reshape(-1)[-1] = bad_value
        with pytest.raises(ValueError, match=rf"{name} must be finite, but {name}\[.*\] = {bad_value}"):
            function(*arguments)


def test_integer_tensors_are_promoted_to_the_floating_dtype():
    promoted = gaussian.normal_log_prob(torch.zeros(3, dtype=torch.int64), 0.0, torch.tensor(1.0, dtype=torch.float64))
    assert promoted.dtype == torch.float64
    torch.testing.assert_close(promoted, gaussian.normal_log_prob(torch.zeros(3, dtype=torch.float64), 0.0, 1.0))
