"""Running a submission against an exercise's reference, case by case, and the result.

Nothing here knows an exercise: the per-concept modules (``pgnotes.exercises.gaussian``, ...)
register them in :mod:`pgnotes.exercises._registry`.

A submitted function runs in a worker thread, one call per case, so that the checker survives it:
a call that does not return within the timeout is a failed case (the thread is then sent an
exception, which stops a Python loop; a call stuck inside compiled code keeps its daemon thread
until the process ends), and ``SystemExit``, ``KeyboardInterrupt`` and every other exception raised
by the function are failed cases with a message. A genuine Ctrl-C while waiting still interrupts
the checker.
"""

from __future__ import annotations

import inspect
import math
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pgnotes.exercises._registry import Case, Exercise, _as_output_tuple, get

DEFAULT_TIMEOUT = 10.0  # seconds for one call of a submitted function; correct answers take milliseconds
_MAX_SHOWN = 4  # entries of each input shown in a failure message


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: its label, whether it passed, and why not."""

    label: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`check` or :func:`grade`: one :class:`CaseResult` per case.

    ``score`` is the fraction of cases passed, for partial credit; an exercise without cases
    scores 0 and is never ``ok``.
    """

    name: str
    cases: tuple[CaseResult, ...]
    atol: float
    rtol: float
    _shown: list[bool] = field(default_factory=lambda: [False], repr=False, compare=False)

    @property
    def passed(self) -> int:
        """Number of cases passed."""
        return sum(case.passed for case in self.cases)

    @property
    def failed(self) -> int:
        """Number of cases failed."""
        return len(self.cases) - self.passed

    @property
    def score(self) -> float:
        """Fraction of the cases passed, in [0, 1]; 0 when there are no cases."""
        return self.passed / len(self.cases) if self.cases else 0.0

    @property
    def ok(self) -> bool:
        """Whether there was at least one case and every case passed."""
        return bool(self.cases) and self.failed == 0

    @property
    def messages(self) -> tuple[str, ...]:
        """The message of each failed case, in case order."""
        return tuple(case.message for case in self.cases if not case.passed)

    def summary(self) -> str:
        """One line: all passed, or how many passed."""
        tolerance = f"tolerance atol={self.atol:g}, rtol={self.rtol:g}"
        if self.ok:
            return f"{self.name}: all {len(self.cases)} cases passed ({tolerance})"
        if not self.cases:
            return f"{self.name}: the exercise has no cases, so nothing was checked"
        return f"{self.name}: {self.passed} of {len(self.cases)} cases passed (score {self.score:.2f}; {tolerance})"

    def report(self) -> str:
        """The summary line, then the message of every failed case."""
        return "\n".join([self.summary(), *self.messages])

    def assert_passed(self, *cases: int | str) -> None:
        """Raise ``AssertionError`` with the failure messages unless the given cases passed.

        Args:
            *cases: Case indices or labels; none means every case (and there must be one).
        """
        chosen = list(self.cases) if not cases else [self._case(key) for key in cases]
        failures = [case.message for case in chosen if not case.passed]
        if not chosen:
            failures.append(self.summary())
        if failures:
            raise AssertionError("\n".join(failures))

    def _case(self, key: int | str) -> CaseResult:
        if isinstance(key, int):
            return self.cases[key]
        for case in self.cases:
            if case.label == key:
                return case
        raise KeyError(f"{self.name} has no case labelled {key!r}")

    def _ipython_display_(self) -> None:
        # check() prints the report itself; showing it again under the cell would repeat it.
        if not self._shown[0]:
            print(self.report())
            self._shown[0] = True


class CheckFailed(AssertionError):
    """Raised by :func:`check` when a case fails: the first failure's message, and ``result``."""

    def __init__(self, message: str, result: CheckResult) -> None:
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------------
# Running one call of the submitted function


@dataclass
class _Call:
    """What happened in one call: a value, an exception, or no return within the timeout."""

    value: Any = None
    error: BaseException | None = None
    returned: bool = False
    forbidden_called: str | None = None


class _Abandoned(BaseException):
    """Raised in a worker whose call outlived the timeout, at its next line, to end a Python loop."""


def _qualified(function: Callable[..., Any]) -> str:
    function = inspect.unwrap(function)
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def _codes(functions: Sequence[Callable[..., Any]]) -> dict[Any, str]:
    codes = {}
    for function in functions:
        code = getattr(inspect.unwrap(function), "__code__", None)
        if code is not None:
            codes[code] = _qualified(function)
    return codes


