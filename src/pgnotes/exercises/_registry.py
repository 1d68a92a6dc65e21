"""The registry of exercises: what an exercise is, registering one, and looking one up.

:data:`pgnotes.exercises._catalogue.MODULES` says which module registers which name, so that a
look-up imports only the module it needs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pgnotes.exercises import _catalogue


@dataclass(frozen=True)
class Case:
    """One set of inputs for an exercise.

    Attributes:
        label: What the case exercises, e.g. ``"std shared by the batch (broadcast)"``.
        inputs: The arguments, in call order, by name.
    """

    label: str
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class Exercise:
    """A registered exercise.

    Attributes:
        name: The name passed to :func:`check`.
        description: One line shown by :func:`available`.
        reference: The reference implementation.
        make_cases: ``make_cases(generator)`` returns the :class:`Case` list to run.
        outputs: Names of the outputs if the function returns a tuple, else ``None``.
        atol: Absolute tolerance of the comparison.
        rtol: Relative tolerance of the comparison.
        elementwise: Whether each output entry depends only on the broadcast input entries at
            the same index (failure messages then show those input values).
        forbidden: Functions a graded submission must not call: the reference and, when the
            reference is an adapter, the package function it adapts.
    """

    name: str
    description: str
    reference: Callable[..., Any]
    make_cases: Callable[[torch.Generator], Sequence[Case]]
    outputs: tuple[str, ...] | None
    atol: float
    rtol: float
    elementwise: bool = False
    forbidden: tuple[Callable[..., Any], ...] = ()


_REGISTRY: dict[str, Exercise] = {}


def register(
    name: str,
    description: str,
    reference: Callable[..., Any],
    make_cases: Callable[[torch.Generator], Sequence[Case]],
    tolerance: tuple[float, float],
    *,
    outputs: Sequence[str] | None = None,
    elementwise: bool = False,
    forbidden: Sequence[Callable[..., Any]] = (),
    replace: bool = False,
) -> Exercise:
    """Register an exercise for :func:`check`.

    Args:
        name: Unique name of the exercise.
        description: One line for :func:`available`.
        reference: The reference answer; called with the same positional arguments as the
            student's function.
        make_cases: ``make_cases(generator)`` returns a list of :class:`Case`; the generator
            is seeded, so the cases are the same on every run.
        tolerance: ``(atol, rtol)``: an output entry passes if
            ``|got - expected| <= atol + rtol * |expected|``.
        outputs: Names of the outputs when the function returns a tuple (shown in messages,
            e.g. ``("d_mean", "d_std")``); ``None`` for a single tensor.
        elementwise: Whether each output entry depends only on the input entries at the same
            (broadcast) index, as for the univariate scores; failure messages then show them.
        forbidden: Further functions that :func:`grade` refuses a submission for calling (the
            reference always is), e.g. the package function that an adapter ``reference`` wraps.
        replace: Allow replacing an existing exercise of the same name (re-running a chapter).

    Returns:
        The registered :class:`Exercise`.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"an exercise named {name!r} is already registered (pass replace=True to replace it)")
    atol, rtol = tolerance
    if not (atol >= 0 and rtol >= 0):
        raise ValueError(f"tolerance must be two non-negative numbers (atol, rtol), got {tolerance!r}")
    exercise = Exercise(
        name, description, reference, make_cases, tuple(outputs) if outputs else None, float(atol), float(rtol),
        elementwise, (reference, *forbidden),
    )
    _REGISTRY[name] = exercise
    return exercise


def _load_all() -> None:
    for module in _catalogue.MODULES:
        importlib.import_module(module)


def get(name: str) -> Exercise:
    """The registered :class:`Exercise` called ``name``, importing the module that registers it."""
    if name not in _REGISTRY:
        module = next((m for m, names in _catalogue.MODULES.items() if name in names), None)
        if module is not None:
            importlib.import_module(module)
    if name not in _REGISTRY:
        _load_all()
        raise KeyError(f"no exercise named {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def available() -> dict[str, str]:
    """The registered exercises: name to one-line description, in the book's order."""
    _load_all()
    return {name: exercise.description for name, exercise in _REGISTRY.items()}


def _as_output_tuple(exercise: Exercise, result: Any, who: str) -> tuple[Any, ...]:
    if exercise.outputs is None:
        if isinstance(result, (tuple, list)):
            raise AssertionError(
                f"{exercise.name}: {who} returned a {type(result).__name__} of {len(result)} values; "
                "expected a single tensor"
            )
        return (result,)
    count = len(exercise.outputs)
    if not isinstance(result, (tuple, list)) or len(result) != count:
        got = f"a {type(result).__name__} of {len(result)} values" if isinstance(result, (tuple, list)) else (
            f"a single {type(result).__name__}"
        )
        raise AssertionError(
            f"{exercise.name}: {who} must return a tuple of {count} tensors "
            f"({', '.join(exercise.outputs)}), got {got}"
        )
    return tuple(result)
