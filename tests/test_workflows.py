"""The CI workflows are valid GitHub Actions workflows and run the README's commands.

Validation uses the GitHub workflow JSON schema vendored inside
``check-jsonschema`` (``--builtin-schema vendor.github-workflows``), so it needs
no network. Every check runs with the HTTP(S) proxy pointed at a closed local
port: a check that tried to download a schema would fail instead of quietly
depending on the network.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOW_DIR.glob("*.yml")) + sorted(WORKFLOW_DIR.glob("*.yaml"))
README = REPO_ROOT / "README.md"
CI_RUN = REPO_ROOT / ".ci" / "run"

# The workflow that tests every change and publishes the book, and the ids of
# the steps that must run the README's commands verbatim.
BOOK_WORKFLOW = WORKFLOW_DIR / "book.yml"
TEST_STEP_ID = "test-command"
BOOK_STEP_ID = "book-command"
TEST_COMMAND_MARKER = "<!-- test-command -->"
BOOK_COMMAND_MARKER = "<!-- book-command -->"

# Port 9 (discard) on the loopback interface: nothing listens there, so any
# download attempt fails at once with "connection refused".
_CLOSED_PROXY = "http://127.0.0.1:9"


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"no_proxy", "all_proxy"}}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = _CLOSED_PROXY
    return env


def run_workflow_schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    """Validate ``paths`` against GitHub's workflow schema, without network access."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        env=_offline_env(),
        timeout=120,
        check=False,
    )


_FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[^`]*$")


def command_after_marker(markdown: str, marker: str) -> str:
    """First line of the fenced code block that directly follows ``marker``.

    Only blank lines may separate the marker from the opening fence, so moving
    the marker away from its code block is an error, not a silent mismatch.
    The line is returned verbatim (no stripping) for an exact comparison.
    """
    lines = markdown.splitlines()
    marker_lines = [i for i, line in enumerate(lines) if line.strip() == marker]
    if len(marker_lines) != 1:
        raise ValueError(f"expected exactly one line {marker!r}, found {len(marker_lines)}")
    i = marker_lines[0] + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    opening = _FENCE_OPEN.match(lines[i]) if i < len(lines) else None
    if opening is None:
        raise ValueError(f"{marker!r} is not followed by a fenced code block")
    fence = opening.group("fence")
    if i + 1 >= len(lines) or lines[i + 1].startswith(fence):
        raise ValueError(f"the code block after {marker!r} is empty")
    return lines[i + 1]


def _load_workflow(path: Path) -> dict:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _step(workflow: dict, job: str, step_id: str) -> dict:
    steps = [s for s in workflow["jobs"][job]["steps"] if s.get("id") == step_id]
    assert len(steps) == 1, f"job {job!r} must have exactly one step with id {step_id!r}"
    return steps[0]


# --- schema validation -------------------------------------------------------


def test_workflow_directory_holds_the_book_workflow() -> None:
    assert BOOK_WORKFLOW in WORKFLOW_FILES, f"missing {BOOK_WORKFLOW.relative_to(REPO_ROOT)}"


def test_every_workflow_matches_the_github_schema() -> None:
    result = run_workflow_schema_check(*WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation done" in result.stdout


BROKEN_WORKFLOWS = {
    "misspelt-runs-on": (
        "on: push\n"
        "jobs:\n"
        "  test:\n"
        "    run-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: make test\n"
    ),
    "push-trigger-is-a-number": (
        "on:\n"
        "  push: 5\n"
        "jobs:\n"
        "  test:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: make test\n"
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN_WORKFLOWS))
def test_schema_check_rejects_a_broken_workflow(name: str, tmp_path: Path) -> None:
    broken = tmp_path / f"{name}.yml"
    broken.write_text(BROKEN_WORKFLOWS[name], encoding="utf-8")
    result = run_workflow_schema_check(broken)
    # Exit status 1 together with the validation-error banner: the file was
    # read and judged invalid, as opposed to the tool crashing.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors were encountered" in result.stdout, result.stdout


# --- the README's commands are what CI runs ----------------------------------


def test_ci_runs_the_readme_test_command() -> None:
    command = command_after_marker(README.read_text(encoding="utf-8"), TEST_COMMAND_MARKER)
    step = _step(_load_workflow(BOOK_WORKFLOW), "test", TEST_STEP_ID)
    assert step["run"] == command


def test_ci_builds_the_book_with_the_readme_book_command() -> None:
    command = command_after_marker(README.read_text(encoding="utf-8"), BOOK_COMMAND_MARKER)
    step = _step(_load_workflow(BOOK_WORKFLOW), "deploy", BOOK_STEP_ID)
    assert step["run"] == command


def test_ci_run_script_runs_the_readme_test_command() -> None:
    command = command_after_marker(README.read_text(encoding="utf-8"), TEST_COMMAND_MARKER)
    assert command in CI_RUN.read_text(encoding="utf-8").splitlines()


# --- the workflow's structure ------------------------------------------------


def test_deploy_waits_for_the_tests() -> None:
    needs = _load_workflow(BOOK_WORKFLOW)["jobs"]["deploy"]["needs"]
    assert "test" in ([needs] if isinstance(needs, str) else needs)


def test_scheduled_run_installs_without_the_cache() -> None:
    steps = _load_workflow(BOOK_WORKFLOW)["jobs"]["test"]["steps"]
    cache_steps = [s for s in steps if str(s.get("uses", "")).startswith("actions/cache@")]
    assert cache_steps, "the test job restores the pip cache"
    for step in cache_steps:
        assert step.get("if") == "github.event_name != 'schedule'"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_does_not_name_the_repository(path: Path) -> None:
    # The repository is named once, in _config.yml; workflows use
    # ${{ github.repository }} and the Pages deployment's own URL.
    text = path.read_text(encoding="utf-8")
    assert "github.com/" not in text
    assert "github.io" not in text


# --- the README marker helper ------------------------------------------------


def test_command_after_marker_reads_the_first_line_of_the_block() -> None:
    markdown = (
        "# Title\n\n## Test\n\n<!-- test-command -->\n```bash\nmake test\nsecond line\n```\n\n"
        "<!-- book-command -->\n\n~~~\nmake book\n~~~\n"
    )
    assert command_after_marker(markdown, TEST_COMMAND_MARKER) == "make test"
    assert command_after_marker(markdown, BOOK_COMMAND_MARKER) == "make book"


@pytest.mark.parametrize(
    "markdown",
    [
        "no marker\n```\nmake test\n```\n",
        "<!-- test-command -->\nRun this:\n```\nmake test\n```\n",
        "<!-- test-command -->\n```\n```\n",
        "<!-- test-command -->\n",
        "<!-- test-command -->\n```\nmake test\n```\n<!-- test-command -->\n```\nmake\n```\n",
    ],
    ids=["missing", "prose-between", "empty-block", "nothing-after", "duplicated"],
)
def test_command_after_marker_rejects_a_misplaced_marker(markdown: str) -> None:
    with pytest.raises(ValueError):
        command_after_marker(markdown, TEST_COMMAND_MARKER)


def test_command_after_marker_keeps_the_line_verbatim() -> None:
    # A trailing space or a shell prompt must make the comparison with the
    # workflow fail, so the helper must not normalise them away.
    markdown = "<!-- test-command -->\n```console\n$ make test \n```\n"
    assert command_after_marker(markdown, TEST_COMMAND_MARKER) == "$ make test "
