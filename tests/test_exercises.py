"""Tests of pgnotes.exercises: correct answers pass with one line, wrong ones fail helpfully."""

from __future__ import annotations

import math

import pytest
import torch

from pgnotes import exercises, gaussian

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
    exercises.check(name, exercises._REGISTRY[name].reference)
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
        exercises._REGISTRY.pop(name, None)


def test_cases_are_reproducible_and_cover_broadcasting():
    exercise = exercises._REGISTRY["diag_log_prob"]
    first = exercise.make_cases(torch.Generator().manual_seed(0))
    second = exercise.make_cases(torch.Generator().manual_seed(0))
    for case_a, case_b in zip(first, second):
        for x, y in zip(case_a.inputs.values(), case_b.inputs.values()):
            assert torch.equal(x, y)
    classic = first[0].inputs
    assert classic["a"].shape == (32, 10) and classic["log_std"].shape == (10,)
    assert gaussian.diag_log_prob(**classic).shape == (32,)
