"""Tests of pgnotes.exercises: correct answers pass with one line, wrong ones fail helpfully,
and no submission breaks the checker."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import pytest
import torch

from pgnotes import estimators, exercises, gaussian
from pgnotes.exercises import _catalogue, _registry

REQUIRED = ["normal_score", "diag_log_prob", "diag_score", "mvn_score", "tanh_log_abs_det_jacobian"]


# Independent "student" implementations: written from the formulas, not from pgnotes.gaussian.
def student_normal_score(a, mean, std):
    d = a - mean
    return d / std**2, (d**2 - std**2) / std**3


def student_diag_log_prob(a, mean, log_std):
    std = torch.exp(log_std)
    return (-0.5 * ((a - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def student_diag_score(a, mean, log_std):
    var = torch.exp(2 * log_std)
    d = a - mean
    return d / var, d**2 / var - 1


def student_mvn_score(a, mean, cov):
    cov_inv = torch.linalg.inv(cov)
    w = (cov_inv @ (a - mean).unsqueeze(-1)).squeeze(-1)
    return w, 0.5 * (w.unsqueeze(-1) * w.unsqueeze(-2) - cov_inv)


def student_tanh(u):
    return 2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))


CORRECT = {
    "normal_score": student_normal_score,
    "diag_log_prob": student_diag_log_prob,
    "diag_score": student_diag_score,
    "mvn_score": student_mvn_score,
    "tanh_log_abs_det_jacobian": student_tanh,
}


def test_available_lists_required_exercises_with_one_line_descriptions():
    listed = exercises.available()
    for name in REQUIRED:
        assert name in listed
    for name, description in listed.items():
        assert description and "\n" not in description, name


@pytest.mark.parametrize("name", REQUIRED)
def test_correct_student_solutions_pass_with_one_line(name, capsys):
    exercises.check(name, CORRECT[name])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{name}: all ") and "passed" in out


@pytest.mark.parametrize("name", list(exercises.available()))
def test_every_reference_passes_its_own_check(name, capsys):
    exercises.check(name, exercises.get(name).reference)
    assert capsys.readouterr().out.count("\n") == 1


def test_wrong_output_is_named_with_case_inputs_values_and_tolerance():
    def wrong(a, mean, std):
        d = a - mean
        return d / std**2, (d**2 - std) / std**3

    with pytest.raises(AssertionError) as info:
        exercises.check("normal_score", wrong)
    message = str(info.value)
    assert message.startswith("normal_score: d_std is wrong at index [")
    for fragment in ("expected ", "got ", "tolerance atol=", "rtol=", "case: ", "inputs: a (", "std shape", "value at that entry"):
        assert fragment in message, fragment


def test_free_entry_gradient_is_rejected_for_mvn_score():
    def free_entries(a, mean, cov):
        d_mean, g = student_mvn_score(a, mean, cov)
        return d_mean, 2 * g - torch.diag_embed(torch.diagonal(g, dim1=-2, dim2=-1))

    with pytest.raises(AssertionError, match=r"mvn_score: d_cov is wrong at index"):
        exercises.check("mvn_score", free_entries)


def test_naive_tanh_correction_fails_at_large_u():
    with pytest.raises(AssertionError, match=r"(?s)expected -38\.6137.*got -inf.*large \|u\| up to 20"):
        exercises.check("tanh_log_abs_det_jacobian", lambda u: torch.log(1 - torch.tanh(u) ** 2))


def test_missing_broadcast_or_sum_gives_a_shape_message():
    with pytest.raises(AssertionError, match=r"diag_log_prob: output has shape \(32, 10\), expected \(32,\)"):
        exercises.check("diag_log_prob", lambda a, mean, log_std: -0.5 * ((a - mean) / log_std.exp()) ** 2)


def test_wrong_number_of_outputs():
    with pytest.raises(AssertionError, match=r"must return a tuple of 2 tensors \(d_mean, d_std\), got a single Tensor"):
        exercises.check("normal_score", lambda a, mean, std: (a - mean) / std**2)
    with pytest.raises(AssertionError, match=r"must return a tuple of 2 tensors .* got a tuple of 3 values"):
        exercises.check("diag_score", lambda a, mean, log_std: (a, a, a))
    with pytest.raises(AssertionError, match=r"returned a tuple of 2 values; expected a single tensor"):
        exercises.check("diag_log_prob", lambda a, mean, log_std: (a, a))


def test_student_exception_is_reported_with_the_case():
    def broken(a, mean, std):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(AssertionError, match=r"(?s)your function raised RuntimeError: mat1 and mat2.*case: .*inputs: a \(7,\)"):
        exercises.check("normal_score", broken)


def test_float32_output_is_flagged():
    with pytest.raises(AssertionError, match=r"your output is torch.float32; compute in the inputs' dtype torch.float64"):
        exercises.check("tanh_log_abs_det_jacobian", lambda u: student_tanh(u.float()))


def test_non_tensor_output_is_reported():
    with pytest.raises(AssertionError, match="d_mean must be a tensor, got object"):
        exercises.check("normal_score", lambda a, mean, std: (object(), object()))


def test_unknown_exercise_lists_available_names():
    with pytest.raises(KeyError, match="no exercise named 'nope'; available: normal_log_prob"):
        exercises.check("nope", student_tanh)


def test_register_adds_a_checker_and_refuses_silent_replacement(capsys):
    def make_cases(g):
        return [exercises.Case("three values", {"x": torch.randn(3, dtype=torch.float64, generator=g)})]

    name = "test_double_it"
    try:
        exercises.register(name, "twice the input", lambda x: 2 * x, make_cases, (0.0, 0.0))
        assert exercises.available()[name] == "twice the input"
        exercises.check(name, lambda x: x + x)
        assert capsys.readouterr().out.startswith(f"{name}: all 1 cases passed")
        with pytest.raises(AssertionError, match="output is wrong"):
            exercises.check(name, lambda x: 2.001 * x)
        with pytest.raises(ValueError, match="already registered"):
            exercises.register(name, "again", lambda x: 2 * x, make_cases, (0.0, 0.0))
        exercises.register(name, "replaced", lambda x: 3 * x, make_cases, (0.0, 0.0), replace=True)
        assert exercises.available()[name] == "replaced"
    finally:
        _registry._REGISTRY.pop(name, None)


def test_cases_are_reproducible_and_cover_broadcasting():
    exercise = exercises.get("diag_log_prob")
    first = exercise.make_cases(torch.Generator().manual_seed(0))
    second = exercise.make_cases(torch.Generator().manual_seed(0))
    for case_a, case_b in zip(first, second):
        for x, y in zip(case_a.inputs.values(), case_b.inputs.values()):
            assert torch.equal(x, y)
    classic = first[0].inputs
    assert classic["a"].shape == (32, 10) and classic["log_std"].shape == (10,)
    assert gaussian.diag_log_prob(**classic).shape == (32,)


# ---------------------------------------------------------------------------------------------
# The result object


def test_check_returns_a_result_with_every_case_passed():
    result = exercises.check("normal_score", student_normal_score)
    assert isinstance(result, exercises.CheckResult)
    assert result.ok and result.failed == 0 and result.passed == len(result.cases) == 4
    assert result.score == 1.0 and result.messages == ()


def test_partial_credit_counts_the_cases_passed():
    def no_broadcast(a, mean, std):  # a typical slip: breaks on the 0-d std only
        if std.dim() == 0:
            raise ValueError("std must have the shape of a")
        return student_normal_score(a, mean, std)

    with pytest.raises(exercises.CheckFailed) as info:
        exercises.check("normal_score", no_broadcast)
    result = info.value.result
    assert (result.passed, result.failed, result.score, result.ok) == (3, 1, 0.75, False)
    assert str(info.value) == result.messages[0]
    assert "std is a 0-d tensor shared by all entries" in result.messages[0]
    assert result.summary().startswith("normal_score: 3 of 4 cases passed (score 0.75")
    graded = exercises.grade("normal_score", no_broadcast)
    assert graded.score == 0.75
    graded.assert_passed(0, "same shape (7,)")
    with pytest.raises(AssertionError, match="your function raised ValueError: std must have the shape of a"):
        graded.assert_passed(1)
    with pytest.raises(AssertionError, match="ValueError"):
        graded.assert_passed()


def test_an_exercise_without_cases_cannot_pass():
    name = "test_no_cases"
    try:
        exercises.register(name, "nothing to check", lambda x: x, lambda g: [], (0.0, 0.0))
        result = exercises.grade(name, lambda x: x)
        assert not result.ok and result.score == 0.0 and result.passed == 0
        with pytest.raises(AssertionError, match="has no cases"):
            result.assert_passed()
        with pytest.raises(exercises.CheckFailed, match="has no cases, so nothing was checked"):
            exercises.check(name, lambda x: x)
    finally:
        _registry._REGISTRY.pop(name, None)


def test_the_printed_line_is_not_shown_twice_in_a_notebook(capsys):
    result = exercises.check("normal_score", student_normal_score)
    assert capsys.readouterr().out.count("\n") == 1
    result._ipython_display_()  # what IPython calls when the check is a cell's last line
    assert capsys.readouterr().out == ""
    graded = exercises.grade("diag_score", student_diag_score)
    graded._ipython_display_()
    assert capsys.readouterr().out == graded.report() + "\n"


# ---------------------------------------------------------------------------------------------
# Submissions that would break a naive checker


def _live_workers() -> int:
    return sum(thread.name == "pgnotes-exercise" for thread in threading.enumerate())


def test_a_hanging_function_fails_within_the_timeout_and_is_stopped():
    def endless(a, mean, std):
        while True:
            pass

    start = time.perf_counter()
    result = exercises.grade("normal_score", endless, timeout=0.5)
    elapsed = time.perf_counter() - start
    assert 0.5 <= elapsed < 3.0  # one timeout, not one per case
    assert result.passed == 0 and result.score == 0.0
    assert "did not return within 0.5 s" in result.messages[0]
    assert all("not run: your function did not return on an earlier case" in m for m in result.messages[1:])
    deadline = time.perf_counter() + 5
    while _live_workers() and time.perf_counter() < deadline:  # the Python loop is sent an exception
        time.sleep(0.05)
    assert _live_workers() == 0


def test_a_sleeping_function_fails_within_the_timeout():
    start = time.perf_counter()
    with pytest.raises(exercises.CheckFailed, match="did not return within 0.3 s"):
        exercises.check("tanh_log_abs_det_jacobian", lambda u: time.sleep(60), timeout=0.3)
    assert time.perf_counter() - start < 3.0


def test_sys_exit_is_a_failed_case_not_an_exit():
    def exits(a, mean, std):
        sys.exit(3)

    result = exercises.grade("normal_score", exits)
    assert result.failed == 4
    assert result.messages[0].startswith("normal_score: your function called sys.exit(3) (raised SystemExit)")


def test_keyboard_interrupt_raised_by_the_function_is_a_failed_case():
    def interrupts(a, mean, std):
        raise KeyboardInterrupt

    with pytest.raises(exercises.CheckFailed, match="your function raised KeyboardInterrupt"):
        exercises.check("normal_score", interrupts)


def test_a_stub_is_not_implemented_yet():
    def stub(a, mean, std):
        raise NotImplementedError

    for unfinished in (stub, lambda a, mean, std: None, lambda a, mean, std: ...):
        result = exercises.grade("normal_score", unfinished)
        assert result.score == 0.0
        assert result.messages[0].startswith("normal_score: not implemented yet"), result.messages[0]


def test_inputs_modified_in_place_are_reported():
    def subtracts_in_place(a, mean, std):
        d = a.sub_(mean)  # the answer is right, but the caller's a is gone
        return d / std**2, (d**2 - std**2) / std**3

    with pytest.raises(exercises.CheckFailed, match=r"modified its input a in place") as info:
        exercises.check("normal_score", subtracts_in_place)
    assert info.value.result.failed == 3  # the fourth case has mean 0: a - 0 leaves a as it was

    def scales_std(a, mean, std):
        std *= 1.0 + 1e-12
        return student_normal_score(a, mean, std)

    assert "modified its input std in place" in exercises.grade("normal_score", scales_std).messages[0]


def test_a_tensor_on_another_device_is_a_failed_case():
    def on_meta(a, mean, std):
        return tuple(t.to("meta") for t in student_normal_score(a, mean, std))

    with pytest.raises(exercises.CheckFailed, match=r"d_mean is on device meta, expected cpu"):
        exercises.check("normal_score", on_meta)


def test_grading_refuses_a_call_to_the_reference_however_imported():
    from pgnotes.gaussian import normal_score as renamed

    def wrapper(a, mean, std):
        return renamed(a, mean, std)

    for submission in (gaussian.normal_score, wrapper, lambda a, mean, std: gaussian.normal_score(a, mean, std)):
        exercises.check("normal_score", submission)  # the learner's check accepts it
        result = exercises.grade("normal_score", submission)
        assert result.score == 0.0
        assert "calls the reference implementation pgnotes.gaussian.normal_score" in result.messages[0]
    # Calling another function of the package is allowed.
    assert exercises.grade("normal_score", lambda a, mean, std: (
        gaussian.normal_score_log_std(a, mean, torch.log(std))[0], student_normal_score(a, mean, std)[1]
    )).ok


def test_grading_refuses_the_package_function_behind_an_adapter():
    def via_package(mean, std, k, baseline):
        v = estimators.exact_variance_quadratic(mean, std, k, baseline=baseline)
        return v.score_mean, v.score_std, v.pathwise_mean, v.pathwise_std

    result = exercises.grade("exact_variance_quadratic", via_package)
    assert "calls the reference implementation pgnotes.objectives.exact_variance_quadratic" in result.messages[0]


def test_grading_remembers_the_result_of_a_function():
    calls = []

    def counted(u):
        calls.append(1)
        return student_tanh(u)

    first = exercises.grade("tanh_log_abs_det_jacobian", counted)
    assert exercises.grade("tanh_log_abs_det_jacobian", counted) is first and first.ok
    assert len(calls) == len(first.cases)


# ---------------------------------------------------------------------------------------------
# describe


def test_describe_gives_the_argument_order_shapes_and_output_order():
    text = str(exercises.describe("normal_score"))
    lines = text.splitlines()
    assert lines[0] == "normal_score(a, mean, std) -> (d_mean, d_std)"
    assert "by position in this order" in lines[2]
    assert [line.split()[0] for line in lines[3:6]] == ["a", "mean", "std"]
    assert "tensor (float64); in the cases: shapes (7,), (), (3,), (6,)" in lines[5]
    assert lines[6] == "Returns a tuple of 2 tensors, in this order:"
    assert [line.split()[0] for line in lines[7:9]] == ["d_mean", "d_std"]
    assert "shapes (7,), (5,), (4, 3), (6,)" in lines[7]
    assert "atol=1e-10, rtol=1e-09" in lines[-1]


def test_describe_shows_plain_values_and_single_outputs():
    description = exercises.describe("reward_to_go")
    assert description.signature == "reward_to_go(rewards, gamma) -> output"
    assert "gamma    float; in the cases: values 0.9, 0.5, 0.99, 1.0" in str(description)
    assert "Returns one tensor:" in repr(description)
    assert exercises.describe("diag_log_prob").signature == "diag_log_prob(a, mean, log_std) -> output"


@pytest.mark.parametrize("name", list(exercises.available()))
def test_every_exercise_can_be_described(name):
    assert str(exercises.describe(name)).startswith(f"{name}(")


# ---------------------------------------------------------------------------------------------
# Layout: per-concept modules, loaded on demand


def test_the_catalogue_lists_exactly_what_each_module_registers():
    for module, names in _catalogue.MODULES.items():
        registered = [n for n, e in _registry._REGISTRY.items() if e.make_cases.__module__ == module]
        assert registered == list(names), module
    assert sorted(exercises.available()) == sorted(n for names in _catalogue.MODULES.values() for n in names)


def _modules_after(*steps: str) -> list[set[str]]:
    """The pgnotes modules loaded after each step, run in order in a fresh interpreter."""
    report = "print(' '.join(m for m in sys.modules if m.startswith('pgnotes')))"
    script = "\n".join(["import sys", *(f"{step}\n{report}" for step in steps)])
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return [set(line.split()) for line in output.splitlines()]


def test_importing_the_checkers_does_not_import_the_package():
    imported, looked_up = _modules_after("from pgnotes import exercises", "exercises.get('reward_to_go')")
    mechanism = {"_catalogue", "_checking", "_describe", "_registry"}
    assert imported == {"pgnotes", "pgnotes.exercises"} | {f"pgnotes.exercises.{name}" for name in mechanism}
    assert {"pgnotes.exercises.reinforce", "pgnotes.reinforce"} <= looked_up
    assert not {"pgnotes.exercises.gaussian", "pgnotes.exercises.estimators", "pgnotes.estimators"} & looked_up


@pytest.mark.parametrize("module", list(_catalogue.MODULES))
def test_each_concept_module_imports_on_its_own(module):
    assert module in _modules_after(f"import {module}")[0]  # imported first: no cycle through the package


def test_pathwise_checkers_accept_an_independent_solution_and_refuse_wrong_ones():
    import math

    from pgnotes import lqr

    def my_sac_std(task, gain, alpha):
        # Through the value's P (lqr.quadratic_value), not the action-value matrix the reference uses.
        P, _ = lqr.quadratic_value(task, torch.tensor([[gain]], dtype=torch.float64))
        return math.sqrt(alpha / (2 * (task.R.item() + task.gamma * task.B.item() ** 2 * P.item())))

    def my_return_derivative(task, gain, std, noise):
        # Forward-mode sensitivities ds_t/dK, independent of the reference's backpropagation.
        A, B, Q, R = (m.item() for m in (task.A, task.B, task.Q, task.R))
        state = noise.initial_states[:, 0]
        sensitivity = torch.zeros_like(state)
        derivative = torch.zeros_like(state)
        for t in range(noise.action_noise.shape[1]):
            action = -gain * state + std * noise.action_noise[:, t, 0]
            action_sensitivity = -state - gain * sensitivity
            derivative = derivative - 2 * task.gamma**t * (Q * state * sensitivity + R * action * action_sensitivity)
            state, sensitivity = (
                A * state + B * action + noise.process_noise[:, t, 0],
                (A - B * gain) * sensitivity - B * state,
            )
        return derivative

    assert exercises.grade("sac_optimal_std", my_sac_std).score == 1.0
    assert exercises.grade("return_derivative_gain", my_return_derivative).score == 1.0
    assert exercises.grade("sac_optimal_std", lambda t, g, a: 1.01 * my_sac_std(t, g, a)).score == 0.0
    # Forgetting the discount of the later steps: a typical mistake, caught.
    no_discount = lambda t, g, s, n: my_return_derivative(lqr.task_1d(gamma=0.999999), g, s, n)  # noqa: E731
    assert exercises.grade("return_derivative_gain", no_discount).score < 1.0
    described = exercises.describe("return_derivative_gain")
    assert "return_derivative_gain(task, gain, std, noise)" in str(described) and "EpisodeNoise" in str(described)


def test_diag_kl_checker_accepts_the_textbook_formula_and_catches_swapped_arguments():
    def my_diag_kl(mean_p, log_std_p, mean_q, log_std_q):
        var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
        return (log_std_q - log_std_p + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5).sum(-1)

    assert exercises.grade("diag_kl", my_diag_kl).score == 1.0
    swapped = exercises.grade("diag_kl", lambda mp, lp, mq, lq: my_diag_kl(mq, lq, mp, lp))
    # Only the case with equal scales, where the KL is symmetric, passes.
    assert swapped.score == pytest.approx(0.25)
