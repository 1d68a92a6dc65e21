"""pgnotes.estimators: stated behaviours the main tests left unpinned (`make mutation`)."""

from __future__ import annotations

import warnings

import pytest
import torch

from pgnotes import estimators, objectives
from pgnotes.estimators import pathwise_estimates, score_function_estimates

F64 = torch.float64
MEAN = torch.tensor(0.4, dtype=F64)
STD = torch.tensor(1.3, dtype=F64)


def _generator(seed: int = 11) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


COUPLED = [lambda a: a.flip(0) ** 2, lambda a: a * a.sum()]
COUPLED_IDS = ["each entry from its mirror", "each entry times the total"]

@pytest.mark.parametrize("coupled", COUPLED, ids=COUPLED_IDS)
def test_pathwise_refuses_a_non_elementwise_reward_on_three_samples(coupled) -> None:
    with pytest.raises(ValueError, match=r"^f must be elementwise"):
        pathwise_estimates(coupled, MEAN, STD, 3, generator=_generator())


# Every entry gets its own weight, so even two samples, or two swapped entries, are told apart.
@pytest.mark.parametrize("coupled", COUPLED, ids=COUPLED_IDS)
def test_pathwise_refuses_a_non_elementwise_reward_on_two_samples(coupled) -> None:
    # Two samples are the smallest batch in which an entry can depend on another one.
    with pytest.raises(ValueError, match=r"^f must be elementwise"):
        pathwise_estimates(coupled, MEAN, STD, 2, generator=_generator())


# Every entry gets its own weight, so even two samples, or two swapped entries, are told apart.
def test_pathwise_refuses_a_reward_that_swaps_two_samples() -> None:
    def swap_first_two(a: torch.Tensor) -> torch.Tensor:
        return a[torch.tensor([1, 0, 2, 3])] ** 2

    with pytest.raises(ValueError, match=r"^f must be elementwise"):
        pathwise_estimates(swap_first_two, MEAN, STD, 4, generator=_generator())


def test_pathwise_leaves_the_global_random_stream_alone() -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    pathwise_estimates(lambda a: a**2, MEAN, STD, 64, generator=_generator())
    assert torch.equal(torch.get_rng_state(), before)


def test_pathwise_passes_on_an_error_of_the_reward_itself() -> None:
    """A reward that fails with or without autograd is broken in itself: its own error reaches the caller."""

    def broken(a: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the simulator is not running")

    with pytest.raises(RuntimeError, match=r"^the simulator is not running$"):
        pathwise_estimates(broken, MEAN, STD, 8, generator=_generator())


def test_pathwise_explains_a_reward_that_leaves_torch() -> None:
    """A reward that works without autograd but not with it (here: through NumPy) gets the explanation."""

    def through_numpy(a: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(a.numpy() ** 2)

    with pytest.raises(ValueError, match=r"^pathwise_estimates needs the derivative df/da, but f\(a\) leaves torch"):
        pathwise_estimates(through_numpy, MEAN, STD, 8, generator=_generator())


def test_score_function_names_a_baseline_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match=r"^baseline must be a tensor, an array or a number, got str"):
        score_function_estimates(lambda a: a**2, MEAN, STD, 8, baseline="mean reward", generator=_generator())


@pytest.mark.parametrize("name", ["exact_value_step", "quadratic_reward"])
def test_moved_names_warn_and_name_their_new_home(name: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moved = getattr(estimators, name)
    assert [w.category for w in caught] == [DeprecationWarning]
    assert str(caught[0].message) == f"pgnotes.estimators.{name} has moved to pgnotes.objectives.{name}"
    assert moved is getattr(objectives, name)


def test_noise_is_drawn_in_the_parameters_float64() -> None:
    """For f(a) = a the pathwise std-estimate is the noise itself: it must be float64 draws, not float32 ones widened."""
    _, noise = pathwise_estimates(lambda a: a, MEAN, STD, 256, generator=_generator())
    assert noise.dtype == F64
    assert bool((noise.to(torch.float32).to(F64) != noise).any())
