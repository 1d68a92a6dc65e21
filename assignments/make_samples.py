#!/usr/bin/env python3
"""Write the sample submissions of each assignment: the student notebook with answers filled in.

Usage (from the repository root, after changing a master notebook)::

    python assignments/make_samples.py

Each sample is the student notebook that ``otter assign`` builds from the master, with the cell of
each answer replaced by the code below; ``tests/test_assignments.py`` grades them with otter-grader
and checks their scores. ``correct`` answers every question right (full marks), ``wrong`` holds the
slips students make (partial marks), ``hanging`` a loop that never ends (failed within the timeout).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

# Answers that the "wrong" samples share with the "correct" ones (only other questions are wrong there).
MVN_SCORE = """
def mvn_score(a, mean, cov):
    cov_inv = torch.linalg.inv(cov)
    w = (cov_inv @ (a - mean).unsqueeze(-1)).squeeze(-1)
    return w, 0.5 * (w.unsqueeze(-1) * w.unsqueeze(-2) - cov_inv)
"""
STEP_GRADIENT = """
def step_gradient(mean, std, k, n):
    generator = torch.Generator().manual_seed(2024)
    shape = torch.broadcast_shapes(mean.shape, std.shape, k.shape)
    eps = torch.randn((n, *shape), dtype=torch.float64, generator=generator)
    above = (mean + std * eps > k).double()
    return (above * eps / std).mean(0), (above * (eps**2 - 1) / std).mean(0)
"""

SAMPLES: dict[str, dict[str, dict[str, str]]] = {
    "gaussian_scores": {
        "correct": {
            "normal_score": """
def normal_score(a, mean, std):
    variance = std * std
    residual = a - mean
    return residual / variance, (residual * residual - variance) / (variance * std)
""",
            "diag_log_prob": """
def diag_log_prob(a, mean, log_std):
    std = torch.exp(log_std)
    terms = -0.5 * ((a - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return terms.sum(dim=-1)
""",
            "mvn_score": MVN_SCORE,
        },
        "wrong": {
            # d / std instead of d / std**2: every case fails.
            "normal_score": """
def normal_score(a, mean, std):
    d = a - mean
    return d / std, (d**2 - std**2) / std**3
""",
            # log_std.sum() over every axis: right while log_std is one vector, wrong for a batch of them.
            "diag_log_prob": """
def diag_log_prob(a, mean, log_std):
    z = (a - mean) / torch.exp(log_std)
    return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1) - log_std.sum()
""",
            "mvn_score": MVN_SCORE,
        },
    },
    "estimators": {
        "correct": {
            "exact_gradient_step": """
def exact_gradient_step(mean, std, k):
    z = (k - mean) / std
    density = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return density / std, z * density / std
""",
            "step_gradient": STEP_GRADIENT,
            "tanh_correction": """
def tanh_correction(u):
    return 2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))
""",
        },
        "wrong": {
            # Calls the package's own answer: refused by the grader.
            "exact_gradient_step": """
from pgnotes.objectives import exact_gradient_step
""",
            "step_gradient": STEP_GRADIENT,
            # The naive formula: right for moderate u, -inf at |u| = 20.
            "tanh_correction": """
def tanh_correction(u):
    return torch.log(1 - torch.tanh(u) ** 2)
""",
        },
    },
    "reinforce": {
        "correct": {
            "reward_to_go": """
def reward_to_go(rewards, gamma):
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running
        returns[..., t] = running
    return returns
""",
        },
        "hanging": {
            # The step t -= 1 is missing: the loop never ends.
            "reward_to_go": """
def reward_to_go(rewards, gamma):
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    t = rewards.shape[-1] - 1
    while t >= 0:
        running = rewards[..., t] + gamma * running
        returns[..., t] = running
    return returns
""",
        },
    },
}


def student_notebook(name: str, output: pathlib.Path) -> nbformat.NotebookNode:
    """Build the assignment with otter assign and read its student notebook."""
    subprocess.run(
        [sys.executable, "-m", "otter", "assign", "--no-run-tests", f"{name}.ipynb", str(output)],
        cwd=HERE / name, check=True, capture_output=True,
    )
    return nbformat.read(output / "student" / f"{name}.ipynb", as_version=4)


def fill(notebook: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """The notebook with each ``def <function>(...): ...`` cell replaced by its answer."""
    filled = nbformat.from_dict(notebook)
    done = set()
    for cell in filled.cells:
        for function, answer in answers.items():
            if cell.cell_type == "code" and cell.source.startswith(f"def {function}("):
                cell.source = answer.strip()
                done.add(function)
    missing = set(answers) - done
    if missing:
        raise ValueError(f"no answer cell for {sorted(missing)}")
    return filled


def main() -> int:
    for name, samples in SAMPLES.items():
        with tempfile.TemporaryDirectory() as tmp:
            notebook = student_notebook(name, pathlib.Path(tmp))
        folder = HERE / name / "samples"
        folder.mkdir(exist_ok=True)
        for sample, answers in samples.items():
            nbformat.write(fill(notebook, answers), folder / f"{sample}.ipynb")
            print(f"wrote {folder.relative_to(HERE.parent) / (sample + '.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