def _call(function: Callable[..., Any], arguments: list[Any], timeout: float, forbidden: Mapping[Any, str]) -> _Call:
    """Call ``function(*arguments)`` in a worker thread, waiting at most ``timeout`` seconds.

    The worker runs under a trace function that notes calls to ``forbidden`` code and, once the
    timeout has passed, raises :class:`_Abandoned` at the next line the worker executes, so that a
    Python loop ends instead of spinning in the background. (A trace function rather than an
    asynchronous exception: the latter, left pending on a thread asleep in compiled code, stalls
    the other threads of CPython 3.11.)
    """
    outcome = _Call()
    abandoned = [False]

    def on_line(frame: Any, event: str, arg: Any) -> Any:
        if abandoned[0]:
            raise _Abandoned
        return on_line

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        if outcome.forbidden_called is None and frame.f_code in forbidden:
            outcome.forbidden_called = forbidden[frame.f_code]
        return on_line(frame, event, arg)

    def run() -> None:
        sys.settrace(on_call)
        try:
            outcome.value = function(*arguments)
            outcome.returned = True
        except BaseException as exc:  # the submission's SystemExit or KeyboardInterrupt is a failed case too
            outcome.error = exc
        finally:
            sys.settrace(None)

    worker = threading.Thread(target=run, name="pgnotes-exercise", daemon=True)
    worker.start()
    try:
        worker.join(timeout)
    finally:  # also on a real Ctrl-C while waiting, which then goes through
        if worker.is_alive():
            abandoned[0] = True
            outcome.returned, outcome.error = False, None
    return outcome


# ---------------------------------------------------------------------------------------------
# Comparing one case


def _as_tensor_or_none(value: Any) -> torch.Tensor | None:
    """``value`` as a tensor when it is a tensor, a number or a nested list of numbers, else None."""
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _input_text(name: str, value: Any) -> str:
    tensor = _as_tensor_or_none(value)
    return f"{name} {type(value).__name__}" if tensor is None else f"{name} {tuple(tensor.shape)}"


def _describe_inputs(inputs: Mapping[str, Any], index: tuple[int, ...] | None, shape: torch.Size | None) -> str:
    """Shapes of the inputs and a few values, aligned with the failing output entry where possible."""
    parts = []
    for name, value in inputs.items():
        tensor = _as_tensor_or_none(value)
        if tensor is None:  # a task, a dataclass of noise, ...: named by its type
            parts.append(f"{name} {type(value).__name__}")
            continue
        text = f"{name} shape {tuple(tensor.shape)}"
        if index is not None and shape is not None:
            try:
                text += f" value at that entry {float(torch.broadcast_to(tensor, shape)[index]):.6g}"
                parts.append(text)
                continue
            except RuntimeError:
                pass
        flat = tensor.reshape(-1)[:_MAX_SHOWN].tolist()
        more = ", ..." if tensor.numel() > _MAX_SHOWN else ""
        text += " values [" + ", ".join(f"{v:.4g}" for v in flat) + more + "]"
        parts.append(text)
    return "; ".join(parts)


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


def _unchanged(before: Any, after: Any) -> bool:
    if not isinstance(before, torch.Tensor):
        return True
    return before.shape == after.shape and before.dtype == after.dtype and bool(torch.equal(before, after))


def _compare(exercise: Exercise, case: Case, expected_all: tuple[Any, ...], got_all: Any, where: str) -> None:
    """Raise ``AssertionError`` with a message unless ``got_all`` matches the reference."""
    got_all = _as_output_tuple(exercise, got_all, "your function")
    names = exercise.outputs or ("output",)
    for name, expected, got in zip(names, expected_all, got_all):
        if not isinstance(got, torch.Tensor):
            try:
                # A Python number is a double: it keeps the reference's float64, not torch's float32 default.
                is_number = isinstance(got, float) or (isinstance(got, int) and not isinstance(got, bool))
                dtype = expected.dtype if is_number and isinstance(expected, torch.Tensor) else None
                got = torch.as_tensor(got, dtype=dtype)
            except (TypeError, ValueError, RuntimeError):
                raise AssertionError(
                    f"{exercise.name}: {name} must be a tensor, got {type(got).__name__}\n{where}"
                ) from None
        if got.device != expected.device:
            raise AssertionError(
                f"{exercise.name}: {name} is on device {got.device}, expected {expected.device} "
                f"(the inputs' device; do not move tensors with .to() or .cuda())\n{where}"
            )
        if got.shape != expected.shape:
            raise AssertionError(
                f"{exercise.name}: {name} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}\n{where}"
            )
        dtype_note = (
            f" (your {name} is {got.dtype}; compute in the inputs' dtype {expected.dtype})"
            if got.dtype != expected.dtype
            else ""
        )
        if got.is_complex() or got.dtype == torch.bool:
            raise AssertionError(f"{exercise.name}: {name} must hold real numbers, got dtype {got.dtype}\n{where}")
        got64 = got.detach().to(torch.float64)
        expected64 = expected.detach().to(torch.float64)
        error = (got64 - expected64).abs()
        bad = ~(error <= exercise.atol + exercise.rtol * expected64.abs())  # NaN counts as bad
        if bool(bad.any()):
            score = torch.where(torch.isnan(error), torch.full_like(error, math.inf), error)
            flat = int((score * bad).reshape(-1).argmax()) if score.numel() else 0
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), expected.shape))
            raise AssertionError(
                f"{exercise.name}: {name} is wrong at index {list(index)}: expected "
                f"{float(expected64[index]):.10g}, got {float(got64[index]):.10g} "
                f"({int(bad.sum())} of {bad.numel()} entries differ; tolerance atol={exercise.atol:g}, "
                f"rtol={exercise.rtol:g}){dtype_note}\n{where}\n  "
                f"{_describe_inputs(case.inputs, index if exercise.elementwise else None, expected.shape)}"
            )


