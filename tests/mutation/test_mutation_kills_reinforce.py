"""pgnotes.reinforce: the batch summaries of an estimate, recomputed from its episodes with NumPy (`make mutation`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgnotes import lqr, reinforce
from pgnotes.policies import LearnedStdPolicy

F64 = torch.float64


def _policy() -> LearnedStdPolicy:
    policy = LearnedStdPolicy(2, 2, init_std=0.5, dtype=F64)
    with torch.no_grad():
        policy.mean_head.weight.copy_(torch.tensor([[-0.2, 0.1], [0.0, -0.3]]))
    return policy


@pytest.mark.parametrize("baseline", ["none", "mean"])
def test_estimate_summaries_agree_with_its_episodes(baseline: str) -> None:
    task = lqr.task_2d()
    horizon = 12
    estimate = reinforce.estimate_gradient(
        task, _policy(), episodes=40, horizon=horizon, baseline=baseline, generator=torch.Generator().manual_seed(21)
    )
    rewards = estimate.rollout.rewards.numpy()
    episodes = rewards.shape[0]
    # The discounted return of each episode, summed directly from its rewards.
    returns = (rewards * task.gamma ** np.arange(rewards.shape[1])).sum(axis=1)
    assert estimate.sample_return == pytest.approx(returns.mean(), rel=1e-12)
    assert estimate.sample_return_se == pytest.approx(returns.std(ddof=1) / math.sqrt(episodes), rel=1e-12)
    # The variance of the batch-mean gradient: the unbiased per-coordinate variances over episodes, divided by N.
    flat = np.concatenate([g.reshape(episodes, -1).numpy() for g in estimate.per_episode.values()], axis=1)
    assert estimate.variance == pytest.approx(flat.var(axis=0, ddof=1).sum() / episodes, rel=1e-12)


def test_relative_gap_is_the_shortfall_as_a_fraction_of_the_optimum() -> None:
    history = reinforce.History(optimal_return=-4.0)
    history.exact_return_mean.extend([-8.0, -5.0, -4.0])
    history.exact_return.extend([-9.0, -6.0, -4.4])
    # (J* - J) / |J*| by hand: (-4 + 8) / 4 = 1, (-4 + 5) / 4 = 0.25, 0; and for the stochastic policy 1.25, 0.5, 0.1.
    assert history.relative_gap() == pytest.approx([1.0, 0.25, 0.0])
    assert history.relative_gap(stochastic=True) == pytest.approx([1.25, 0.5, 0.1])
    assert history.first_within(0.3) == 1
    assert history.first_within(0.3, stochastic=True) == 2


def test_training_history_sample_returns_are_unbiased_with_honest_standard_errors() -> None:
    """Each iteration's sample return estimates the exact return of the policy that drew it.

    Without a horizon the episodes run to the task's effective horizon (gamma^T <= 1e-3), so the
    truncation bias is about 1e-3 |J|, far below a standard error. Over 12 iterations the mean of
    z^2 is then chi-square(12)/12 for independent batches: below 0.1 or above 3 with probability
    under 1e-3 each (the seed is fixed, so the test is deterministic).
    """
    history = reinforce.train(lqr.task_2d(), _policy(), iterations=12, episodes_per_batch=64, lr=0.01, baseline="mean", seed=3)
    z = np.array(history.sample_return) - np.array(history.exact_return)
    z /= np.array(history.sample_return_se)
    assert 0.1 < float(np.mean(z**2)) < 3.0


def test_a_mean_baseline_lowers_the_recorded_gradient_variance() -> None:
    """Subtracting the leave-one-out mean return removes most of the spread of the weights (returns near -20 here)."""
    settings = dict(iterations=1, episodes_per_batch=64, lr=1e-6, seed=5, record_gradient_variance=True)
    without = reinforce.train(lqr.task_2d(), _policy(), baseline="none", **settings).grad_variance[0]
    with_mean = reinforce.train(lqr.task_2d(), _policy(), baseline="mean", **settings).grad_variance[0]
    assert with_mean < 0.5 * without
