"""Grade the committed sample submissions of every assignment with otter-grader, locally.

Each assignment's master notebook (assignments/<name>/<name>.ipynb) is built with ``otter assign``
into an autograder zip, and each sample submission (assignments/<name>/samples/*.ipynb, written by
assignments/make_samples.py) is graded with ``otter run``: otter's non-containerised grading, the
same run_autograder that Gradescope's image calls. The scores and the feedback are checked.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

with warnings.catch_warnings():  # otter's own traitlets declarations, not this project's code
    warnings.filterwarnings("ignore", "Traits should be given as instances", DeprecationWarning)
    import otter  # noqa: F401  (the test extra installs otter-grader: without it these tests fail, not skip)

ROOT = pathlib.Path(__file__).resolve().parent.parent
ASSIGNMENTS = ROOT / "assignments"
OTTER = [sys.executable, "-m", "otter"]
TIMEOUT = 5  # seconds, the timeout the assignments' tests pass to exercises.grade

# (assignment, sample) -> score per question; the maximum is the "correct" sample's.
EXPECTED = {
    ("gaussian_scores", "correct"): {"q1": 3, "q2": 3, "q3": 4},
    # d / std instead of d / std^2; log_std.sum() over every axis (public case passes); q3 right.
    ("gaussian_scores", "wrong"): {"q1": 0, "q2": 1, "q3": 4},
    ("estimators", "correct"): {"q1": 3, "q2": 3, "q3": 3},
    # q1 imports the package's answer (refused); q3 the naive tanh correction (public case passes).
    ("estimators", "wrong"): {"q1": 0, "q2": 3, "q3": 1},
    ("reinforce", "correct"): {"q1": 4},
    ("reinforce", "hanging"): {"q1": 0},
}


def test_every_assignment_has_samples_and_every_sample_an_expected_score():
    samples = {(p.parent.parent.name, p.stem) for p in ASSIGNMENTS.glob("*/samples/*.ipynb")}
    assert samples == set(EXPECTED)
    for name in {name for name, _ in EXPECTED}:
        assert (ASSIGNMENTS / name / f"{name}.ipynb").is_file()


def _assign(name: str, output: pathlib.Path) -> pathlib.Path:
    subprocess.run([*OTTER, "assign", "--no-run-tests", "--no-pdfs", f"{name}.ipynb", str(output)],
                   cwd=ASSIGNMENTS / name, check=True, capture_output=True, text=True)
    (zip_path,) = (output / "autograder").glob(f"{name}-autograder_*.zip")
    return zip_path


def _run(autograder: pathlib.Path, submission: pathlib.Path, output: pathlib.Path) -> tuple[dict, float]:
    output.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run([*OTTER, "run", "--no-logo", "-a", str(autograder), "-o", str(output), str(submission)],
                   cwd=output, check=True, capture_output=True, text=True, timeout=300)
    return json.loads((output / "results.json").read_text()), time.perf_counter() - start


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Results (Gradescope's results.json) and wall time of every sample, graded three at a time."""
    tmp = tmp_path_factory.mktemp("assignments")
    names = sorted({name for name, _ in EXPECTED})
    with ThreadPoolExecutor(max_workers=3) as pool:
        zips = dict(zip(names, pool.map(lambda n: _assign(n, tmp / "build" / n), names)))
        runs = {
            key: pool.submit(_run, zips[key[0]], ASSIGNMENTS / key[0] / "samples" / f"{key[1]}.ipynb",
                             tmp / "results" / key[0] / key[1])
            for key in EXPECTED
        }
        return {key: future.result() for key, future in runs.items()}


def _scores(results: dict) -> dict[str, float]:
    return {test["name"]: test["score"] for test in results["tests"] if "score" in test}


def _feedback(results: dict, question: str) -> str:
    return next(test["output"] for test in results["tests"] if test["name"] == question)


@pytest.mark.parametrize("key", list(EXPECTED), ids="-".join)
def test_sample_scores(graded, key):
    results, _ = graded[key]
    assert _scores(results) == EXPECTED[key]
    maximum = {test["name"]: test["max_score"] for test in results["tests"] if "max_score" in test}
    assert maximum == EXPECTED[(key[0], "correct")]


def test_wrong_answers_get_readable_feedback(graded):
    results, _ = graded[("gaussian_scores", "wrong")]
    feedback = _feedback(results, "q1")
    assert "normal_score: d_mean is wrong at index [5]: expected -2.450941741, got -1.152482674" in feedback
    assert "case: same shape (7,)" in feedback
    feedback = _feedback(results, "q2")
    assert "✅ Test case passed" in feedback
    assert "case: batch 5 x 2 x 4, mean (4,), log_std (5, 1, 4) (broadcast)" in feedback
    results, _ = graded[("estimators", "wrong")]
    assert "calls the reference implementation pgnotes.objectives.exact_gradient_step" in _feedback(results, "q1")
    assert "got -inf" in _feedback(results, "q3")


def test_a_hanging_submission_is_failed_within_the_timeout(graded):
    results, seconds = graded[("reinforce", "hanging")]
    feedback = _feedback(results, "q1")
    assert f"reward_to_go: your function did not return within {TIMEOUT} s" in feedback
    assert "not run: your function did not return on an earlier case" in feedback
    # One timeout for the question (grade remembers a function's result), not one per case or per test.
    assert seconds < 60
