"""``describe``: the signature of an exercise, as the checker calls the student's function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from pgnotes.exercises._registry import _as_output_tuple, get


class ExerciseDescription:
    """What :func:`describe` returns: prints (and shows in a notebook) as the text."""

    def __init__(self, name: str, signature: str, text: str) -> None:
        self.name = name
        self.signature = signature
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor ({str(value.dtype).removeprefix('torch.')})"
    return type(value).__name__


def _seen(values: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(values))


def describe(name: str, *, seed: int = 0) -> ExerciseDescription:
    """The signature of exercise ``name``: argument order, shapes, and the order of the outputs.

    The shapes are those of the checker's cases (seeded by ``seed``), and the output shapes are
    what the reference returns on them.
    """
    exercise = get(name)
    cases = list(exercise.make_cases(torch.Generator().manual_seed(seed)))
    arguments = list(cases[0].inputs) if cases else []
    outputs = exercise.outputs or ("output",)
    returns = f"({', '.join(outputs)})" if exercise.outputs else "output"
    signature = f"{name}({', '.join(arguments)}) -> {returns}"
    lines = [signature, f"    {exercise.description}", "Arguments, by position in this order (your parameter names do not matter):"]
    width = max(map(len, [*arguments, *outputs]), default=0)
    for argument in arguments:
        values = [case.inputs[argument] for case in cases]
        if isinstance(values[0], torch.Tensor):
            seen = "shapes " + _seen([str(tuple(v.shape)) for v in values])
        elif isinstance(values[0], (bool, int, float, str)):
            seen = "values " + _seen([repr(v) for v in values])
        else:
            seen = "objects of type " + _seen([type(v).__name__ for v in values])
        lines.append(f"    {argument:<{width}}  {_kind(values[0])}; in the cases: {seen}")
    results = [_as_output_tuple(exercise, exercise.reference(*case.inputs.values()), "the reference") for case in cases]
    if exercise.outputs:
        lines.append(f"Returns a tuple of {len(outputs)} tensors, in this order:")
    else:
        lines.append("Returns one tensor:")
    for index, output in enumerate(outputs):
        shapes = _seen([str(tuple(result[index].shape)) for result in results])
        lines.append(f"    {output:<{width}}  same dtype as the inputs; in the cases: shapes {shapes}")
    lines.append(f"Cases ({len(cases)}): " + "; ".join(case.label for case in cases))
    lines.append(
        f"Each output entry passes if |got - expected| <= atol + rtol * |expected|, "
        f"atol={exercise.atol:g}, rtol={exercise.rtol:g}."
    )
    return ExerciseDescription(name, signature, "\n".join(lines))