def _run_case(
    exercise: Exercise, case: Case, function: Callable[..., Any], timeout: float, forbidden: Mapping[Any, str]
) -> tuple[CaseResult, bool]:
    """One case; also returns whether the call came back (a hung call ends the run)."""
    expected_all = _as_output_tuple(exercise, exercise.reference(*map(_copy, case.inputs.values())), "the reference")
    originals = list(case.inputs.values())
    arguments = [_copy(value) for value in originals]
    shapes = ", ".join(_input_text(n, v) for n, v in case.inputs.items())
    where = f"  case: {case.label}\n  inputs: {shapes}"

    def failed(message: str) -> CaseResult:
        return CaseResult(case.label, False, message)

    call = _call(function, arguments, timeout, forbidden)
    if call.forbidden_called is not None:
        return failed(
            f"{exercise.name}: your function calls the reference implementation {call.forbidden_called}; "
            f"graded work must compute the answer itself\n{where}"
        ), True
    if call.error is None and not call.returned:
        return failed(
            f"{exercise.name}: your function did not return within {timeout:g} s "
            f"(an endless loop, or a computation far slower than needed)\n{where}"
        ), False
    error = call.error
    if isinstance(error, NotImplementedError):
        return failed(f"{exercise.name}: not implemented yet (your function raised NotImplementedError)"), True
    if isinstance(error, SystemExit):
        return failed(
            f"{exercise.name}: your function called sys.exit({error.code!r}) (raised SystemExit); "
            f"return the result instead\n{where}"
        ), True
    if error is not None:
        return failed(f"{exercise.name}: your function raised {type(error).__name__}: {error}\n{where}"), True
    if call.value is None or call.value is Ellipsis:
        return failed(f"{exercise.name}: not implemented yet (your function returned {call.value!r})"), True
    changed = [n for n, before, after in zip(case.inputs, originals, arguments) if not _unchanged(before, after)]
    if changed:
        return failed(
            f"{exercise.name}: your function modified its input {', '.join(changed)} in place "
            f"(an in-place operation such as +=, [...] = or add_()); leave the inputs unchanged\n{where}"
        ), True
    try:
        _compare(exercise, case, expected_all, call.value, where)
    except AssertionError as failure:
        return failed(str(failure)), True
    return CaseResult(case.label, True), True


def _run(name: str, function: Callable[..., Any], seed: int, timeout: float, refuse_reference: bool) -> CheckResult:
    exercise = get(name)
    if not callable(function):
        raise TypeError(f"the function to check must be callable, got {type(function).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    forbidden = _codes(exercise.forbidden) if refuse_reference else {}
    results: list[CaseResult] = []
    hung = False
    for case in exercise.make_cases(torch.Generator().manual_seed(seed)):
        if hung:
            results.append(CaseResult(case.label, False, f"{name}: not run: your function did not return on an earlier case"))
            continue
        result, returned = _run_case(exercise, case, function, timeout, forbidden)
        results.append(result)
        hung = not returned
    return CheckResult(name, tuple(results), exercise.atol, exercise.rtol)


def check(name: str, student_fn: Callable[..., Any], *, seed: int = 0, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """Run ``student_fn`` against the reference of exercise ``name``, on every case.

    Prints one line when every case passes and returns the :class:`CheckResult`. Otherwise raises
    :class:`CheckFailed` (an ``AssertionError``) whose message is the first failure (the case, the
    inputs, expected against got and the tolerance) and whose ``result`` holds every case.

    Args:
        name: An exercise name, see :func:`available` and :func:`describe`.
        student_fn: The function to check, called with the same positional arguments as
            the reference.
        seed: Seed of the random inputs.
        timeout: Seconds one call may take before it counts as a failed case.
    """
    result = _run(name, student_fn, seed, timeout, refuse_reference=False)
    if not result.ok:
        raise CheckFailed(result.messages[0] if result.messages else result.summary(), result)
    print(result.summary())
    result._shown[0] = True
    return result


_GRADED: weakref.WeakKeyDictionary[Any, dict[tuple[str, int, float], CheckResult]] = weakref.WeakKeyDictionary()


def grade(name: str, student_fn: Callable[..., Any], *, seed: int = 0, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
    """Grading mode of :func:`check`: never raises for the submission, refuses calls to the reference.

    A case fails if the submission calls the reference implementation of exercise ``name`` (or
    another function the exercise forbids), however it was imported. Prints nothing; the result's
    ``score`` is the fraction of cases passed and :meth:`CheckResult.assert_passed` turns chosen
    cases into a pass/fail test. The result is remembered for the same function object, so
    several tests of one submission run (and, for a hanging function, wait) once.
    """
    key = (name, seed, float(timeout))
    try:
        remembered = _GRADED.setdefault(student_fn, {})
    except TypeError:  # not weakly referenceable: grade afresh each time
        remembered = {}
    if key not in remembered:
        remembered[key] = _run(name, student_fn, seed, timeout, refuse_reference=True)
    return remembered[key]
