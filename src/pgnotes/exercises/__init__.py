r"""Homework checkers: run a student's function next to the reference answer.

Usage in a notebook::

    from pgnotes import exercises
    exercises.available()                      # names and one-line descriptions
    print(exercises.describe("normal_score"))  # argument order, shapes, order of the outputs
    exercises.check("normal_score", my_normal_score)

:func:`check` calls the student's function and the reference (from :mod:`pgnotes.gaussian`, or
whatever a module registered) on seeded random inputs (broadcast batches among them where the
function takes them). It prints one line and returns a :class:`CheckResult` when every case passes, and otherwise raises
:class:`CheckFailed` (an ``AssertionError``) saying which output is wrong, for which input, expected
against got, and the tolerance. Student functions are called with positional arguments in the
order :func:`describe` shows, so their parameter names do not matter.

A submission cannot break the checker: a call that does not return within ``timeout`` seconds,
that calls ``sys.exit``, raises ``KeyboardInterrupt`` or any other exception, returns a tensor on
another device, or modifies its inputs in place is a failed case with a message; a stub that raises
``NotImplementedError`` (or returns ``None`` or ``...``) is "not implemented yet".

:func:`grade` is the grading mode, for autograders: it never raises for the submission, refuses a
submission that calls the reference implementation of the exercise it is graded on, and returns the
:class:`CheckResult`, whose ``score`` (the fraction of cases passed) gives partial credit.

The exercises are registered beside the concept they check, in ``pgnotes.exercises.gaussian``,
``pgnotes.exercises.estimators`` and ``pgnotes.exercises.reinforce``; looking up a name imports only
its module. Other code adds exercises with :func:`register`.
"""

from pgnotes.exercises._checking import DEFAULT_TIMEOUT, CaseResult, CheckFailed, CheckResult, check, grade
from pgnotes.exercises._describe import ExerciseDescription, describe
from pgnotes.exercises._registry import Case, Exercise, available, get, register

__all__ = [
    "DEFAULT_TIMEOUT",
    "Case",
    "CaseResult",
    "CheckFailed",
    "CheckResult",
    "Exercise",
    "ExerciseDescription",
    "available",
    "check",
    "describe",
    "get",
    "grade",
    "register",
]

# Documented, shown in tracebacks and pickled under the name users import them by.
for _public in (Case, CaseResult, CheckFailed, CheckResult, Exercise, ExerciseDescription,
                available, check, describe, get, grade, register):
    _public.__module__ = __name__
del _public
