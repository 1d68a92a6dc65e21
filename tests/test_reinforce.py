"""Tests for pgnotes.reinforce: REINFORCE on the linear-quadratic task."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pgnotes import lqr, reinforce, rollouts
from pgnotes.policies import CholeskyPolicy, FixedStdPolicy, LearnedStdPolicy, StateDependentStdPolicy

F64 = torch.float64


# ------------------------------------------------------------------ building blocks


def test_reward_to_go_matches_the_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    rewards = torch.randn(3, 9, generator=generator, dtype=F64)
    gamma = 0.8
    expected = torch.zeros_like(rewards)
    for t in range(9):
        for u in range(t, 9):
            expected[:, t] += gamma ** (u - t) * rewards[:, u]
    # Same sums in a different order: rounding only.
    torch.testing.assert_close(reinforce.reward_to_go(rewards, gamma), expected, rtol=1e-14, atol=1e-14)


def test_leave_one_out_mean_excludes_each_episode() -> None:
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [8.0, 0.0]], dtype=F64)
    expected = torch.stack([(values.sum(0) - values[i]) / 2 for i in range(3)])
    torch.testing.assert_close(reinforce.leave_one_out_mean(values), expected, rtol=1e-15, atol=0.0)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        reinforce.leave_one_out_mean(values[:1])


def test_value_fit_recovers_a_representable_value_function() -> None:
    generator = torch.Generator().manual_seed(1)
    states = torch.randn(20, 10, 2, generator=generator, dtype=F64)
    features = reinforce.value_features(states, horizon=10)
    assert features.shape == (20, 10, 3 + 2 + 3)
    tau = torch.arange(10, dtype=F64) / 10
    s1, s2 = states[..., 0], states[..., 1]
    targets = -(1.5 * s1**2 + 0.4 * s1 * s2 + 2.0 * s2**2) + 3.0 - 2.0 * tau + 0.7 * s2
    weights = reinforce.fit_value_weights(features, targets)
    # Noise-free targets in the span of the features: least squares is exact to
    # rounding times the condition number of the features (about 10 here).
    torch.testing.assert_close(features @ weights, targets, rtol=1e-12, atol=1e-12)


def test_per_episode_gradients_sum_to_the_batch_gradient() -> None:
    task = lqr.task_2d()
    policy = CholeskyPolicy(2, 2, dtype=F64)
    batch = rollouts.rollout(task, policy, episodes=6, horizon=5, generator=torch.Generator().manual_seed(2))
    weights = torch.randn(6, 5, generator=torch.Generator().manual_seed(3), dtype=F64)
    per_episode = reinforce.per_episode_gradients(policy, batch.states, batch.actions, weights)
    total = (weights * policy.log_prob(batch.states, batch.actions)).sum()
    names = [name for name, _ in policy.named_parameters()]
    expected = torch.autograd.grad(total, list(policy.parameters()))
    assert list(per_episode) == names
    for name, g in zip(names, expected):
        assert per_episode[name].shape == (6, *g.shape)
        # A sum of six float64 terms in another order.
        torch.testing.assert_close(per_episode[name].sum(0), g, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ the estimator


def flat(gradient: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in gradient.values()])


def stable_policy() -> LearnedStdPolicy:
    """A float64 linear policy with a non-trivial gain, sigma = 0.5."""
    policy = LearnedStdPolicy(2, 2, init_std=0.5, dtype=F64)
    with torch.no_grad():
        policy.mean_head.weight.copy_(torch.tensor([[-0.2, 0.1], [0.0, -0.3]]))
    return policy


@pytest.mark.parametrize("baseline", ["none", "mean", "learned"])
def test_gradient_estimate_is_unbiased(baseline: str) -> None:
    task = lqr.task_2d()
    policy = stable_policy()
    horizon = 15
    estimate = reinforce.estimate_gradient(
        task, policy, episodes=3000, horizon=horizon, baseline=baseline, generator=torch.Generator().manual_seed(4)
    )
    exact = flat(reinforce.exact_gradient(task, policy, horizon=horizon))
    per_episode = torch.cat([g.reshape(g.shape[0], -1) for g in estimate.per_episode.values()], dim=1)
    mean = torch.cat([g.reshape(-1) for g in estimate.gradient.values()])
    torch.testing.assert_close(per_episode.mean(0), mean, rtol=1e-14, atol=1e-14)
    se = per_episode.std(0) / math.sqrt(per_episode.shape[0])
    # Six coordinates, each within 4.5 standard errors: a false alarm has
    # probability below 6 * 7e-6 for independent episodes (the leave-one-out
    # baseline couples them only at order 1/N). The seed is fixed.
    z = (mean - exact) / se
    assert bool((z.abs() <= 4.5).all()), f"z-scores {z.tolist()}"
    # The test has power: the gradient is several standard errors from zero
    # (about 7, 14 and 20 for the three baselines), so a wrong sign or a
    # missing factor would fail it.
    assert float(exact.norm()) > 5 * float(se.norm())


@pytest.mark.parametrize("horizon", [None, 12])
def test_exact_gradient_matches_finite_differences(horizon: int | None) -> None:
    task = lqr.task_2d()
    policy = CholeskyPolicy(2, 2, state_dependent=False, dtype=F64)
    with torch.no_grad():
        policy.mean_head.weight.copy_(torch.tensor([[-0.2, 0.1], [0.0, -0.3]]))
        policy.tril_param.copy_(torch.tensor([0.1, 0.2, -0.3]))
    gradient = reinforce.exact_gradient(task, policy, horizon=horizon)
    assert set(gradient) == {"mean_head.weight", "tril_param"}
    step = 1e-6
    for name, p in policy.named_parameters():
        for index in range(p.numel()):
            values = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    p.view(-1)[index] += sign * step
                    J = lqr.expected_return(task, policy.gain(), policy.noise_covariance(), horizon=horizon)
                    values.append(float(J))
                    p.view(-1)[index] -= sign * step
            central = (values[0] - values[1]) / (2 * step)
            # Central differences: truncation error O(step^2) ~ 1e-12 and
            # cancellation error about eps |J| / step ~ 1e-9 relative to J ~ 10.
            assert float(gradient[name].view(-1)[index]) == pytest.approx(central, rel=1e-6, abs=1e-7)


def test_exact_gradient_needs_a_state_independent_covariance() -> None:
    with pytest.raises(ValueError, match="covariance that does not depend on the state"):
        reinforce.exact_gradient(lqr.task_2d(), StateDependentStdPolicy(2, 2))
    with pytest.raises(ValueError, match="only a linear-mean policy has a gain"):
        reinforce.exact_gradient(lqr.task_2d(), LearnedStdPolicy(2, 2, hidden=(3,)))


def test_baselines_reduce_the_variance() -> None:
    task = lqr.task_2d()
    policy = stable_policy()
    variances = {
        baseline: reinforce.estimate_gradient(
            task, policy, episodes=1000, horizon=20, baseline=baseline, generator=torch.Generator().manual_seed(0)
        ).variance
        for baseline in reinforce.BASELINES
    }
    # The returns are all far below zero and vary with the initial state: a
    # constant baseline removes the offset, the learned one part of the
    # state-dependent rest. Over seeds 0-4 the ratios are 0.20-0.22 and
    # 0.46-0.79; the bounds leave room for the sampling error of the variance
    # estimates themselves.
    assert variances["mean"] < 0.4 * variances["none"]
    assert variances["learned"] < 0.9 * variances["mean"]


def test_estimate_rejects_bad_arguments() -> None:
    task = lqr.task_2d()
    with pytest.raises(ValueError, match="baseline must be one of"):
        reinforce.estimate_gradient(task, LearnedStdPolicy(2, 2), baseline="median")
    with pytest.raises(ValueError, match="episodes must be an integer >= 2"):
        reinforce.estimate_gradient(task, LearnedStdPolicy(2, 2), episodes=1)
    with pytest.raises(ValueError, match="policy.obs_dim = 3 does not match task.state_dim = 2"):
        reinforce.estimate_gradient(task, LearnedStdPolicy(3, 2))


def test_exact_returns_of_each_kind_of_policy() -> None:
    task = lqr.task_2d()
    j_mean, j_stochastic = reinforce.exact_returns(task, LearnedStdPolicy(2, 2, init_std=0.3))
    K0 = torch.zeros(2, 2, dtype=F64)
    # float32 parameters enter a float64 computation: float32 rounding of sigma.
    assert j_mean == pytest.approx(float(lqr.expected_return(task, K0)), rel=1e-12)
    assert j_stochastic == pytest.approx(float(lqr.expected_return(task, K0, 0.09 * torch.eye(2))), rel=1e-6)
    j_mean, j_stochastic = reinforce.exact_returns(task, StateDependentStdPolicy(2, 2))
    assert math.isfinite(j_mean) and math.isnan(j_stochastic)
    assert all(math.isnan(j) for j in reinforce.exact_returns(task, LearnedStdPolicy(2, 2, hidden=(3,))))
    unstable = LearnedStdPolicy(2, 2)
    with torch.no_grad():
        unstable.mean_head.weight.fill_(5.0)
    assert reinforce.exact_returns(task, unstable) == (-math.inf, -math.inf)


# ------------------------------------------------------------------ training


def test_training_improves_the_return_substantially() -> None:
    task = lqr.task_2d()
    policy = LearnedStdPolicy(2, 2, init_std=0.5)
    history = reinforce.train(task, policy, iterations=40, episodes_per_batch=64, lr=0.05, seed=0)
    gaps = history.relative_gap()
    initial_gap = (history.optimal_return - history.initial_exact_return_mean) / abs(history.optimal_return)
    # From J = -19.9 (gap 344%) the mean policy must get within 5% of J*: a
    # run that merely moved would not.
    assert initial_gap > 3.0
    assert gaps[-1] <= 0.05
    assert history.exact_return_mean[-1] > history.initial_exact_return_mean + 10.0
    # The batch returns improve too (each is a mean of 64 noisy returns).
    assert sum(history.sample_return[-5:]) / 5 > sum(history.sample_return[:5]) / 5 + 5.0


def test_training_on_the_scalar_task_with_sgd_and_a_fixed_std() -> None:
    task = lqr.task_1d()
    policy = FixedStdPolicy(1, 1, std=0.3)
    history = reinforce.train(
        task, policy, iterations=40, episodes_per_batch=64, lr=0.001, optimizer="sgd", baseline="mean", seed=1
    )
    # J(K=0) = -19 against J* = -3.02: within 5% after 40 plain gradient steps.
    assert history.relative_gap()[-1] <= 0.05
    assert history.mean_std == pytest.approx([0.3] * 40, rel=1e-6)  # float32 sigma, not learned


def test_annealing_decays_the_learning_rate_linearly() -> None:
    task = lqr.task_1d()
    policy = LearnedStdPolicy(1, 1, dtype=F64)
    snapshots = [torch.cat([p.detach().reshape(-1) for p in policy.parameters()])]

    def record(i: int, history: reinforce.History) -> None:
        snapshots.append(torch.cat([p.detach().reshape(-1) for p in policy.parameters()]))

    history = reinforce.train(
        task, policy, iterations=4, episodes_per_batch=8, horizon=10, lr=0.01, anneal_lr=True,
        optimizer="sgd", baseline="none", callback=record,
    )
    # An SGD step is the learning rate times the estimate, whose norm the history
    # records: the ratio recovers the rate of each iteration, 0.01 * (1 - i / 4).
    steps = [float((after - before).norm()) for before, after in zip(snapshots, snapshots[1:])]
    rates = [step / norm for step, norm in zip(steps, history.grad_norm)]
    # float64 rounding of a step of order 1e-2.
    assert rates == pytest.approx([0.01 * (1 - i / 4) for i in range(4)], rel=1e-10)


def test_training_is_deterministic_given_the_seed() -> None:
    task = lqr.task_2d()
    runs = []
    for _ in range(2):
        policy = CholeskyPolicy(2, 2, hidden=(4,), seed=3)
        history = reinforce.train(task, policy, iterations=4, episodes_per_batch=8, horizon=10, seed=7)
        runs.append((history, [p.detach().clone() for p in policy.parameters()]))
    (first, params_first), (second, params_second) = runs
    # repr compares NaN entries (MLP mean: no exact return) as equal strings.
    assert repr(dataclasses.asdict(first)) == repr(dataclasses.asdict(second))
    for p, q in zip(params_first, params_second):
        assert torch.equal(p, q)
    other_policy = CholeskyPolicy(2, 2, hidden=(4,), seed=3)
    other = reinforce.train(task, other_policy, iterations=4, episodes_per_batch=8, horizon=10, seed=8)
    assert other.sample_return != first.sample_return


def test_history_fields_and_helpers() -> None:
    task = lqr.task_1d()
    policy = StateDependentStdPolicy(1, 1)
    history = reinforce.train(
        task, policy, iterations=6, episodes_per_batch=16, horizon=20, seed=2, record_gradient_variance=True
    )
    assert len(history) == 6
    assert history.episodes == [16 * (i + 1) for i in range(6)]
    for name in ("exact_return_mean", "sample_return", "sample_return_se", "grad_variance", "grad_norm", "mean_std"):
        values = getattr(history, name)
        assert len(values) == 6 and all(math.isfinite(v) for v in values), name
    assert all(math.isnan(v) for v in history.exact_return)  # state-dependent sigma
    assert history.optimal_return == pytest.approx(float(lqr.optimal_return(task)), rel=1e-15)
    gaps = history.relative_gap()
    threshold = sorted(gaps)[2]
    first = history.first_within(threshold)
    assert gaps[first] <= threshold and all(g > threshold for g in gaps[:first])
    assert history.episodes_to_reach(threshold) == history.episodes[first]
    assert history.first_within(-1.0) is None and history.episodes_to_reach(-1.0) is None


def test_mlp_policies_train_without_exact_returns() -> None:
    task = lqr.task_2d()
    policy = LearnedStdPolicy(2, 2, hidden=(8,))
    history = reinforce.train(task, policy, iterations=3, episodes_per_batch=8, horizon=10, baseline="none")
    assert all(math.isnan(v) for v in history.exact_return_mean)
    assert all(math.isfinite(v) for v in history.sample_return)


def test_progress_goes_to_stdout_only(capsys: pytest.CaptureFixture[str]) -> None:
    task = lqr.task_1d()
    reinforce.train(task, LearnedStdPolicy(1, 1), iterations=10, episodes_per_batch=4, horizon=5, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    reinforce.train(task, LearnedStdPolicy(1, 1), iterations=10, episodes_per_batch=4, horizon=5, progress=True)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("iter 10/10") and "gap" in lines[-1]
    assert captured.err == ""
    reinforce.train(task, LearnedStdPolicy(1, 1), iterations=10, episodes_per_batch=4, horizon=5, progress=4)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["4/10", "8/10", "10/10"]


def test_callback_sees_each_iteration() -> None:
    seen: list[tuple[int, int]] = []
    reinforce.train(
        lqr.task_1d(), LearnedStdPolicy(1, 1), iterations=3, episodes_per_batch=4, horizon=5,
        callback=lambda i, history: seen.append((i, len(history))),
    )
    assert seen == [(0, 1), (1, 2), (2, 3)]


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": "median"}, "baseline must be one of"),
        ({"optimizer": "rmsprop"}, "optimizer must be 'adam' or 'sgd'"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"lr": math.inf}, "lr must be a finite number > 0"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"episodes_per_batch": 1}, "episodes_per_batch must be an integer >= 2"),
        ({"horizon": 0}, "horizon must be a positive integer"),
        ({"progress": -1}, "progress must be"),
    ],
)
def test_train_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reinforce.train(lqr.task_1d(), LearnedStdPolicy(1, 1), **kwargs)


def test_train_rejects_a_policy_for_another_task() -> None:
    with pytest.raises(ValueError, match=r"policy.act_dim = 1 does not match task.action_dim = 2"):
        reinforce.train(lqr.task_2d(), LearnedStdPolicy(2, 1), iterations=1)
    with pytest.raises(ValueError, match="no trainable parameters"):
        policy = FixedStdPolicy(1, 1)
        policy.requires_grad_(False)
        reinforce.train(lqr.task_1d(), policy, iterations=1)


def test_diverging_rollouts_stop_training_with_advice() -> None:
    # K = -50: every step multiplies the state by 51, which overflows float32
    # within the horizon.
    policy = LearnedStdPolicy(1, 1)
    with torch.no_grad():
        policy.mean_head.weight.fill_(50.0)
    before = [p.detach().clone() for p in policy.parameters()]
    with pytest.raises(RuntimeError, match=r"returns are not finite at iteration 0.*lower the learning rate") as info:
        reinforce.train(lqr.task_1d(), policy, iterations=3, episodes_per_batch=4, horizon=40)
    assert isinstance(info.value, reinforce.TrainingDivergedError)
    assert info.value.iteration == 0 and len(info.value.history) == 0
    for p, q in zip(before, policy.parameters()):
        assert torch.equal(p, q)


def test_non_finite_gradients_stop_training_before_the_update() -> None:
    # sigma = exp(-1500) underflows to 0 in float64 and 1/sigma overflows even when
    # applied in two halves (beyond twice the exponent range): the sampled actions
    # are the mean and the gradient of the log-density is 0 * inf = NaN. The
    # callback breaks sigma after two healthy iterations.
    policy = LearnedStdPolicy(1, 1, dtype=F64)
    before: list[torch.Tensor] = []

    def break_sigma_after_two_updates(i: int, history: reinforce.History) -> None:
        if i == 1:
            with torch.no_grad():
                policy.log_std_param.fill_(-1500.0)
            before.extend(p.detach().clone() for p in policy.parameters())

    with pytest.raises(RuntimeError, match=r"gradient estimate is not finite at iteration 2.*clamp log sigma") as info:
        reinforce.train(
            lqr.task_1d(), policy, iterations=5, episodes_per_batch=4, horizon=5, callback=break_sigma_after_two_updates
        )
    assert info.value.iteration == 2 and len(info.value.history) == 2
    assert len(before) == 2
    for p, q in zip(before, policy.parameters()):
        assert torch.equal(p, q)  # not updated: still the finite mean gain and the broken log sigma
    assert bool(torch.isfinite(policy.mean_head.weight).all())


def test_history_without_an_optimum_has_no_gap() -> None:
    history = reinforce.History(episodes=[1], exact_return_mean=[-1.0])
    with pytest.raises(ValueError, match="no finite optimum"):
        history.relative_gap()


def test_surrogate_loss_gradient_is_minus_the_mean_of_per_episode_gradients() -> None:
    # Two independent routes to the REINFORCE estimate: backward through the surrogate loss,
    # and vmap of per-episode gradients (torch.func). They must agree to rounding.
    task = lqr.task_2d()
    policy = CholeskyPolicy(2, 2, state_dependent=False, init_std=0.7, dtype=torch.float64)
    batch = rollouts.rollout(task, policy, episodes=32, horizon=15, generator=torch.Generator().manual_seed(4))
    weights = batch.discounts * reinforce.reward_to_go(batch.rewards, batch.gamma)
    loss = reinforce.surrogate_loss(policy.log_prob(batch.states, batch.actions), weights)
    named = [(name, p) for name, p in policy.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in named])
    per_episode = reinforce.per_episode_gradients(policy, batch.states, batch.actions, weights)
    for (name, _), g in zip(named, grads):
        torch.testing.assert_close(-g, per_episode[name].mean(0), rtol=1e-10, atol=1e-12)


def test_surrogate_loss_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="log_prob and weights"):
        reinforce.surrogate_loss(torch.zeros(4, 3), torch.zeros(4, 2))


def test_reward_to_go_matches_the_backward_recursion() -> None:
    # 300 steps: two full blocks of 128 and a partial one, so the carry between blocks is tested.
    rewards = torch.randn(5, 300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.empty_like(rewards)
    running = torch.zeros(5, dtype=torch.float64)
    for t in range(299, -1, -1):
        running = rewards[:, t] + 0.93 * running
        expected[:, t] = running
    torch.testing.assert_close(reinforce.reward_to_go(rewards, 0.93), expected, rtol=1e-12, atol=1e-12)


def test_reward_to_go_is_finite_for_long_episodes_and_tiny_discounts() -> None:
    rewards = torch.ones(2, 5000, dtype=torch.float64)
    rtg = reinforce.reward_to_go(rewards, 0.01)
    assert torch.isfinite(rtg).all()
    torch.testing.assert_close(rtg[:, 0], torch.full((2,), 1 / 0.99, dtype=torch.float64), rtol=1e-12, atol=0)


def test_train_config_is_frozen_and_validated_once() -> None:
    config = reinforce.TrainConfig(iterations=3, lr=0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 0.2  # type: ignore[misc]
    for bad, message in (
        ({"iterations": 2.5}, "iterations must be a positive integer"),
        ({"iterations": True}, "iterations must be a positive integer"),
        ({"episodes_per_batch": 1}, "episodes_per_batch must be an integer >= 2"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"anneal_lr": 1}, "anneal_lr must be True or False"),
        ({"optimizer": "rmsprop"}, "optimizer must be"),
    ):
        with pytest.raises(ValueError, match=message):
            reinforce.TrainConfig(**bad)


def test_train_takes_a_config_and_keyword_overrides_alike() -> None:
    task = lqr.task_1d()
    config = reinforce.TrainConfig(iterations=4, episodes_per_batch=8, horizon=10, seed=3)
    first = reinforce.train(task, LearnedStdPolicy(1, 1, dtype=torch.float64), config)
    second = reinforce.train(
        task, LearnedStdPolicy(1, 1, dtype=torch.float64), iterations=4, episodes_per_batch=8, horizon=10, seed=3
    )
    assert first.exact_return_mean == second.exact_return_mean
    assert first.grad_variance == []  # per-episode gradients only when asked for


def test_recorded_gradient_variance_is_the_per_episode_formula() -> None:
    # Independent route: the first batch of train is the first draw of its seeded generator; the
    # per-episode gradients are taken here one episode at a time with plain autograd, and the
    # variance (1 / (N (N - 1))) sum ||g_i - mean||^2 is computed in NumPy.
    import numpy as np

    task = lqr.task_1d()
    policy = LearnedStdPolicy(1, 1, init_std=0.6, dtype=torch.float64)
    reference = LearnedStdPolicy(1, 1, init_std=0.6, dtype=torch.float64)
    history = reinforce.train(
        task, policy, iterations=1, episodes_per_batch=6, horizon=8, seed=5, baseline="mean",
        record_gradient_variance=True,
    )
    batch = rollouts.rollout(task, reference, episodes=6, horizon=8, generator=torch.Generator().manual_seed(5))
    rtg = reinforce.reward_to_go(batch.rewards, batch.gamma)
    weights = batch.discounts * (rtg - reinforce.leave_one_out_mean(rtg))
    rows = []
    for i in range(6):
        log_prob = reference.log_prob(batch.states[i], batch.actions[i])
        grads = torch.autograd.grad((weights[i] * log_prob).sum(), list(reference.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
    g = np.stack(rows)
    expected = ((g - g.mean(0)) ** 2).sum() / (6 * 5)
    assert history.grad_variance[0] == pytest.approx(expected, rel=1e-10)


def test_learned_baseline_takes_over_after_the_first_batch() -> None:
    # Both runs use the leave-one-out mean on the first batch; from the second on, the learned
    # baseline changes the weights, so the recorded variance must differ (a silent fall-back to the
    # mean baseline would make the two runs identical).
    task = lqr.task_2d()
    runs = {}
    for baseline in ("mean", "learned"):
        policy = LearnedStdPolicy(2, 2, init_std=0.5, dtype=torch.float64)
        runs[baseline] = reinforce.train(
            task, policy, iterations=3, episodes_per_batch=16, horizon=20, seed=1, baseline=baseline,
            record_gradient_variance=True,
        ).grad_variance
    assert runs["mean"][0] == runs["learned"][0]
    assert runs["mean"][1] != runs["learned"][1] and runs["mean"][2] != runs["learned"][2]


def test_estimate_gradient_draws_the_learned_baselines_pilot_from_its_generator() -> None:
    task = lqr.task_2d()
    policy = LearnedStdPolicy(2, 2, init_std=0.5, dtype=torch.float64)
    estimates = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)  # the global stream must not matter
        estimates.append(
            reinforce.estimate_gradient(
                task, policy, episodes=8, horizon=10, baseline="learned", generator=torch.Generator().manual_seed(3)
            )
        )
    for name in estimates[0].gradient:
        assert torch.equal(estimates[0].gradient[name], estimates[1].gradient[name])
    mean_baseline = reinforce.estimate_gradient(
        task, policy, episodes=8, horizon=10, baseline="mean", generator=torch.Generator().manual_seed(3)
    )
    assert any(not torch.equal(mean_baseline.gradient[n], estimates[0].gradient[n]) for n in mean_baseline.gradient)


@pytest.mark.parametrize(("field", "value"), [("lr", True), ("num_threads", 0), ("num_threads", 1.5), ("seed", -1)])
def test_train_config_refuses_more_bad_settings(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        reinforce.TrainConfig(**{field: value})
