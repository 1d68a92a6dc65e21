"""Property-based tests of the input rules (book/input_rules.md), one group per category.

1. log-space stability, 2. relative accuracy near zero, 3. dtypes, 4. shapes and
sizes, 5. hyper-parameters, 6. control-task matrices, 7. resources, 8. reporting
when the optimum is 0, 9. meaningless precision. (Category 10, the exercise
registry, is tested in tests/test_exercises.py.) Every reference value is
computed independently: with mpmath at 40 digits, or from the definition in
float64.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pgnotes import check, estimators, gaussian, lqr, objectives, policies, reinforce, rollouts
from pgnotes._validation import PrecisionWarning, check_count

F32, F64 = torch.float32, torch.float64
LOG_2PI = math.log(2 * math.pi)
SETTINGS = settings(max_examples=60, deadline=None)
mpmath.mp.dps = 40


def _relative_error(got: float, exact: mpmath.mpf) -> float:
    return float(abs((mpmath.mpf(got) - exact) / exact)) if exact != 0 else abs(got)


# --------------------------------------------------------------------------- 1. log space


def _exact_diag(d: float, log_std: float) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """log N(d; 0, e^{2 l}) and its scores (d / sigma^2, d^2 / sigma^2 - 1), from the definition at 40 digits."""
    sigma = mpmath.exp(mpmath.mpf(log_std))
    z = mpmath.mpf(d) / sigma
    return -z**2 / 2 - mpmath.mpf(log_std) - mpmath.log(2 * mpmath.pi) / 2, z / sigma, z**2 - 1


@SETTINGS
@given(
    dtype=st.sampled_from([F32, F64]),
    log_std=st.floats(-1.0, 1.0),
    scale=st.sampled_from([1.0, 50.0, 100.0, 800.0]),
    d=st.one_of(st.just(0.0), st.floats(-1e3, 1e3, allow_subnormal=False)),
)
def test_diagonal_density_and_score_are_accurate_far_beyond_exps_range(dtype, log_std, scale, d):
    log_std = log_std * scale
    info = torch.finfo(dtype)
    # The range: |log sigma| up to 100 in float32, 800 in float64.
    assume(abs(log_std) <= (100.0 if dtype == F32 else 800.0))
    d = float(torch.tensor(d, dtype=dtype))
    log_std = float(torch.tensor(log_std, dtype=dtype))
    exact_lp, exact_mean, exact_log_std = _exact_diag(d, log_std)
    a, mean, ls = (torch.tensor([v], dtype=dtype) for v in (d, 0.0, log_std))
    got_lp = float(gaussian.diag_log_prob(a, mean, ls))
    got_mean, got_log_std = (float(g) for g in gaussian.diag_score(a, mean, ls))
    tolerance = 64 * info.eps
    for got, exact in ((got_lp, exact_lp), (got_mean, exact_mean), (got_log_std, exact_log_std)):
        if abs(exact) > info.max:
            assert math.isinf(got) and math.copysign(1, got) == math.copysign(1, float(exact))
        elif abs(exact) < info.tiny / info.eps:
            assert abs(got - float(exact)) <= info.tiny
        else:
            assert math.isfinite(got)
            assert _relative_error(got, exact) <= tolerance, (got, exact)


@pytest.mark.parametrize("log_std", [-100.0, 100.0])
def test_policies_and_squashed_density_use_the_log_space_kernel(log_std):
    policy = policies.LearnedStdPolicy(1, 2, dtype=F32)
    with torch.no_grad():
        policy.log_std_param.fill_(log_std)
    obs = torch.tensor([[0.5]])
    # At the mean, log pi = sum_i (-log sigma_i - log(2 pi) / 2): exactly representable here.
    expected = 2 * (-log_std - 0.5 * LOG_2PI)
    assert float(policy.log_prob(obs, policy.mean(obs).detach()).detach()) == pytest.approx(expected, rel=1e-6)
    u = torch.tensor([0.25, -0.5])
    squashed = float(gaussian.squashed_log_prob(u, u, torch.full((2,), log_std)))
    correction = sum(-2 * math.log(math.cosh(float(x))) for x in u)
    assert squashed == pytest.approx(expected - correction, rel=1e-6)


@SETTINGS
@given(
    log_sigma=st.floats(math.log(1e-30), math.log(1e30)),
    c=st.floats(-10, 10),
    dtype=st.sampled_from([F32, F64]),
)
def test_closed_form_variances_and_step_gradient_are_finite_where_the_answer_is(log_sigma, c, dtype):
    info = torch.finfo(dtype)
    sigma = float(torch.tensor(math.exp(log_sigma), dtype=dtype))
    c = float(torch.tensor(c, dtype=dtype))
    assume(sigma >= info.tiny)
    mean, std, k = (torch.tensor(v, dtype=dtype) for v in (c, sigma, 0.0))
    variances = objectives.exact_variance_quadratic(mean, std, k)
    s, cc = mpmath.mpf(sigma), mpmath.mpf(c)
    exact = {
        "score_mean": (cc**4 + 14 * cc**2 * s**2 + 15 * s**4) / s**2,
        "score_std": 2 * (cc**4 + 30 * cc**2 * s**2 + 37 * s**4) / s**2,
        "pathwise_mean": 4 * s**2,
        "pathwise_std": 4 * cc**2 + 8 * s**2,
    }
    z = cc / s
    phi = mpmath.exp(-(z**2) / 2) / mpmath.sqrt(2 * mpmath.pi)
    d_mean, d_std = objectives.exact_gradient_step(mean, std, k)
    exact_step = {"step_mean": phi / s, "step_std": -phi * z / s}
    got = {name: float(getattr(variances, name)) for name in exact}
    got.update(step_mean=float(d_mean), step_std=float(d_std))
    for name, value in {**exact, **exact_step}.items():
        if abs(value) > info.max:
            assert math.isinf(got[name]), name
        elif abs(value) < info.tiny / info.eps:
            assert abs(got[name]) <= 2 * info.tiny / info.eps, name
        else:
            assert math.isfinite(got[name]) and _relative_error(got[name], value) <= 256 * info.eps, (name, got[name], value)


# --------------------------------------------------------------------------- 2. near zero


@SETTINGS
@given(magnitude=st.floats(-30, math.log10(30.0)), sign=st.sampled_from([-1.0, 1.0]), dtype=st.sampled_from([F32, F64]))
def test_tanh_correction_is_accurate_in_relative_terms_near_zero(magnitude, sign, dtype):
    info = torch.finfo(dtype)
    u = float(torch.tensor(sign * 10.0**magnitude, dtype=dtype))
    # cosh u = 1 + u^2/2 + ...: for |u| down to 1e-30 the logarithm needs 60 digits before
    # it has any, so the reference is computed at 120.
    with mpmath.workdps(120):
        exact = -2 * mpmath.log(mpmath.cosh(mpmath.mpf(u)))
    got = float(gaussian.tanh_log_abs_det_jacobian(torch.tensor(u, dtype=dtype)))
    if abs(exact) < info.tiny:
        assert abs(got) <= info.tiny  # the exact value underflows in this dtype
    else:
        assert _relative_error(got, exact) <= 8 * info.eps, (u, got, exact)


# --------------------------------------------------------------------------- 3. dtypes

_KINDS = ["python", "numpy64", "numpy32", "torch32", "torch64", "torch_int", "numpy_int", "torch_bool"]


def _as_kind(value: float, kind: str):
    return {
        "python": value,
        "numpy64": np.array([value], dtype=np.float64),
        "numpy32": np.array([value], dtype=np.float32),
        "torch32": torch.tensor([value], dtype=F32),
        "torch64": torch.tensor([value], dtype=F64),
        "torch_int": torch.tensor([int(value)]),
        "numpy_int": np.array([int(value)]),
        "torch_bool": torch.tensor([bool(value)]),
    }[kind]


_FLOAT_KIND_DTYPES = {"numpy64": F64, "numpy32": F32, "torch32": F32, "torch64": F64}


@SETTINGS
@given(kinds=st.tuples(*[st.sampled_from(_KINDS)] * 3))
def test_one_dtype_rule_for_every_mix_of_inputs(kinds):
    values = (1.0, 0.0, 1.0)  # a, mean, std: the same number in every kind (True is 1, False is 0)
    arguments = [_as_kind(v, kind) for v, kind in zip(values, kinds)]
    floating = [_FLOAT_KIND_DTYPES[k] for k in kinds if k in _FLOAT_KIND_DTYPES]
    expected = torch.get_default_dtype()
    if floating:
        expected = floating[0]
        for dtype in floating[1:]:
            expected = torch.promote_types(expected, dtype)
    result = gaussian.normal_log_prob(*arguments)
    assert result.dtype == expected
    reference = gaussian.normal_log_prob(*(torch.tensor([v], dtype=expected) for v in values))
    torch.testing.assert_close(result.reshape(-1), reference.reshape(-1), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.float16, torch.bfloat16])
def test_complex_and_half_inputs_are_refused_with_a_remedy(dtype):
    with pytest.raises(ValueError, match="mean"):
        gaussian.diag_log_prob(torch.zeros(2), torch.zeros(2, dtype=dtype), torch.zeros(2))


# --------------------------------------------------------------------------- 4. shapes

shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


@SETTINGS
@given(a_shape=shapes, mean_shape=shapes)
def test_shapes_broadcast_or_are_refused_naming_both(a_shape, mean_shape):
    a, mean = torch.zeros(a_shape, dtype=F64), torch.ones(mean_shape, dtype=F64)
    try:
        expected = torch.broadcast_shapes(a_shape, mean_shape)
    except RuntimeError:
        with pytest.raises(ValueError, match=r"a \(.*mean \("):
            gaussian.normal_log_prob(a, mean, 1.0)
        return
    result = gaussian.normal_log_prob(a, mean, 1.0)
    assert result.shape == expected
    torch.testing.assert_close(result, torch.full(expected, -0.5 - 0.5 * LOG_2PI, dtype=F64))


@SETTINGS
@given(batch=st.integers(0, 3), k=st.integers(0, 3))
def test_empty_batches_and_zero_dimensional_events_have_defined_answers(batch, k):
    a = torch.zeros(batch, k, dtype=F64)
    cov = torch.eye(k, dtype=F64)
    # A k = 0 Gaussian has density 1: log-density 0, with nothing to differentiate.
    expected = torch.full((batch,), -0.5 * k * LOG_2PI, dtype=F64)
    torch.testing.assert_close(gaussian.mvn_log_prob(a, a, cov), expected)
    torch.testing.assert_close(gaussian.diag_log_prob(a, a, torch.zeros(k, dtype=F64)), expected)
    d_mean, d_cov = gaussian.mvn_score(a, a, cov)
    assert d_mean.shape == (batch, k) and d_cov.shape == (batch, k, k)
    rewards = torch.zeros(batch, k, dtype=F64)  # k steps: an episode may have none
    assert reinforce.reward_to_go(rewards, 0.9).shape == (batch, k)


@pytest.mark.parametrize("head", sorted(policies.HEADS))
def test_policies_name_obs_and_act_when_their_batches_differ(head):
    policy = policies.make_policy(head, 2, 2)
    with pytest.raises(ValueError, match=r"batch shape of obs \(3,\), batch shape of act \(4,\)"):
        policy.log_prob(torch.zeros(3, 2), torch.zeros(4, 2))
    assert policy.log_prob(torch.zeros(0, 2), torch.zeros(0, 2)).shape == (0,)


def test_mismatched_rewards_values_and_gains_name_both_arguments():
    with pytest.raises(ValueError, match="features.*targets"):
        reinforce.fit_value_weights(torch.zeros(5, 3, dtype=F64), torch.zeros(4, dtype=F64))
    task = lqr.task_2d()
    with pytest.raises(ValueError, match="gain.*noise_cov"):
        lqr.expected_return(task, torch.zeros(3, 2, 2, dtype=F64), torch.eye(2, dtype=F64).expand(4, 2, 2))


# --------------------------------------------------------------------------- 5. hyper-parameters


@SETTINGS
@given(value=st.one_of(st.floats(allow_nan=True), st.booleans(), st.integers(-5, 0), st.text(max_size=3), st.none()))
def test_counts_refuse_everything_but_positive_integers(value):
    assume(not (isinstance(value, float) and value.is_integer() and False))
    with pytest.raises(ValueError, match="n must be"):
        check_count("n", value)


@SETTINGS
@given(count=st.integers(1, 10**6))
def test_counts_accept_integers_of_any_integer_type(count):
    assert check_count("n", count) == count
    assert check_count("n", np.int64(count)) == count


@SETTINGS
@given(gamma=st.one_of(st.floats(-2, 0), st.floats(1, 3), st.sampled_from([math.nan, math.inf, True, "0.9"])))
def test_discounts_outside_the_open_unit_interval_are_refused(gamma):
    with pytest.raises(ValueError, match="gamma"):
        lqr.task_1d(gamma=gamma)


@SETTINGS
@given(lr=st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf, True, "0.1", None])))
def test_learning_rates_must_be_finite_and_positive(lr):
    with pytest.raises(ValueError, match="lr must be a (finite|real) number"):
        reinforce.TrainConfig(lr=lr)


@SETTINGS
@given(episodes=st.one_of(st.floats(1.5, 100).filter(lambda x: not x.is_integer()), st.just(True)))
def test_episode_counts_are_not_truncated(episodes):
    with pytest.raises(ValueError, match="episodes must be a positive integer"):
        rollouts.rollout(lqr.task_1d(), torch.zeros(1, 1, dtype=F64), episodes=episodes, horizon=3)


# --------------------------------------------------------------------------- 6. control matrices


@SETTINGS
@given(asymmetry=st.floats(1e-6, 1.0), scale=st.floats(1e-3, 1e3))
def test_cost_matrices_must_be_symmetric_whatever_their_scale(asymmetry, scale):
    Q = scale * torch.tensor([[2.0, 0.5], [0.5 + asymmetry, 2.0]], dtype=F64)
    eye = torch.eye(2, dtype=F64)
    with pytest.raises(ValueError, match="Q must be symmetric"):
        lqr.LQRTask(A=eye, B=eye, Q=Q, R=eye, W=eye, X0=eye, gamma=0.9)
    symmetric = 0.5 * (Q + Q.mT)
    lqr.LQRTask(A=eye, B=eye, Q=symmetric @ symmetric.mT, R=eye, W=eye, X0=eye, gamma=0.9)


@SETTINGS
@given(variance=st.floats(-10, -1e-6))
def test_a_negative_noise_variance_is_refused_not_rewarded(variance):
    task = lqr.task_1d()
    with pytest.raises(ValueError, match="noise_cov must be positive semidefinite"):
        lqr.expected_return(task, torch.tensor([[0.5]], dtype=F64), torch.tensor([[variance]], dtype=F64))


@pytest.mark.parametrize("name", ["gain", "noise_cov"])
def test_nan_gains_and_noises_are_refused(name):
    arguments = {"gain": torch.tensor([[0.5]], dtype=F64), "noise_cov": torch.tensor([[0.1]], dtype=F64)}
    arguments[name] = torch.tensor([[math.nan]], dtype=F64)
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        lqr.expected_return(lqr.task_1d(), **arguments)


def test_gamma_one_is_explained():
    with pytest.raises(ValueError, match="without discounting the return of every policy is -inf"):
        lqr.task_1d(gamma=1.0)


# --------------------------------------------------------------------------- 7. resources


@SETTINGS
@given(episodes=st.integers(10**9, 10**15), horizon=st.integers(10**3, 10**6))
def test_rollouts_that_cannot_fit_are_refused_before_allocating(episodes, horizon):
    with pytest.raises(ValueError, match=r"the rollout would need [0-9.e+]+ GiB \(episodes="):
        rollouts.rollout(lqr.task_2d(), torch.zeros(2, 2, dtype=F64), episodes=episodes, horizon=horizon)


@pytest.mark.parametrize("estimator", [estimators.score_function_estimates, estimators.pathwise_estimates])
def test_estimators_refuse_sample_counts_that_cannot_fit(estimator):
    with pytest.raises(ValueError, match=r"the estimates would need .* GiB \(n=1000000000000 samples"):
        estimator(objectives.quadratic_reward(0.0), torch.zeros(3, dtype=F64), 1.0, 10**12)


def test_training_refuses_batches_that_cannot_fit():
    with pytest.raises(ValueError, match="GiB"):
        reinforce.estimate_gradient(lqr.task_1d(), policies.LearnedStdPolicy(1, 1), episodes=10**12, horizon=10**6)


# --------------------------------------------------------------------------- 8. reporting


def test_training_reports_on_a_task_whose_optimum_is_zero(capsys):
    # No state cost, no noise, a fixed zero initial state: every policy's mean return, and J*, is 0.
    task = lqr.LQRTask(A=0.5, B=1.0, Q=0.0, R=1.0, W=0.0, X0=0.0, gamma=0.9)
    assert float(lqr.optimal_return(task)) == 0.0
    history = reinforce.train(
        task, policies.LearnedStdPolicy(1, 1, dtype=F64), iterations=3, episodes_per_batch=4, horizon=5, progress=True
    )
    printed = capsys.readouterr().out
    assert printed.count("iter") == 3 and "J* - J" in printed
    gaps = history.relative_gap()
    assert all(math.isfinite(g) for g in gaps)
    assert gaps == [-j for j in history.exact_return_mean]  # the absolute gap J* - J with J* = 0
    assert history.first_within(1e-12) == 0


# --------------------------------------------------------------------------- 9. precision


@settings(max_examples=20, deadline=None)
@given(log_condition=st.floats(7, 9), k=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_float32_covariances_too_ill_conditioned_for_float32_say_so(log_condition, k, seed):
    cov = check.random_spd(k, 10.0**log_condition, dtype=F32, generator=check.seeded(seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gaussian.mvn_log_prob(torch.ones(k), torch.zeros(k), cov)
        except ValueError as exc:
            assert "positive definite" in str(exc)
            return
    assert any(issubclass(w.category, PrecisionWarning) and "float64" in str(w.message) for w in caught)


@settings(max_examples=20, deadline=None)
@given(log_condition=st.floats(0, 3), k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_well_conditioned_float32_covariances_are_accurate_and_silent(log_condition, k, seed):
    cov64 = check.random_spd(k, 10.0**log_condition, generator=check.seeded(seed))
    a64 = torch.randn(k, dtype=F64, generator=check.seeded(seed + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        got = gaussian.mvn_log_prob(a64.float(), torch.zeros(k), cov64.float())
    # The float32 inputs are roundings of the float64 ones: compare with the float64 answer
    # for those same rounded inputs, so only the arithmetic is judged.
    exact = gaussian.mvn_log_prob(a64.float().double(), torch.zeros(k, dtype=F64), cov64.float().double())
    assert abs(float(got) - float(exact)) <= 1e-3 * max(1.0, abs(float(exact)))
