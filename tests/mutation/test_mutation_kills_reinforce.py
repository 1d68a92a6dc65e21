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
