"""Exercises on the REINFORCE loop of :mod:`pgnotes.reinforce`."""

from __future__ import annotations

import torch

from pgnotes import reinforce
from pgnotes.exercises._registry import Case, register
from pgnotes.exercises._inputs import ELEMENTWISE, positive, randn


def _reward_to_go_cases(generator: torch.Generator) -> list[Case]:
    """Inputs (rewards, gamma) of the reward-to-go exercise; leading axes are episodes."""
    return [
        Case("one episode of 8 steps, gamma 0.9", {"rewards": randn(generator, 8), "gamma": 0.9}),
        Case("batch of 5 episodes x 12 steps, gamma 0.5", {"rewards": randn(generator, 5, 12), "gamma": 0.5}),
        Case("batch (3, 4) of episodes of 6 steps, gamma 0.99", {"rewards": randn(generator, 3, 4, 6), "gamma": 0.99}),
        Case("episodes of a single step", {"rewards": randn(generator, 4, 1), "gamma": 0.9}),
        Case("gamma = 1 (no discount)", {"rewards": randn(generator, 2, 7), "gamma": 1.0}),
        Case(
            "2 episodes of 1500 steps, gamma 0.5 (gamma^t underflows to 0 in float64 after t = 1074)",
            {"rewards": -positive(generator, 2, 1500), "gamma": 0.5},
        ),
    ]


register(
    "reward_to_go",
    "discounted rewards-to-go G_t = sum_{t' >= t} gamma^(t' - t) r_t' along the last axis",
    reinforce.reward_to_go,
    _reward_to_go_cases,
    ELEMENTWISE,
)
